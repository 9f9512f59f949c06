package steward

import (
	"slices"
	"sort"
	"strings"
)

// HealthStates lists every health state (see Agent.HealthState), in sort
// order.
var HealthStates = []HealthState{HealthHealthy, HealthUnhealthy, HealthUnknown}

// ParseHealthState accepts a health state name; EINVALID otherwise.
func ParseHealthState(s string) (HealthState, error) {
	for _, h := range HealthStates {
		if string(h) == s {
			return h, nil
		}
	}
	return "", Errorf(EINVALID, "unknown health %q: want one of %s", s, joinNames(HealthStates))
}

// RemoteConfigStates lists every reported remote config status.
var RemoteConfigStates = []RemoteConfigState{RemoteConfigUnset, RemoteConfigApplied, RemoteConfigApplying, RemoteConfigFailed}

// ParseRemoteConfigState accepts a remote config status name (APPLIED,
// …); EINVALID otherwise.
func ParseRemoteConfigState(s string) (RemoteConfigState, error) {
	for _, st := range RemoteConfigStates {
		if string(st) == s {
			return st, nil
		}
	}
	return "", Errorf(EINVALID, "unknown remote config status %q: want one of %s", s, joinNames(RemoteConfigStates))
}

// AgentSort names the order of an agent listing. Ties are broken by id, in
// the same direction, so paging through a sorted listing is stable.
type AgentSort string

const (
	SortID       AgentSort = "id"
	SortSync     AgentSort = "sync"      // sync state, by name
	SortHealth   AgentSort = "health"    // healthy, unhealthy, unknown
	SortOnline   AgentSort = "online"    // offline first
	SortType     AgentSort = "type"      // service.name, bytewise
	SortVersion  AgentSort = "version"   // service.version, bytewise
	SortHost     AgentSort = "host"      // host.name, bytewise
	SortLastSeen AgentSort = "last_seen" // never seen first
)

// AgentSorts lists every sort key.
var AgentSorts = []AgentSort{SortID, SortSync, SortHealth, SortOnline, SortType, SortVersion, SortHost, SortLastSeen}

// ParseAgentSort accepts a sort key, optionally prefixed with "-" for
// descending order ("-last_seen"); "" is id ascending. EINVALID otherwise.
func ParseAgentSort(s string) (key AgentSort, desc bool, err error) {
	if s == "" {
		return SortID, false, nil
	}
	name, desc := strings.CutPrefix(s, "-")
	for _, k := range AgentSorts {
		if string(k) == name {
			return k, desc, nil
		}
	}
	return "", false, Errorf(EINVALID, "unknown sort %q: want one of %s, optionally prefixed with -", s, joinNames(AgentSorts))
}

// AttributeFilterPrefix prefixes the query parameters and CLI flags that
// filter on an attribute: attr.host.arch=arm64.
const AttributeFilterPrefix = "attr."

// Validate checks every field a store does not: the sync state, health,
// sort key, selector, attribute keys and the page. EINVALID on the first
// problem.
func (f AgentFilter) Validate() error {
	if f.Sync != "" {
		if _, err := ParseSyncState(string(f.Sync)); err != nil {
			return err
		}
	}
	for _, st := range f.SyncAny {
		if _, err := ParseSyncState(string(st)); err != nil {
			return err
		}
	}
	if f.ConfigStatus != "" {
		if _, err := ParseRemoteConfigState(string(f.ConfigStatus)); err != nil {
			return err
		}
	}
	if f.Health != "" {
		if _, err := ParseHealthState(string(f.Health)); err != nil {
			return err
		}
	}
	if f.Read != ReadAll && f.Read != ReadReport && f.Read != ReadConfigStatus {
		return Errorf(EINVALID, "unknown agent read %q", f.Read)
	}
	if f.Sort != "" && !slices.Contains(AgentSorts, f.Sort) {
		return Errorf(EINVALID, "unknown sort %q: want one of %s", f.Sort, joinNames(AgentSorts))
	}
	if _, err := ParseSelector(f.Selector); err != nil {
		return err
	}
	for k := range f.Attributes {
		if k == "" {
			return Errorf(EINVALID, "attribute filter needs a key")
		}
	}
	if f.Offset < 0 || f.Limit < 0 {
		return Errorf(EINVALID, "offset and limit must be >= 0")
	}
	return nil
}

// SortedAttributes returns the keys of f.Attributes in order, so the same
// filter always builds the same query.
func (f AgentFilter) SortedAttributes() []string {
	keys := make([]string, 0, len(f.Attributes))
	for k := range f.Attributes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func joinNames[T ~string](list []T) string {
	names := make([]string, len(list))
	for i, v := range list {
		names[i] = string(v)
	}
	return strings.Join(names, ", ")
}
