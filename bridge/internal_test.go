package bridge

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/open-telemetry/opamp-go/protobufs"
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
)

func files(kv ...string) map[string]*protobufs.AgentConfigFile {
	m := map[string]*protobufs.AgentConfigFile{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = &protobufs.AgentConfigFile{Body: []byte(kv[i+1])}
	}
	return m
}

func TestMergeConfigFiles(t *testing.T) {
	// Keys are merged in byte order whatever the map order: "10" < "9".
	m, err := MergeConfigFiles(files(
		"9-last", "a:\n  x: 9\n  list: [3]\nport: 4317\n",
		"10-first", "a:\n  x: 1\n  y: 2\n  list: [1, 2]\nb: {k: v}\nbig: 12345678901\n",
		"empty", "# only a comment\n",
	))
	if err != nil {
		t.Fatal(err)
	}
	a := m["a"].(map[string]any)
	if a["x"] != int64(9) || a["y"] != int64(2) {
		t.Errorf("a = %v", a)
	}
	if l := a["list"].([]any); len(l) != 1 || l[0] != int64(3) {
		t.Errorf("list = %v, want [3]", l)
	}
	if m["port"] != int64(4317) || m["big"] != int64(12345678901) {
		t.Errorf("ints = %v %v", m["port"], m["big"])
	}
	if b := m["b"].(map[string]any); b["k"] != "v" {
		t.Errorf("b = %v", b)
	}
	// The result is accepted by unstructured objects (no panic on copy).
	u := &unstructured.Unstructured{Object: map[string]any{}}
	if err := unstructured.SetNestedField(u.Object, m, "spec", "config"); err != nil {
		t.Fatal(err)
	}
	_ = u.DeepCopy()

	// Non-string keys become strings.
	m, err = MergeConfigFiles(files("", "1: one\ntrue: yes\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m["1"] != "one" || m["true"] != "yes" {
		t.Errorf("keys = %v", m)
	}

	// Tagged scalars keep a usable text form; binary is decoded.
	m, err = MergeConfigFiles(files("", "day: 2001-12-14\nat: 2001-12-14T21:59:43.1Z\nbin: !!binary aGVsbG8=\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m["day"] != "2001-12-14" || m["at"] != "2001-12-14T21:59:43.1Z" || m["bin"] != "hello" {
		t.Errorf("tagged scalars = %#v", m)
	}

	for body, want := range map[string]string{
		"a: .inf\n":       "JSON has no infinities",
		"a: [1\n":         "invalid YAML",
		"- a\n- b\n":      "top level must be a mapping",
		"just a string":   "top level must be a mapping",
		"a: 1\n---\nb: 2": "single YAML document",
	} {
		_, err := MergeConfigFiles(files("good", "a: 1\n", "z-bad.yaml", body))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "z-bad.yaml") {
			t.Errorf("%q: err = %v, want %q naming the file", body, err, want)
		}
	}
}

func TestParseCollector(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "opentelemetry.io/v1alpha1",
		"kind":       Kind,
		"spec":       map[string]any{"config": "receivers:\n  otlp: {}\n", "replicas": int64(3)},
	}}
	u.SetNamespace("ns")
	u.SetName("c")
	c := parseCollector(u)
	if !c.ConfigIsString || string(c.Config) != "receivers:\n  otlp: {}\n" || c.Mode != "deployment" || *c.Replicas != 3 {
		t.Errorf("v1alpha1: %+v", c)
	}

	if err := unstructured.SetNestedField(u.Object, map[string]any{"exporters": map[string]any{"debug": map[string]any{}}}, "spec", "config"); err != nil {
		t.Fatal(err)
	}
	c = parseCollector(u)
	if c.ConfigIsString || string(c.Config) != "exporters:\n  debug: {}\n" {
		t.Errorf("v1beta1 config = %q", c.Config)
	}

	// The operator leaves spec.image empty for its default image and
	// reports the image it runs in status.image.
	if err := unstructured.SetNestedField(u.Object, "otel/opentelemetry-collector-k8s:0.140.0", "status", "image"); err != nil {
		t.Fatal(err)
	}
	if c = parseCollector(u); c.Image != "otel/opentelemetry-collector-k8s:0.140.0" {
		t.Errorf("image from status = %q", c.Image)
	}
	if err := unstructured.SetNestedField(u.Object, "my/collector:1", "spec", "image"); err != nil {
		t.Fatal(err)
	}
	if c = parseCollector(u); c.Image != "my/collector:1" {
		t.Errorf("spec.image = %q, want it to win over status.image", c.Image)
	}

	// Instance uids: the resource uid when it is a UUID, else stable
	// name-based ones that differ by cluster, namespace and name.
	u.SetUID("0b5c3f3e-9a3c-4b8e-8f5e-1c2d3e4f5a6b")
	if got := parseCollector(u).instanceUID("x"); uuid.UUID(got).String() != "0b5c3f3e-9a3c-4b8e-8f5e-1c2d3e4f5a6b" {
		t.Errorf("uid = %x", got)
	}
	u.SetUID("not-a-uuid")
	a, b := parseCollector(u).instanceUID("x"), parseCollector(u).instanceUID("x")
	if a != b || a == parseCollector(u).instanceUID("y") || a == ([16]byte{}) {
		t.Errorf("name-based uids: %x %x", a, b)
	}
	if uuid.UUID(a).Version() != 5 {
		t.Errorf("name-based uid version %d", uuid.UUID(a).Version())
	}

	long := strings.Repeat("n", 40)
	for _, tc := range []struct{ ns, name, want string }{
		{"observability", "gateway", "observability.gateway"},
		{"observability", "my.collector", "observability.my.collector"},
		// Too long: the namespace is shortened first.
		{long, "collector-with-a-long-name-x", strings.Repeat("n", 34) + ".collector-with-a-long-name-x"},
		// The namespace dropped entirely, then the name cut; the leading
		// '.' left over is trimmed.
		{"abc", strings.Repeat("x", 70), strings.Repeat("x", 62)},
	} {
		got := InstanceLabel(tc.ns, tc.name)
		if got != tc.want {
			t.Errorf("InstanceLabel(%q, %q) = %q, want %q", tc.ns, tc.name, got, tc.want)
		}
		if len(got) > 63 || strings.Trim(got, "-._") != got {
			t.Errorf("InstanceLabel(%q, %q) = %q is not a valid label value", tc.ns, tc.name, got)
		}
	}
}

func TestManaged(t *testing.T) {
	b, err := New(Config{Endpoint: "ws://127.0.0.1:1/v1/opamp", Dynamic: dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()),
		Kube: kubefake.NewClientset(), ManagedSelector: "steward in (yes)"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		labels, ann map[string]string
		want        bool
	}{
		{nil, nil, false},
		{nil, map[string]string{ManagedAnnotation: "true"}, true},
		{nil, map[string]string{ManagedAnnotation: "false"}, false},
		{map[string]string{"steward": "yes"}, nil, true},
		{map[string]string{"steward": "no"}, nil, false},
	} {
		c := &collector{Labels: tc.labels, Annotations: tc.ann}
		if got := c.managed(b.sel); got != tc.want {
			t.Errorf("labels %v annotations %v: managed = %v", tc.labels, tc.ann, got)
		}
	}
	// Without a selector only the annotation counts.
	if (&collector{Labels: map[string]string{"steward": "yes"}}).managed(mustNew(t, Config{}).sel) {
		t.Error("label opted in without a selector")
	}
}

func mustNew(t *testing.T, cfg Config) *Bridge {
	t.Helper()
	if cfg.Endpoint == "" {
		cfg.Endpoint = "ws://127.0.0.1:1/v1/opamp"
	}
	if cfg.Dynamic == nil {
		cfg.Dynamic = dynamicfake.NewSimpleDynamicClient(runtime.NewScheme())
	}
	if cfg.Kube == nil {
		cfg.Kube = kubefake.NewClientset()
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNewErrors(t *testing.T) {
	dyn, kube := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()), kubefake.NewClientset()
	for name, cfg := range map[string]Config{
		"no endpoint":  {Dynamic: dyn, Kube: kube},
		"bad scheme":   {Endpoint: "ftp://127.0.0.1/", Dynamic: dyn, Kube: kube},
		"no clients":   {Endpoint: "ws://127.0.0.1:1/v1/opamp"},
		"bad version":  {Endpoint: "ws://127.0.0.1:1/v1/opamp", Dynamic: dyn, Kube: kube, APIVersion: "v2"},
		"bad selector": {Endpoint: "ws://127.0.0.1:1/v1/opamp", Dynamic: dyn, Kube: kube, ManagedSelector: "a in (("},
		"lease without identity": {Endpoint: "ws://127.0.0.1:1/v1/opamp", Dynamic: dyn, Kube: kube,
			LeaderElection: &LeaderElection{Namespace: "steward", Name: "lease"}},
		"renew deadline past lease duration": {Endpoint: "ws://127.0.0.1:1/v1/opamp", Dynamic: dyn, Kube: kube,
			LeaderElection: &LeaderElection{Namespace: "steward", Name: "lease", Identity: "a", LeaseDuration: 5 * time.Second, RenewDeadline: 5 * time.Second}},
		"retry period too long": {Endpoint: "ws://127.0.0.1:1/v1/opamp", Dynamic: dyn, Kube: kube,
			LeaderElection: &LeaderElection{Namespace: "steward", Name: "lease", Identity: "a", RetryPeriod: 9 * time.Second}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestHealth(t *testing.T) {
	three := int64(3)
	c := &collector{Mode: "statefulset", Replicas: &three, Created: time.Unix(100, 0)}
	now := metav1.Now()
	ready := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Status: corev1.PodStatus{Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
	terminating := ready.DeepCopy()
	terminating.Name = "c"
	terminating.DeletionTimestamp = &now
	failed := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Status: corev1.PodStatus{Phase: corev1.PodFailed,
		ContainerStatuses: []corev1.ContainerStatus{{Name: "otc-container", State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error", Message: "invalid configuration"}}}}}}
	h := health(c, []*corev1.Pod{terminating, ready, failed})
	if h.Healthy || h.Status != "1/3 pods ready, 3 desired" || h.StartTimeUnixNano != uint64(time.Unix(100, 0).UnixNano()) {
		t.Errorf("health = %+v", h)
	}
	if !strings.HasPrefix(h.LastError, "a: container otc-container: terminated with exit code 2 (Error): invalid configuration") {
		t.Errorf("last error = %q", h.LastError)
	}
	if p := h.ComponentHealthMap["pod/c"]; p.Healthy || p.Status != "Terminating" {
		t.Errorf("terminating pod = %+v", p)
	}
	if p := h.ComponentHealthMap["pod/b"]; !p.Healthy {
		t.Errorf("ready pod = %+v", p)
	}
	if h := health(&collector{Mode: "sidecar"}, nil); h.Healthy || !strings.Contains(h.Status, "sidecar") {
		t.Errorf("sidecar health = %+v", h)
	}
	h2 := health(c, []*corev1.Pod{failed, ready, terminating})
	stamp(h2, time.Now())
	if !sameHealth(h, h2) {
		t.Error("sameHealth differs on status time or pod order")
	}
	h2.ComponentHealthMap["pod/b"].Healthy = false
	if sameHealth(h, h2) {
		t.Error("sameHealth missed a pod change")
	}
}

// newWriteFixture is a bridge over a fake cluster holding one collector.
func newWriteFixture(t *testing.T, version string, obj *unstructured.Unstructured) (*Bridge, *dynamicfake.FakeDynamicClient) {
	t.Helper()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{GVR(version): "OpenTelemetryCollectorList"}, obj)
	return mustNew(t, Config{Dynamic: dyn, APIVersion: version}), dyn
}

func managedObj(version string, config any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": Group + "/" + version, "kind": Kind,
		"spec": map[string]any{"mode": "deployment"},
	}}
	if config != nil {
		u.Object["spec"].(map[string]any)["config"] = config
	}
	u.SetNamespace("ns")
	u.SetName("c")
	u.SetUID(types.UID("0b5c3f3e-9a3c-4b8e-8f5e-1c2d3e4f5a6b"))
	u.SetAnnotations(map[string]string{ManagedAnnotation: "true"})
	return u
}

func TestWriteConfigRetriesConflicts(t *testing.T) {
	b, dyn := newWriteFixture(t, "v1beta1", managedObj("v1beta1", map[string]any{"old": map[string]any{}}))
	var conflicts atomic.Int32
	dyn.PrependReactor("update", Resource, func(a k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts.Add(1) <= 2 {
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: Group, Resource: Resource}, "c", errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	rc := &protobufs.AgentRemoteConfig{Config: &protobufs.AgentConfigMap{ConfigMap: files("", "receivers:\n  otlp: {}\n")}, ConfigHash: []byte{1, 2}}
	out, err := b.writeConfig(context.Background(), "ns", "c", rc)
	if err != nil {
		t.Fatal(err)
	}
	if conflicts.Load() != 3 {
		t.Errorf("update attempts = %d, want 3", conflicts.Load())
	}
	if _, ok, _ := unstructured.NestedMap(out.Object, "spec", "config", "receivers", "otlp"); !ok {
		t.Errorf("spec.config = %v", out.Object["spec"])
	}
	if _, ok, _ := unstructured.NestedMap(out.Object, "spec", "config", "old"); ok {
		t.Error("old config kept: the remote config must replace spec.config")
	}
	if out.GetAnnotations()[HashAnnotation] != "0102" {
		t.Errorf("annotations = %v", out.GetAnnotations())
	}

	// Conflicts forever: a clear error.
	conflicts.Store(-1000)
	_, err = b.writeConfig(context.Background(), "ns", "c", rc)
	if err == nil || !strings.Contains(err.Error(), "conflict") {
		t.Errorf("err = %v", err)
	}
}

func TestWriteConfigV1alpha1AndEmpty(t *testing.T) {
	b, dyn := newWriteFixture(t, "v1alpha1", managedObj("v1alpha1", "receivers:\n  old: {}\n"))
	ctx := context.Background()
	rc := &protobufs.AgentRemoteConfig{Config: &protobufs.AgentConfigMap{ConfigMap: files("x", "b: 2\na: 1\n")}, ConfigHash: []byte{9}}
	out, err := b.writeConfig(ctx, "ns", "c", rc)
	if err != nil {
		t.Fatal(err)
	}
	if s, _, _ := unstructured.NestedString(out.Object, "spec", "config"); s != "a: 1\nb: 2\n" {
		t.Errorf("v1alpha1 spec.config = %q, want a YAML string", s)
	}

	// An empty offer (nothing assigned) keeps spec.config, records the hash.
	out, err = b.writeConfig(ctx, "ns", "c", &protobufs.AgentRemoteConfig{Config: &protobufs.AgentConfigMap{}, ConfigHash: []byte{7}})
	if err != nil {
		t.Fatal(err)
	}
	if s, _, _ := unstructured.NestedString(out.Object, "spec", "config"); s != "a: 1\nb: 2\n" || out.GetAnnotations()[HashAnnotation] != "07" {
		t.Errorf("after empty offer: %q %v", s, out.GetAnnotations())
	}

	// A config whose files merge to nothing is refused.
	if _, err := b.writeConfig(ctx, "ns", "c", &protobufs.AgentRemoteConfig{Config: &protobufs.AgentConfigMap{ConfigMap: files("x", "")}}); err == nil {
		t.Error("empty merged config accepted")
	}

	// A resource that lost its opt-in is not written.
	cur, err := dyn.Resource(GVR("v1alpha1")).Namespace("ns").Get(ctx, "c", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.SetAnnotations(nil)
	if _, err := dyn.Resource(GVR("v1alpha1")).Namespace("ns").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.writeConfig(ctx, "ns", "c", rc); !errors.Is(err, ErrNotManaged) {
		t.Errorf("err = %v, want ErrNotManaged", err)
	}

	// A missing resource: NotFound, wrapped.
	if _, err := b.writeConfig(ctx, "ns", "gone", rc); !apierrors.IsNotFound(errors.Unwrap(err)) {
		t.Errorf("err = %v, want not found", err)
	}
}
