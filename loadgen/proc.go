package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ProcStats is a snapshot of one process's resource use, as the benchmark
// servers report it at /debug/stats and as SelfStats measures it here.
type ProcStats struct {
	RSS        uint64 `json:"rss"`         // resident set size, bytes (VmRSS)
	HeapInuse  uint64 `json:"heap_inuse"`  // runtime.MemStats.HeapInuse
	HeapAlloc  uint64 `json:"heap_alloc"`  // runtime.MemStats.HeapAlloc
	StackInuse uint64 `json:"stack_inuse"` // runtime.MemStats.StackInuse
	Sys        uint64 `json:"sys"`         // runtime.MemStats.Sys
	Goroutines int    `json:"goroutines"`
	CPU        int64  `json:"cpu_ns"` // user+system CPU time, nanoseconds

	// Server counters (benchmark servers only).
	Connections int64  `json:"connections"`
	Messages    uint64 `json:"messages"`
	Applied     int64  `json:"applied,omitempty"` // opamp-go bench server: agents reporting the pushed hash as APPLIED
	// Steward bench server: remote configs marshalled (once per config
	// version however many agents get it) and agents cut off for not
	// reading.
	ConfigEncodings uint64 `json:"config_encodings,omitempty"`
	Stuck           uint64 `json:"stuck,omitempty"`
	// PendingWrites (Steward bench server) is how many agents have a
	// state not yet written to the store (the group commit's queue).
	PendingWrites int `json:"pending_writes,omitempty"`
}

// SelfStats measures the calling process. With gc it first runs a garbage
// collection and returns freed memory to the operating system
// (debug.FreeOSMemory), so HeapInuse is close to the live heap and RSS is
// not inflated by garbage of the past.
func SelfStats(gc bool) ProcStats {
	if gc {
		debug.FreeOSMemory()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ProcStats{
		RSS:        rss("/proc/self/status"),
		HeapInuse:  ms.HeapInuse,
		HeapAlloc:  ms.HeapAlloc,
		StackInuse: ms.StackInuse,
		Sys:        ms.Sys,
		Goroutines: runtime.NumGoroutine(),
		CPU:        ru.Utime.Nano() + ru.Stime.Nano(),
	}
}

// rss reads VmRSS from a /proc status file; 0 when unavailable.
func rss(path string) uint64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// StatsHandler serves SelfStats as JSON (?gc=1 collects garbage first),
// with the server counters filled in by counters when it is not nil.
func StatsHandler(counters func(*ProcStats)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := SelfStats(r.URL.Query().Get("gc") == "1")
		if counters != nil {
			counters(&st)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
}

// FetchStats reads a benchmark server's /debug/stats.
func FetchStats(ctx context.Context, url string, gc bool) (ProcStats, error) {
	var st ProcStats
	if gc {
		url += "?gc=1"
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("loadgen: %s: %s", url, resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// RaiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit (a
// process cannot go beyond it without privileges) and returns the new soft
// limit. Each connection needs one descriptor.
func RaiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return rl.Cur, err
		}
	}
	return rl.Cur, nil
}
