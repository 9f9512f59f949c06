package kubetest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/open-telemetry/opamp-go/protobufs"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/bridge"
	"github.com/stewardhq/steward/bridge/internal/bridgetest"
	"github.com/stewardhq/steward/bridge/kubetest"
)

// waitFor bounds every eventually: generous for a loaded 2-core machine.
const waitFor = 45 * time.Second

// Leader election timings of the test's bridges (the manifests use 15 s,
// 10 s, 2 s).
const (
	leaseDuration = 6 * time.Second
	renewDeadline = 4 * time.Second
	retryPeriod   = 1 * time.Second
)

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitFor, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	v1beta1  = bridge.GVR("v1beta1")
	v1alpha1 = bridge.GVR("v1alpha1")
	deploy   = filepath.Join("..", "..", "deploy", "kubernetes")
)

// TestRealCluster runs the bridge binary against a real kube-apiserver, with
// exactly the RBAC of deploy/kubernetes (ServiceAccount, namespaced Role per
// watched namespace, leader election Role) and a token of its
// ServiceAccount, two bridges leader-elected as the Deployment runs them,
// and a real Steward server. It covers resources in several namespaces as
// agents with their attributes (from what the operator writes, status
// included), pod readiness as health, an assigned config written to
// spec.config and APPLIED, a ValidatingAdmissionPolicy rejection and a
// schema rejection as FAILED with the API server's message and spec.config
// unchanged, pod and resource deletion, the v1alpha1 form, and the kill of
// the leader: the follower takes over within the lease duration and reports
// the config already there as APPLIED without rewriting it.
func TestRealCluster(t *testing.T) {
	c := kubetest.Start(t)
	bin := buildBridge(t)
	ctx := context.Background()
	started := time.Now()

	for _, ns := range []string{"steward", "observability", "tenants", "legacy", "unwatched"} {
		c.Namespace(t, ns)
	}
	c.Create(t, kubetest.ReadObjects(t, filepath.Join("testdata", "opentelemetrycollectors.yaml"))...)
	c.WaitEstablished(t, bridge.Resource+"."+bridge.Group)

	// The manifests, as docs/kubernetes.md says to install them: the
	// namespaced Role and RoleBinding copied into each watched namespace.
	c.Create(t, kubetest.ReadObjects(t, filepath.Join(deploy, "serviceaccount.yaml"))...)
	c.Create(t, kubetest.ReadObjects(t, filepath.Join(deploy, "rbac-leader-election.yaml"))...)
	for _, ns := range []string{"observability", "tenants", "legacy"} {
		objs := kubetest.ReadObjects(t, filepath.Join(deploy, "rbac-namespaced.yaml"))
		for _, o := range objs {
			o.SetNamespace(ns)
		}
		c.Create(t, objs...)
	}
	kubeconfig := c.Kubeconfig(t, c.ServiceAccountToken(t, "steward", "steward-k8s-bridge"))
	// RBAC is enforced: the bridge's identity cannot read elsewhere.
	if _, err := saClient(t, kubeconfig).CoreV1().Pods("unwatched").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("listing pods of an unwatched namespace as the bridge: %v, want Forbidden", err)
	}

	admissionPolicy(t, c)

	// What the operator writes: a v1beta1 resource whose spec.image is
	// left to the operator's default, and the status it reports.
	gw := collector("observability", "gateway", map[string]string{"env": "prod", "team": "sre"}, true, baseConfig("otlp/backend"))
	gw = create(t, c, v1beta1, gw)
	setStatus(t, c, gw, map[string]any{
		"version": "0.140.0",
		"image":   "ghcr.io/open-telemetry/opentelemetry-collector-releases/opentelemetry-collector-k8s:0.140.0",
		"scale":   map[string]any{"replicas": int64(2), "selector": "app.kubernetes.io/instance=observability.gateway", "statusReplicas": "0/2"},
	})
	agentsCR := collector("tenants", "agents", map[string]string{"env": "dev"}, false, baseConfig("otlp/backend"))
	if err := unstructured.SetNestedField(agentsCR.Object, "daemonset", "spec", "mode"); err != nil {
		t.Fatal(err)
	}
	agentsCR = create(t, c, v1beta1, agentsCR)
	create(t, c, v1beta1, collector("unwatched", "ignored", nil, true, baseConfig("otlp/backend")))
	// The v1alpha1 form: spec.config is a YAML string.
	legacy := collector("legacy", "old", map[string]string{"generation": "alpha"}, true, nil)
	legacy.SetAPIVersion("opentelemetry.io/v1alpha1")
	if err := unstructured.SetNestedField(legacy.Object, "receivers:\n  otlp: {}\nexporters:\n  otlp/backend:\n    endpoint: old:4317\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp/backend]\n", "spec", "config"); err != nil {
		t.Fatal(err)
	}
	legacy = create(t, c, v1alpha1, legacy)
	podName := "gateway-collector-7d9f8-abcde"
	if _, err := c.Kube.CoreV1().Pods("observability").Create(ctx, collectorPod("observability", "gateway", podName), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	stew := bridgetest.StartSteward(t)
	args := deploymentArgs(t, stew.Endpoint, kubeconfig, "observability,tenants")
	a := startBridge(t, bin, "bridge-a", args)
	b := startBridge(t, bin, "bridge-b", args)
	old := startBridge(t, bin, "bridge-v1alpha1", []string{
		"--server=" + stew.Endpoint, "--kubeconfig=" + kubeconfig, "--namespaces=legacy",
		"--api-version=v1alpha1", "--cluster-name=kubetest", "--health-addr=127.0.0.1:0",
	})

	// One of the two acts; the other stands by, ready.
	var leader, follower *bridgeProc
	eventually(t, "one bridge leading, the other standing by", func() bool {
		ca, _ := a.get(t, "/leaderz")
		cb, _ := b.get(t, "/leaderz")
		switch {
		case ca == 200 && cb == 503:
			leader, follower = a, b
		case cb == 200 && ca == 503:
			leader, follower = b, a
		default:
			return false
		}
		code, body := follower.get(t, "/readyz")
		return code == 200 && strings.Contains(body, "standby, leader is "+leader.name)
	})
	if code, body := leader.get(t, "/readyz"); code != 200 || !strings.Contains(body, "leading, 2 collector pools") {
		t.Errorf("leader /readyz = %d %q", code, body)
	}
	t.Logf("%s leads, %s stands by (%.1fs after the API server was up)", leader.name, follower.name, time.Since(started).Seconds())

	// Resources → agents, with their attributes.
	gwID, agentsID, legacyID := uidOf(t, gw), uidOf(t, agentsCR), uidOf(t, legacy)
	eventually(t, "gateway and agents online", func() bool {
		g, d := agent(t, stew, gwID), agent(t, stew, agentsID)
		return g != nil && g.Online && g.Description != nil && g.Health != nil && d != nil && d.Online && d.Description != nil
	})
	g := agent(t, stew, gwID)
	for k, want := range map[string]string{
		steward.AttrServiceName:      "gateway",
		steward.AttrServiceNamespace: "observability",
		bridge.AttrK8sNamespace:      "observability",
		bridge.AttrK8sCluster:        "kubetest",
		steward.AttrServiceVersion:   "0.140.0", // status.version
		bridge.AttrImage:             "ghcr.io/open-telemetry/opentelemetry-collector-releases/opentelemetry-collector-k8s:0.140.0",
		bridge.AttrCollectorMode:     "deployment",
		bridge.AttrReplicas:          "2",
		bridge.AttrAPIVersion:        "opentelemetry.io/v1beta1",
		bridge.AttrCollectorUID:      string(gw.GetUID()),
		bridge.AttrManaged:           "true",
		"env":                        "prod",
		"team":                       "sre",
	} {
		if got := g.Attribute(k); got != want {
			t.Errorf("gateway attribute %s = %q, want %q", k, got, want)
		}
	}
	if !g.Capabilities.Has(steward.AgentAcceptsRemoteConfig | steward.AgentReportsRemoteConfig) {
		t.Errorf("gateway capabilities = %v", g.Capabilities.Names())
	}
	d := agent(t, stew, agentsID)
	if d.Attribute(bridge.AttrCollectorMode) != "daemonset" || d.Attribute(bridge.AttrK8sNamespace) != "tenants" || d.Capabilities.Has(steward.AgentAcceptsRemoteConfig) {
		t.Errorf("tenants/agents: mode %q, namespace %q, capabilities %v", d.Attribute(bridge.AttrCollectorMode), d.Attribute(bridge.AttrK8sNamespace), d.Capabilities.Names())
	}

	// Pod readiness → health (no kubelet: the test sets the pod status).
	if g.Health.Healthy || g.Health.Status != "0/1 pods ready, 2 desired" {
		t.Errorf("gateway health with a pending pod = %v %q", g.Health.Healthy, g.Health.Status)
	}
	setPodReady(t, c, "observability", podName)
	eventually(t, "gateway healthy once its pod is Ready", func() bool {
		g := agent(t, stew, gwID)
		h := g.Health.Components["pod/"+podName]
		return g.Health.Healthy && g.Health.Status == "1/1 pods ready, 2 desired" && h != nil && h.Healthy
	})

	// An assigned config → spec.config, APPLIED.
	hash := assign(t, stew, gwID, "gateway", "env=prod", baseConfig("otlp/backend")+"    metrics:\n      receivers: [otlp]\n      exporters: [otlp/backend]\n")
	eventually(t, "gateway APPLIED", func() bool { return hasStatus(agent(t, stew, gwID), steward.RemoteConfigApplied, hash) })
	cur := get(t, c, v1beta1, "observability", "gateway")
	if _, ok, _ := unstructured.NestedMap(cur.Object, "spec", "config", "service", "pipelines", "metrics"); !ok {
		t.Errorf("spec.config lacks the assigned metrics pipeline: %v", cur.Object["spec"])
	}
	if got := cur.GetAnnotations()[bridge.HashAnnotation]; got != hex.EncodeToString(hash) {
		t.Errorf("hash annotation %q, want %x", got, hash)
	}
	if v, _, _ := unstructured.NestedString(cur.Object, "status", "version"); v != "0.140.0" {
		t.Errorf("the bridge's update lost the operator's status: version %q", v)
	}
	eventually(t, "effective config with the metrics pipeline", func() bool {
		g := agent(t, stew, gwID)
		return g.EffectiveConfig != nil && strings.Contains(string((*g.EffectiveConfig)[""].Body), "metrics:")
	})

	// Admission rejection (CEL ValidatingAdmissionPolicy) → FAILED with
	// the API server's message; spec.config unchanged.
	before := get(t, c, v1beta1, "observability", "gateway")
	hash2 := assign(t, stew, gwID, "gateway", "env=prod", baseConfig("debug"))
	eventually(t, "gateway FAILED on the admission policy", func() bool { return hasStatus(agent(t, stew, gwID), steward.RemoteConfigFailed, hash2) })
	msg := agent(t, stew, gwID).RemoteConfigStatus.ErrorMessage
	for _, want := range []string{"observability/gateway", "ValidatingAdmissionPolicy", "no-debug-exporter", "the debug exporter is not allowed in observability"} {
		if !strings.Contains(msg, want) {
			t.Errorf("FAILED message %q lacks %q", msg, want)
		}
	}
	if now := get(t, c, v1beta1, "observability", "gateway"); now.GetResourceVersion() != before.GetResourceVersion() {
		t.Errorf("a rejected config changed the resource (resourceVersion %s → %s)", before.GetResourceVersion(), now.GetResourceVersion())
	}

	// The operator's schema: a config without service.pipelines is refused
	// by the API server itself.
	hash3 := assign(t, stew, gwID, "gateway", "env=prod", "receivers:\n  otlp: {}\nexporters:\n  otlp/backend: {}\n")
	eventually(t, "gateway FAILED on the schema", func() bool { return hasStatus(agent(t, stew, gwID), steward.RemoteConfigFailed, hash3) })
	if msg := agent(t, stew, gwID).RemoteConfigStatus.ErrorMessage; !strings.Contains(msg, "spec.config.service: Required value") {
		t.Errorf("schema FAILED message = %q", msg)
	}
	if now := get(t, c, v1beta1, "observability", "gateway"); now.GetResourceVersion() != before.GetResourceVersion() {
		t.Error("a config refused by the schema changed the resource")
	}

	// A valid config again.
	hash4 := assign(t, stew, gwID, "gateway", "env=prod", baseConfig("otlp/backend")+"    logs:\n      receivers: [otlp]\n      exporters: [otlp/backend]\n")
	eventually(t, "gateway APPLIED again", func() bool { return hasStatus(agent(t, stew, gwID), steward.RemoteConfigApplied, hash4) })

	// v1alpha1: read and written as a YAML string by a v1alpha1 bridge.
	eventually(t, "v1alpha1 collector online", func() bool {
		l := agent(t, stew, legacyID)
		return l != nil && l.Online && l.EffectiveConfig != nil && strings.Contains(string((*l.EffectiveConfig)[""].Body), "old:4317")
	})
	if l := agent(t, stew, legacyID); l.Attribute(bridge.AttrAPIVersion) != "opentelemetry.io/v1alpha1" || l.Attribute(steward.AttrServiceName) != "old" {
		t.Errorf("v1alpha1 agent: api_version %q, service.name %q", l.Attribute(bridge.AttrAPIVersion), l.Attribute(steward.AttrServiceName))
	}
	hashL := assign(t, stew, legacyID, "legacy", "generation=alpha", baseConfig("otlp/new"))
	eventually(t, "v1alpha1 collector APPLIED", func() bool { return hasStatus(agent(t, stew, legacyID), steward.RemoteConfigApplied, hashL) })
	if s, _, _ := unstructured.NestedString(get(t, c, v1alpha1, "legacy", "old").Object, "spec", "config"); !strings.Contains(s, "otlp/new") {
		t.Errorf("v1alpha1 spec.config = %q, want the assigned YAML string", s)
	}
	old.stop(t)

	// Several namespaces: only the watched ones are reported.
	list, _, err := stew.CP.Agents(ctx, steward.AgentFilter{Selector: "steward.bridge=kubernetes"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Errorf("%d agents from the bridges, want 3 (gateway, agents, old; not unwatched/ignored)", len(list))
	}

	// Pod deletion → unhealthy; resource deletion → offline.
	if err := c.Kube.CoreV1().Pods("observability").Delete(ctx, podName, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "gateway unhealthy without pods", func() bool {
		g := agent(t, stew, gwID)
		return !g.Health.Healthy && strings.HasPrefix(g.Health.Status, "no pods") && g.Health.Components["pod/"+podName] == nil
	})
	if err := c.Dynamic.Resource(v1beta1).Namespace("tenants").Delete(ctx, "agents", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted resource offline", func() bool { return !agent(t, stew, agentsID).Online })

	// Kill the leader: the follower takes over within the lease duration
	// (plus one retry period and the time to fill its caches), and reports
	// the config in the annotation as APPLIED without rewriting it.
	rv := get(t, c, v1beta1, "observability", "gateway").GetResourceVersion()
	killed := time.Now()
	leader.kill(t)
	eventually(t, follower.name+" leading", func() bool { code, _ := follower.get(t, "/leaderz"); return code == 200 })
	handover := time.Since(killed)
	t.Logf("handover %.2fs after the leader was killed (lease duration %s, retry period %s)", handover.Seconds(), leaseDuration, retryPeriod)
	if max := leaseDuration + 2*retryPeriod + 5*time.Second; handover > max {
		t.Errorf("handover took %s, want within the lease duration (%s; allowed %s on a loaded machine)", handover, leaseDuration, max)
	}
	lease, err := c.Kube.CoordinationV1().Leases("steward").Get(ctx, "steward-k8s-bridge", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := lease.Spec.HolderIdentity; h == nil || *h != follower.name {
		t.Errorf("Lease holder = %v, want %s", h, follower.name)
	}
	eventually(t, "gateway reconnected by the new leader, APPLIED", func() bool {
		g := agent(t, stew, gwID)
		return g.Online && g.ConnectedAt.After(killed) && hasStatus(g, steward.RemoteConfigApplied, hash4)
	})
	// Steward would offer a config the agent does not report as applied
	// at once on connect; give it a moment to show no write happened.
	time.Sleep(time.Second)
	if now := get(t, c, v1beta1, "observability", "gateway").GetResourceVersion(); now != rv {
		t.Errorf("the new leader rewrote the resource (resourceVersion %s → %s)", rv, now)
	}
	if code, body := follower.get(t, "/readyz"); code != 200 || !strings.Contains(body, "leading") {
		t.Errorf("new leader /readyz = %d %q", code, body)
	}

	// Every namespace, with rbac-cluster.yaml (ClusterRole and binding)
	// instead of the per-namespace Roles.
	follower.stop(t)
	c.Create(t, kubetest.ReadObjects(t, filepath.Join(deploy, "rbac-cluster.yaml"))...)
	all := startBridge(t, bin, "bridge-all", []string{
		"--server=" + stew.Endpoint, "--kubeconfig=" + kubeconfig, "--namespaces=", "--health-addr=127.0.0.1:0",
	})
	eventually(t, "cluster-wide bridge ready with the collectors of every namespace", func() bool {
		code, body := all.get(t, "/readyz")
		return code == 200 && strings.Contains(body, "3 collector pools") // gateway, ignored, old
	})
	ignored := get(t, c, v1beta1, "unwatched", "ignored")
	eventually(t, "collector of the formerly unwatched namespace online", func() bool {
		a := agent(t, stew, uidOf(t, ignored))
		return a != nil && a.Online && a.Attribute(bridge.AttrK8sNamespace) == "unwatched"
	})
	t.Logf("real-cluster scenario: %.1fs after the API server was up", time.Since(started).Seconds())
}

// admissionPolicy installs a CEL ValidatingAdmissionPolicy refusing the
// debug exporter in namespace observability and waits until the API server
// enforces it (a dry-run update is refused).
func admissionPolicy(t *testing.T, c *kubetest.Cluster) {
	t.Helper()
	policy := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "admissionregistration.k8s.io/v1",
		"kind":       "ValidatingAdmissionPolicy",
		"metadata":   map[string]any{"name": "no-debug-exporter"},
		"spec": map[string]any{
			"failurePolicy": "Fail",
			"matchConstraints": map[string]any{"resourceRules": []any{map[string]any{
				"apiGroups": []any{bridge.Group}, "apiVersions": []any{"*"},
				"operations": []any{"CREATE", "UPDATE"}, "resources": []any{bridge.Resource},
			}}},
			"validations": []any{map[string]any{
				"expression": "!has(object.spec.config.exporters) || !('debug' in object.spec.config.exporters)",
				"message":    "the debug exporter is not allowed in observability",
			}},
		},
	}}
	binding := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "admissionregistration.k8s.io/v1",
		"kind":       "ValidatingAdmissionPolicyBinding",
		"metadata":   map[string]any{"name": "no-debug-exporter"},
		"spec": map[string]any{
			"policyName":        "no-debug-exporter",
			"validationActions": []any{"Deny"},
			"matchResources": map[string]any{"namespaceSelector": map[string]any{
				"matchLabels": map[string]any{"kubernetes.io/metadata.name": "observability"},
			}},
		},
	}}
	c.Create(t, policy, binding)
	probe := collector("observability", "policy-probe", nil, false, baseConfig("debug"))
	eventually(t, "the admission policy to be enforced", func() bool {
		_, err := c.Dynamic.Resource(v1beta1).Namespace("observability").Create(context.Background(), probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), "no-debug-exporter")
	})
}

// baseConfig is a collector config whose traces pipeline exports to
// exporter; further pipelines may be appended (at four spaces).
func baseConfig(exporter string) string {
	return "receivers:\n  otlp:\n    protocols:\n      grpc: {}\nexporters:\n  " + exporter + ":\n    endpoint: backend:4317\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [" + exporter + "]\n"
}

// collector returns a v1beta1 OpenTelemetryCollector (spec.config from
// YAML, when given) with the managed annotation when managed.
func collector(ns, name string, labels map[string]string, managed bool, config any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "opentelemetry.io/v1beta1",
		"kind":       bridge.Kind,
		"spec":       map[string]any{"mode": "deployment", "replicas": int64(2)},
	}}
	u.SetNamespace(ns)
	u.SetName(name)
	u.SetLabels(labels)
	if managed {
		u.SetAnnotations(map[string]string{bridge.ManagedAnnotation: "true"})
	}
	if s, ok := config.(string); ok {
		m, err := bridge.MergeConfigFiles(map[string]*protobufs.AgentConfigFile{"": {Body: []byte(s)}})
		if err != nil {
			panic(err)
		}
		u.Object["spec"].(map[string]any)["config"] = m
	}
	return u
}

func create(t *testing.T, c *kubetest.Cluster, gvr schema.GroupVersionResource, u *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	out, err := c.Dynamic.Resource(gvr).Namespace(u.GetNamespace()).Create(context.Background(), u, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create %s/%s: %v", u.GetNamespace(), u.GetName(), err)
	}
	return out
}

func get(t *testing.T, c *kubetest.Cluster, gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	t.Helper()
	u, err := c.Dynamic.Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// setStatus writes status through the status subresource, as the
// operator does.
func setStatus(t *testing.T, c *kubetest.Cluster, u *unstructured.Unstructured, status map[string]any) {
	t.Helper()
	u = u.DeepCopy()
	u.Object["status"] = status
	if _, err := c.Dynamic.Resource(v1beta1).Namespace(u.GetNamespace()).UpdateStatus(context.Background(), u, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update status of %s/%s: %v", u.GetNamespace(), u.GetName(), err)
	}
}

// collectorPod is a pod as the operator's Deployment makes it (its labels);
// with no scheduler or kubelet it stays Pending until setPodReady.
func collectorPod(ns, collector, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{
			bridge.LabelManagedBy: bridge.OperatorName,
			bridge.LabelInstance:  bridge.InstanceLabel(ns, collector),
			bridge.LabelComponent: bridge.CollectorComponent,
		}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "otc-container", Image: "otel/opentelemetry-collector-k8s:0.140.0"}}},
	}
}

// setPodReady does the kubelet's part: Running, Ready.
func setPodReady(t *testing.T, c *kubetest.Cluster, ns, name string) {
	t.Helper()
	ctx := context.Background()
	p, err := c.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	p.Status = corev1.PodStatus{
		Phase:      corev1.PodRunning,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}},
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "otc-container", Ready: true, Image: p.Spec.Containers[0].Image, ImageID: "sha256:0",
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		}},
	}
	if _, err := c.Kube.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("set pod %s/%s Ready: %v", ns, name, err)
	}
}

func uidOf(t *testing.T, u *unstructured.Unstructured) steward.InstanceUID {
	t.Helper()
	id, err := steward.ParseInstanceUID(string(u.GetUID()))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func saClient(t *testing.T, kubeconfig string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	k, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// deploymentArgs returns the bridge's arguments from
// deploy/kubernetes/deployment.yaml, with the Steward endpoint, namespaces,
// probe address and leader election timings of the test, a kubeconfig (out
// of the cluster) and the Lease namespace (read from the service account in
// a pod).
func deploymentArgs(t *testing.T, endpoint, kubeconfig, namespaces string) []string {
	t.Helper()
	var dep *unstructured.Unstructured
	for _, o := range kubetest.ReadObjects(t, filepath.Join(deploy, "deployment.yaml")) {
		if o.GetKind() == "Deployment" {
			dep = o
		}
	}
	if dep == nil {
		t.Fatal("no Deployment in deployment.yaml")
	}
	containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	if len(containers) != 1 {
		t.Fatalf("%d containers", len(containers))
	}
	override := map[string]string{
		"--server":                      endpoint,
		"--namespaces":                  namespaces,
		"--cluster-name":                "kubetest",
		"--health-addr":                 "127.0.0.1:0",
		"--token-file":                  "",
		"--leader-elect-lease-duration": leaseDuration.String(),
		"--leader-elect-renew-deadline": renewDeadline.String(),
		"--leader-elect-retry-period":   retryPeriod.String(),
	}
	var args []string
	for _, a := range containers[0].(map[string]any)["args"].([]any) {
		s := a.(string)
		name, _, _ := strings.Cut(s, "=")
		if v, ok := override[name]; ok {
			if v != "" {
				args = append(args, name+"="+v)
			}
			delete(override, name)
			continue
		}
		args = append(args, s)
	}
	for name, v := range override {
		if strings.HasPrefix(name, "--leader-elect") {
			t.Errorf("deployment.yaml does not set %s", name)
		}
		if v != "" {
			args = append(args, name+"="+v)
		}
	}
	return append(args, "--kubeconfig="+kubeconfig, "--leader-elect-namespace=steward")
}

// buildBridge compiles cmd/steward-k8s-bridge.
func buildBridge(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "steward-k8s-bridge")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/steward-k8s-bridge")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// bridgeProc is a running steward-k8s-bridge.
type bridgeProc struct {
	name   string
	cmd    *exec.Cmd
	health string // probe address
	exited chan struct{}
	mu     sync.Mutex
	log    bytes.Buffer
}

func startBridge(t *testing.T, bin, name string, args []string) *bridgeProc {
	t.Helper()
	p := &bridgeProc{name: name, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, append(slices.Clip(args), "--leader-elect-id="+name)...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			p.mu.Lock()
			p.log.Write(line)
			p.log.WriteByte('\n')
			p.mu.Unlock()
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "serving probes" {
				addr <- rec.Addr
			}
		}
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			p.mu.Lock()
			t.Logf("%s log:\n%s", name, p.log.String())
			p.mu.Unlock()
		}
	})
	select {
	case p.health = <-addr:
	case <-p.exited:
		t.Fatalf("%s exited: %v\n%s", name, p.cmd.ProcessState, p.log.String())
	case <-time.After(waitFor):
		t.Fatalf("%s did not serve its probes", name)
	}
	return p
}

// get fetches a probe: its status code and body (0 when unreachable).
func (p *bridgeProc) get(t *testing.T, path string) (int, string) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + p.health + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// kill ends the bridge with SIGKILL: no agent_disconnect, no Lease release.
func (p *bridgeProc) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// stop ends the bridge with SIGTERM (it disconnects its agents, releases
// its Lease) and waits for it.
func (p *bridgeProc) stop(t *testing.T) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Errorf("%s did not stop on SIGTERM", p.name)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
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

// assign puts config name with one YAML file and assigns it by selector;
// it returns the hash the agent id is then offered.
func assign(t *testing.T, stew *bridgetest.Steward, id steward.InstanceUID, name, selector, yaml string) []byte {
	t.Helper()
	ctx := context.Background()
	if _, err := stew.CP.PutConfig(ctx, &steward.Config{Name: name, Files: steward.ConfigMap{"collector.yaml": {Body: []byte(yaml)}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stew.CP.PutAssignment(ctx, &steward.Assignment{Name: name, ConfigName: name, Selector: selector}); err != nil {
		t.Fatal(err)
	}
	_, hash, err := stew.CP.DesiredConfig(ctx, id)
	if err != nil || len(hash) == 0 {
		t.Fatalf("desired config of %s: %v", id, err)
	}
	return hash
}

func hasStatus(a *steward.Agent, st steward.RemoteConfigState, hash []byte) bool {
	return a != nil && a.RemoteConfigStatus != nil && a.RemoteConfigStatus.Status == st && bytes.Equal(a.RemoteConfigStatus.LastRemoteConfigHash, hash)
}
