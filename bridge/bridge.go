// Package bridge is steward-k8s-bridge: it reports each OpenTelemetryCollector
// resource of the OpenTelemetry Operator (a "pool" of collector pods) to a
// Steward server as one OpAMP agent, and applies the remote config Steward
// assigns to a pool by writing it to the resource's spec.config.
//
// The bridge watches OpenTelemetryCollector resources (group
// opentelemetry.io, by default version v1beta1) through the dynamic client
// and the operator's pods (labels app.kubernetes.io/managed-by =
// opentelemetry-operator, app.kubernetes.io/instance = <namespace>.<name>)
// through the typed clientset, with informers, in the configured namespaces.
// A new resource connects an agent; a change updates the agent's status; a
// deleted resource disconnects its agent (agent_disconnect).
//
// Each agent reports its description (see describe), health (one component
// per pod), effective config (spec.config as YAML) and, for resources opted
// in to remote configuration, the remote config status. Only resources with
// the annotation steward.dev/managed: "true", or matching
// Config.ManagedSelector, declare AcceptsRemoteConfig; the others are
// reported read-only.
//
// Lifecycle: New validates Config; Run watches and serves until its context
// ends, then disconnects every agent and returns.
package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stewardhq/steward/opamp/client"
)

// Config configures a Bridge. Endpoint, Dynamic and Kube are required.
type Config struct {
	// Endpoint is the Steward OpAMP URL, e.g.
	// ws://steward.steward.svc:4320/v1/opamp (ws, wss, http or https).
	Endpoint string
	// Header is sent on every connection (e.g. Authorization).
	Header http.Header
	// HeaderFunc, when set, returns the headers of each connection
	// attempt (e.g. to re-read a rotated token).
	HeaderFunc func(http.Header) http.Header
	// TLSConfig for wss:// and https://; nil means Go's defaults.
	TLSConfig *tls.Config

	// Dynamic reads and writes OpenTelemetryCollector resources.
	Dynamic dynamic.Interface
	// Kube reads the collectors' pods.
	Kube kubernetes.Interface

	// Namespaces to watch; empty watches every namespace (and needs
	// cluster-wide RBAC).
	Namespaces []string
	// ClusterName is reported as k8s.cluster.name and goes into
	// name-based instance uids; optional.
	ClusterName string
	// APIVersion of OpenTelemetryCollector to watch and write: "v1beta1"
	// (default; spec.config is an object) or "v1alpha1" (spec.config is a
	// YAML string).
	APIVersion string
	// ManagedSelector is a Kubernetes label selector; resources matching
	// it accept remote config, as do those annotated
	// steward.dev/managed: "true". Empty: the annotation alone decides.
	ManagedSelector string

	// HeartbeatInterval of each agent's WebSocket; default 30 s.
	HeartbeatInterval time.Duration
	// Backoff between connection attempts of each agent.
	Backoff client.Backoff
	// ResyncPeriod re-examines every resource this often; default 10 min.
	ResyncPeriod time.Duration
	// Logger receives the bridge's diagnostics; nil: slog.Default().
	Logger *slog.Logger

	// LeaderElection, when set, lets several bridges run for the same
	// namespaces: only the holder of the Lease watches and reports.
	LeaderElection *LeaderElection
}

// Bridge connects OpenTelemetryCollector pools to Steward. Create it with
// New and call Run once.
type Bridge struct {
	cfg Config
	gvr schema.GroupVersionResource
	sel labels.Selector
	log *slog.Logger

	ready chan struct{}

	mu      sync.Mutex
	leader  string           // holder of the Lease last observed (leader election)
	pools   map[string]*pool // by "namespace/name"
	watches []*nsWatch
	ran     bool
}

// nsWatch holds the listers of one watched namespace ("" for all).
type nsWatch struct {
	ns   string
	crs  cache.GenericLister
	pods corelisters.PodLister
}

// AgentInfo describes one pool the bridge reports.
type AgentInfo struct {
	Namespace, Name string
	InstanceUID     [16]byte
	// Managed is true when the pool accepts remote config.
	Managed bool
}

// ErrNotManaged is returned (wrapped) when a remote config arrives for a
// resource that is no longer opted in to remote configuration.
var ErrNotManaged = errors.New("resource is not opted in to remote configuration (annotation " + ManagedAnnotation + `: "true")`)

// New validates cfg and returns a Bridge. It fails without Endpoint, Dynamic
// or Kube, on an invalid endpoint, an unknown APIVersion, or a malformed
// ManagedSelector.
func New(cfg Config) (*Bridge, error) {
	if cfg.Endpoint == "" {
		return nil, errors.New("bridge: Endpoint is required")
	}
	if _, err := client.New(client.Settings{Endpoint: cfg.Endpoint}); err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	if cfg.Dynamic == nil || cfg.Kube == nil {
		return nil, errors.New("bridge: Dynamic and Kube clients are required")
	}
	if cfg.APIVersion == "" {
		cfg.APIVersion = DefaultVersion
	}
	if cfg.APIVersion != "v1beta1" && cfg.APIVersion != "v1alpha1" {
		return nil, fmt.Errorf("bridge: unsupported APIVersion %q (use v1beta1 or v1alpha1)", cfg.APIVersion)
	}
	sel := labels.Nothing()
	if cfg.ManagedSelector != "" {
		s, err := labels.Parse(cfg.ManagedSelector)
		if err != nil {
			return nil, fmt.Errorf("bridge: invalid ManagedSelector: %w", err)
		}
		sel = s
	}
	if cfg.ResyncPeriod <= 0 {
		cfg.ResyncPeriod = 10 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ns := slices.Clone(cfg.Namespaces)
	sort.Strings(ns)
	ns = slices.Compact(ns)
	if slices.Contains(ns, "") {
		ns = nil // all namespaces
	}
	cfg.Namespaces = ns
	if le := cfg.LeaderElection; le != nil {
		c, err := le.withDefaults()
		if err != nil {
			return nil, fmt.Errorf("bridge: leader election: %w", err)
		}
		cfg.LeaderElection = c
	}
	return &Bridge{
		cfg:   cfg,
		gvr:   GVR(cfg.APIVersion),
		sel:   sel,
		log:   cfg.Logger,
		ready: make(chan struct{}),
		pools: map[string]*pool{},
	}, nil
}

// Ready is closed once Run has filled its caches and started an agent for
// every resource that existed then.
func (b *Bridge) Ready() <-chan struct{} { return b.ready }

// Agents lists the pools currently reported, by namespace and name.
func (b *Bridge) Agents() []AgentInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]AgentInfo, 0, len(b.pools))
	for _, p := range b.pools {
		out = append(out, AgentInfo{Namespace: p.ns, Name: p.name, InstanceUID: p.uid, Managed: p.managed})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Run watches the configured namespaces and keeps one agent per
// OpenTelemetryCollector connected until ctx ends; then it disconnects every
// agent (each sends agent_disconnect) and returns nil. Until the caches are
// filled no agent connects and Ready stays open; while listing fails (the
// resource type is not installed, RBAC forbids it) client-go retries and
// logs. Run fails if called twice.
//
// With Config.LeaderElection set, Run first takes part in the election and
// watches and serves only while it holds the Lease (see runElected).
func (b *Bridge) Run(ctx context.Context) error {
	b.mu.Lock()
	if b.ran {
		b.mu.Unlock()
		return errors.New("bridge: Run called twice")
	}
	b.ran = true
	b.mu.Unlock()
	if b.cfg.LeaderElection != nil {
		return b.runElected(ctx)
	}
	return b.serve(ctx)
}

// serve watches and keeps the agents connected until ctx ends (see Run).
func (b *Bridge) serve(ctx context.Context) error {
	queue := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "steward-k8s-bridge"})
	defer queue.ShutDown()

	stop := make(chan struct{})
	var synced []cache.InformerSynced
	var factories []interface{ Shutdown() }
	shutdownInformers := func() {
		close(stop)
		for _, f := range factories {
			f.Shutdown()
		}
	}
	namespaces := b.cfg.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	for _, ns := range namespaces {
		df := dynamicinformer.NewFilteredDynamicSharedInformerFactory(b.cfg.Dynamic, b.cfg.ResyncPeriod, ns, nil)
		crInf := df.ForResource(b.gvr)
		_, err := crInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { enqueueObject(queue, obj) },
			UpdateFunc: func(_, obj any) { enqueueObject(queue, obj) },
			DeleteFunc: func(obj any) { enqueueObject(queue, obj) },
		})
		if err != nil {
			shutdownInformers()
			return fmt.Errorf("bridge: watch %s: %w", b.gvr.Resource, err)
		}
		kf := informers.NewSharedInformerFactoryWithOptions(b.cfg.Kube, b.cfg.ResyncPeriod,
			informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.LabelSelector = LabelManagedBy + "=" + OperatorName + "," + LabelComponent + "=" + CollectorComponent
			}))
		podInf := kf.Core().V1().Pods()
		crs := crInf.Lister()
		_, err = podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { enqueuePod(queue, crs, obj) },
			UpdateFunc: func(_, obj any) { enqueuePod(queue, crs, obj) },
			DeleteFunc: func(obj any) { enqueuePod(queue, crs, obj) },
		})
		if err != nil {
			shutdownInformers()
			return fmt.Errorf("bridge: watch pods: %w", err)
		}
		b.mu.Lock()
		b.watches = append(b.watches, &nsWatch{ns: ns, crs: crInf.Lister(), pods: podInf.Lister()})
		b.mu.Unlock()
		synced = append(synced, crInf.Informer().HasSynced, podInf.Informer().HasSynced)
		df.Start(stop)
		kf.Start(stop)
		factories = append(factories, df, kf)
	}

	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		shutdownInformers() // ctx ended first
		return nil
	}
	b.log.Info("watching OpenTelemetryCollector resources", "resource", b.gvr.String(), "namespaces", namespaces)

	// Start an agent for every resource present now, then signal Ready.
	for queue.Len() > 0 {
		if !b.processNext(ctx, queue) {
			break
		}
	}
	close(b.ready)

	done := make(chan struct{})
	go func() {
		defer close(done)
		for b.processNext(ctx, queue) {
		}
	}()
	<-ctx.Done()
	queue.ShutDown()
	<-done
	shutdownInformers()
	b.stopAll()
	return nil
}

func enqueueObject(q workqueue.TypedRateLimitingInterface[string], obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err == nil {
		q.Add(key)
	}
}

// enqueuePod queues the collector a pod belongs to: the one in the pod's
// namespace whose InstanceLabel is the pod's instance label.
func enqueuePod(q workqueue.TypedRateLimitingInterface[string], crs cache.GenericLister, obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	m, err := meta(obj)
	if err != nil {
		return
	}
	inst := m.GetLabels()[LabelInstance]
	if inst == "" {
		return
	}
	list, err := crs.ByNamespace(m.GetNamespace()).List(labels.Everything())
	if err != nil {
		return
	}
	for _, o := range list {
		if cm, err := meta(o); err == nil && InstanceLabel(cm.GetNamespace(), cm.GetName()) == inst {
			q.Add(cm.GetNamespace() + "/" + cm.GetName())
		}
	}
}

func meta(obj any) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("unexpected object %T", obj)
	}
	return m, nil
}

// processNext reconciles one key; false once the queue shut down.
func (b *Bridge) processNext(ctx context.Context, q workqueue.TypedRateLimitingInterface[string]) bool {
	key, shutdown := q.Get()
	if shutdown {
		return false
	}
	defer q.Done(key)
	if err := b.reconcile(ctx, key); err != nil {
		b.log.Warn("reconcile failed; retrying", "collector", key, "error", err)
		q.AddRateLimited(key)
		return true
	}
	q.Forget(key)
	return true
}

// watchFor returns the listers covering namespace ns.
func (b *Bridge) watchFor(ns string) *nsWatch {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, w := range b.watches {
		if w.ns == metav1.NamespaceAll || w.ns == ns {
			return w
		}
	}
	return nil
}

// reconcile brings the agent of one resource in line with the caches.
func (b *Bridge) reconcile(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil // not ours to retry
	}
	w := b.watchFor(ns)
	if w == nil {
		return nil
	}
	obj, err := w.crs.ByNamespace(ns).Get(name)
	if apierrors.IsNotFound(err) {
		b.removePool(key, "resource deleted")
		return nil
	}
	if err != nil {
		return err
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return fmt.Errorf("unexpected object %T", obj)
	}
	c := parseCollector(u)
	sel, err := labels.ValidatedSelectorFromSet(labels.Set{LabelManagedBy: OperatorName, LabelComponent: CollectorComponent, LabelInstance: c.podInstance()})
	if err != nil {
		sel = labels.Nothing() // cannot happen: InstanceLabel fits a label value
	}
	pods, err := w.pods.Pods(ns).List(sel)
	if err != nil {
		return err
	}
	podsCopy := make([]*corev1.Pod, len(pods))
	copy(podsCopy, pods)

	managed := c.managed(b.sel)
	uid := c.instanceUID(b.cfg.ClusterName)

	b.mu.Lock()
	p := b.pools[key]
	b.mu.Unlock()
	if p != nil && (p.managed != managed || p.uid != uid) {
		// Capabilities are fixed for a connection: reconnect with the
		// new ones (or as the new resource behind the same name).
		b.removePool(key, "capabilities or identity changed")
		p = nil
	}
	now := time.Now()
	h := health(c, podsCopy)
	stamp(h, now)
	desc := describe(c, b.cfg.ClusterName, uid, managed)
	if p == nil {
		p, err = b.newPool(c, uid, managed, desc, h)
		if err != nil {
			return err
		}
		b.mu.Lock()
		b.pools[key] = p
		b.mu.Unlock()
		if err := p.client.Start(ctx); err != nil {
			b.mu.Lock()
			delete(b.pools, key)
			b.mu.Unlock()
			return err
		}
		b.log.Info("collector pool connected", "collector", key, "instance_uid", fmt.Sprintf("%x", uid), "managed", managed)
		return nil
	}
	return p.update(ctx, c, desc, h)
}

// removePool disconnects the agent of key, if any.
func (b *Bridge) removePool(key, why string) {
	b.mu.Lock()
	p := b.pools[key]
	delete(b.pools, key)
	b.mu.Unlock()
	if p == nil {
		return
	}
	p.stop()
	b.log.Info("collector pool disconnected", "collector", key, "reason", why)
}

func (b *Bridge) stopAll() {
	b.mu.Lock()
	pools := make([]*pool, 0, len(b.pools))
	for k, p := range b.pools {
		pools = append(pools, p)
		delete(b.pools, k)
	}
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range pools {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop() }()
	}
	wg.Wait()
}
