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
	// rollouts holds the active rollouts by assignment name.
	rollouts map[string]*activeRollout
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

// activeRollout is a running or paused rollout with both versions loaded.
type activeRollout struct {
	r        *steward.Rollout
	from, to *steward.Config
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
	if rs, ok := st.(steward.RolloutStore); ok {
		rollouts, err := rs.Rollouts(ctx)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range rollouts {
			if !r.Active() {
				continue
			}
			var ar activeRollout
			ar.r = r
			for _, v := range []struct {
				dst **steward.Config
				n   int
			}{{&ar.from, r.FromVersion}, {&ar.to, r.ToVersion}} {
				var a *steward.Assignment
				for _, x := range as {
					if x.Name == r.Assignment {
						a = x
					}
				}
				if a == nil {
					break
				}
				c, err := st.Config(ctx, a.ConfigName, v.n)
				if err != nil {
					if steward.ErrorCode(err) == steward.ENOTFOUND {
						problems = append(problems, err)
						break
					}
					return nil, nil, err
				}
				*v.dst = c
			}
			if ar.from != nil && ar.to != nil {
				if d.rollouts == nil {
					d.rollouts = map[string]*activeRollout{}
				}
				d.rollouts[r.Assignment] = &ar
			}
		}
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
	var cfgs []*steward.Config // the version each match resolves to
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
		c := r.cfg
		if ar := d.rollouts[r.a.Name]; ar != nil {
			c = ar.from
			if ar.r.Reached(id, labels, ar.r.Stage) {
				c = ar.to
			}
		}
		cfgs = append(cfgs, c)
		kb.WriteString(r.a.Name)
		kb.WriteByte('\x00')
		kb.WriteString(itoa(c.Version))
		kb.WriteByte('\x00')
	}
	key := kb.String()
	if dc, ok := d.byKey.Load(key); ok {
		return dc
	}
	files := steward.ConfigMap{}
	for _, c := range cfgs { // highest priority first: it keeps its keys
		for fname, f := range c.Files {
			k := c.Name
			if fname != "" && !(len(c.Files) == 1 && fname == c.Name) {
				k = c.Name + "/" + fname
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
