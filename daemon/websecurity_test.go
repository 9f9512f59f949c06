package daemon_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	nethttp "net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	opampclient "github.com/open-telemetry/opamp-go/client"
	"github.com/open-telemetry/opamp-go/client/types"
	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/cli"
	"github.com/stewardhq/steward/daemon"
	stewardhttp "github.com/stewardhq/steward/http"
)

// webServer is `steward server` with its REST/UI listener on TLS.
type webServer struct {
	*server
	caFile string
	hc     *nethttp.Client
}

const rootToken = "root-token-9d2f"

func startWebServer(t *testing.T) *webServer {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile, pool := selfSignedCert(t, dir)
	s := startServerWith(t, daemon.Options{DataDir: filepath.Join(dir, "data"),
		AdminPassword: "admin-pw", APITokens: []string{rootToken},
		HTTPTLSCertFile: certFile, HTTPTLSKeyFile: keyFile})
	tr := &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &webServer{server: s, caFile: certFile, hc: &nethttp.Client{Transport: tr, Timeout: 20 * time.Second}}
}

// request makes an HTTPS request with header pairs and returns the
// response with its body read.
func (w *webServer) request(t *testing.T, method, path string, body any, headers ...string) (*nethttp.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := nethttp.NewRequest(method, w.api+path, rd)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := w.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// cli runs the steward command line against the server over TLS.
func (w *webServer) cli(t *testing.T, token string, args ...string) string {
	t.Helper()
	var out, errw bytes.Buffer
	all := append([]string{"--server", w.api, "--ca-file", w.caFile, "--token", token}, args...)
	if code := cli.Run(context.Background(), all, &out, &errw); code != 0 {
		t.Fatalf("steward %s: exit %d: %s", strings.Join(args, " "), code, errw.String())
	}
	return out.String() + errw.String()
}

func (w *webServer) createToken(t *testing.T, name string, role steward.Role) string {
	t.Helper()
	resp, body := w.request(t, "POST", "/api/v1/tokens", map[string]string{"name": name, "role": string(role)}, "Authorization", "Bearer "+rootToken)
	var out stewardhttp.CreatedTokenResponse
	if resp.StatusCode != 201 || json.Unmarshal([]byte(body), &out) != nil {
		t.Fatalf("create token: %d %s", resp.StatusCode, body)
	}
	return out.Secret
}

// startReportingAgent runs an opamp-go agent whose description and
// effective config are given.
func startReportingAgent(t *testing.T, opampAddr string, attrs map[string]string, effective string) types.InstanceUid {
	t.Helper()
	c := opampclient.NewWebSocket(nil)
	var kvs []*protobufs.KeyValue
	for k, v := range attrs {
		kvs = append(kvs, &protobufs.KeyValue{Key: k, Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: v}}})
	}
	if err := c.SetAgentDescription(&protobufs.AgentDescription{IdentifyingAttributes: kvs}); err != nil {
		t.Fatal(err)
	}
	uid := types.InstanceUid(steward.NewInstanceUID())
	err := c.Start(context.Background(), types.StartSettings{
		OpAMPServerURL: "ws://" + opampAddr + "/v1/opamp", InstanceUid: uid,
		Capabilities: protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus | protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig,
		Callbacks: types.Callbacks{GetEffectiveConfig: func(context.Context) (*protobufs.EffectiveConfig, error) {
			return &protobufs.EffectiveConfig{ConfigMap: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
				"collector.yaml": {Body: []byte(effective), ContentType: "text/yaml"}}}}, nil
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Stop(ctx)
	})
	return uid
}

// The REST/UI listener over real TLS, with a real opamp-go agent: viewers
// see no secret through the API or the CLI while an operator writes one
// (finding 6 of issue 10); agent-supplied escape sequences reach the
// terminal escaped (finding 10); a logout ends the session and the cookies
// are Secure (findings 7 and 8).
func TestWebSecurityOverTLS(t *testing.T) {
	w := startWebServer(t)
	viewer, operator := w.createToken(t, "dash", steward.RoleViewer), w.createToken(t, "ci", steward.RoleOperator)
	const secret = "Bearer tls-SECRET-5e1b"

	// An operator writes a secret through the CLI.
	w.cli(t, operator, "connection-settings", "set", "prod", "--metrics", "https://127.0.0.1:4318/v1/metrics", "--header", "Authorization="+secret)
	// The agent's supervisor would write it into the collector config.
	uid := startReportingAgent(t, w.opamp, map[string]string{"service.name": "otel\x1b]0;owned\x07col", "host.name": "web\x1b[2J\r-1"},
		"service:\n  telemetry:\n    metrics:\n      headers:\n        - name: Authorization\n          value: "+secret+"\n")
	id := steward.InstanceUID(uid).String()
	eventually(t, "the agent's effective config", func() bool {
		_, body := w.request(t, "GET", "/api/v1/agents/"+id+"?reveal=true", nil, "Authorization", "Bearer "+rootToken)
		return strings.Contains(body, "tls-SECRET-5e1b")
	})

	for who, tok := range map[string]string{"viewer": viewer, "operator": operator} {
		for _, p := range []string{"/api/v1/connection-settings", "/api/v1/connection-settings/prod", "/api/v1/agents", "/api/v1/agents/" + id} {
			resp, body := w.request(t, "GET", p, nil, "Authorization", "Bearer "+tok)
			if resp.StatusCode != 200 || strings.Contains(body, "SECRET") || !strings.Contains(body, steward.RedactedSecret) {
				t.Errorf("%s GET %s: %d %s", who, p, resp.StatusCode, body)
			}
		}
		for _, args := range [][]string{
			{"connection-settings", "list", "-o", "json"}, {"agents", "list", "-o", "json"},
			{"agents", "show", id, "-o", "json"}, {"agents", "show", id},
		} {
			if out := w.cli(t, tok, args...); strings.Contains(out, "SECRET") {
				t.Errorf("%s: steward %s shows the secret:\n%s", who, strings.Join(args, " "), out)
			}
		}
	}

	// Escape sequences from the agent are escaped in tables and details.
	for _, args := range [][]string{{"agents", "list"}, {"agents", "show", id}} {
		out := w.cli(t, viewer, args...)
		if strings.ContainsAny(out, "\x1b\r\a") || !strings.Contains(out, `otel\x1b]0;owned\x07col`) {
			t.Errorf("steward %s:\n%q", strings.Join(args, " "), out)
		}
	}

	// Browser session: Secure cookies over TLS; logout ends it.
	resp, body := w.request(t, "POST", "/api/v1/login", map[string]string{"password": "admin-pw"})
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	var sess, csrf *nethttp.Cookie
	for _, c := range resp.Cookies() {
		if !c.Secure {
			t.Errorf("cookie %s is not Secure over TLS", c.Name)
		}
		switch c.Name {
		case stewardhttp.SessionCookie:
			sess = c
		case stewardhttp.CSRFCookie:
			csrf = c
		}
	}
	cookie := sess.Name + "=" + sess.Value + "; " + csrf.Name + "=" + csrf.Value
	write := func() int {
		r, _ := w.request(t, "PUT", "/api/v1/configs/base", map[string]any{"files": map[string]any{"": map[string]string{"body": "x"}}},
			"Cookie", cookie, stewardhttp.CSRFHeader, csrf.Value)
		return r.StatusCode
	}
	if st := write(); st/100 != 2 {
		t.Fatalf("write with the session: %d", st)
	}
	if r, _ := w.request(t, "POST", "/api/v1/logout", nil, "Cookie", cookie); r.StatusCode != 204 {
		t.Fatalf("logout: %d", r.StatusCode)
	}
	if r, _ := w.request(t, "GET", "/api/v1/agents", nil, "Cookie", cookie); r.StatusCode != 401 {
		t.Errorf("read with the old cookie: %d", r.StatusCode)
	}
	if st := write(); st != 401 {
		t.Errorf("CSRF-protected write with the old cookie: %d", st)
	}

	// Plain HTTP to the TLS listener is refused rather than served.
	plain := strings.Replace(w.api, "https://", "http://", 1)
	if resp, err := nethttp.Get(plain + "/api/v1/agents"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("plain HTTP on the TLS listener: %d", resp.StatusCode)
		}
	}
}

// `steward server --help` shows no secret taken from the environment.
func TestServerHelpShowsNoSecrets(t *testing.T) {
	t.Setenv("STEWARD_ADMIN_PASSWORD", "pw-SECRET-1")
	t.Setenv("STEWARD_API_TOKENS", "tok-SECRET-2")
	t.Setenv("STEWARD_POSTGRES_DSN", "postgres://u:pw-SECRET-3@127.0.0.1/db")
	cmd := daemon.Command()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"--help"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "--admin-password") || strings.Contains(out.String(), "SECRET") {
		t.Errorf("server --help:\n%s", out.String())
	}
}
