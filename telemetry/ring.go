package telemetry

import (
	"math"

	"github.com/stewardhq/steward"
)

// nSeries is the number of series a slot holds.
const nSeries = int(steward.TelemetrySeriesCount)

// ring keeps the last n slots of step seconds each, every slot holding one
// float32 per series (NaN: nothing received). Slot k covers the unix
// seconds [k×step, (k+1)×step). Its memory is allocated once: n × nSeries
// × 4 bytes.
type ring struct {
	step int64 // seconds
	n    int64
	head int64 // newest slot number; 0: empty
	vals []float32
}

var nan32 = float32(math.NaN())

func newRing(step, n int64) ring {
	r := ring{step: step, n: n, vals: make([]float32, n*int64(nSeries))}
	for i := range r.vals {
		r.vals[i] = nan32
	}
	return r
}

// slotOf returns the slot number of unix second t.
func (r *ring) slotOf(t int64) int64 { return t / r.step }

// advance makes k the newest slot, clearing the slots it passes over.
func (r *ring) advance(k int64) {
	if k <= r.head {
		return
	}
	from := r.head + 1
	if r.head == 0 || k-r.head >= r.n {
		from = k - r.n + 1
	}
	for s := from; s <= k; s++ {
		base := (s % r.n) * int64(nSeries)
		for i := range int64(nSeries) {
			r.vals[base+i] = nan32
		}
	}
	r.head = k
}

// at returns the index of series s in slot k, or -1 when k is outside the
// ring (too old, or in the future of the newest slot).
func (r *ring) at(k int64, s steward.TelemetrySeries) int64 {
	if k > r.head || k <= r.head-r.n || k <= 0 {
		return -1
	}
	return (k%r.n)*int64(nSeries) + int64(s)
}

// add adds v to series s of slot k (a counter's increase).
func (r *ring) add(k int64, s steward.TelemetrySeries, v float64) {
	r.advance(k)
	if i := r.at(k, s); i >= 0 {
		if cur := r.vals[i]; cur == cur {
			r.vals[i] = float32(float64(cur) + v)
		} else {
			r.vals[i] = float32(v)
		}
	}
}

// set stores level v of series s in slot k: the last value, or the
// highest when keepMax.
func (r *ring) set(k int64, s steward.TelemetrySeries, v float64, keepMax bool) {
	r.advance(k)
	if i := r.at(k, s); i >= 0 {
		if cur := r.vals[i]; keepMax && cur == cur && float64(cur) >= v {
			return
		}
		r.vals[i] = float32(v)
	}
}

// get returns series s of slot k, NaN when empty or outside the ring.
func (r *ring) get(k int64, s steward.TelemetrySeries) float64 {
	if i := r.at(k, s); i >= 0 {
		return float64(r.vals[i])
	}
	return math.NaN()
}

// spread adds increase to series s, spread evenly over the seconds
// (end-dur, end] (a counter's increase between two data points). The part
// older than the ring is dropped.
func (r *ring) spread(s steward.TelemetrySeries, increase, end, dur float64) {
	if dur <= 0 || increase == 0 {
		r.add(r.slotOf(int64(end)), s, increase)
		return
	}
	if maxDur := float64(r.step * r.n); dur > maxDur {
		increase *= maxDur / dur
		dur = maxDur
	}
	start := end - dur
	step := float64(r.step)
	r.advance(r.slotOf(int64(end)))
	for k := r.slotOf(int64(start)); float64(k)*step < end; k++ {
		lo, hi := max(start, float64(k)*step), min(end, float64(k+1)*step)
		if hi > lo {
			r.add(k, s, increase*(hi-lo)/dur)
		}
	}
}
