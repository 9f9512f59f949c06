package bridge

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	corev1 "k8s.io/api/core/v1"

	"github.com/stewardhq/steward"
)

func strAttr(k, v string) *protobufs.KeyValue {
	return &protobufs.KeyValue{Key: k, Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_StringValue{StringValue: v}}}
}

func intAttr(k string, v int64) *protobufs.KeyValue {
	return &protobufs.KeyValue{Key: k, Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_IntValue{IntValue: v}}}
}

func boolAttr(k string, v bool) *protobufs.KeyValue {
	return &protobufs.KeyValue{Key: k, Value: &protobufs.AnyValue{Value: &protobufs.AnyValue_BoolValue{BoolValue: v}}}
}

// describe builds the agent description of a collector pool.
//
// Identifying: service.name (the resource's name), service.namespace and
// k8s.namespace.name (its namespace), k8s.cluster.name (when configured) and
// service.instance.id (the instance uid).
//
// Non-identifying: the resource's labels as they are, then mode, replicas,
// image, service.version (status.version), the resource's uid and API
// version, steward.managed and steward.bridge=kubernetes. A label never
// replaces one of the bridge's own keys.
func describe(c *collector, cluster string, uid [16]byte, managed bool) *protobufs.AgentDescription {
	id := []*protobufs.KeyValue{
		strAttr(steward.AttrServiceName, c.Name),
		strAttr(steward.AttrServiceNamespace, c.Namespace),
		strAttr(AttrK8sNamespace, c.Namespace),
	}
	if cluster != "" {
		id = append(id, strAttr(AttrK8sCluster, cluster))
	}
	id = append(id, strAttr(steward.AttrServiceInstanceID, steward.InstanceUID(uid).String()))

	own := []*protobufs.KeyValue{
		strAttr(AttrCollectorName, c.Name),
		strAttr(AttrCollectorMode, c.Mode),
	}
	if c.Replicas != nil {
		own = append(own, intAttr(AttrReplicas, *c.Replicas))
	}
	if c.Image != "" {
		own = append(own, strAttr(AttrImage, c.Image))
	}
	if c.Version != "" {
		own = append(own, strAttr(steward.AttrServiceVersion, c.Version))
	}
	if c.UID != "" {
		own = append(own, strAttr(AttrCollectorUID, c.UID))
	}
	own = append(own,
		strAttr(AttrAPIVersion, c.APIVersion),
		boolAttr(AttrManaged, managed),
		strAttr(AttrBridge, bridgeAttrValue),
	)
	reserved := map[string]bool{}
	for _, kv := range append(id, own...) {
		reserved[kv.Key] = true
	}
	var non []*protobufs.KeyValue
	for _, k := range sortedLabelKeys(c.Labels) {
		if !reserved[k] {
			non = append(non, strAttr(k, c.Labels[k]))
		}
	}
	non = append(non, own...)
	return &protobufs.AgentDescription{IdentifyingAttributes: id, NonIdentifyingAttributes: non}
}

// health builds the pool's component health: one component per pod, named
// "pod/<name>", healthy when the pod's Ready condition is true; a pod whose
// container is waiting (e.g. CrashLoopBackOff) or terminated with an error
// carries that as last_error. The pool is healthy when it has at least one
// pod and every pod is ready; its last_error is the first pod error by pod
// name. StatusTime is left zero; the caller stamps it.
func health(c *collector, pods []*corev1.Pod) *protobufs.ComponentHealth {
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	h := &protobufs.ComponentHealth{ComponentHealthMap: map[string]*protobufs.ComponentHealth{}}
	if !c.Created.IsZero() {
		h.StartTimeUnixNano = uint64(c.Created.UnixNano())
	}
	ready := 0
	for _, p := range pods {
		ph := podHealth(p)
		if ph.Healthy {
			ready++
		} else if h.LastError == "" && ph.LastError != "" {
			h.LastError = p.Name + ": " + ph.LastError
		}
		h.ComponentHealthMap["pod/"+p.Name] = ph
	}
	h.Healthy = len(pods) > 0 && ready == len(pods)
	want := ""
	if c.Replicas != nil && (c.Mode == "deployment" || c.Mode == "statefulset") {
		want = fmt.Sprintf(", %d desired", *c.Replicas)
	}
	h.Status = fmt.Sprintf("%d/%d pods ready%s", ready, len(pods), want)
	if len(pods) == 0 {
		h.Status = "no pods" + want
		if c.Mode == "sidecar" {
			h.Status = "sidecar mode: pods are not tracked"
		}
	}
	if c.ConfigErr != nil && h.LastError == "" {
		h.LastError = c.ConfigErr.Error()
	}
	return h
}

func podHealth(p *corev1.Pod) *protobufs.ComponentHealth {
	ph := &protobufs.ComponentHealth{Status: string(p.Status.Phase)}
	if p.Status.StartTime != nil {
		ph.StartTimeUnixNano = uint64(p.Status.StartTime.UnixNano())
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
			ph.Healthy = true
		}
	}
	if p.DeletionTimestamp != nil {
		ph.Healthy = false
		ph.Status = "Terminating"
	}
	var errs []string
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" && w.Reason != "PodInitializing" {
			e := fmt.Sprintf("container %s: %s", cs.Name, w.Reason)
			if t := cs.LastTerminationState.Terminated; t != nil {
				e += fmt.Sprintf(" (last exit code %d", t.ExitCode)
				if t.Reason != "" {
					e += ", " + t.Reason
				}
				e += ")"
			}
			if w.Message != "" {
				e += ": " + w.Message
			}
			errs = append(errs, e)
		} else if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			e := fmt.Sprintf("container %s: terminated with exit code %d", cs.Name, t.ExitCode)
			if t.Reason != "" {
				e += " (" + t.Reason + ")"
			}
			if t.Message != "" {
				e += ": " + t.Message
			}
			errs = append(errs, e)
		}
		if cs.RestartCount > 0 && ph.Status != "" {
			ph.Status = fmt.Sprintf("%s, %d restarts", ph.Status, cs.RestartCount)
		}
	}
	if len(errs) > 0 {
		ph.LastError = strings.Join(errs, "; ")
		ph.Healthy = false
	}
	return ph
}

// sameHealth compares two health trees ignoring status times.
func sameHealth(a, b *protobufs.ComponentHealth) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Healthy != b.Healthy || a.Status != b.Status || a.LastError != b.LastError ||
		a.StartTimeUnixNano != b.StartTimeUnixNano || len(a.ComponentHealthMap) != len(b.ComponentHealthMap) {
		return false
	}
	for k, x := range a.ComponentHealthMap {
		if !sameHealth(x, b.ComponentHealthMap[k]) {
			return false
		}
	}
	return true
}

// stamp sets StatusTimeUnixNano on the whole tree.
func stamp(h *protobufs.ComponentHealth, t time.Time) {
	h.StatusTimeUnixNano = uint64(t.UnixNano())
	for _, c := range h.ComponentHealthMap {
		stamp(c, t)
	}
}

// effectiveConfig reports spec.config as the single unnamed file.
func effectiveConfig(c *collector) *protobufs.EffectiveConfig {
	return &protobufs.EffectiveConfig{ConfigMap: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
		effectiveConfigKey: {Body: c.Config, ContentType: "text/yaml"},
	}}}
}
