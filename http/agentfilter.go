package http

import (
	"cmp"
	"net/url"
	"strconv"
	"strings"

	"github.com/stewardhq/steward"
)

// parseAgentFilter reads the agent filter of GET /api/v1/agents (and of
// the bulk actions, which act on the same agents): selector, q, online,
// healthy, health, sync (one state or several, comma-separated), config,
// type, version, attr.<key>, sort, offset, limit.
// EINVALID naming the parameter on a bad value.
func parseAgentFilter(q url.Values) (steward.AgentFilter, error) {
	var f steward.AgentFilter
	f.Selector, f.Search = q.Get("selector"), q.Get("q")
	f.Type, f.Version = q.Get("type"), q.Get("version")
	var err error
	if v := q.Get("sync"); strings.Contains(v, ",") {
		for _, name := range strings.Split(v, ",") {
			st, err := steward.ParseSyncState(name)
			if err != nil {
				return f, err
			}
			f.SyncAny = append(f.SyncAny, st)
		}
	} else if v != "" {
		if f.Sync, err = steward.ParseSyncState(v); err != nil {
			return f, err
		}
	}
	if v := q.Get("config"); v != "" {
		if f.ConfigStatus, err = steward.ParseRemoteConfigState(v); err != nil {
			return f, err
		}
	}
	if v := q.Get("health"); v != "" {
		if f.Health, err = steward.ParseHealthState(v); err != nil {
			return f, err
		}
	}
	if f.Sort, f.Desc, err = steward.ParseAgentSort(q.Get("sort")); err != nil {
		return f, err
	}
	for k, vs := range q {
		key, ok := strings.CutPrefix(k, steward.AttributeFilterPrefix)
		if !ok {
			continue
		}
		if len(vs) != 1 {
			return f, steward.Errorf(steward.EINVALID, "query parameter %s is given %d times: an attribute has one value", k, len(vs))
		}
		if f.Attributes == nil {
			f.Attributes = map[string]string{}
		}
		f.Attributes[key] = vs[0]
	}
	if f.Online, err = boolParam(q, "online"); err != nil {
		return f, err
	}
	if f.Healthy, err = boolParam(q, "healthy"); err != nil {
		return f, err
	}
	if f.Offset, err = intParam(q, "offset", 0, 0, -1); err != nil {
		return f, err
	}
	if f.Limit, err = intParam(q, "limit", 0, 0, -1); err != nil {
		return f, err
	}
	return f, f.Validate()
}

// AgentFilterQuery is f as the query parameters parseAgentFilter reads.
func AgentFilterQuery(f steward.AgentFilter) url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("selector", f.Selector)
	set("q", f.Search)
	set("sync", string(f.Sync))
	if len(f.SyncAny) > 0 {
		names := make([]string, len(f.SyncAny))
		for i, st := range f.SyncAny {
			names[i] = string(st)
		}
		q.Set("sync", strings.Join(names, ","))
	}
	set("config", string(f.ConfigStatus))
	set("health", string(f.Health))
	set("type", f.Type)
	set("version", f.Version)
	for k, v := range f.Attributes {
		q.Set(steward.AttributeFilterPrefix+k, v)
	}
	if f.Online != nil {
		q.Set("online", strconv.FormatBool(*f.Online))
	}
	if f.Healthy != nil {
		q.Set("healthy", strconv.FormatBool(*f.Healthy))
	}
	if sort := cmp.Or(f.Sort, steward.SortID); f.Desc {
		q.Set("sort", "-"+string(sort))
	} else if sort != steward.SortID {
		q.Set("sort", string(sort))
	}
	if f.Offset != 0 {
		q.Set("offset", strconv.Itoa(f.Offset))
	}
	if f.Limit != 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}
