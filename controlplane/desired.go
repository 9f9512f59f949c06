package controlplane

import (
	"context"
	"crypto/sha256"
	"sort"
	"strings"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
)

// emptyConfigHash is offered with an empty config map when an agent that
// runs a remote config from us no longer has any assignment.
var emptyConfigHash = func() []byte { h := sha256.Sum256(nil); return h[:] }()

// desiredState is an immutable snapshot of every assignment resolved to the
// config version it points at. It is rebuilt when configs or assignments
// change and swapped atomically; readers never lock.
type desiredState struct {
	assignments []resolved // priority desc, then name
	// byKey caches the merged config per set of matching assignments, so
	// that 100k agents matching the same assignments share one map, one
	// hash and one wire message.
	byKey syncMap[string, *desiredConfig]
}

type resolved struct {
	a   *steward.Assignment
	sel steward.Selector
	cfg *steward.Config
}

type desiredConfig struct {
	files steward.ConfigMap
	hash  []byte
	// msg is shared, read-only, by every ServerToAgent that offers it.
	msg *protobufs.AgentRemoteConfig
}

// loadDesired resolves every assignment against the store. An assignment
// whose config vanished is skipped (and logged by the caller).
func loadDesired(ctx context.Context, st steward.Store) (*desiredState, []error, error) {
	as, err := st.Assignments(ctx)
	if err != nil {
		return nil, nil, err
	}
	d := &desiredState{}
	var problems []error
	cache := map[string]*steward.Config{}
	for _, a := range as {
		sel, err := steward.ParseSelector(a.Selector)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		key := a.ConfigName + "@" + itoa(a.Version)
		c, ok := cache[key]
		if !ok {
			c, err = st.Config(ctx, a.ConfigName, a.Version)
			if err != nil {
				if steward.ErrorCode(err) == steward.ENOTFOUND {
					problems = append(problems, err)
					continue
				}
				return nil, nil, err
			}
			cache[key] = c
		}
		d.assignments = append(d.assignments, resolved{a: a, sel: sel, cfg: c})
	}
	sort.SliceStable(d.assignments, func(i, j int) bool {
		ai, aj := d.assignments[i].a, d.assignments[j].a
		if ai.Priority != aj.Priority {
			return ai.Priority > aj.Priority
		}
		return ai.Name < aj.Name
	})
	return d, problems, nil
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// forAgent returns the desired config of an agent with the given id and
// label set; nil when no assignment matches.
func (d *desiredState) forAgent(id steward.InstanceUID, labels map[string]string) *desiredConfig {
	var matched []int
	for i := range d.assignments {
		r := &d.assignments[i]
		if r.a.AgentID != nil {
			if *r.a.AgentID == id {
				matched = append(matched, i)
			}
		} else if r.sel.Matches(labels) {
			matched = append(matched, i)
		}
	}
	if len(matched) == 0 {
		return nil
	}
	var kb strings.Builder
	for _, i := range matched {
		r := &d.assignments[i]
		kb.WriteString(r.a.Name)
		kb.WriteByte('\x00')
		kb.WriteString(itoa(r.cfg.Version))
		kb.WriteByte('\x00')
	}
	key := kb.String()
	if dc, ok := d.byKey.Load(key); ok {
		return dc
	}
	files := steward.ConfigMap{}
	for _, i := range matched { // highest priority first: it keeps its keys
		r := &d.assignments[i]
		for fname, f := range r.cfg.Files {
			k := r.cfg.Name
			if fname != "" && !(len(r.cfg.Files) == 1 && fname == r.cfg.Name) {
				k = r.cfg.Name + "/" + fname
			}
			if _, taken := files[k]; !taken {
				files[k] = f
			}
		}
	}
	h := files.Hash()
	dc := &desiredConfig{files: files, hash: h, msg: &protobufs.AgentRemoteConfig{Config: toConfigMap(files), ConfigHash: h}}
	dc, _ = d.byKey.LoadOrStore(key, dc)
	return dc
}
