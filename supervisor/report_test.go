package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stewardhq/steward"

	"github.com/stewardhq/steward/supervisor/agentproc"
)

func TestLastErrorLine(t *testing.T) {
	// syslog-ng 3.38 refusing a config echoes the lines around the mistake,
	// comments included, after its own error.
	syslogNG := `Error parsing config, syntax error, unexpected LL_IDENTIFIER, expecting '}' in /etc/syslog-ng/syslog-ng.conf:5:23-5:30:
1       @version: 3.38
2       # Fails on purpose: the supervisor reports this error and rolls back.
3       filter f_err { level(error..emerg); };
5-----> source s_quickstart { netwrok(ip("127.0.0.1") port(5514)); };
5----->                       ^^^^^^^
6       log { source(s_quickstart); filter(f_err); };


syslog-ng documentation: https://www.syslog-ng.com/technical-documents/list/syslog-ng-open-source-edition
contact: https://lists.balabit.hu/mailman/listinfo/syslog-ng`
	collector := `2026-12-06T17:00:00.000Z	info	service@v0.149.0/service.go:1	Starting otelcol
Error: invalid configuration: exporters: unknown type: "nope"
2026/12/06 17:00:00 collector server run finished with error: invalid configuration`
	for _, tc := range []struct{ name, output, want string }{
		{"syslog-ng echoing its config", syslogNG, "Error parsing config, syntax error, unexpected LL_IDENTIFIER, expecting '}' in /etc/syslog-ng/syslog-ng.conf:5:23-5:30:"},
		{"collector", collector, `Error: invalid configuration: exporters: unknown type: "nope"`},
		{"error mentioned mid-line", "starting\nlisten failed: error binding :80\nbye", "listen failed: error binding :80"},
		{"no error word", "starting\nbye", "bye"},
		{"no output", "", "no output"},
	} {
		tail := agentproc.NewTail(100)
		if tc.output != "" {
			for _, l := range strings.Split(tc.output, "\n") {
				tail.Add(l)
			}
		}
		if got := lastErrorLine(tail); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestEffectiveContentType(t *testing.T) {
	for _, tc := range []struct{ mode, body, want string }{
		{ModeCollector, "receivers: {}\n", "text/yaml"},
		{ModeGeneric, "receivers:\n  otlp: {}\n", "text/yaml"},
		{ModeGeneric, "@version: 3.38\nsource s { internal(); };\n", "text/plain"},
		{ModeGeneric, "[server]\nport = 8080\n", "text/plain"},
		{ModeGeneric, "just a line\n", "text/plain"},
		{ModeGeneric, "", "text/plain"},
	} {
		if got := effectiveContentType(tc.mode, []byte(tc.body)); got != tc.want {
			t.Errorf("%s %q: %s, want %s", tc.mode, tc.body, got, tc.want)
		}
	}
}

// The effective config of generic mode is reported under the content type
// of the file it came from — as the server declared it for a remote file,
// by extension for a local one — and a single file is passed through
// unchanged: a JSON config used to be rewritten as YAML and labelled
// text/yaml, and a syslog-ng file's label was only guessed from its body.
func TestRenderedTypeFollowsTheSource(t *testing.T) {
	dir := t.TempDir()
	local := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(local, []byte("[server]\nport = 8080\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	jsonBody := "{\"sources\": {\"in\": {\"type\": \"stdin\"}}}\n"
	syslog := "source s { internal(); };\n"
	for _, tc := range []struct {
		name     string
		in       renderInput
		body, ct string
	}{
		{"remote JSON", renderInput{mode: ModeGeneric, remote: steward.ConfigMap{"vector": {Body: []byte(jsonBody), ContentType: "application/json"}}}, jsonBody, "application/json"},
		{"remote syslog-ng declared text/plain", renderInput{mode: ModeGeneric, remote: steward.ConfigMap{"syslog-ng": {Body: []byte(syslog), ContentType: "text/plain"}}}, syslog, "text/plain"},
		{"remote YAML keeps its comments", renderInput{mode: ModeGeneric, remote: steward.ConfigMap{"a": {Body: []byte("# note\nx: 1\n"), ContentType: "text/yaml"}}}, "# note\nx: 1\n", "text/yaml"},
		{"remote, no type declared", renderInput{mode: ModeGeneric, remote: steward.ConfigMap{"a": {Body: []byte(syslog)}}}, syslog, ""},
		{"local TOML", renderInput{mode: ModeGeneric, localFiles: []string{local}}, "[server]\nport = 8080\n", "application/toml"},
		{"merged", renderInput{mode: ModeGeneric, remote: steward.ConfigMap{"a": {Body: []byte("p: 1\n"), ContentType: "text/plain"}, "b": {Body: []byte("q: 2\n")}}}, "p: 1\nq: 2\n", "text/yaml"},
	} {
		body, err := render(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if string(body) != tc.body {
			t.Errorf("%s: body %q, want %q", tc.name, body, tc.body)
		}
		if got := renderedType(tc.in); got != tc.ct {
			t.Errorf("%s: content type %q, want %q", tc.name, got, tc.ct)
		}
	}
}
