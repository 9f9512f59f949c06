package bridge

import (
	"crypto/sha1"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Kubernetes names the bridge relies on.
const (
	// Group of the OpenTelemetry Operator's custom resources.
	Group = "opentelemetry.io"
	// Resource is the plural resource name of OpenTelemetryCollector.
	Resource = "opentelemetrycollectors"
	// Kind of the custom resource.
	Kind = "OpenTelemetryCollector"
	// DefaultVersion is the API version watched unless Config.APIVersion
	// says otherwise.
	DefaultVersion = "v1beta1"

	// ManagedAnnotation opts a collector in for remote configuration when
	// set to "true".
	ManagedAnnotation = "steward.dev/managed"
	// HashAnnotation records the hash (hex) of the remote config the
	// bridge last wrote to spec.config, so a restarted bridge reports it.
	HashAnnotation = "steward.dev/remote-config-hash"

	// Labels the operator puts on the pods of a collector (its target
	// allocator's pods share the first two, with another component).
	LabelManagedBy     = "app.kubernetes.io/managed-by"
	LabelInstance      = "app.kubernetes.io/instance"
	LabelComponent     = "app.kubernetes.io/component"
	OperatorName       = "opentelemetry-operator"
	CollectorComponent = "opentelemetry-collector"

	// FieldManager names the bridge's writes.
	FieldManager = "steward-k8s-bridge"
)

// Attribute keys the bridge reports besides the well-known ones.
const (
	AttrK8sNamespace   = "k8s.namespace.name"
	AttrK8sCluster     = "k8s.cluster.name"
	AttrCollectorName  = "k8s.opentelemetrycollector.name"
	AttrCollectorUID   = "k8s.opentelemetrycollector.uid"
	AttrCollectorMode  = "k8s.opentelemetrycollector.mode"
	AttrReplicas       = "k8s.opentelemetrycollector.replicas"
	AttrImage          = "container.image.name"
	AttrManaged        = "steward.managed"
	AttrBridge         = "steward.bridge"
	AttrAPIVersion     = "k8s.opentelemetrycollector.api_version"
	bridgeAttrValue    = "kubernetes"
	effectiveConfigKey = ""
)

// GVR returns the OpenTelemetryCollector resource of the given version.
func GVR(version string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: Group, Version: version, Resource: Resource}
}

// collector is what the bridge reads from one OpenTelemetryCollector.
type collector struct {
	Namespace, Name string
	UID             string
	APIVersion      string
	Created         time.Time
	Labels          map[string]string
	Annotations     map[string]string
	Mode            string
	Replicas        *int64
	Image           string
	Version         string // status.version
	// Config is spec.config rendered as YAML (empty when unset).
	Config []byte
	// ConfigIsString is true when spec.config is a YAML string
	// (v1alpha1) rather than a structured object (v1beta1).
	ConfigIsString bool
	ConfigErr      error
}

func (c *collector) key() string { return c.Namespace + "/" + c.Name }

// parseCollector reads the fields the bridge uses. A malformed field is
// reported through ConfigErr (config) or left empty (others); it never
// fails, so a bad resource still shows up as an agent.
func parseCollector(u *unstructured.Unstructured) *collector {
	c := &collector{
		Namespace:   u.GetNamespace(),
		Name:        u.GetName(),
		UID:         string(u.GetUID()),
		APIVersion:  u.GetAPIVersion(),
		Created:     u.GetCreationTimestamp().Time,
		Labels:      u.GetLabels(),
		Annotations: u.GetAnnotations(),
	}
	c.Mode, _, _ = unstructured.NestedString(u.Object, "spec", "mode")
	if c.Mode == "" {
		c.Mode = "deployment" // the operator's default
	}
	if r, ok, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "replicas"); ok {
		switch v := r.(type) {
		case int64:
			c.Replicas = &v
		case float64:
			n := int64(v)
			c.Replicas = &n
		case int:
			n := int64(v)
			c.Replicas = &n
		}
	}
	c.Image, _, _ = unstructured.NestedString(u.Object, "spec", "image")
	if c.Image == "" {
		// The operator's default image, which it reports in status.image.
		c.Image, _, _ = unstructured.NestedString(u.Object, "status", "image")
	}
	c.Version, _, _ = unstructured.NestedString(u.Object, "status", "version")
	cfg, ok, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "config")
	if ok && cfg != nil {
		switch v := cfg.(type) {
		case string:
			c.ConfigIsString = true
			c.Config = []byte(v)
		default:
			b, err := renderYAML(v)
			if err != nil {
				c.ConfigErr = fmt.Errorf("spec.config: %w", err)
			} else {
				c.Config = b
			}
		}
	}
	return c
}

// managed reports whether the collector accepts remote config: it carries
// the annotation steward.dev/managed: "true", or matches sel (when set).
func (c *collector) managed(sel labels.Selector) bool {
	if v, _ := strconv.ParseBool(c.Annotations[ManagedAnnotation]); v {
		return true
	}
	return sel != nil && !sel.Empty() && sel.Matches(labels.Set(c.Labels))
}

// instanceUID returns the agent's instance uid: the 16 bytes of the
// resource's metadata.uid when that is a UUID (it always is on a real API
// server), otherwise a name-based UUID (SHA-1, version 5 layout) of
// "cluster/namespace/name".
func (c *collector) instanceUID(cluster string) [16]byte {
	if u, err := uuid.Parse(c.UID); err == nil {
		return u
	}
	return nameUID(cluster + "/" + c.Namespace + "/" + c.Name)
}

// uidNamespace is the UUID namespace of name-based instance uids.
var uidNamespace = uuid.MustParse("6f0c2b1e-8d0a-5b8e-9a43-2f1d7c6e5a10")

func nameUID(name string) [16]byte {
	return uuid.NewHash(sha1.New(), uidNamespace, []byte(name), 5)
}

// podInstance is the value of the operator's instance label on the pods of
// the collector (see InstanceLabel).
func (c *collector) podInstance() string { return InstanceLabel(c.Namespace, c.Name) }

// InstanceLabel returns the value of the label app.kubernetes.io/instance
// that the operator gives the pods of collector namespace/name:
// "namespace.name", fitted into the 63 characters a label value may hold by
// shortening the namespace first (then the name), and trimmed of
// non-alphanumeric characters at both ends.
func InstanceLabel(namespace, name string) string {
	const max = 63
	if excess := len(namespace) + 1 + len(name) - max; excess > 0 {
		if len(namespace) > excess {
			namespace = namespace[:len(namespace)-excess]
		} else {
			excess -= len(namespace)
			namespace = ""
			if len(name) > excess {
				name = name[:len(name)-excess]
			} else {
				name = ""
			}
		}
	}
	v := namespace + "." + name
	if len(v) > max {
		return v[:max]
	}
	return strings.TrimFunc(v, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	})
}

// sortedLabelKeys returns the collector's label keys in order.
func sortedLabelKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
