package telemetry

import (
	"math"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/stewardhq/steward"
)

// A metric's family: the collector's own (otelcol_…) wins over the generic
// process metrics when an agent sends both for one series.
const (
	familyCollector = iota
	familyGeneric
	families
)

// classify maps a metric name onto a series. Names are compared with dots
// as underscores and without a _total suffix, so the OTLP names
// (otelcol_process_cpu_seconds, process.cpu.time) and the Prometheus ones
// (otelcol_process_cpu_seconds_total, process_cpu_seconds_total) match.
func classify(name string) (s steward.TelemetrySeries, family int, ok bool) {
	n := strings.TrimSuffix(strings.ReplaceAll(name, ".", "_"), "_total")
	switch n {
	case "otelcol_process_cpu_seconds":
		return steward.TelemetryCPU, familyCollector, true
	case "process_cpu_seconds", "process_cpu_time":
		return steward.TelemetryCPU, familyGeneric, true
	case "otelcol_process_memory_rss":
		return steward.TelemetryMemory, familyCollector, true
	case "process_resident_memory_bytes", "process_memory_usage":
		return steward.TelemetryMemory, familyGeneric, true
	case "otelcol_exporter_queue_size":
		return steward.TelemetryQueueSize, familyCollector, true
	case "otelcol_exporter_queue_capacity":
		return steward.TelemetryQueueCapacity, familyCollector, true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(n, p.prefix) {
			return p.series, familyCollector, true
		}
	}
	return 0, 0, false
}

var prefixes = []struct {
	prefix string
	series steward.TelemetrySeries
}{
	{"otelcol_receiver_accepted_", steward.TelemetryReceived},
	{"otelcol_receiver_refused_", steward.TelemetryRefused},
	{"otelcol_receiver_failed_", steward.TelemetryRefused},
	{"otelcol_exporter_sent_", steward.TelemetrySent},
	{"otelcol_exporter_send_failed_", steward.TelemetrySendFailed},
	{"otelcol_exporter_enqueue_failed_", steward.TelemetrySendFailed},
}

// streamKey names one counter stream of an agent: a metric and the hash
// of its data point's attributes.
type streamKey struct {
	metric string
	attrs  uint64
}

// streamState is a cumulative stream's last data point.
type streamState struct {
	start, time uint64 // unix nanoseconds
	value       float64
}

// increase is a counter's increase over dur seconds ending at receipt.
type increase struct {
	series   steward.TelemetrySeries
	family   int
	inc, dur float64
}

// batch collects what one request brings for one agent before it is
// stored: levels summed per series and family, counter increases.
type batch struct {
	levels [nSeries][families]float64
	incs   []increase
	seen   [nSeries][families]bool
	points int // data points of known series
}

func newBatch() *batch {
	b := &batch{}
	for s := range b.levels {
		for f := range b.levels[s] {
			b.levels[s][f] = math.NaN()
		}
	}
	return b
}

// firstCountWindow: a cumulative stream seen for the first time counts
// its value as an increase only if it started this recently (a collector
// that just started); an older one only sets the baseline, so a Steward
// restart does not turn days of counts into a spike.
const firstCountWindow = 2 * time.Minute

// addMetrics reads rm's data points of known series into b, updating a's
// counter streams (a.mu held). It returns the data points of streams
// beyond maxStreams, which are dropped.
func (a *agentData) addMetrics(b *batch, rm pmetric.ResourceMetrics) (dropped int) {
	sms := rm.ScopeMetrics()
	for i := 0; i < sms.Len(); i++ {
		ms := sms.At(i).Metrics()
		for j := 0; j < ms.Len(); j++ {
			m := ms.At(j)
			s, fam, ok := classify(m.Name())
			if !ok {
				continue
			}
			switch m.Type() {
			case pmetric.MetricTypeGauge:
				b.addLevels(s, fam, m.Gauge().DataPoints())
			case pmetric.MetricTypeSum:
				sum := m.Sum()
				if !sum.IsMonotonic() && !s.Rate() {
					b.addLevels(s, fam, sum.DataPoints())
					continue
				}
				if !s.Rate() {
					continue // a counter where a level belongs: ignored
				}
				dropped += a.addCounter(b, m.Name(), s, fam, sum)
			}
		}
	}
	return dropped
}

func (b *batch) addLevels(s steward.TelemetrySeries, fam int, dps pmetric.NumberDataPointSlice) {
	for k := 0; k < dps.Len(); k++ {
		v := value(dps.At(k))
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		if !b.seen[s][fam] {
			b.levels[s][fam] = 0
			b.seen[s][fam] = true
		}
		b.levels[s][fam] += v
		b.points++
	}
}

func (a *agentData) addCounter(b *batch, name string, s steward.TelemetrySeries, fam int, sum pmetric.Sum) (dropped int) {
	dps := sum.DataPoints()
	delta := sum.AggregationTemporality() == pmetric.AggregationTemporalityDelta
	for k := 0; k < dps.Len(); k++ {
		dp := dps.At(k)
		v := value(dp)
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			continue
		}
		t, start := uint64(dp.Timestamp()), uint64(dp.StartTimestamp())
		b.seen[s][fam] = true
		b.points++
		if delta {
			b.incs = append(b.incs, increase{s, fam, v, seconds(start, t)})
			continue
		}
		key := streamKey{name, attrHash(dp.Attributes())}
		prev, known := a.streams[key]
		if !known && len(a.streams) >= maxStreams {
			dropped++
			continue
		}
		switch {
		case !known:
			if start != 0 && t > start && t-start <= uint64(firstCountWindow) {
				b.incs = append(b.incs, increase{s, fam, v, seconds(start, t)})
			}
		case t <= prev.time:
			continue // a point already counted, or out of order
		case v < prev.value || (start != prev.start && start > prev.time):
			// Reset: the counter restarted from zero.
			from := prev.time
			if start > prev.time {
				from = start
			}
			b.incs = append(b.incs, increase{s, fam, v, seconds(from, t)})
		default:
			b.incs = append(b.incs, increase{s, fam, v - prev.value, seconds(prev.time, t)})
		}
		if !known {
			key.metric = strings.Clone(key.metric) // not the request's memory
		}
		a.streams[key] = streamState{start: start, time: t, value: v}
	}
	return dropped
}

// store writes b into a's rings at now (a.mu held): per series, only the
// preferred family present counts.
func (a *agentData) store(b *batch, now time.Time) {
	var best [nSeries]int
	for s := range best {
		best[s] = families
		for f := range families {
			if b.seen[s][f] {
				best[s] = f
				break
			}
		}
	}
	sec := now.Unix()
	end := float64(now.UnixNano()) / 1e9
	for s := range steward.TelemetrySeriesCount {
		if f := best[s]; f < families && !s.Rate() && !math.IsNaN(b.levels[s][f]) {
			a.fine.set(a.fine.slotOf(sec), s, b.levels[s][f], false)
			a.coarse.set(a.coarse.slotOf(sec), s, b.levels[s][f], true)
		}
	}
	for _, in := range b.incs {
		if in.family != best[in.series] {
			continue
		}
		a.fine.spread(in.series, in.inc, end, in.dur)
		a.coarse.spread(in.series, in.inc, end, in.dur)
	}
	if b.points > 0 {
		a.last = now
	}
}

func value(dp pmetric.NumberDataPoint) float64 {
	if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
		return float64(dp.IntValue())
	}
	return dp.DoubleValue()
}

// seconds between two unix-nanosecond times; 0 when either is missing or
// they are out of order.
func seconds(from, to uint64) float64 {
	if from == 0 || to <= from {
		return 0
	}
	return float64(to-from) / 1e9
}

// attrHash hashes a set of attributes independently of their order: the
// sum of each pair's FNV-1a hash (written out: hash/fnv allocates).
func attrHash(m pcommon.Map) uint64 {
	var sum uint64
	m.Range(func(k string, v pcommon.Value) bool {
		h := fnvAdd(fnvOffset, k)
		h *= fnvPrime // FNV-1a of a 0 byte (x^0 = x): keeps key "ab"+"c" apart from "a"+"bc"
		if v.Type() == pcommon.ValueTypeStr {
			h = fnvAdd(h, v.Str())
		} else {
			h = fnvAdd(h, v.AsString())
		}
		sum += h
		return true
	})
	return sum
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvAdd(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return h
}
