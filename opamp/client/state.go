package client

import (
	"github.com/open-telemetry/opamp-go/protobufs"
)

// fieldSet names the compressible status sub-messages of AgentToServer.
type fieldSet uint16

const (
	fDescription fieldSet = 1 << iota
	fHealth
	fEffectiveConfig
	fRemoteConfigStatus
	fPackageStatuses
	fCustomCapabilities
	fAvailableComponents
	fConnectionSettingsStatus

	fAll = fDescription | fHealth | fEffectiveConfig | fRemoteConfigStatus | fPackageStatuses |
		fCustomCapabilities | fAvailableComponents | fConnectionSettingsStatus
)

// state is the agent status the client reports, guarded by Client.mu.
//
// Status compression: dirty holds the sub-messages changed since they were
// last sent; a message carries exactly those (all of them when full is set)
// and clears them. A send that fails, or is not acknowledged, marks them
// dirty again (HTTP), or the reconnect that follows sends the full state
// (WebSocket).
type state struct {
	uid [16]byte
	seq uint64

	description        *protobufs.AgentDescription
	health             *protobufs.ComponentHealth
	effectiveConfig    *protobufs.EffectiveConfig
	remoteConfigStatus *protobufs.RemoteConfigStatus
	packageStatuses    *protobufs.PackageStatuses
	customCaps         *protobufs.CustomCapabilities
	components         *protobufs.AvailableComponents
	connStatus         *protobufs.ConnectionSettingsStatus

	dirty          fieldSet
	full           bool // next message carries every field
	fullComponents bool // next available_components carries the full map
	flags          uint64
	sendFlags      bool // flags changed: worth a message of their own

	custom     *protobufs.CustomMessage
	customDone chan struct{}
	csr        *protobufs.ConnectionSettingsRequest
}

// pending reports whether anything is waiting to be sent.
func (s *state) pending() bool {
	return s.dirty != 0 || s.full || s.custom != nil || s.csr != nil || s.sendFlags
}

// sent describes what one built message carried, so the transport can
// report its fate with Client.afterSend.
type sent struct {
	fields     fieldSet
	components bool // carried the full components map
	custom     *protobufs.CustomMessage
	csr        *protobufs.ConnectionSettingsRequest
}

// build returns the next AgentToServer message: instance_uid, the next
// sequence_num, capabilities and flags always, plus every pending status
// field whose capability is declared, the pending custom message and CSR.
// disconnect sets agent_disconnect.
func (c *Client) build(disconnect bool) (*protobufs.AgentToServer, sent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.st
	s.seq++
	m := &protobufs.AgentToServer{
		InstanceUid:  append([]byte(nil), s.uid[:]...),
		SequenceNum:  s.seq,
		Capabilities: c.caps,
		Flags:        s.flags,
	}
	fields := s.dirty
	if s.full {
		fields = fAll
	}
	var out sent
	has := func(f fieldSet, capability protobufs.AgentCapabilities) bool {
		return fields&f != 0 && (capability == 0 || c.has(capability))
	}
	if has(fDescription, 0) && s.description != nil {
		m.AgentDescription = s.description
		out.fields |= fDescription
	}
	if has(fHealth, protobufs.AgentCapabilities_AgentCapabilities_ReportsHealth) && s.health != nil {
		m.Health = s.health
		out.fields |= fHealth
	}
	if has(fEffectiveConfig, protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig) && s.effectiveConfig != nil {
		m.EffectiveConfig = s.effectiveConfig
		out.fields |= fEffectiveConfig
	}
	if has(fRemoteConfigStatus, protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig) && s.remoteConfigStatus != nil {
		m.RemoteConfigStatus = s.remoteConfigStatus
		out.fields |= fRemoteConfigStatus
	}
	if has(fPackageStatuses, protobufs.AgentCapabilities_AgentCapabilities_ReportsPackageStatuses) && s.packageStatuses != nil {
		m.PackageStatuses = s.packageStatuses
		out.fields |= fPackageStatuses
	}
	if has(fCustomCapabilities, 0) && s.customCaps != nil {
		m.CustomCapabilities = s.customCaps
		out.fields |= fCustomCapabilities
	}
	if has(fAvailableComponents, protobufs.AgentCapabilities_AgentCapabilities_ReportsAvailableComponents) && s.components != nil {
		if s.fullComponents {
			m.AvailableComponents = s.components
			out.components = true
		} else {
			m.AvailableComponents = &protobufs.AvailableComponents{Hash: s.components.Hash}
		}
		out.fields |= fAvailableComponents
	}
	if has(fConnectionSettingsStatus, protobufs.AgentCapabilities_AgentCapabilities_ReportsConnectionSettingsStatus) && s.connStatus != nil {
		m.ConnectionSettingsStatus = s.connStatus
		out.fields |= fConnectionSettingsStatus
	}
	if s.custom != nil {
		m.CustomMessage = s.custom
		out.custom = s.custom
	}
	if s.csr != nil {
		m.ConnectionSettingsRequest = s.csr
		out.csr = s.csr
	}
	if disconnect {
		m.AgentDisconnect = &protobufs.AgentDisconnect{}
	}
	s.dirty, s.full, s.sendFlags = 0, false, false
	if out.components {
		s.fullComponents = false
	}
	return m, out
}

// afterSend records the fate of a built message. delivered: the custom
// message and CSR are done. Not delivered with retry: the status fields are
// marked dirty again so the next message carries them. Not delivered and not
// to be retried (BAD_REQUEST, 413): they are dropped.
func (c *Client) afterSend(out sent, delivered, retry bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.st
	if delivered || !retry {
		if out.custom != nil && s.custom == out.custom {
			close(s.customDone)
			s.custom, s.customDone = nil, nil
		}
		if out.csr != nil && s.csr == out.csr {
			s.csr = nil
		}
		return
	}
	s.dirty |= out.fields
	if out.components {
		s.fullComponents = true
	}
}

// markFull makes the next message carry the full state.
func (c *Client) markFull() {
	c.mu.Lock()
	c.st.full = true
	c.mu.Unlock()
}

// pending reports whether a status change is waiting to be sent.
func (c *Client) pending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.pending()
}
