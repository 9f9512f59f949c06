package http

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/stewardhq/steward"
)

// SummaryResponse is the fleet overview of GET /api/v1/summary.
type SummaryResponse = steward.FleetSummary

// Summarize counts agents for the fleet overview.
func Summarize(agents []*steward.Agent) SummaryResponse {
	s := steward.NewFleetSummary()
	for _, a := range agents {
		s.Add(a)
	}
	return *s
}

func (s *Server) handleSummary(w http.ResponseWriter, r *http.Request) error {
	if sum, ok := s.agents.(steward.Summarizer); ok {
		out, err := sum.Summary(r.Context())
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	agents, _, err := s.agents.Agents(r.Context(), steward.AgentFilter{})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Summarize(agents))
	return nil
}

// parseEventFilter reads limit, type (repeatable or comma-separated), agent
// and since (RFC 3339).
func parseEventFilter(r *http.Request) (steward.EventFilter, error) {
	q := r.URL.Query()
	var f steward.EventFilter
	var err error
	if f.Limit, err = intParam(q, "limit", DefaultEventLimit, 1, MaxEventLimit); err != nil {
		return f, err
	}
	for _, t := range q["type"] {
		for _, p := range strings.Split(t, ",") {
			if p = strings.TrimSpace(p); p != "" {
				f.Types = append(f.Types, p)
			}
		}
	}
	if s := q.Get("agent"); s != "" {
		id, err := steward.ParseInstanceUID(s)
		if err != nil {
			return f, err
		}
		f.AgentID = &id
	}
	if s := q.Get("since"); s != "" {
		if f.Since, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return f, steward.Errorf(steward.EINVALID, "query parameter since must be an RFC 3339 time, not %q", s)
		}
	}
	return f, nil
}

// handleEvents lists recent fleet events, newest first; 501 without an
// event log.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) error {
	f, err := parseEventFilter(r)
	if err != nil {
		return err
	}
	if s.eventLog == nil {
		return steward.Errorf(steward.ENOTIMPLEMENTED, "this server keeps no event log")
	}
	events, err := s.eventLog(r.Context(), f)
	if err != nil {
		return err
	}
	if events == nil {
		events = []*steward.Event{}
	}
	writeJSON(w, http.StatusOK, EventsResponse{Events: events})
	return nil
}

// handleEventStream streams live events as server-sent events:
//
//	id: <event id>      (when the event has one)
//	event: <event type>
//	data: <Event JSON>
//
// with a ": heartbeat" comment every HeartbeatInterval. Optional filters:
// agent=<id> and type=<t1,t2>. When the bus drops this subscriber for being
// too slow, an "event: resync" is sent and the stream ends (EventSource
// clients reconnect and should reload state). It ends when the client goes
// or the Server is closed.
func (s *Server) handleEventStream(w http.ResponseWriter, r *http.Request) error {
	f, err := parseEventFilter(r)
	if err != nil {
		return err
	}
	if s.events == nil {
		return steward.Errorf(steward.ENOTIMPLEMENTED, "this server has no event bus")
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout
	ctx := r.Context()
	ch := s.events.Subscribe(ctx)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 2000\n: connected\n\n"); err != nil {
		return nil
	}
	if rc.Flush() != nil {
		return nil
	}
	types := map[string]bool{}
	for _, t := range f.Types {
		types[t] = true
	}
	tick := time.NewTicker(s.heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return nil
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil || rc.Flush() != nil {
				return nil
			}
		case e, ok := <-ch:
			if !ok {
				if ctx.Err() == nil {
					_, _ = fmt.Fprint(w, "event: resync\ndata: {}\n\n")
					_ = rc.Flush()
				}
				return nil
			}
			if e == nil || (f.AgentID != nil && e.AgentID != *f.AgentID) || (len(types) > 0 && !types[e.Type]) {
				continue
			}
			b, err := json.Marshal(e)
			if err != nil {
				s.log.Error("http: cannot encode event", "type", e.Type, "err", err)
				continue
			}
			idLine := ""
			if e.ID != 0 {
				idLine = fmt.Sprintf("id: %d\n", e.ID)
			}
			if _, err := fmt.Fprintf(w, "%sevent: %s\ndata: %s\n\n", idLine, sseField(e.Type), b); err != nil || rc.Flush() != nil {
				return nil
			}
		}
	}
}

// sseField strips line breaks, which would end an SSE field early.
func sseField(s string) string {
	return strings.NewReplacer("\r", "", "\n", "").Replace(s)
}
