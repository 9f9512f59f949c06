package bridge

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"google.golang.org/protobuf/proto"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"

	"github.com/stewardhq/steward/opamp/client"
)

// Capabilities every pool agent declares; managed pools add
// managedCapabilities.
const (
	baseCapabilities = protobufs.AgentCapabilities_AgentCapabilities_ReportsStatus |
		protobufs.AgentCapabilities_AgentCapabilities_ReportsEffectiveConfig |
		protobufs.AgentCapabilities_AgentCapabilities_ReportsHealth |
		protobufs.AgentCapabilities_AgentCapabilities_ReportsHeartbeat
	managedCapabilities = protobufs.AgentCapabilities_AgentCapabilities_AcceptsRemoteConfig |
		protobufs.AgentCapabilities_AgentCapabilities_ReportsRemoteConfig
)

// stopTimeout bounds the agent_disconnect of one pool.
const stopTimeout = 10 * time.Second

// pool is the OpAMP agent of one OpenTelemetryCollector.
type pool struct {
	b        *Bridge
	ns, name string
	uid      [16]byte
	managed  bool
	client   *client.Client

	mu       sync.Mutex
	desc     *protobufs.AgentDescription
	health   *protobufs.ComponentHealth
	config   []byte
	rcStatus *protobufs.RemoteConfigStatus
}

// newPool builds (but does not start) the agent of collector c. A managed
// pool whose resource carries the hash annotation reports that config as
// APPLIED, so a restarted bridge is not offered it again.
func (b *Bridge) newPool(c *collector, uid [16]byte, managed bool, desc *protobufs.AgentDescription, h *protobufs.ComponentHealth) (*pool, error) {
	p := &pool{b: b, ns: c.Namespace, name: c.Name, uid: uid, managed: managed, desc: desc, health: h, config: c.Config}
	capabilities := baseCapabilities
	if managed {
		capabilities |= managedCapabilities
	}
	cl, err := client.New(client.Settings{
		Endpoint:          b.cfg.Endpoint,
		Header:            b.cfg.Header,
		HeaderFunc:        b.cfg.HeaderFunc,
		TLSConfig:         b.cfg.TLSConfig,
		InstanceUID:       uid,
		Capabilities:      capabilities,
		Description:       desc,
		HeartbeatInterval: b.cfg.HeartbeatInterval,
		Backoff:           b.cfg.Backoff,
		Logger:            b.log.With("collector", c.key()),
		Callbacks: client.Callbacks{
			OnMessage:          p.onMessage,
			GetEffectiveConfig: p.effectiveConfig,
		},
	})
	if err != nil {
		return nil, err
	}
	p.client = cl
	if err := cl.SetHealth(h); err != nil {
		return nil, err
	}
	if err := cl.UpdateEffectiveConfig(context.Background()); err != nil {
		return nil, err
	}
	if managed {
		st := &protobufs.RemoteConfigStatus{Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_UNSET}
		if h, err := hex.DecodeString(c.Annotations[HashAnnotation]); err == nil && len(h) > 0 {
			st = &protobufs.RemoteConfigStatus{LastRemoteConfigHash: h, Status: protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED}
		}
		p.rcStatus = st
		if err := cl.SetRemoteConfigStatus(st); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *pool) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := p.client.Stop(ctx); err != nil {
		p.b.log.Warn("agent stop", "collector", p.ns+"/"+p.name, "error", err)
	}
}

// update reports what changed since the last report: description, health
// (ignoring status times) and effective config.
func (p *pool) update(ctx context.Context, c *collector, desc *protobufs.AgentDescription, h *protobufs.ComponentHealth) error {
	p.mu.Lock()
	descChanged := !proto.Equal(desc, p.desc)
	healthChanged := !sameHealth(h, p.health)
	configChanged := !bytes.Equal(c.Config, p.config)
	if descChanged {
		p.desc = desc
	}
	if healthChanged {
		p.health = h
	}
	if configChanged {
		p.config = c.Config
	}
	p.mu.Unlock()
	var errs []error
	if descChanged {
		errs = append(errs, p.client.SetAgentDescription(desc))
	}
	if healthChanged {
		errs = append(errs, p.client.SetHealth(h))
	}
	if configChanged {
		errs = append(errs, p.client.UpdateEffectiveConfig(ctx))
	}
	return errors.Join(errs...)
}

// effectiveConfig is the client's GetEffectiveConfig callback.
func (p *pool) effectiveConfig(context.Context) (*protobufs.EffectiveConfig, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return effectiveConfig(&collector{Config: p.config}), nil
}

// onMessage applies a remote config offer: APPLYING, then the update of
// spec.config, then APPLIED or FAILED with the reason.
func (p *pool) onMessage(ctx context.Context, msg *client.MessageData) {
	rc := msg.RemoteConfig
	if rc == nil || !p.managed {
		return
	}
	p.mu.Lock()
	cur := p.rcStatus
	p.mu.Unlock()
	if cur != nil && cur.Status == protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED &&
		len(rc.ConfigHash) > 0 && bytes.Equal(cur.LastRemoteConfigHash, rc.ConfigHash) {
		return // already running it
	}
	p.setStatus(rc.ConfigHash, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLYING, "")
	obj, err := p.b.writeConfig(ctx, p.ns, p.name, rc)
	if err != nil {
		p.b.log.Warn("remote config failed", "collector", p.ns+"/"+p.name, "error", err)
		p.setStatus(rc.ConfigHash, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_FAILED, err.Error())
		return
	}
	c := parseCollector(obj)
	p.mu.Lock()
	p.config = c.Config
	p.mu.Unlock()
	p.setStatus(rc.ConfigHash, protobufs.RemoteConfigStatuses_RemoteConfigStatuses_APPLIED, "")
	if err := p.client.UpdateEffectiveConfig(ctx); err != nil {
		p.b.log.Warn("report effective config", "collector", p.ns+"/"+p.name, "error", err)
	}
	p.b.log.Info("remote config applied", "collector", p.ns+"/"+p.name, "hash", hex.EncodeToString(rc.ConfigHash))
}

func (p *pool) setStatus(hash []byte, st protobufs.RemoteConfigStatuses, msg string) {
	s := &protobufs.RemoteConfigStatus{LastRemoteConfigHash: bytes.Clone(hash), Status: st, ErrorMessage: msg}
	p.mu.Lock()
	p.rcStatus = s
	p.mu.Unlock()
	if err := p.client.SetRemoteConfigStatus(s); err != nil {
		p.b.log.Warn("report remote config status", "collector", p.ns+"/"+p.name, "error", err)
	}
}

// writeConfig merges the offered files and writes them to the resource's
// spec.config (a YAML string when the resource holds one, as v1alpha1 does;
// an object otherwise), with the offer's hash in the annotation
// steward.dev/remote-config-hash. An offer without files (nothing assigned
// any more) leaves spec.config as it is and only records the hash. The
// update is retried on resourceVersion conflicts. It fails on invalid YAML,
// a merged config that is empty, a resource no longer opted in
// (ErrNotManaged), or the API server's refusal (e.g. an admission webhook or
// schema validation), wrapped with the resource's name.
func (b *Bridge) writeConfig(ctx context.Context, ns, name string, rc *protobufs.AgentRemoteConfig) (*unstructured.Unstructured, error) {
	files := rc.GetConfig().GetConfigMap()
	var merged map[string]any
	var text []byte
	if len(files) > 0 {
		var err error
		merged, err = MergeConfigFiles(files)
		if err != nil {
			return nil, fmt.Errorf("invalid remote config: %w", err)
		}
		if len(merged) == 0 {
			return nil, errors.New("invalid remote config: the merged configuration is empty")
		}
		text, err = renderYAML(merged)
		if err != nil {
			return nil, fmt.Errorf("invalid remote config: %w", err)
		}
	}
	res := b.cfg.Dynamic.Resource(b.gvr).Namespace(ns)
	var out *unstructured.Unstructured
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		cur, err := res.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		c := parseCollector(cur)
		if !c.managed(b.sel) {
			return ErrNotManaged
		}
		obj := cur.DeepCopy()
		if merged != nil {
			var v any = merged
			if c.ConfigIsString || (c.Config == nil && b.cfg.APIVersion == "v1alpha1") {
				v = string(text)
			}
			if err := unstructured.SetNestedField(obj.Object, v, "spec", "config"); err != nil {
				return err
			}
		}
		ann := obj.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann[HashAnnotation] = hex.EncodeToString(rc.GetConfigHash())
		obj.SetAnnotations(ann)
		out, err = res.Update(ctx, obj, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
	if err != nil {
		if apierrors.IsConflict(err) {
			return nil, fmt.Errorf("update %s %s/%s: still conflicting after retries: %w", Kind, ns, name, err)
		}
		return nil, fmt.Errorf("update %s %s/%s: %w", Kind, ns, name, err)
	}
	return out, nil
}
