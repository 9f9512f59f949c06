package cli_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/open-telemetry/opamp-go/protobufs"
	"gopkg.in/yaml.v3"

	"github.com/stewardhq/steward"
)

// syslogConf is a non-YAML agent config, as a generic-mode supervisor
// running syslog-ng reports it.
const syslogConf = `@version: 3.38
source s_net { network(ip("127.0.0.1") port(5514) transport("udp")); };
destination d_file { file("/var/log/steward-demo.log"); };
log { source(s_net); destination(d_file); };
`

// reportDetail has agent id report a failed remote config, an effective
// config and package statuses, as a supervisor does.
func (e *env) reportDetail(id steward.InstanceUID) {
	e.t.Helper()
	err := e.send(id, &protobufs.AgentToServer{
		InstanceUid: id[:],
		SequenceNum: 2,
		Capabilities: uint64(steward.AgentReportsStatus | steward.AgentReportsHealth | steward.AgentReportsEffectiveConfig |
			steward.AgentReportsRemoteConfig | steward.AgentAcceptsRemoteConfig | steward.AgentReportsPackageStatuses | steward.AgentAcceptsPackages),
		Health: &protobufs.ComponentHealth{Healthy: true, Status: "running"},
		EffectiveConfig: &protobufs.EffectiveConfig{ConfigMap: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
			"":           {Body: []byte(syslogConf), ContentType: "text/plain"},
			"extra.yaml": {Body: []byte("a: 1\n"), ContentType: "text/yaml"},
			"blob":       {Body: []byte{0xff, 0xfe, 0x00}},
		}}},
		RemoteConfigStatus: &protobufs.RemoteConfigStatus{LastRemoteConfigHash: []byte{1, 2, 3},
			Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED, ErrorMessage: "Error parsing config, syntax error"},
		PackageStatuses: &protobufs.PackageStatuses{Packages: map[string]*protobufs.PackageStatus{
			"syslog-ng": {Name: "syslog-ng", AgentHasVersion: "3.38", ServerOfferedVersion: "4.0",
				Status: protobufs.PackageStatusEnum_PackageStatusEnum_InstallFailed, ErrorMessage: "hash mismatch: downloaded 12 bytes"},
			"addon": {Name: "addon", AgentHasVersion: "1", ServerOfferedVersion: "1", Status: protobufs.PackageStatusEnum_PackageStatusEnum_Installed},
		}},
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func TestAgentShowDetail(t *testing.T) {
	e := newEnv(t)
	id := e.connect("syslog-ng", "3.38.1", "edge-1", 0)
	other := e.connect("otelcol", "0.149.0", "edge-2", 0)
	e.reportDetail(id)

	out := e.mustRun("agents", "show", id.String())
	for _, want := range []string{
		"Remote config:  FAILED: Error parsing config, syntax error",
		"Packages:\n  addon INSTALLED (has 1, offered 1)\n  syslog-ng INSTALL_FAILED (has 3.38, offered 4.0): hash mismatch: downloaded 12 bytes\n",
		"\n  blob (3 bytes, no content type): binary, not shown (see -o json)\n",
		"Effective config:\n  default file (" + strconv.Itoa(len(syslogConf)) + " bytes, text/plain):\n    @version: 3.38\n    source s_net { network(ip(\"127.0.0.1\") port(5514) transport(\"udp\")); };\n",
		"  extra.yaml (5 bytes, text/yaml):\n    a: 1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("agents show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "  - (") {
		t.Errorf("the default file reads as \"-\":\n%s", out)
	}

	// -o yaml and -o json carry the same document, bodies as text.
	var fromJSON, fromYAML map[string]any
	if err := json.Unmarshal([]byte(e.mustRun("agents", "show", id.String(), "-o", "json")), &fromJSON); err != nil {
		t.Fatal(err)
	}
	y := e.mustRun("agents", "show", id.String(), "-o", "yaml")
	if err := yaml.Unmarshal([]byte(y), &fromYAML); err != nil {
		t.Fatalf("-o yaml is not YAML: %v\n%s", err, y)
	}
	if !strings.Contains(y, "body: |\n") || !strings.HasPrefix(y, "id: ") {
		t.Errorf("-o yaml is not block style in the API's field order:\n%s", y)
	}
	jb, _ := json.Marshal(fromJSON)
	yb, _ := json.Marshal(fromYAML)
	if string(jb) != string(yb) {
		t.Errorf("-o yaml and -o json differ:\njson: %s\nyaml: %s", jb, yb)
	}
	body := fromYAML["effective_config"].(map[string]any)[""].(map[string]any)["body"]
	if body != syslogConf {
		t.Errorf("yaml body %q", body)
	}
	pkg := fromYAML["package_statuses"].(map[string]any)["packages"].(map[string]any)["syslog-ng"].(map[string]any)
	if pkg["status"] != "INSTALL_FAILED" || pkg["error_message"] != "hash mismatch: downloaded 12 bytes" {
		t.Errorf("yaml package status %v", pkg)
	}

	// --selector shows every matching agent in full.
	out = e.mustRun("agents", "show", "--selector", "service.name=syslog-ng")
	if !strings.Contains(out, id.String()) || strings.Contains(out, other.String()) || !strings.Contains(out, "@version: 3.38") {
		t.Errorf("show --selector:\n%s", out)
	}
	out = e.mustRun("agents", "show", "-l", "host.name in (edge-1,edge-2)", "-o", "yaml")
	if !strings.Contains(out, "total: 2") || !strings.Contains(out, other.String()) {
		t.Errorf("show --selector -o yaml:\n%s", out)
	}
}

// -o yaml is as inert on a terminal as the table and -o json, and keeps
// the values exact.
func TestAgentShowYAMLInert(t *testing.T) {
	e := newEnv(t)
	id := e.connectRaw(hostile, "failed\x1b[8m hidden")
	out := e.mustRun("agents", "show", id.String(), "-o", "yaml")
	assertInert(t, "agents show -o yaml", out)
	var got struct {
		Description struct {
			IdentifyingAttributes []struct {
				Key   string `yaml:"key"`
				Value string `yaml:"value"`
			} `yaml:"identifying_attributes"`
		} `yaml:"description"`
	}
	if err := yaml.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	n := 0
	for _, kv := range got.Description.IdentifyingAttributes {
		if want, ok := hostile[kv.Key]; ok && kv.Value == want {
			n++
		}
	}
	if n != len(hostile) {
		t.Errorf("%d of %d attributes read back exactly:\n%s", n, len(hostile), out)
	}
}
