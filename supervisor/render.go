package supervisor

import (
	"fmt"
	"github.com/stewardhq/steward/internal/yamlmerge"
	"os"
	"strings"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward"
)

// Effective config assembly. The sources are merged in this order, later
// winning (maps merge key by key, lists and scalars are replaced):
//
//  1. supervisor defaults (collector mode: no internal metrics port)
//  2. agent.local_config_files, in the order listed
//  3. the remote config's files, in byte order of their names
//  4. own telemetry offered by the server (collector mode)
//  5. the opamp extension the supervisor needs (collector mode), which is
//     also appended to service.extensions
//
// A collector refuses to start without a pipeline ("no receiver
// configuration specified"), so in collector mode a merge that defines no
// pipeline (typically: no local files and no remote config yet) gets a nop
// pipeline of its own; the collector then runs healthy, waiting for its
// first remote config, instead of crash-looping.
//
// In generic mode a single source is passed through unchanged (a TOML,
// JSON or syslog-ng file stays what it is; a YAML file keeps its comments);
// several sources are merged as YAML, and one that is not a YAML mapping is
// then an error.

// renderInput is everything an effective config is made from.
type renderInput struct {
	mode       string
	localFiles []string
	remote     steward.ConfigMap
	telemetry  *ownTelemetry // collector mode; nil: none offered
	opamp      *opampExtension
}

// opampExtension is what the supervisor injects so the collector reports to
// its local OpAMP endpoint.
type opampExtension struct {
	endpoint    string // ws:// URL of the local endpoint
	instanceUID steward.InstanceUID
	ppid        int
}

func render(in renderInput) ([]byte, error) {
	var sources []yamlmerge.Source
	for _, path := range in.localFiles {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("local config file: %w", err)
		}
		sources = append(sources, yamlmerge.Source{Name: path, Body: b})
	}
	for _, name := range sortedKeys(in.remote) {
		label := fmt.Sprintf("remote config file %q", name)
		if name == "" {
			label = "remote config file \"\""
		}
		sources = append(sources, yamlmerge.Source{Name: label, Body: in.remote[name].Body})
	}
	if in.mode == ModeGeneric {
		if len(sources) == 0 {
			return []byte{}, nil
		}
		if len(sources) == 1 {
			return sources[0].Body, nil
		}
		merged, err := yamlmerge.Sources(sources)
		if err != nil {
			return nil, err
		}
		return yamlmerge.Render(merged)
	}
	merged := map[string]any{
		"service": map[string]any{"telemetry": map[string]any{"metrics": map[string]any{"level": "none"}}},
	}
	rest, err := yamlmerge.Sources(sources)
	if err != nil {
		return nil, err
	}
	merged = yamlmerge.Merge(merged, rest)
	if in.telemetry != nil {
		var uid steward.InstanceUID
		if in.opamp != nil {
			uid = in.opamp.instanceUID
		}
		merged = yamlmerge.Merge(merged, in.telemetry.collectorConfig(uid))
	}
	if !hasPipeline(merged) {
		injectNopPipeline(merged)
	}
	if in.opamp != nil {
		injectOpAMP(merged, in.opamp)
	}
	return yamlmerge.Render(merged)
}

// Component IDs of the nop pipeline injected into a collector config that
// has none; distinct names keep them apart from the user's components.
const (
	nopComponent = "nop/steward_supervisor"
	nopPipeline  = "traces/steward_supervisor"
)

// hasPipeline reports whether a collector config defines a pipeline.
func hasPipeline(m map[string]any) bool {
	svc, _ := m["service"].(map[string]any)
	pipelines, _ := svc["pipelines"].(map[string]any)
	return len(pipelines) > 0
}

// injectNopPipeline adds a nop receiver, a nop exporter and a traces
// pipeline joining them.
func injectNopPipeline(m map[string]any) {
	for _, kind := range []string{"receivers", "exporters"} {
		comps, _ := m[kind].(map[string]any)
		if comps == nil {
			comps = map[string]any{}
			m[kind] = comps
		}
		comps[nopComponent] = nil
	}
	svc, _ := m["service"].(map[string]any)
	if svc == nil {
		svc = map[string]any{}
		m["service"] = svc
	}
	svc["pipelines"] = map[string]any{nopPipeline: map[string]any{
		"receivers": []any{nopComponent}, "exporters": []any{nopComponent},
	}}
}

// extensionName is the component ID of the injected opamp extension; a
// distinct name keeps it apart from any opamp extension the user configured.
const extensionName = "opamp/steward_supervisor"

func injectOpAMP(m map[string]any, o *opampExtension) {
	server := map[string]any{"ws": map[string]any{"endpoint": o.endpoint, "tls": map[string]any{"insecure": true}}}
	ext := map[string]any{
		"server":       server,
		"instance_uid": o.instanceUID.String(),
		"capabilities": map[string]any{
			"reports_effective_config":     true,
			"reports_health":               true,
			"reports_available_components": true,
		},
		"ppid":               o.ppid,
		"ppid_poll_interval": "1s",
	}
	exts, _ := m["extensions"].(map[string]any)
	if exts == nil {
		exts = map[string]any{}
		m["extensions"] = exts
	}
	exts[extensionName] = ext
	svc, _ := m["service"].(map[string]any)
	if svc == nil {
		svc = map[string]any{}
		m["service"] = svc
	}
	list, _ := svc["extensions"].([]any)
	for _, e := range list {
		if e == extensionName {
			return
		}
	}
	svc["extensions"] = append(list, extensionName)
}

// ownTelemetry holds the server's offers of where the agent sends its own
// metrics, logs and traces (OpAMP ConnectionSettingsOffers).
type ownTelemetry struct {
	metrics, logs, traces *protobufs.TelemetryConnectionSettings
	hash                  []byte
}

// collectorConfig renders the offers as service.telemetry settings: a
// periodic metrics reader (every 10 s, the resolution Steward keeps) and
// batch log/span processors, each exporting with OTLP over HTTP to the
// offered endpoint with the offered headers. The telemetry resource's
// service.instance.id is the instance uid (when known), the OpAMP
// convention by which a backend maps the series to the agent; the
// collector would otherwise make up a new one at every start.
func (t *ownTelemetry) collectorConfig(uid steward.InstanceUID) map[string]any {
	tel := map[string]any{}
	if s := t.metrics; s != nil && s.DestinationEndpoint != "" {
		tel["metrics"] = map[string]any{
			"level": "normal",
			"readers": []any{map[string]any{"periodic": map[string]any{
				"interval": ownMetricsIntervalMillis,
				"exporter": map[string]any{"otlp": otlpExporter(s)},
			}}},
		}
	}
	if len(tel) > 0 && !uid.IsZero() {
		tel["resource"] = map[string]any{steward.AttrServiceInstanceID: uid.String()}
	}
	if s := t.logs; s != nil && s.DestinationEndpoint != "" {
		tel["logs"] = map[string]any{"processors": []any{map[string]any{"batch": map[string]any{
			"exporter": map[string]any{"otlp": otlpExporter(s)},
		}}}}
	}
	if s := t.traces; s != nil && s.DestinationEndpoint != "" {
		tel["traces"] = map[string]any{"processors": []any{map[string]any{"batch": map[string]any{
			"exporter": map[string]any{"otlp": otlpExporter(s)},
		}}}}
	}
	return map[string]any{"service": map[string]any{"telemetry": tel}}
}

// ownMetricsIntervalMillis is how often the collector exports its own
// metrics (the SDK's default is a minute).
const ownMetricsIntervalMillis = 10000

func otlpExporter(s *protobufs.TelemetryConnectionSettings) map[string]any {
	e := map[string]any{"protocol": "http/protobuf", "endpoint": s.DestinationEndpoint}
	// The collector's telemetry exporter speaks TLS unless told it may
	// not, whatever the URL's scheme: an http:// endpoint needs insecure.
	if strings.HasPrefix(strings.ToLower(s.DestinationEndpoint), "http://") {
		e["insecure"] = true
	}
	if s.Headers != nil && len(s.Headers.Headers) > 0 {
		var hs []any
		for _, h := range s.Headers.Headers {
			hs = append(hs, map[string]any{"name": h.Key, "value": h.Value})
		}
		e["headers"] = hs
	}
	return e
}

// bootstrapConfig is the minimal collector config used to learn the
// collector's description and components: a nop pipeline plus the injected
// opamp extension.
func bootstrapConfig(o *opampExtension) ([]byte, error) {
	m := map[string]any{
		"service": map[string]any{"telemetry": map[string]any{"metrics": map[string]any{"level": "none"}}},
	}
	injectNopPipeline(m)
	injectOpAMP(m, o)
	return yamlmerge.Render(m)
}

// renderedType is the content type of what render makes of in: YAML when
// sources are merged (collector mode, several generic sources); in generic
// mode, for the one source passed through, its own type — as the server
// declared it for a remote file, as its extension says for a local one —
// and "" when a remote file declares none (the caller then looks at the
// body, see effectiveContentType).
func renderedType(in renderInput) string {
	if in.mode != ModeGeneric || len(in.localFiles)+len(in.remote) != 1 {
		return "text/yaml"
	}
	if len(in.localFiles) == 1 {
		return steward.ContentTypeOf(in.localFiles[0])
	}
	for _, f := range in.remote {
		return f.ContentType
	}
	return ""
}
