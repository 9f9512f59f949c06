package supervisor

import (
	"strings"
	"testing"

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
