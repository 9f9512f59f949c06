package steward

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Validation of configuration files before they ship. ValidateConfig is a
// pure function of the files: YAML syntax for YAML files and, for files
// that look like an OpenTelemetry Collector config, the structure the
// collector itself insists on at startup (a service section, pipelines that
// name defined components, connectors that both end and start a pipeline).
// MissingComponents then checks the components a config defines against
// what one agent reported in OpAMP AvailableComponents. Files of other
// kinds (syslog-ng, TOML, plain text) get no check they could fail wrongly.

// Finding severities: an error blocks a change unless it is overridden; a
// warning is shown and blocks nothing.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
)

// Finding is one result of validating a config.
type Finding struct {
	Severity string `json:"severity"`
	// File is the config file's key ("" is the default file); Line is
	// 1-based, 0 when the finding is about the config as a whole.
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
	// Rule is what was checked: RuleSyntax, RuleStructure or RuleUnused.
	Rule string `json:"rule"`
}

// Finding rules.
const (
	RuleSyntax    = "syntax"    // the file does not parse
	RuleStructure = "structure" // the collector would refuse the config
	RuleUnused    = "unused"    // defined, never used
)

func (f Finding) String() string {
	loc := f.File
	if loc == "" {
		loc = "(default file)"
	}
	if f.Line > 0 {
		loc += ":" + strconv.Itoa(f.Line)
	}
	return f.Severity + ": " + loc + ": " + f.Message
}

// HasErrors reports whether any finding is an error.
func HasErrors(fs []Finding) bool {
	for _, f := range fs {
		if f.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Component is a collector component a config defines: its kind as the
// top-level section names it ("receivers", "processors", "exporters",
// "connectors", "extensions") and its id, "type" or "type/name".
type Component struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// Type is the component type, the part of the id before '/'; it is what
// an agent's AvailableComponents lists.
func (c Component) Type() string {
	t, _, _ := strings.Cut(c.ID, "/")
	return t
}

// String names the component the way the collector's errors do
// ("exporter otlp/backend").
func (c Component) String() string { return strings.TrimSuffix(c.Kind, "s") + " " + c.ID }

// ConfigCheck is the result of ValidateConfig.
type ConfigCheck struct {
	Findings []Finding `json:"findings"`
	// Components lists the collector components the config defines (every
	// one must exist in the collector, used or not), sorted.
	Components []Component `json:"components,omitempty"`
	// Collector is true when at least one file is a collector config.
	Collector bool `json:"collector"`
}

// collectorKinds are the component sections of a collector config.
var collectorKinds = []string{"receivers", "processors", "exporters", "connectors", "extensions"}

// componentIDRE is the collector's component id: a type of letters, digits
// and '_' starting with a letter, optionally "/name".
var componentIDRE = regexp.MustCompile(`^[a-zA-Z][0-9a-zA-Z_]{0,62}(/[^/\s]+)?$`)

// pipelineIDRE is a pipeline id: a signal, optionally "/name".
var pipelineIDRE = regexp.MustCompile(`^(traces|metrics|logs|profiles)(/[^/\s]+)?$`)

// IsYAMLFile reports whether a config file is YAML: its content type says
// so, or it has none and its name ends in .yaml or .yml.
func IsYAMLFile(name string, f ConfigFile) bool {
	ct := strings.ToLower(f.ContentType)
	if ct != "" {
		return strings.Contains(ct, "yaml")
	}
	ext := strings.ToLower(path.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

// ValidateConfig checks a config's files. YAML files must parse (a syntax
// error is reported with its line). The YAML files that are collector
// configs (a mapping with any of the component sections or service) are
// checked together, merged in name order as the supervisor merges them:
// a service section with pipelines, pipelines of a known signal naming at
// least one receiver and one exporter, every name a pipeline or
// service.extensions uses defined in the right section, every connector
// used both as an exporter and as a receiver, and ids of the form
// "type[/name]". Components defined and never used are warnings.
func ValidateConfig(files ConfigMap) ConfigCheck {
	var out ConfigCheck
	c := newCollectorModel()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		f := files[name]
		if !IsYAMLFile(name, f) {
			continue
		}
		root, finding := parseYAML(name, f.Body)
		if finding != nil {
			out.Findings = append(out.Findings, *finding)
			continue
		}
		if root != nil && isCollectorConfig(root) {
			c.add(name, root)
		}
	}
	if len(c.files) > 0 {
		out.Collector = true
		out.Findings = append(out.Findings, c.check()...)
		out.Components = c.components()
	}
	return out
}

// parseYAML returns the root node of a YAML file (nil when it is empty) or
// a finding for its syntax error.
func parseYAML(name string, body []byte) (*yaml.Node, *Finding) {
	var doc yaml.Node
	if err := yaml.Unmarshal(body, &doc); err != nil {
		line, msg := yamlErrorLine(err)
		return nil, &Finding{Severity: SeverityError, File: name, Line: line, Message: "YAML syntax: " + msg, Rule: RuleSyntax}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	if k := duplicateKey(doc.Content[0]); k != nil {
		return nil, &Finding{Severity: SeverityError, File: name, Line: k.Line, Message: fmt.Sprintf("YAML syntax: mapping key %q already defined", k.Value), Rule: RuleSyntax}
	}
	return resolve(doc.Content[0]), nil
}

// duplicateKey returns the first key that repeats one before it in the
// same mapping (yaml.v3 reports these only when decoding into a map, which
// is what the collector does).
func duplicateKey(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.MappingNode {
		seen := make(map[string]bool, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind == yaml.ScalarNode && k.Value != "<<" {
				if seen[k.Value] {
					return k
				}
				seen[k.Value] = true
			}
		}
	}
	for _, c := range n.Content {
		if d := duplicateKey(c); d != nil {
			return d
		}
	}
	return nil
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlErrorLine extracts the line yaml.v3 puts in its messages.
func yamlErrorLine(err error) (int, string) {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	return 0, strings.TrimPrefix(msg, "yaml: ")
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// mapping returns the key/value pairs of a mapping node (nil otherwise).
func mapping(n *yaml.Node) [][2]*yaml.Node {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	pairs := make([][2]*yaml.Node, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		pairs = append(pairs, [2]*yaml.Node{n.Content[i], resolve(n.Content[i+1])})
	}
	return pairs
}

// lookup returns the key and value nodes of key in mapping n.
func lookup(n *yaml.Node, key string) (k, v *yaml.Node) {
	for _, p := range mapping(n) {
		if p[0].Value == key {
			return p[0], p[1]
		}
	}
	return nil, nil
}

func isCollectorConfig(root *yaml.Node) bool {
	if root.Kind != yaml.MappingNode {
		return false
	}
	for _, k := range append([]string{"service"}, collectorKinds...) {
		if key, _ := lookup(root, k); key != nil {
			return true
		}
	}
	return false
}

// at is where something was written.
type at struct {
	file string
	line int
}

// ref is a use of a component id.
type ref struct {
	id string
	at at
}

// pipeline is one service pipeline after merging: each list is the one
// written by the last file that set it.
type pipeline struct {
	at                               at
	receivers, processors, exporters []ref
	set                              map[string]bool // lists present
}

// collectorModel is the collector config merged from several files.
type collectorModel struct {
	files      []string
	defined    map[string]map[string]at // kind -> id -> where defined
	service    *at
	pipelines  map[string]*pipeline
	order      []string // pipeline ids in first-seen order
	extensions []ref    // service.extensions, last writer wins
	findings   []Finding
}

func newCollectorModel() *collectorModel {
	m := &collectorModel{defined: map[string]map[string]at{}, pipelines: map[string]*pipeline{}}
	for _, k := range collectorKinds {
		m.defined[k] = map[string]at{}
	}
	return m
}

func (m *collectorModel) errorf(where at, format string, args ...any) {
	m.findings = append(m.findings, Finding{Severity: SeverityError, File: where.file, Line: where.line, Message: fmt.Sprintf(format, args...), Rule: RuleStructure})
}

func (m *collectorModel) warnf(where at, format string, args ...any) {
	m.findings = append(m.findings, Finding{Severity: SeverityWarning, File: where.file, Line: where.line, Message: fmt.Sprintf(format, args...), Rule: RuleUnused})
}

// add merges one file's definitions and service section.
func (m *collectorModel) add(file string, root *yaml.Node) {
	m.files = append(m.files, file)
	for _, kind := range collectorKinds {
		key, sec := lookup(root, kind)
		if key == nil || sec.Tag == "!!null" {
			continue
		}
		if sec.Kind != yaml.MappingNode {
			m.errorf(at{file, key.Line}, "%s must be a mapping of component ids to settings", kind)
			continue
		}
		for _, p := range mapping(sec) {
			id := p[0].Value
			if !componentIDRE.MatchString(id) {
				m.errorf(at{file, p[0].Line}, "invalid %s id %q: use type[/name], the type of letters, digits and '_'", strings.TrimSuffix(kind, "s"), id)
				continue
			}
			m.defined[kind][id] = at{file, p[0].Line}
		}
	}
	key, svc := lookup(root, "service")
	if key == nil {
		return
	}
	m.service = &at{file, key.Line}
	if svc.Kind != yaml.MappingNode {
		if svc.Tag != "!!null" {
			m.errorf(at{file, key.Line}, "service must be a mapping")
		}
		return
	}
	if k, v := lookup(svc, "extensions"); k != nil {
		m.extensions = m.refList(file, "service.extensions", k, v)
	}
	k, pipes := lookup(svc, "pipelines")
	if k == nil {
		return
	}
	if pipes.Kind != yaml.MappingNode {
		if pipes.Tag != "!!null" {
			m.errorf(at{file, k.Line}, "service.pipelines must be a mapping of pipeline ids to pipelines")
		}
		return
	}
	for _, p := range mapping(pipes) {
		m.addPipeline(file, p[0], p[1])
	}
}

func (m *collectorModel) addPipeline(file string, key, body *yaml.Node) {
	id := key.Value
	pl := m.pipelines[id]
	if pl == nil {
		pl = &pipeline{at: at{file, key.Line}, set: map[string]bool{}}
		m.pipelines[id] = pl
		m.order = append(m.order, id)
	}
	if !pipelineIDRE.MatchString(id) {
		m.errorf(at{file, key.Line}, "pipeline %q: the id must be traces, metrics, logs or profiles, optionally followed by /name", id)
	}
	if body.Kind != yaml.MappingNode {
		if body.Tag != "!!null" {
			m.errorf(at{file, key.Line}, "pipeline %q must be a mapping", id)
		}
		return
	}
	for _, p := range mapping(body) {
		field := "service.pipelines." + id + "." + p[0].Value
		switch p[0].Value {
		case "receivers":
			pl.receivers = m.refList(file, field, p[0], p[1])
		case "processors":
			pl.processors = m.refList(file, field, p[0], p[1])
		case "exporters":
			pl.exporters = m.refList(file, field, p[0], p[1])
		default:
			continue
		}
		pl.set[p[0].Value] = true
	}
}

// refList reads a list of component ids.
func (m *collectorModel) refList(file, field string, key, list *yaml.Node) []ref {
	if list.Tag == "!!null" {
		return nil
	}
	if list.Kind != yaml.SequenceNode {
		m.errorf(at{file, key.Line}, "%s must be a list of component ids", field)
		return nil
	}
	refs := make([]ref, 0, len(list.Content))
	for _, it := range list.Content {
		it = resolve(it)
		if it.Kind != yaml.ScalarNode {
			m.errorf(at{file, it.Line}, "%s: every entry must be a component id", field)
			continue
		}
		refs = append(refs, ref{id: it.Value, at: at{file, it.Line}})
	}
	return refs
}

// check runs the whole-config checks once every file is merged.
func (m *collectorModel) check() []Finding {
	whole := at{file: m.files[0]}
	if m.service == nil {
		m.errorf(whole, "no service section: a collector config needs service.pipelines")
		return m.findings
	}
	if len(m.pipelines) == 0 {
		m.errorf(*m.service, "service has no pipelines: the collector would start nothing")
	}
	used := map[string]map[string]bool{}
	use := func(kind, id string) {
		if used[kind] == nil {
			used[kind] = map[string]bool{}
		}
		used[kind][id] = true
	}
	connIn, connOut := map[string]bool{}, map[string]bool{} // connector as receiver / as exporter
	for _, id := range m.order {
		pl := m.pipelines[id]
		if len(pl.receivers) == 0 {
			m.errorf(pl.at, "pipeline %q has no receivers", id)
		}
		if len(pl.exporters) == 0 {
			m.errorf(pl.at, "pipeline %q has no exporters", id)
		}
		for _, r := range pl.receivers {
			m.resolveRef(id, "receiver", r, "receivers", connIn, use)
		}
		for _, r := range pl.processors {
			m.resolveRef(id, "processor", r, "processors", nil, use)
		}
		for _, r := range pl.exporters {
			m.resolveRef(id, "exporter", r, "exporters", connOut, use)
		}
	}
	for id, where := range m.defined["connectors"] {
		switch {
		case connOut[id] && !connIn[id]:
			m.errorf(where, "connector %q is used as an exporter but no pipeline uses it as a receiver", id)
		case connIn[id] && !connOut[id]:
			m.errorf(where, "connector %q is used as a receiver but no pipeline uses it as an exporter", id)
		}
	}
	for _, r := range m.extensions {
		if _, ok := m.defined["extensions"][r.id]; !ok {
			m.errorf(r.at, "service.extensions names extension %q, which is not defined under extensions", r.id)
		}
		use("extensions", r.id)
	}
	m.warnUnused(used)
	sortFindings(m.findings)
	return m.findings
}

// resolveRef checks one id a pipeline uses as role (receiver, processor or
// exporter): it must be defined in section kind or, for receivers and
// exporters, as a connector (then recorded in conn).
func (m *collectorModel) resolveRef(pipelineID, role string, r ref, kind string, conn map[string]bool, use func(kind, id string)) {
	if _, ok := m.defined[kind][r.id]; ok {
		use(kind, r.id)
		return
	}
	if conn != nil {
		if _, ok := m.defined["connectors"][r.id]; ok {
			conn[r.id] = true
			use("connectors", r.id)
			return
		}
	}
	m.errorf(r.at, "pipeline %q uses %s %q, which is not defined under %s", pipelineID, role, r.id, kind)
}

func (m *collectorModel) warnUnused(used map[string]map[string]bool) {
	for _, kind := range collectorKinds {
		for id, where := range m.defined[kind] {
			if !used[kind][id] {
				what := "no pipeline uses it"
				if kind == "extensions" {
					what = "service.extensions does not list it"
				}
				m.warnf(where, "%s %q is defined but %s", strings.TrimSuffix(kind, "s"), id, what)
			}
		}
	}
}

// components lists every defined component, sorted by kind and id.
func (m *collectorModel) components() []Component {
	var out []Component
	for _, kind := range collectorKinds {
		for id := range m.defined[kind] {
			out = append(out, Component{Kind: kind, ID: id})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func sortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		if fs[i].File != fs[j].File {
			return fs[i].File < fs[j].File
		}
		if fs[i].Line != fs[j].Line {
			return fs[i].Line < fs[j].Line
		}
		return fs[i].Message < fs[j].Message
	})
}

// MissingComponents returns the components of cs whose type the agent's
// AvailableComponents (the OpAMP report: kinds such as "receivers" mapping
// to component types) does not list. known is false when the agent
// reported no component details, so nothing could be checked.
func MissingComponents(cs []Component, available *ComponentDetails) (missing []Component, known bool) {
	if available == nil || len(available.Components) == 0 {
		return nil, false
	}
	for _, c := range cs {
		kind := available.Components[c.Kind]
		if _, ok := kind.lookup(c.Type()); !ok {
			missing = append(missing, c)
		}
	}
	return missing, true
}

func (d *ComponentDetails) lookup(name string) (*ComponentDetails, bool) {
	if d == nil {
		return nil, false
	}
	c, ok := d.Components[name]
	return c, ok
}
