package http_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
)

// sseEvent is one parsed server-sent event (or comment).
type sseEvent struct {
	id, event, data, comment string
}

// readSSE parses server-sent events from r onto a channel until r ends.
func readSSE(r *bufio.Reader) <-chan sseEvent {
	ch := make(chan sseEvent, 100)
	go func() {
		defer close(ch)
		var ev sseEvent
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "":
				if ev != (sseEvent{}) {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				ev.comment = strings.TrimSpace(line[1:])
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
	}()
	return ch
}

func TestEventStream(t *testing.T) {
	e := newEnv(t, func(o *stewardhttp.Options) { o.HeartbeatInterval = 20 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.ts.URL+"/api/v1/events/stream?type=agent.connected,agent.updated", nil)
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := readSSE(bufio.NewReader(resp.Body))
	next := func(what string, match func(sseEvent) bool) sseEvent {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("stream ended waiting for %s", what)
				}
				if match(ev) {
					return ev
				}
			case <-timeout:
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	next("connected comment", func(ev sseEvent) bool { return ev.comment == "connected" })

	// Subscribed before the agent connects: its event must arrive.
	id, _ := e.connect(agentSpec{name: "otelcol"})
	e.do("PUT", "/api/v1/configs/c", `{"files":{"":{"body":"x"}}}`) // filtered out by type
	ev := next("agent.connected", func(ev sseEvent) bool {
		if ev.event == steward.EventConfigChanged {
			t.Errorf("the type filter let through %+v", ev)
		}
		return ev.event == steward.EventAgentConnected
	})
	var got steward.Event
	if err := json.Unmarshal([]byte(ev.data), &got); err != nil || got.AgentID != id || got.Type != ev.event {
		t.Errorf("event data %q: %+v %v", ev.data, got, err)
	}
	next("heartbeat", func(ev sseEvent) bool { return ev.comment == "heartbeat" })

	// The stream ends when the client goes; the server's Close (in
	// cleanup) waits for the handler to return.
	cancel()
	for range events {
	}
}

func TestEventStreamResync(t *testing.T) {
	bus := &closingBus{}
	e := newEnv(t, func(o *stewardhttp.Options) { o.Events = bus })
	r := e.do("GET", "/api/v1/events/stream", nil)
	if r.status != 200 || !strings.Contains(string(r.body), "event: resync\n") {
		t.Errorf("stream after the bus dropped us: %d %q", r.status, r.body)
	}
}

// closingBus drops every subscriber at once, as the real bus does with one
// that falls behind.
type closingBus struct{}

func (closingBus) Publish(*steward.Event) {}
func (closingBus) Subscribe(ctx context.Context) <-chan *steward.Event {
	ch := make(chan *steward.Event)
	close(ch)
	return ch
}

// TestOpenAPIMatchesRoutes checks that every registered route is documented
// and every documented operation is registered.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t, nil)
	var doc struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(stewardhttp.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi version %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options":
				documented[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	registered := map[string]bool{}
	for _, r := range e.srv.Routes() {
		registered[r] = true
		if !documented[r] {
			t.Errorf("route %q is not in the OpenAPI document", r)
		}
	}
	var extra []string
	for d := range documented {
		if !registered[d] {
			extra = append(extra, d)
		}
	}
	sort.Strings(extra)
	for _, d := range extra {
		t.Errorf("documented operation %q is not registered", d)
	}
	if len(registered) < 25 {
		t.Errorf("only %d routes registered", len(registered))
	}

	docs, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(docs) != string(stewardhttp.OpenAPI) {
		t.Error("docs/openapi.yaml differs from http/openapi.yaml: copy http/openapi.yaml over it")
	}
	if r := e.do("GET", "/api/v1/openapi.yaml", nil); r.status != 200 || string(r.body) != string(stewardhttp.OpenAPI) {
		t.Errorf("served document differs: %d", r.status)
	}
}

// TestCloseEndsStreams checks that Server.Close lets net/http's Shutdown
// finish although an event stream is open.
func TestCloseEndsStreams(t *testing.T) {
	e := newEnv(t, nil)
	resp, err := e.ts.Client().Get(e.ts.URL + "/api/v1/events/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := readSSE(bufio.NewReader(resp.Body))
	if ev := <-events; ev.comment != "connected" {
		t.Fatalf("first: %+v", ev)
	}
	e.ts.Config.RegisterOnShutdown(func() { e.srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.ts.Config.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for range events {
	}
}

// TestOpenAPIRefs checks that every $ref in the document resolves and every
// operation has a unique operationId.
func TestOpenAPIRefs(t *testing.T) {
	var doc map[string]any
	if err := yaml.Unmarshal(stewardhttp.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	resolve := func(ref string) bool {
		var cur any = doc
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			m, ok := cur.(map[string]any)
			if !ok {
				return false
			}
			if cur, ok = m[part]; !ok {
				return false
			}
		}
		return true
	}
	refs := 0
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "$ref" {
					refs++
					if s, _ := x.(string); !strings.HasPrefix(s, "#/") || !resolve(s) {
						t.Errorf("unresolved $ref %v", x)
					}
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	if refs == 0 {
		t.Error("no $ref found")
	}
	ids := map[string]bool{}
	for path, item := range doc["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			if method == "parameters" {
				continue
			}
			id, _ := op.(map[string]any)["operationId"].(string)
			if id == "" || ids[id] {
				t.Errorf("%s %s: missing or duplicate operationId %q", method, path, id)
			}
			ids[id] = true
		}
	}
}
