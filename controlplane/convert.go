package controlplane

import (
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
)

// Conversions between opamp-go wire types and the steward domain.

func fromUnixNano(n uint64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n)).UTC()
}

func fromAnyValue(v *protobufs.AnyValue) any {
	if v == nil {
		return nil
	}
	switch x := v.Value.(type) {
	case *protobufs.AnyValue_StringValue:
		return x.StringValue
	case *protobufs.AnyValue_BoolValue:
		return x.BoolValue
	case *protobufs.AnyValue_IntValue:
		return x.IntValue
	case *protobufs.AnyValue_DoubleValue:
		return x.DoubleValue
	case *protobufs.AnyValue_BytesValue:
		return x.BytesValue
	case *protobufs.AnyValue_ArrayValue:
		if x.ArrayValue == nil {
			return []any{}
		}
		out := make([]any, len(x.ArrayValue.Values))
		for i, e := range x.ArrayValue.Values {
			out[i] = fromAnyValue(e)
		}
		return out
	case *protobufs.AnyValue_KvlistValue:
		out := map[string]any{}
		if x.KvlistValue != nil {
			for _, kv := range x.KvlistValue.Values {
				out[kv.Key] = fromAnyValue(kv.Value)
			}
		}
		return out
	}
	return nil
}

func fromKeyValues(kvs []*protobufs.KeyValue) []steward.KeyValue {
	if len(kvs) == 0 {
		return nil
	}
	out := make([]steward.KeyValue, 0, len(kvs))
	for _, kv := range kvs {
		if kv == nil {
			continue
		}
		out = append(out, steward.KeyValue{Key: kv.Key, Value: fromAnyValue(kv.Value)})
	}
	return out
}

func fromDescription(d *protobufs.AgentDescription) *steward.AgentDescription {
	if d == nil {
		return nil
	}
	return &steward.AgentDescription{
		IdentifyingAttributes:    fromKeyValues(d.IdentifyingAttributes),
		NonIdentifyingAttributes: fromKeyValues(d.NonIdentifyingAttributes),
	}
}

// maxHealthDepth bounds recursion over a hostile, deeply nested health tree.
const maxHealthDepth = 32

func fromHealth(h *protobufs.ComponentHealth, depth int) *steward.ComponentHealth {
	if h == nil || depth > maxHealthDepth {
		return nil
	}
	out := &steward.ComponentHealth{
		Healthy:    h.Healthy,
		StartTime:  fromUnixNano(h.StartTimeUnixNano),
		StatusTime: fromUnixNano(h.StatusTimeUnixNano),
		Status:     h.Status,
		LastError:  h.LastError,
	}
	if len(h.ComponentHealthMap) > 0 {
		out.Components = make(map[string]*steward.ComponentHealth, len(h.ComponentHealthMap))
		for k, v := range h.ComponentHealthMap {
			if c := fromHealth(v, depth+1); c != nil {
				out.Components[k] = c
			}
		}
	}
	return out
}

func fromConfigMap(m *protobufs.AgentConfigMap) steward.ConfigMap {
	out := steward.ConfigMap{}
	if m == nil {
		return out
	}
	for k, f := range m.ConfigMap {
		if f == nil {
			continue
		}
		out[k] = steward.ConfigFile{Body: f.Body, ContentType: f.ContentType}
	}
	return out
}

func toConfigMap(m steward.ConfigMap) *protobufs.AgentConfigMap {
	out := &protobufs.AgentConfigMap{ConfigMap: make(map[string]*protobufs.AgentConfigFile, len(m))}
	for k, f := range m {
		out.ConfigMap[k] = &protobufs.AgentConfigFile{Body: f.Body, ContentType: f.ContentType}
	}
	return out
}

func remoteConfigState(s protobufs.RemoteConfigStatuses) steward.RemoteConfigState {
	switch s {
	case protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED:
		return steward.RemoteConfigApplied
	case protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLYING:
		return steward.RemoteConfigApplying
	case protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED:
		return steward.RemoteConfigFailed
	}
	return steward.RemoteConfigUnset
}

func fromRemoteConfigStatus(s *protobufs.RemoteConfigStatus) *steward.RemoteConfigStatus {
	if s == nil {
		return nil
	}
	return &steward.RemoteConfigStatus{
		LastRemoteConfigHash: s.LastRemoteConfigHash,
		Status:               remoteConfigState(s.Status),
		ErrorMessage:         s.ErrorMessage,
	}
}

func packageState(s protobufs.PackageStatusEnum) steward.PackageState {
	switch s {
	case protobufs.PackageStatusEnum_PackageStatusEnum_Installed:
		return steward.PackageInstalled
	case protobufs.PackageStatusEnum_PackageStatusEnum_InstallPending:
		return steward.PackageInstallPending
	case protobufs.PackageStatusEnum_PackageStatusEnum_Installing:
		return steward.PackageInstalling
	case protobufs.PackageStatusEnum_PackageStatusEnum_InstallFailed:
		return steward.PackageInstallFailed
	case protobufs.PackageStatusEnum_PackageStatusEnum_Downloading:
		return steward.PackageDownloading
	}
	return steward.PackageState(s.String())
}

func fromPackageStatuses(p *protobufs.PackageStatuses) *steward.PackageStatuses {
	if p == nil {
		return nil
	}
	out := &steward.PackageStatuses{
		ServerProvidedAllPackagesHash: p.ServerProvidedAllPackagesHash,
		ErrorMessage:                  p.ErrorMessage,
	}
	if len(p.Packages) > 0 {
		out.Packages = make(map[string]*steward.PackageStatus, len(p.Packages))
		for k, s := range p.Packages {
			if s == nil {
				continue
			}
			ps := &steward.PackageStatus{
				Name:                 s.Name,
				AgentHasVersion:      s.AgentHasVersion,
				AgentHasHash:         s.AgentHasHash,
				ServerOfferedVersion: s.ServerOfferedVersion,
				ServerOfferedHash:    s.ServerOfferedHash,
				Status:               packageState(s.Status),
				ErrorMessage:         s.ErrorMessage,
			}
			if s.DownloadDetails != nil {
				ps.DownloadPercent = s.DownloadDetails.DownloadPercent
			}
			out.Packages[k] = ps
		}
	}
	return out
}

func fromComponentDetails(d *protobufs.ComponentDetails, depth int) *steward.ComponentDetails {
	if d == nil || depth > maxHealthDepth {
		return nil
	}
	out := &steward.ComponentDetails{Metadata: fromKeyValues(d.Metadata)}
	if len(d.SubComponentMap) > 0 {
		out.Components = make(map[string]*steward.ComponentDetails, len(d.SubComponentMap))
		for k, v := range d.SubComponentMap {
			if c := fromComponentDetails(v, depth+1); c != nil {
				out.Components[k] = c
			}
		}
	}
	return out
}

func fromAvailableComponents(a *protobufs.AvailableComponents) *steward.ComponentDetails {
	if a == nil {
		return nil
	}
	out := &steward.ComponentDetails{Hash: a.Hash}
	if len(a.Components) > 0 {
		out.Components = make(map[string]*steward.ComponentDetails, len(a.Components))
		for k, v := range a.Components {
			if c := fromComponentDetails(v, 1); c != nil {
				out.Components[k] = c
			}
		}
	}
	return out
}

func fromConnectionSettingsStatus(s *protobufs.ConnectionSettingsStatus) *steward.ConnectionSettingsStatus {
	if s == nil {
		return nil
	}
	st := s.Status.String()
	const prefix = "ConnectionSettingsStatuses_"
	if len(st) > len(prefix) && st[:len(prefix)] == prefix {
		st = st[len(prefix):]
	}
	return &steward.ConnectionSettingsStatus{
		LastConnectionSettingsHash: s.LastConnectionSettingsHash,
		Status:                     st,
		ErrorMessage:               s.ErrorMessage,
	}
}
