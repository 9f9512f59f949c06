package bridge

import (
	"fmt"
	"net/http"
	"os"
	"strings"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// KubeClients builds the dynamic client and clientset the bridge needs:
// from the pod's service account when kubeconfig is empty (in-cluster), else
// from that kubeconfig file (its current context). It fails when neither
// yields a usable configuration.
func KubeClients(kubeconfig string) (dynamic.Interface, kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, nil, fmt.Errorf("in-cluster Kubernetes config (use --kubeconfig outside a cluster): %w", err)
		}
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
	}
	cfg.UserAgent = FieldManager
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	return dyn, kube, nil
}

// BearerTokenFile returns a Config.HeaderFunc that reads the token in path
// before every connection attempt (so a rotated Secret is picked up) and
// sends it as "Authorization: Bearer <token>". A file that cannot be read or
// is empty leaves the headers unchanged (the server then refuses the
// connection, and the client retries with backoff).
func BearerTokenFile(path string) func(http.Header) http.Header {
	return func(h http.Header) http.Header {
		b, err := os.ReadFile(path)
		if err != nil {
			return h
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return h
		}
		if h == nil {
			h = http.Header{}
		}
		h.Set("Authorization", "Bearer "+tok)
		return h
	}
}

// HealthHandler serves the bridge's probes:
//   - /healthz answers 200 while the process runs;
//   - /readyz answers 200 once b is Ready (caches synced, an agent started
//     for every resource) and 503 before. With leader election, a follower
//     answers 200 ("standby") once it has seen a leader hold the Lease, so a
//     Deployment of several replicas rolls out; a leader answers as above;
//     503 while no leader is known;
//   - /leaderz answers 200 on the bridge that acts (the leader once Ready,
//     or the only bridge) and 503 on a follower, so tooling can tell which
//     replica acts.
func HealthHandler(b *Bridge) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		holder, leading := b.Leader()
		switch {
		case leading && b.isReady():
			fmt.Fprintf(w, "ready: leading, %d collector pools\n", len(b.Agents()))
		case leading:
			http.Error(w, "caches not synced yet", http.StatusServiceUnavailable)
		case holder != "":
			fmt.Fprintf(w, "ready: standby, leader is %s\n", holder)
		default:
			http.Error(w, "no leader elected yet", http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("/leaderz", func(w http.ResponseWriter, r *http.Request) {
		holder, leading := b.Leader()
		if leading && b.isReady() {
			fmt.Fprintln(w, "leading")
			return
		}
		http.Error(w, fmt.Sprintf("not leading; leader is %q", holder), http.StatusServiceUnavailable)
	})
	return mux
}

func (b *Bridge) isReady() bool {
	select {
	case <-b.ready:
		return true
	default:
		return false
	}
}
