package uitest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward"
)

// TestConsoleFindFailedAgents: the failed agents are one click from the
// overview (the card and the bar link to exactly them, with the reason in
// each row), the list sorts on the server across pages, and a bulk restart
// of the filtered list previews its count before anything is sent.
func TestConsoleFindFailedAgents(t *testing.T) {
	b := startBrowser(t)
	s := startStack(t)
	hosts := []string{"node-c", "node-a", "node-e", "node-b", "node-d"}
	agents := make([]*testAgent, len(hosts))
	for i, host := range hosts {
		// node-c and node-e fail every config they are given.
		agents[i] = startAgent(t, s.opampURL, agentOptions{name: "otelcol-agent", version: "0.120.0", host: host, failConfig: i == 0 || i == 2})
	}
	failed := map[string]bool{}
	for i, a := range agents {
		waitAgent(t, s, a.id, "online with health", func(x *steward.Agent) bool { return x.Online && x.Health != nil })
		if agents[i].failConfig {
			failed[a.id.String()] = true
		}
	}
	ctx := context.Background()
	if _, err := s.cp.PutConfig(ctx, &steward.Config{Name: "node", Files: steward.ConfigMap{"": {Body: []byte(initialCollectorConfig), ContentType: "text/yaml"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cp.PutAssignment(ctx, &steward.Assignment{Name: "nodes", ConfigName: "node", Selector: "service.name=otelcol-agent"}); err != nil {
		t.Fatal(err)
	}
	for _, a := range agents {
		want := steward.SyncInSync
		if failed[a.id.String()] {
			want = steward.SyncFailed
		}
		waitAgent(t, s, a.id, string(want), func(x *steward.Agent) bool { return x.SyncState() == want })
	}

	p := b.newPage(t, s.base, "light")
	p.goTo("/")
	login(t, p)
	rowIDs := func() []string {
		var ids []string
		p.js(`[...document.querySelectorAll('[data-testid="agent-row"]')].map(r => r.dataset.agentId)`, &ids)
		return ids
	}
	wantFailed := func(what string) {
		t.Helper()
		p.waitFor(`document.querySelectorAll('[data-testid="agent-row"]').length === 2 && document.querySelector('[data-testid="agents-count"]').innerText === '2 agents'`, "%s: the 2 failed agents", what)
		for _, id := range rowIDs() {
			if !failed[id] {
				t.Errorf("%s: agent %s listed, which did not fail", what, id)
			}
		}
		if got := p.text(`[data-testid="agent-row"] [data-testid="agent-problem"]`); got == "" {
			t.Errorf("%s: no problem shown in the row", what)
		}
	}

	// The card: one click.
	p.waitFor(`document.querySelector('[data-testid="stat-config-failed-value"]')?.innerText === '2'`, "Config failed 2")
	p.click(`[data-testid="stat-config-failed"]`)
	p.waitFor(`location.pathname === '/agents' && location.search === '?config=FAILED'`, "the filtered list's URL")
	wantFailed("Config failed card")
	p.screenshot("agents-failed")

	// The sync state bar: one click.
	p.goTo("/")
	p.click(`[data-testid="by-sync-item"][data-name="Failed"] a`)
	p.waitFor(`location.search === '?sync=failed'`, "the sync bar's link")
	wantFailed("Failed sync bar")

	// Bulk restart of the filtered list: the preview counts, then acts.
	p.click(`[data-testid="bulk-restart"]`)
	p.waitFor(`document.querySelector('[data-testid="bulk-count"]')?.dataset.count === '2'`, "the preview's count")
	if got := p.text(`[data-testid="bulk-count"]`); got != "Restart 2 online agents?" {
		t.Errorf("preview %q", got)
	}
	for _, a := range agents {
		select {
		case cmd := <-a.commands:
			t.Fatalf("the preview sent %v to %s", cmd, a.id)
		default:
		}
	}
	p.click(`[data-testid="bulk-dialog-submit"]`)
	for _, a := range agents {
		if !failed[a.id.String()] {
			continue
		}
		select {
		case cmd := <-a.commands:
			if cmd.GetType().String() != "CommandType_Restart" {
				t.Errorf("command %v, want Restart", cmd.GetType())
			}
		case <-time.After(waitTimeout):
			t.Fatalf("failed agent %s received no restart", a.id)
		}
	}
	p.waitFor(`[...document.querySelectorAll('[data-testid="toast"]')].some(e => e.innerText.includes('Restart: 2 of 2 agents'))`, "the result")
	for _, a := range agents {
		if failed[a.id.String()] {
			continue
		}
		select {
		case cmd := <-a.commands:
			t.Errorf("agent %s outside the filter got %v", a.id, cmd)
		default:
		}
	}

	// Sorting is the server's: page 1 and page 2 of two together are the
	// first four hosts of the whole fleet in order, not a reordered page.
	sorted := slices.Clone(hosts)
	slices.Sort(sorted)
	byHost := map[string]string{}
	for i, a := range agents {
		byHost[a.id.String()] = hosts[i]
	}
	pageHosts := func() []string {
		var out []string
		for _, id := range rowIDs() {
			out = append(out, byHost[id])
		}
		return out
	}
	// rowsAre waits for the whole page, not its first row: the unsorted
	// page can begin with the same agent as the sorted one.
	rowsAre := func(what string, hs ...string) {
		t.Helper()
		ids := make([]string, len(hs))
		for i, h := range hs {
			ids[i] = idOfHost(agents, hosts, h)
		}
		p.waitFor(`[...document.querySelectorAll('[data-testid="agent-row"]')].map(r => r.dataset.agentId).join() === `+jsString(strings.Join(ids, ",")), "%s", what)
	}
	p.goTo("/agents?limit=2")
	p.waitFor(`document.querySelectorAll('[data-testid="agent-row"]').length === 2`, "a page of 2")
	p.click(`[data-testid="sort-host"]`)
	p.waitFor(`location.search.includes('sort=host')`, "the sort in the URL")
	rowsAre("page 1 by host", sorted[0], sorted[1])
	first := pageHosts()
	p.click(`[data-testid="agents-next"]`)
	p.waitFor(`location.search.includes('offset=2')`, "page 2")
	rowsAre("page 2 by host", sorted[2], sorted[3])
	if got := append(first, pageHosts()...); !slices.Equal(got, sorted[:4]) {
		t.Errorf("pages 1 and 2 by host: %v, want %v", got, sorted[:4])
	}
	p.click(`[data-testid="sort-host"]`) // descending, back to page 1
	p.waitFor(`location.search.includes('sort=-host') && !location.search.includes('offset')`, "descending, first page")
	rowsAre("descending by host", sorted[4], sorted[3])
	if got := pageHosts(); !slices.Equal(got, []string{sorted[4], sorted[3]}) {
		t.Errorf("descending page 1: %v", got)
	}

	// The URL carries the filters: a reload shows the same list.
	p.goTo("/agents?sync=failed&sort=-host")
	p.waitFor(`document.querySelectorAll('[data-testid="agent-row"]').length === 2`, "the linked filter")
	var sync string
	p.js(`document.querySelector('[data-testid="agents-sync"]').value`, &sync)
	if sync != "failed" {
		t.Errorf("sync field %q after loading the URL", sync)
	}
	if got := pageHosts(); !slices.Equal(got, []string{"node-e", "node-c"}) {
		t.Errorf("failed agents by host, descending: %v", got)
	}
	noJSErrors(t, p)
}

func idOfHost(agents []*testAgent, hosts []string, host string) string {
	return agents[slices.Index(hosts, host)].id.String()
}
