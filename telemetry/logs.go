package telemetry

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/stewardhq/steward"
)

const (
	logsKept     = 50  // per agent
	maxLogBody   = 512 // bytes; longer bodies are cut
	maxLogAttrs  = 8
	maxAttrValue = 128
)

// LogMemoryBound is the most memory an agent's kept log records take:
// bodies, attribute keys (up to 64 bytes) and values at their bounds.
const LogMemoryBound = logsKept * (maxLogBody + maxLogAttrs*(64+maxAttrValue) + 256)

// logRing keeps an agent's latest log records.
type logRing struct {
	recs [logsKept]steward.TelemetryLog
	next int
	n    int
}

func (l *logRing) add(r steward.TelemetryLog) {
	l.recs[l.next] = r
	l.next = (l.next + 1) % logsKept
	l.n = min(l.n+1, logsKept)
}

// list returns the records, oldest first.
func (l *logRing) list() []steward.TelemetryLog {
	out := make([]steward.TelemetryLog, 0, l.n)
	for i := range l.n {
		out = append(out, l.recs[(l.next-l.n+i+logsKept)%logsKept])
	}
	return out
}

// addLogs keeps rl's records (a.mu held) and returns how many.
func (a *agentData) addLogs(rl plog.ResourceLogs, now time.Time) int {
	if a.logs == nil {
		a.logs = &logRing{}
	}
	n := 0
	sls := rl.ScopeLogs()
	for i := 0; i < sls.Len(); i++ {
		lrs := sls.At(i).LogRecords()
		for j := 0; j < lrs.Len(); j++ {
			lr := lrs.At(j)
			t := lr.Timestamp().AsTime()
			if lr.Timestamp() == 0 {
				t = now
			}
			rec := steward.TelemetryLog{Time: t.UTC(), Severity: lr.SeverityText(), Body: cut(lr.Body().AsString(), maxLogBody)}
			if rec.Severity == "" && lr.SeverityNumber() != 0 {
				rec.Severity = lr.SeverityNumber().String()
			}
			if attrs := lr.Attributes(); attrs.Len() > 0 {
				rec.Attrs = make(map[string]string, min(attrs.Len(), maxLogAttrs))
				attrs.Range(func(k string, v pcommon.Value) bool {
					if len(rec.Attrs) >= maxLogAttrs {
						return false
					}
					rec.Attrs[cut(k, 64)] = cut(v.AsString(), maxAttrValue)
					return true
				})
			}
			a.logs.add(rec)
			n++
		}
	}
	return n
}

// cut shortens s to at most n bytes, on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !runeStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func runeStart(b byte) bool { return b&0xC0 != 0x80 }
