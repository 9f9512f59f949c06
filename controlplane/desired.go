package controlplane

import (
	"bytes"
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

// emptyConfig is that offer.
var emptyConfig = &desiredConfig{files: steward.ConfigMap{}, hash: emptyConfigHash,
	msg: &protobufs.AgentRemoteConfig{Config: &protobufs.AgentConfigMap{}, ConfigHash: emptyConfigHash}}

// known returns the desired config as a steward.KnownConfig; nil for nil.
func (dc *desiredConfig) known() *steward.KnownConfig {
	if dc == nil {
		return nil
	}
	return &steward.KnownConfig{Hash: dc.hash, Configs: dc.refs}
}

// wantedConfig returns the remote config an agent should run: its desired
// config; the empty config when nothing is assigned but it runs a config
// (reported is its last_remote_config_hash); nil when nothing is wanted or
// it does not accept remote config.
func (d *desiredState) wantedConfig(id steward.InstanceUID, labels steward.Labeled, caps steward.AgentCapabilities, reported []byte) *desiredConfig {
	if !caps.Has(steward.AgentAcceptsRemoteConfig) {
		return nil
	}
	if dc := d.forAgent(id, labels); dc != nil {
		return dc
	}
	if len(reported) > 0 && !bytes.Equal(reported, emptyConfigHash) {
		return emptyConfig
	}
	return nil
}

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
	// refs names the config versions it is made of, highest priority
	// first (empty for emptyConfig).
	refs steward.ConfigRefs
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
		if err := d.applyRollouts(ctx, st, rs, &problems); err != nil {
			return nil, nil, err
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
func (d *desiredState) forAgent(id steward.InstanceUID, labels steward.Labeled) *desiredConfig {
	var matched []int
	var cfgs []*steward.Config // the version each match resolves to
	for i := range d.assignments {
		r := &d.assignments[i]
		if r.a.AgentID != nil {
			if *r.a.AgentID == id {
				matched = append(matched, i)
			}
		} else if r.sel.MatchLabels(labels) {
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
	// Built only on a cache miss: a heartbeat allocates nothing for it.
	refs := make(steward.ConfigRefs, len(cfgs))
	for i, c := range cfgs {
		refs[i] = steward.ConfigRef{Assignment: d.assignments[matched[i]].a.Name, Config: c.Name, Version: c.Version}
	}
	files := mergeFiles(cfgs)
	h := files.Hash()
	dc := &desiredConfig{files: files, hash: h, refs: refs, msg: &protobufs.AgentRemoteConfig{Config: toConfigMap(files), ConfigHash: h}}
	dc, _ = d.byKey.LoadOrStore(key, dc)
	return dc
}

// applyRollouts takes, for each assignment, its newest rollout. An active one
// decides per agent between its two versions (see forAgent). A finished one
// that is newer than the assignment's last change decides the version outright
// (completed: ToVersion, rolled back: FromVersion): the replica that finished
// it pins the assignment right after, and until then, or if that replica died
// in between, the rollout record is the truth.
func (d *desiredState) applyRollouts(ctx context.Context, st steward.Store, rs steward.RolloutStore, problems *[]error) error {
	rollouts, err := rs.Rollouts(ctx)
	if err != nil {
		return err
	}
	newest := map[string]*steward.Rollout{}
	for _, r := range rollouts {
		if cur := newest[r.Assignment]; cur == nil || r.UpdatedAt.After(cur.UpdatedAt) {
			newest[r.Assignment] = r
		}
	}
	for i := range d.assignments {
		res := &d.assignments[i]
		r := newest[res.a.Name]
		if r == nil {
			continue
		}
		load := func(v int) (*steward.Config, bool, error) {
			if v == res.cfg.Version {
				return res.cfg, true, nil
			}
			c, err := st.Config(ctx, res.a.ConfigName, v)
			if steward.ErrorCode(err) == steward.ENOTFOUND {
				*problems = append(*problems, err)
				return nil, false, nil
			}
			return c, err == nil, err
		}
		switch {
		case r.Active():
			from, ok1, err := load(r.FromVersion)
			if err != nil {
				return err
			}
			to, ok2, err := load(r.ToVersion)
			if err != nil {
				return err
			}
			if ok1 && ok2 {
				if d.rollouts == nil {
					d.rollouts = map[string]*activeRollout{}
				}
				d.rollouts[res.a.Name] = &activeRollout{r: r, from: from, to: to}
			}
		case r.UpdatedAt.After(res.a.UpdatedAt):
			v := r.ToVersion
			if r.State == steward.RolloutRolledBack {
				v = r.FromVersion
			}
			c, ok, err := load(v)
			if err != nil {
				return err
			}
			if ok {
				res.cfg = c
			}
		}
	}
	return nil
}

// mergeFiles is the config map of several config versions, highest priority
// first: each file is keyed by Config.RemoteFileKey,
// and the first config to use a key keeps it.
func mergeFiles(cfgs []*steward.Config) steward.ConfigMap {
	files := steward.ConfigMap{}
	for _, c := range cfgs {
		for fname, f := range c.Files {
			k := c.RemoteFileKey(fname)
			if _, taken := files[k]; !taken {
				files[k] = f
			}
		}
	}
	return files
}
