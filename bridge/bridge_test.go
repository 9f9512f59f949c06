package bridge_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/bridge"
	"github.com/stewardhq/steward/bridge/internal/bridgetest"
	"github.com/stewardhq/steward/opamp/client"
)

// waitFor bounds every eventually: generous for a loaded 2-core machine.
const waitFor = 30 * time.Second

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var gvr = bridge.GVR("v1beta1")

// cluster is a fake Kubernetes API: client-go's fake dynamic client for
// OpenTelemetryCollectors and fake clientset for pods.
type cluster struct {
	dyn  *dynamicfake.FakeDynamicClient
	kube *kubefake.Clientset
}

func newCluster(objs []runtime.Object, pods ...runtime.Object) *cluster {
	s := runtime.NewScheme()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(s,
		map[schema.GroupVersionResource]string{gvr: "OpenTelemetryCollectorList", bridge.GVR("v1alpha1"): "OpenTelemetryCollectorList"}, objs...)
	return &cluster{dyn: dyn, kube: kubefake.NewClientset(pods...)}
}

// watching waits until the bridge's informers watch both resources, so
// objects created afterwards are seen as events (the fake API server does
// not replay what happened between list and watch).
func (c *cluster) watching(t *testing.T) {
	t.Helper()
	has := func(f *k8stesting.Fake, resource string) bool {
		for _, a := range f.Actions() {
			if a.GetVerb() == "watch" && a.GetResource().Resource == resource {
				return true
			}
		}
		return false
	}
	eventually(t, "informers to watch", func() bool {
		return has(&c.dyn.Fake, bridge.Resource) && has(&c.kube.Fake, "pods")
	})
}

func collectorObj(ns, name, uid string, lbls, ann map[string]string, config map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "opentelemetry.io/v1beta1",
		"kind":       "OpenTelemetryCollector",
		"spec": map[string]any{
			"mode":     "deployment",
			"replicas": int64(2),
			"image":    "otel/opentelemetry-collector-contrib:0.120.0",
			"config":   config,
		},
		"status": map[string]any{"version": "0.120.0"},
	}}
	u.SetNamespace(ns)
	u.SetName(name)
	u.SetUID(types.UID(uid))
	u.SetLabels(lbls)
	u.SetAnnotations(ann)
	u.SetCreationTimestamp(metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
	return u
}

func baseConfig() map[string]any {
	return map[string]any{
		"receivers":  map[string]any{"otlp": map[string]any{"protocols": map[string]any{"grpc": map[string]any{}}}},
		"exporters":  map[string]any{"debug": map[string]any{}},
		"service":    map[string]any{"pipelines": map[string]any{"traces": map[string]any{"receivers": []any{"otlp"}, "exporters": []any{"debug"}}}},
		"extensions": map[string]any{},
	}
}

func pod(ns, instance, name string, ready bool, crash string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{
			bridge.LabelManagedBy: bridge.OperatorName,
			bridge.LabelInstance:  bridge.InstanceLabel(ns, instance),
			bridge.LabelComponent: bridge.CollectorComponent,
		}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}
	cs := corev1.ContainerStatus{Name: "otc-container", Ready: ready}
	if crash != "" {
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: crash}
		cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}
		cs.RestartCount = 4
	}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
	return p
}

const (
	gatewayUID  = "0b5c3f3e-9a3c-4b8e-8f5e-1c2d3e4f5a6b"
	readonlyUID = "1c6d4a4f-ab4d-4c9f-9a6f-2d3e4f5a6b7c"
)

func mustUID(t *testing.T, s string) steward.InstanceUID {
	id, err := steward.ParseInstanceUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// runBridge starts a bridge against c and stew and stops it at cleanup.
func runBridge(t *testing.T, c *cluster, stew *bridgetest.Steward, mod func(*bridge.Config)) *bridge.Bridge {
	t.Helper()
	cfg := bridge.Config{
		Endpoint:    stew.Endpoint,
		Dynamic:     c.dyn,
		Kube:        c.kube,
		Namespaces:  []string{"observability"},
		ClusterName: "test-cluster",
		Backoff:     client.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond},
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := bridge.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitFor):
			t.Errorf("Run did not return after cancel")
		}
	})
	select {
	case <-b.Ready():
	case err := <-errc:
		t.Fatalf("Run: %v", err)
	case <-time.After(waitFor):
		t.Fatal("bridge not ready")
	}
	c.watching(t)
	return b
}

func agent(t *testing.T, stew *bridgetest.Steward, id steward.InstanceUID) *steward.Agent {
	t.Helper()
	a, err := stew.CP.Agent(context.Background(), id)
	if err != nil {
		if steward.ErrorCode(err) == steward.ENOTFOUND {
			return nil
		}
		t.Fatal(err)
	}
	return a
}

func getCR(t *testing.T, c *cluster, ns, name string) *unstructured.Unstructured {
	t.Helper()
	u, err := c.dyn.Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestPoolsAsAgents: every OpenTelemetryCollector shows up in Steward as an
// agent with identifying and non-identifying attributes, capabilities
// depending on opt-in, health from its pods and spec.config as effective
// config; pod changes update health; a new resource connects; a deleted
// one goes offline.
func TestPoolsAsAgents(t *testing.T) {
	stew := bridgetest.StartSteward(t)
	ctx := context.Background()
	gw := collectorObj("observability", "gateway", gatewayUID,
		map[string]string{"env": "prod", "team": "sre"}, map[string]string{bridge.ManagedAnnotation: "true"}, baseConfig())
	ro := collectorObj("observability", "readonly", readonlyUID, map[string]string{"env": "dev"}, nil, baseConfig())
	other := collectorObj("elsewhere", "ignored", "2d7e5b5a-bc5e-4da0-8b7a-3e4f5a6b7c8d", nil, nil, baseConfig())
	longName := "collector-" + strings.Repeat("l", 50) // instance label truncated
	long := collectorObj("observability", longName, "4f9a7d7c-de7a-4fc2-8d9c-5a6b7c8d9eaf", nil, nil, baseConfig())
	ta := pod("observability", "gateway", "gateway-targetallocator-xyz", false, "not a collector pod")
	ta.Labels[bridge.LabelComponent] = "opentelemetry-targetallocator"
	c := newCluster([]runtime.Object{gw, ro, other, long},
		pod("observability", "gateway", "gateway-collector-abc", true, ""),
		pod("observability", "gateway", "gateway-collector-def", false, "back-off 5m0s restarting failed container"),
		ta,
	)
	b := runBridge(t, c, stew, nil)

	gwID, roID := mustUID(t, gatewayUID), mustUID(t, readonlyUID)
	eventually(t, "gateway agent online with health and effective config", func() bool {
		a := agent(t, stew, gwID)
		return a != nil && a.Online && a.Description != nil && a.Health != nil && a.EffectiveConfig != nil
	})
	a := agent(t, stew, gwID)
	for k, want := range map[string]string{
		steward.AttrServiceName:       "gateway",
		steward.AttrServiceNamespace:  "observability",
		bridge.AttrK8sNamespace:       "observability",
		bridge.AttrK8sCluster:         "test-cluster",
		steward.AttrServiceInstanceID: gatewayUID,
		steward.AttrServiceVersion:    "0.120.0",
		bridge.AttrCollectorMode:      "deployment",
		bridge.AttrReplicas:           "2",
		bridge.AttrImage:              "otel/opentelemetry-collector-contrib:0.120.0",
		bridge.AttrManaged:            "true",
		"env":                         "prod",
		"team":                        "sre",
	} {
		if got := a.Attribute(k); got != want {
			t.Errorf("attribute %s = %q, want %q", k, got, want)
		}
	}
	ident := map[string]bool{}
	for _, kv := range a.Description.IdentifyingAttributes {
		ident[kv.Key] = true
	}
	for _, k := range []string{steward.AttrServiceName, steward.AttrServiceNamespace, bridge.AttrK8sNamespace, bridge.AttrK8sCluster} {
		if !ident[k] {
			t.Errorf("%s is not an identifying attribute", k)
		}
	}
	if !a.Capabilities.Has(steward.AgentAcceptsRemoteConfig | steward.AgentReportsRemoteConfig | steward.AgentReportsHealth | steward.AgentReportsEffectiveConfig) {
		t.Errorf("managed pool capabilities = %v", a.Capabilities.Names())
	}
	if a.Health.Healthy {
		t.Error("pool with a crash-looping pod reported healthy")
	}
	if h := a.Health.Components["pod/gateway-collector-abc"]; h == nil || !h.Healthy {
		t.Errorf("ready pod health = %+v", h)
	}
	if h := a.Health.Components["pod/gateway-collector-def"]; h == nil || h.Healthy || !strings.Contains(h.LastError, "CrashLoopBackOff") {
		t.Errorf("crash-looping pod health = %+v", h)
	}
	if !strings.Contains(a.Health.LastError, "CrashLoopBackOff") || a.Health.Status != "1/2 pods ready, 2 desired" {
		t.Errorf("pool health = %q / %q", a.Health.Status, a.Health.LastError)
	}
	if f, ok := (*a.EffectiveConfig)[""]; !ok || !strings.Contains(string(f.Body), "otlp:") || !strings.Contains(string(f.Body), "pipelines:") {
		t.Errorf("effective config = %v", a.EffectiveConfig)
	}

	eventually(t, "read-only agent online", func() bool {
		a := agent(t, stew, roID)
		return a != nil && a.Online && a.Description != nil
	})
	if ra := agent(t, stew, roID); ra.Capabilities.Has(steward.AgentAcceptsRemoteConfig) || ra.Attribute(bridge.AttrManaged) != "false" {
		t.Errorf("read-only pool: capabilities %v, managed=%q", ra.Capabilities.Names(), ra.Attribute(bridge.AttrManaged))
	}
	if n := len(b.Agents()); n != 3 {
		t.Errorf("bridge reports %d pools, want 3 (namespace elsewhere is not watched): %+v", n, b.Agents())
	}

	// A pod appearing for a collector whose name is too long for the
	// instance label as is.
	if len(bridge.InstanceLabel("observability", longName)) != 63 {
		t.Fatal("test name does not exercise truncation")
	}
	if _, err := c.kube.CoreV1().Pods("observability").Create(ctx, pod("observability", longName, "long-collector-1", true, ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	longID := mustUID(t, "4f9a7d7c-de7a-4fc2-8d9c-5a6b7c8d9eaf")
	eventually(t, "long-named pool healthy with its pod", func() bool {
		a := agent(t, stew, longID)
		return a != nil && a.Health != nil && a.Health.Healthy && a.Health.Components["pod/long-collector-1"] != nil
	})

	// Steward selectors see the Kubernetes attributes and labels.
	list, _, err := stew.CP.Agents(ctx, steward.AgentFilter{Selector: "k8s.namespace.name=observability,env=prod"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != gwID {
		t.Errorf("selector matched %d agents, want only the gateway", len(list))
	}

	// The crash-looping pod recovers: the pool turns healthy.
	fixed := pod("observability", "gateway", "gateway-collector-def", true, "")
	if _, err := c.kube.CoreV1().Pods("observability").Update(ctx, fixed, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pool healthy after the pod became ready", func() bool {
		a := agent(t, stew, gwID)
		return a.Health != nil && a.Health.Healthy && a.Health.Status == "2/2 pods ready, 2 desired"
	})

	// A label change on the resource updates the description.
	cur := getCR(t, c, "observability", "gateway")
	cur.SetLabels(map[string]string{"env": "staging"})
	if _, err := c.dyn.Resource(gvr).Namespace("observability").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "description updated from labels", func() bool {
		a := agent(t, stew, gwID)
		return a.Attribute("env") == "staging" && a.Attribute("team") == ""
	})

	// A new resource connects a new agent.
	newUID := "3e8f6c6b-cd6f-4eb1-9c8b-4f5a6b7c8d9e"
	nc := collectorObj("observability", "agents", newUID, nil, nil, baseConfig())
	if err := unstructured.SetNestedField(nc.Object, "daemonset", "spec", "mode"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.dyn.Resource(gvr).Namespace("observability").Create(ctx, nc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	newID := mustUID(t, newUID)
	eventually(t, "new pool online", func() bool {
		a := agent(t, stew, newID)
		return a != nil && a.Online && a.Attribute(bridge.AttrCollectorMode) == "daemonset" && a.Health != nil && a.Health.Status == "no pods"
	})

	// Opting a running pool in reconnects it with AcceptsRemoteConfig.
	cur = getCR(t, c, "observability", "agents")
	cur.SetAnnotations(map[string]string{bridge.ManagedAnnotation: "true"})
	if _, err := c.dyn.Resource(gvr).Namespace("observability").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "opted-in pool accepts remote config", func() bool {
		a := agent(t, stew, newID)
		return a.Online && a.Capabilities.Has(steward.AgentAcceptsRemoteConfig) && a.Attribute(bridge.AttrManaged) == "true"
	})

	// Deleting a resource disconnects its agent.
	if err := c.dyn.Resource(gvr).Namespace("observability").Delete(ctx, "readonly", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted pool offline", func() bool {
		a := agent(t, stew, roID)
		return a != nil && !a.Online
	})
	if a := agent(t, stew, gwID); !a.Online {
		t.Error("gateway went offline when another pool was deleted")
	}
	for _, ai := range b.Agents() {
		if ai.Name == "readonly" {
			t.Error("bridge still reports the deleted pool")
		}
	}
}

// TestRemoteConfig: a config assigned in Steward is merged and written to
// spec.config and reported APPLIED; an update the API server rejects, and
// invalid YAML, are reported FAILED and leave spec.config alone; a pool
// not opted in is never written.
func TestRemoteConfig(t *testing.T) {
	stew := bridgetest.StartSteward(t)
	ctx := context.Background()
	gw := collectorObj("observability", "gateway", gatewayUID, map[string]string{"env": "prod"}, map[string]string{bridge.ManagedAnnotation: "true"}, baseConfig())
	ro := collectorObj("observability", "readonly", readonlyUID, map[string]string{"env": "prod"}, nil, baseConfig())
	c := newCluster([]runtime.Object{gw, ro}, pod("observability", "gateway", "gateway-collector-abc", true, ""))

	var reject atomic.Value // string: non-empty rejects updates of the gateway
	reject.Store("")
	var updates atomic.Int64
	c.dyn.PrependReactor("update", bridge.Resource, func(action k8stesting.Action) (bool, runtime.Object, error) {
		u := action.(k8stesting.UpdateAction).GetObject().(*unstructured.Unstructured)
		if u.GetName() == "readonly" {
			t.Errorf("bridge wrote to a resource that is not opted in")
		}
		if msg := reject.Load().(string); msg != "" {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: bridge.Group, Resource: bridge.Resource}, u.GetName(), errString(msg))
		}
		updates.Add(1)
		return false, nil, nil
	})
	runBridge(t, c, stew, nil)
	gwID, roID := mustUID(t, gatewayUID), mustUID(t, readonlyUID)
	eventually(t, "agents online", func() bool {
		a, r := agent(t, stew, gwID), agent(t, stew, roID)
		return a != nil && a.Online && r != nil && r.Online
	})

	// Two files: merged in key order, later keys win, maps merge deeply.
	_, err := stew.CP.PutConfig(ctx, &steward.Config{Name: "gateway", Files: steward.ConfigMap{
		"a-base.yaml": {Body: []byte("receivers:\n  otlp:\n    protocols:\n      grpc: {}\nexporters:\n  debug:\n    verbosity: basic\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n")},
		"b-prod.yaml": {Body: []byte("exporters:\n  debug:\n    verbosity: detailed\n  otlp/backend:\n    endpoint: backend:4317\nservice:\n  pipelines:\n    traces:\n      exporters: [otlp/backend]\n")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stew.CP.PutAssignment(ctx, &steward.Assignment{Name: "prod", ConfigName: "gateway", Selector: "env=prod"}); err != nil {
		t.Fatal(err)
	}
	_, hash, err := stew.CP.DesiredConfig(ctx, gwID)
	if err != nil || len(hash) == 0 {
		t.Fatalf("desired config: %v", err)
	}
	eventually(t, "gateway reports APPLIED", func() bool {
		a := agent(t, stew, gwID)
		return a.RemoteConfigStatus != nil && a.RemoteConfigStatus.Status == steward.RemoteConfigApplied && bytes.Equal(a.RemoteConfigStatus.LastRemoteConfigHash, hash)
	})
	cr := getCR(t, c, "observability", "gateway")
	cfg, _, _ := unstructured.NestedMap(cr.Object, "spec", "config")
	if v, _, _ := unstructured.NestedString(cfg, "exporters", "debug", "verbosity"); v != "detailed" {
		t.Errorf("exporters.debug.verbosity = %q, want detailed (later file wins)", v)
	}
	if v, _, _ := unstructured.NestedString(cfg, "exporters", "otlp/backend", "endpoint"); v != "backend:4317" {
		t.Errorf("exporters.otlp/backend.endpoint = %q", v)
	}
	if _, ok, _ := unstructured.NestedMap(cfg, "receivers", "otlp"); !ok {
		t.Error("receivers.otlp from the first file lost")
	}
	if v, _, _ := unstructured.NestedStringSlice(cfg, "service", "pipelines", "traces", "exporters"); len(v) != 1 || v[0] != "otlp/backend" {
		t.Errorf("traces exporters = %v, want [otlp/backend] (lists are replaced)", v)
	}
	if v, _, _ := unstructured.NestedStringSlice(cfg, "service", "pipelines", "traces", "receivers"); len(v) != 1 || v[0] != "otlp" {
		t.Errorf("traces receivers = %v, want [otlp]", v)
	}
	if got := cr.GetAnnotations()[bridge.HashAnnotation]; got != hex.EncodeToString(hash) {
		t.Errorf("hash annotation = %q, want %x", got, hash)
	}
	eventually(t, "effective config shows the new config", func() bool {
		a := agent(t, stew, gwID)
		return a.EffectiveConfig != nil && strings.Contains(string((*a.EffectiveConfig)[""].Body), "backend:4317")
	})
	if r := agent(t, stew, roID); r.RemoteConfigStatus != nil {
		t.Errorf("read-only pool reported a remote config status: %+v", r.RemoteConfigStatus)
	}
	if u := getCR(t, c, "observability", "readonly"); u.GetAnnotations()[bridge.HashAnnotation] != "" {
		t.Error("read-only resource was annotated")
	}

	// The API server (an admission webhook) rejects the next config.
	applied := getCR(t, c, "observability", "gateway")
	reject.Store(`admission webhook "mopentelemetrycollectorbeta.kb.io" denied the request: invalid exporter`)
	if _, err := stew.CP.PutConfig(ctx, &steward.Config{Name: "gateway", Files: steward.ConfigMap{
		"": {Body: []byte("receivers:\n  otlp: {}\nexporters:\n  nope: {}\n")},
	}}); err != nil {
		t.Fatal(err)
	}
	_, hash2, _ := stew.CP.DesiredConfig(ctx, gwID)
	eventually(t, "gateway reports FAILED", func() bool {
		a := agent(t, stew, gwID)
		return a.RemoteConfigStatus != nil && a.RemoteConfigStatus.Status == steward.RemoteConfigFailed && bytes.Equal(a.RemoteConfigStatus.LastRemoteConfigHash, hash2)
	})
	if msg := agent(t, stew, gwID).RemoteConfigStatus.ErrorMessage; !strings.Contains(msg, "denied the request") || !strings.Contains(msg, "observability/gateway") {
		t.Errorf("error message = %q", msg)
	}
	if now := getCR(t, c, "observability", "gateway"); !reflect.DeepEqual(now.Object, applied.Object) {
		t.Error("rejected update changed the resource")
	}

	// Invalid YAML never reaches the API server.
	reject.Store("")
	before := updates.Load()
	if _, err := stew.CP.PutConfig(ctx, &steward.Config{Name: "gateway", Files: steward.ConfigMap{
		"": {Body: []byte("receivers: [otlp\n")},
	}}); err != nil {
		t.Fatal(err)
	}
	_, hash3, _ := stew.CP.DesiredConfig(ctx, gwID)
	eventually(t, "invalid YAML reported FAILED", func() bool {
		a := agent(t, stew, gwID)
		return a.RemoteConfigStatus != nil && a.RemoteConfigStatus.Status == steward.RemoteConfigFailed && bytes.Equal(a.RemoteConfigStatus.LastRemoteConfigHash, hash3)
	})
	if msg := agent(t, stew, gwID).RemoteConfigStatus.ErrorMessage; !strings.Contains(msg, "invalid YAML") {
		t.Errorf("error message = %q", msg)
	}
	if updates.Load() != before {
		t.Error("invalid YAML was written")
	}
	if v, _, _ := unstructured.NestedString(getCR(t, c, "observability", "gateway").Object, "spec", "config", "exporters", "otlp/backend", "endpoint"); v != "backend:4317" {
		t.Error("spec.config changed by a failed config")
	}

	// A valid config again: applied.
	if _, err := stew.CP.PutConfig(ctx, &steward.Config{Name: "gateway", Files: steward.ConfigMap{
		"": {Body: []byte("receivers:\n  otlp: {}\nexporters:\n  debug: {}\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [debug]\n")},
	}}); err != nil {
		t.Fatal(err)
	}
	_, hash4, _ := stew.CP.DesiredConfig(ctx, gwID)
	eventually(t, "APPLIED after a failure", func() bool {
		a := agent(t, stew, gwID)
		return a.RemoteConfigStatus != nil && a.RemoteConfigStatus.Status == steward.RemoteConfigApplied && bytes.Equal(a.RemoteConfigStatus.LastRemoteConfigHash, hash4)
	})
	if _, ok, _ := unstructured.NestedMap(getCR(t, c, "observability", "gateway").Object, "spec", "config", "service", "pipelines", "logs"); !ok {
		t.Error("spec.config lacks the logs pipeline")
	}
}

// TestRestartKeepsAppliedStatus: a second bridge (after a restart) reports
// the config recorded in the annotation as APPLIED, so Steward does not
// write it again.
func TestRestartKeepsAppliedStatus(t *testing.T) {
	stew := bridgetest.StartSteward(t)
	ctx := context.Background()
	gw := collectorObj("observability", "gateway", gatewayUID, map[string]string{"env": "prod"}, nil, baseConfig())
	c := newCluster([]runtime.Object{gw})
	var updates atomic.Int64
	c.dyn.PrependReactor("update", bridge.Resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		updates.Add(1)
		return false, nil, nil
	})
	if _, err := stew.CP.PutConfig(ctx, &steward.Config{Name: "gw", Files: steward.ConfigMap{"": {Body: []byte("receivers:\n  otlp: {}\n")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stew.CP.PutAssignment(ctx, &steward.Assignment{Name: "gw", ConfigName: "gw", Selector: "env=prod"}); err != nil {
		t.Fatal(err)
	}
	gwID := mustUID(t, gatewayUID)
	var hash []byte // known once the agent's labels are

	// Opted in by the selector flag rather than the annotation.
	opt := func(cfg *bridge.Config) { cfg.ManagedSelector = "env in (prod)" }
	first, cancel := context.WithCancel(ctx)
	b1, err := bridge.New(bridge.Config{Endpoint: stew.Endpoint, Dynamic: c.dyn, Kube: c.kube, Namespaces: []string{"observability"},
		ManagedSelector: "env in (prod)", Backoff: client.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b1.Run(first) }()
	eventually(t, "APPLIED by the first bridge", func() bool {
		a := agent(t, stew, gwID)
		if a == nil {
			return false
		}
		_, hash, _ = stew.CP.DesiredConfig(ctx, gwID)
		return len(hash) > 0 && a.RemoteConfigStatus != nil && a.RemoteConfigStatus.Status == steward.RemoteConfigApplied && bytes.Equal(a.RemoteConfigStatus.LastRemoteConfigHash, hash)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	eventually(t, "agent offline after the bridge stopped", func() bool { return !agent(t, stew, gwID).Online })
	n := updates.Load()
	if n != 1 {
		t.Errorf("first bridge wrote %d times, want 1", n)
	}

	runBridge(t, c, stew, opt)
	eventually(t, "agent back online with APPLIED", func() bool {
		a := agent(t, stew, gwID)
		return a.Online && a.RemoteConfigStatus != nil && a.RemoteConfigStatus.Status == steward.RemoteConfigApplied && bytes.Equal(a.RemoteConfigStatus.LastRemoteConfigHash, hash)
	})
	// A later change must still reach the resource: proves the second
	// bridge is live, and that nothing was written in between.
	if _, err := stew.CP.PutConfig(ctx, &steward.Config{Name: "gw", Files: steward.ConfigMap{"": {Body: []byte("receivers:\n  otlp: {}\n  zipkin: {}\n")}}}); err != nil {
		t.Fatal(err)
	}
	_, hash2, _ := stew.CP.DesiredConfig(ctx, gwID)
	eventually(t, "second config APPLIED", func() bool {
		a := agent(t, stew, gwID)
		return a.RemoteConfigStatus != nil && a.RemoteConfigStatus.Status == steward.RemoteConfigApplied && bytes.Equal(a.RemoteConfigStatus.LastRemoteConfigHash, hash2)
	})
	if got := updates.Load(); got != n+1 {
		t.Errorf("writes = %d, want %d (the restart re-applied the config)", got, n+1)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// TestHTTPTransport: with an http:// endpoint the pools poll over plain
// HTTP; a config assigned before they connect is applied from the reply to
// their first report; deleting the resource drops the pool.
func TestHTTPTransport(t *testing.T) {
	stew := bridgetest.StartSteward(t)
	ctx := context.Background()
	if _, err := stew.CP.PutConfig(ctx, &steward.Config{Name: "gw", Files: steward.ConfigMap{"": {Body: []byte("receivers:\n  otlp: {}\n")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stew.CP.PutAssignment(ctx, &steward.Assignment{Name: "gw", ConfigName: "gw", Selector: "service.name=gateway"}); err != nil {
		t.Fatal(err)
	}
	gw := collectorObj("observability", "gateway", gatewayUID, nil, map[string]string{bridge.ManagedAnnotation: "true"}, baseConfig())
	c := newCluster([]runtime.Object{gw}, pod("observability", "gateway", "gateway-collector-abc", true, ""))
	b := runBridge(t, c, stew, func(cfg *bridge.Config) {
		cfg.Endpoint = "http" + strings.TrimPrefix(stew.Endpoint, "ws")
	})
	gwID := mustUID(t, gatewayUID)
	eventually(t, "APPLIED over HTTP", func() bool {
		a := agent(t, stew, gwID)
		return a != nil && a.Online && a.Transport == "http" && a.RemoteConfigStatus != nil && a.RemoteConfigStatus.Status == steward.RemoteConfigApplied
	})
	if v, _, _ := unstructured.NestedMap(getCR(t, c, "observability", "gateway").Object, "spec", "config"); len(v) != 1 || v["receivers"] == nil {
		t.Errorf("spec.config = %v, want the assigned config only", v)
	}
	if err := c.dyn.Resource(gvr).Namespace("observability").Delete(ctx, "gateway", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The bridge stops the pool's client (its last POST carries
	// agent_disconnect). Steward's control plane marks an HTTP agent
	// offline only after HTTPOfflineAfter, so that is not waited for here;
	// the WebSocket case is checked in TestPoolsAsAgents.
	eventually(t, "pool dropped after delete", func() bool { return len(b.Agents()) == 0 })
}

// TestAllNamespaces: without Namespaces the bridge watches the whole
// cluster, and a pool's pods are only those of its own namespace.
func TestAllNamespaces(t *testing.T) {
	stew := bridgetest.StartSteward(t)
	a := collectorObj("team-a", "otel", "5a0b8e8d-ef8b-4ad3-9ead-6b7c8d9eafb0", nil, nil, baseConfig())
	bObj := collectorObj("team-b", "otel", "6b1c9f9e-f09c-4be4-afbe-7c8d9eafb0c1", nil, nil, baseConfig())
	c := newCluster([]runtime.Object{a, bObj},
		pod("team-a", "otel", "otel-collector-1", true, ""),
		pod("team-b", "otel", "otel-collector-1", false, "bad config"),
		pod("team-b", "otel", "otel-collector-2", false, "bad config"))
	br := runBridge(t, c, stew, func(cfg *bridge.Config) { cfg.Namespaces = nil })
	idA, idB := mustUID(t, "5a0b8e8d-ef8b-4ad3-9ead-6b7c8d9eafb0"), mustUID(t, "6b1c9f9e-f09c-4be4-afbe-7c8d9eafb0c1")
	eventually(t, "both pools online", func() bool {
		x, y := agent(t, stew, idA), agent(t, stew, idB)
		return x != nil && y != nil && x.Online && y.Online && x.Health != nil && y.Health != nil
	})
	if h := agent(t, stew, idA).Health; !h.Healthy || h.Status != "1/1 pods ready, 2 desired" {
		t.Errorf("team-a health = %q healthy=%v", h.Status, h.Healthy)
	}
	if h := agent(t, stew, idB).Health; h.Healthy || h.Status != "0/2 pods ready, 2 desired" || !strings.Contains(h.LastError, "bad config") {
		t.Errorf("team-b health = %q healthy=%v %q", h.Status, h.Healthy, h.LastError)
	}
	if got := agent(t, stew, idB).Attribute(bridge.AttrK8sNamespace); got != "team-b" {
		t.Errorf("team-b namespace attribute = %q", got)
	}
	if n := len(br.Agents()); n != 2 {
		t.Errorf("%d pools", n)
	}
}

// TestLeaderElection: two bridges with leader election on one cluster; one
// leads and reports the pools, the other stands by (ready, not leading);
// stopping the leader releases the Lease and the follower takes over and
// reconnects the pool. (The kill of a leader, whose Lease must expire, is
// covered against a real API server in bridge/kubetest.)
func TestLeaderElection(t *testing.T) {
	stew := bridgetest.StartSteward(t)
	gw := collectorObj("observability", "gateway", gatewayUID, nil, nil, baseConfig())
	c := newCluster([]runtime.Object{gw})
	type candidate struct {
		b      *bridge.Bridge
		cancel context.CancelFunc
		errc   chan error
		hs     *httptest.Server
	}
	start := func(id string) *candidate {
		b, err := bridge.New(bridge.Config{
			Endpoint: stew.Endpoint, Dynamic: c.dyn, Kube: c.kube, Namespaces: []string{"observability"},
			Backoff: client.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond},
			LeaderElection: &bridge.LeaderElection{Namespace: "steward", Name: "steward-k8s-bridge", Identity: id,
				LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cd := &candidate{b: b, cancel: cancel, errc: make(chan error, 1), hs: httptest.NewServer(bridge.HealthHandler(b))}
		go func() { cd.errc <- b.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			select {
			case <-cd.errc:
			case <-time.After(waitFor):
				t.Errorf("%s: Run did not return", id)
			}
			cd.hs.Close()
		})
		return cd
	}
	get := func(cd *candidate, path string) int {
		resp, err := http.Get(cd.hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	a := start("bridge-a")
	eventually(t, "bridge-a leading", func() bool { _, l := a.b.Leader(); return l && get(a, "/leaderz") == 200 })
	b := start("bridge-b")
	eventually(t, "bridge-b standing by, ready", func() bool {
		h, l := b.b.Leader()
		return !l && h == "bridge-a" && get(b, "/readyz") == 200
	})
	if get(b, "/leaderz") != 503 || len(b.b.Agents()) != 0 {
		t.Errorf("follower acts: /leaderz %d, %d pools", get(b, "/leaderz"), len(b.b.Agents()))
	}
	id := mustUID(t, gatewayUID)
	eventually(t, "pool online through the leader", func() bool { ag := agent(t, stew, id); return ag != nil && ag.Online })

	// Stopping the leader releases the Lease: the follower takes over.
	a.cancel()
	if err := <-a.errc; err != nil {
		t.Errorf("leader Run: %v", err)
	}
	a.errc <- nil // for the cleanup
	eventually(t, "bridge-b leading", func() bool { _, l := b.b.Leader(); return l && get(b, "/leaderz") == 200 })
	eventually(t, "pool online through the new leader", func() bool {
		ag := agent(t, stew, id)
		return ag != nil && ag.Online && len(b.b.Agents()) == 1
	})
}
