package telemetry

import (
	"context"
	"math"
	"sort"
	"time"

	"github.com/stewardhq/steward"
)

var _ steward.TelemetryService = (*Hub)(nil)

// window resolves a window to its ring's step and slot count: 10 s steps
// up to an hour, 1 min steps up to 7 days.
func window(d time.Duration) (step, n int64, err error) {
	switch {
	case d <= 0:
		return 0, 0, steward.Errorf(steward.EINVALID, "telemetry window must be positive")
	case d <= fineSlots*fineStep*time.Second:
		return fineStep, max(1, int64(d/(fineStep*time.Second))), nil
	case d <= Retention:
		return coarseStep, int64(d / (coarseStep * time.Second)), nil
	}
	return 0, 0, steward.Errorf(steward.EINVALID, "telemetry window %s is longer than the 7 days kept", d)
}

// frame is a window of slots: the n slots ending with the last complete
// one before now.
type frame struct {
	step, first, n int64
}

func (h *Hub) frame(d time.Duration) (frame, error) {
	step, n, err := window(d)
	if err != nil {
		return frame{}, err
	}
	last := h.o.Now().Unix()/step - 1
	return frame{step: step, first: last - n + 1, n: n}, nil
}

func (f frame) ring(a *agentData) *ring {
	if f.step == fineStep {
		return &a.fine
	}
	return &a.coarse
}

// values reads slot i of the frame from a (a.mu held) into dst, adding
// when add (NaN + x = x).
func (f frame) values(a *agentData, dst *[nSeries]float64, i int64) {
	r := f.ring(a)
	for s := range steward.TelemetrySeriesCount {
		v := r.get(f.first+i, s)
		if math.IsNaN(v) {
			continue
		}
		if math.IsNaN(dst[s]) {
			dst[s] = 0
		}
		dst[s] += v
	}
}

// data turns raw slot values (increases, levels) into the API's series.
func (f frame) data(raw [][nSeries]float64) steward.TelemetryData {
	d := steward.TelemetryData{Start: time.Unix(f.first*f.step, 0).UTC(), StepSeconds: int(f.step), Series: map[string][]*float64{}}
	for s := range steward.TelemetrySeriesCount {
		col := make([]*float64, len(raw))
		for i := range raw {
			v := raw[i][s]
			if math.IsNaN(v) {
				continue
			}
			if s.Rate() {
				v /= float64(f.step)
			}
			col[i] = &v
		}
		d.Series[s.String()] = col
	}
	return d
}

func nanSlots(n int64) [][nSeries]float64 {
	raw := make([][nSeries]float64, n)
	for i := range raw {
		for s := range raw[i] {
			raw[i][s] = math.NaN()
		}
	}
	return raw
}

// AgentTelemetry returns the agent's series over the window.
func (h *Hub) AgentTelemetry(ctx context.Context, id steward.InstanceUID, d time.Duration) (*steward.AgentTelemetry, error) {
	f, err := h.frame(d)
	if err != nil {
		return nil, err
	}
	raw := nanSlots(f.n)
	out := &steward.AgentTelemetry{AgentID: id}
	if a := h.agent(id, false); a != nil {
		a.mu.Lock()
		for i := range f.n {
			f.values(a, &raw[i], i)
		}
		out.LastReceived = a.last
		a.mu.Unlock()
	} else if h.o.Agents != nil {
		if _, err := h.o.Agents.Agent(ctx, id); err != nil {
			return nil, err
		}
	}
	out.TelemetryData = f.data(raw)
	return out, nil
}

// FleetTelemetry sums every agent's series over the window.
func (h *Hub) FleetTelemetry(ctx context.Context, d time.Duration, top int) (*steward.FleetTelemetry, error) {
	f, err := h.frame(d)
	if err != nil {
		return nil, err
	}
	raw := nanSlots(f.n)
	out := &steward.FleetTelemetry{TopDrops: []steward.TelemetryDrops{}}
	ids, data := h.snapshot()
	for k, a := range data {
		var agent [nSeries]float64
		for s := range agent {
			agent[s] = math.NaN()
		}
		a.mu.Lock()
		for i := range f.n {
			f.values(a, &raw[i], i)
			f.values(a, &agent, i) // totals over the window (levels: unused)
		}
		a.mu.Unlock()
		has := false
		for _, v := range agent {
			has = has || !math.IsNaN(v)
		}
		if has {
			out.Agents++
		}
		refused, failed := zeroNaN(agent[steward.TelemetryRefused]), zeroNaN(agent[steward.TelemetrySendFailed])
		if refused+failed > 0 {
			out.TopDrops = append(out.TopDrops, steward.TelemetryDrops{AgentID: ids[k], Refused: refused, SendFailed: failed})
		}
	}
	sort.SliceStable(out.TopDrops, func(i, j int) bool {
		a, b := out.TopDrops[i], out.TopDrops[j]
		return a.Refused+a.SendFailed > b.Refused+b.SendFailed
	})
	if top >= 0 && len(out.TopDrops) > top {
		out.TopDrops = out.TopDrops[:top]
	}
	out.TelemetryData = f.data(raw)
	return out, nil
}

func zeroNaN(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}

// AgentTelemetryLogs returns the agent's kept log records, oldest first.
func (h *Hub) AgentTelemetryLogs(ctx context.Context, id steward.InstanceUID) ([]steward.TelemetryLog, error) {
	if a := h.agent(id, false); a != nil {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.logs != nil {
			return a.logs.list(), nil
		}
		return []steward.TelemetryLog{}, nil
	}
	if h.o.Agents != nil {
		if _, err := h.o.Agents.Agent(ctx, id); err != nil {
			return nil, err
		}
	}
	return []steward.TelemetryLog{}, nil
}
