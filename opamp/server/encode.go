package server

import (
	"fmt"
	"runtime"
	"sync"
	"weak"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward/opamp"
	"github.com/stewardhq/steward/opamp/websocket"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// fieldRemoteConfig is ServerToAgent.remote_config's field number.
const fieldRemoteConfig = 3

// sharedConfig is the encoding of one AgentRemoteConfig, made once and
// shared by every message that carries that same object: a fleet-wide push
// marshals (and compresses) the config once, not once per agent.
//
// A protobuf message is the concatenation of its fields, in any order, and
// a decoder takes them as they come (protobuf encoding, "Field order"). So
// a ServerToAgent goes on the wire as the shared remote_config field
// followed by the per-agent rest (instance_uid, flags, capabilities, …),
// encoded per message. The WebSocket header byte is part of the shared
// prefix, which always comes first.
type sharedConfig struct {
	once  sync.Once
	plain []byte // opamp.WSHeader, then the remote_config field
	err   error

	zOnce sync.Once
	z     []byte // plain deflated, ending at a sync-flush block boundary
}

// body returns the remote_config field without the WebSocket header byte
// (a plain-HTTP body has none).
func (sc *sharedConfig) body() []byte { return sc.plain[1:] }

// deflated returns plain compressed for permessage-deflate as a prefix that
// the compressed rest may follow (see websocket.AppendDeflatePrefix).
func (sc *sharedConfig) deflated() []byte {
	sc.zOnce.Do(func() { sc.z = websocket.AppendDeflatePrefix(nil, sc.plain) })
	return sc.z
}

// configCache maps AgentRemoteConfig objects to their shared encoding. It
// holds them weakly: an entry goes when its config object is collected
// (the desired state that referenced it was replaced), so nothing is kept
// for configs no longer sent, and a new object never finds an old entry.
type configCache struct {
	mu      sync.Mutex
	m       map[weak.Pointer[protobufs.AgentRemoteConfig]]*sharedConfig
	encodes uint64 // remote configs marshalled
}

// shared returns rc's shared encoding, marshalling it on first use.
func (cc *configCache) shared(rc *protobufs.AgentRemoteConfig) (*sharedConfig, error) {
	k := weak.Make(rc)
	cc.mu.Lock()
	if cc.m == nil {
		cc.m = make(map[weak.Pointer[protobufs.AgentRemoteConfig]]*sharedConfig)
	}
	sc := cc.m[k]
	if sc == nil {
		sc = &sharedConfig{}
		cc.m[k] = sc
		runtime.AddCleanup(rc, cc.forget, k)
	}
	cc.mu.Unlock()
	sc.once.Do(func() {
		b := []byte{opamp.WSHeader}
		b = protowire.AppendTag(b, fieldRemoteConfig, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(proto.Size(rc)))
		b, sc.err = proto.MarshalOptions{}.MarshalAppend(b, rc)
		if sc.err != nil {
			sc.err = fmt.Errorf("opamp server: encoding remote config: %w", sc.err)
		}
		sc.plain = b
		cc.mu.Lock()
		cc.encodes++
		cc.mu.Unlock()
	})
	return sc, sc.err
}

func (cc *configCache) forget(k weak.Pointer[protobufs.AgentRemoteConfig]) {
	cc.mu.Lock()
	delete(cc.m, k)
	cc.mu.Unlock()
}

// splitShared returns msg's remote config as its shared encoding and the
// rest of msg to encode per agent; (nil, msg) when msg has no remote
// config.
func (s *Server) splitShared(msg *protobufs.ServerToAgent) (*sharedConfig, *protobufs.ServerToAgent, error) {
	rc := msg.GetRemoteConfig()
	if rc == nil {
		return nil, msg, nil
	}
	sc, err := s.configs.shared(rc)
	if err != nil {
		return nil, msg, err
	}
	return sc, withoutRemoteConfig(msg), nil
}

// withoutRemoteConfig returns a shallow copy of msg without its remote
// config (msg itself is shared and must not be modified).
func withoutRemoteConfig(msg *protobufs.ServerToAgent) *protobufs.ServerToAgent {
	out := &protobufs.ServerToAgent{}
	dst := out.ProtoReflect()
	msg.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Number() != fieldRemoteConfig {
			dst.Set(fd, v)
		}
		return true
	})
	return out
}

func (cc *configCache) count() uint64 {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.encodes
}

// encodeBody returns msg encoded for uid as a plain-HTTP body (no
// WebSocket header), its remote config taken from the shared encoding.
func (s *Server) encodeBody(msg *protobufs.ServerToAgent, uid []byte) ([]byte, error) {
	sc, msg, err := s.splitShared(msg)
	if err != nil || sc == nil {
		return s.appendServerToAgent(nil, msg, uid)
	}
	out := append(make([]byte, 0, len(sc.plain)+proto.Size(msg)+32), sc.body()...)
	return s.appendServerToAgent(out, msg, uid)
}
