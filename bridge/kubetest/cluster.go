// Package kubetest runs a real Kubernetes control plane for tests: an etcd
// and a kube-apiserver started from binaries (scripts/build-kube-apiserver.sh
// builds both), on loopback ports, with serving certificates, a
// service-account signing key and a static admin token made in Go, RBAC
// authorization and no controller-manager, scheduler or kubelet (tests create
// ServiceAccounts and set pod status themselves).
//
// The binaries are found through STEWARD_KUBE_APISERVER_BIN and
// STEWARD_ETCD_BIN, or in the script's default output directory. Without them
// Start skips the test with the reason, or fails it when
// STEWARD_REQUIRE_ALL_TESTS is set (CI).
package kubetest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	authv1 "k8s.io/api/authentication/v1"

	"github.com/stewardhq/steward/internal/testenv"
)

// KubeVersion is the kube-apiserver version scripts/build-kube-apiserver.sh
// builds (and the default directory it builds into).
const KubeVersion = "v1.37.2"

// Environment variables naming the binaries.
const (
	EnvAPIServer = "STEWARD_KUBE_APISERVER_BIN"
	EnvEtcd      = "STEWARD_ETCD_BIN"
)

// startTimeout bounds the start of etcd and of the API server (a loaded
// 2-core machine; both take seconds when idle).
const startTimeout = 90 * time.Second

const adminToken = "steward-kubetest-admin"

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// Cluster is a running etcd and kube-apiserver, with admin clients.
type Cluster struct {
	// URL of the API server (https://127.0.0.1:port).
	URL string
	// CAData is the PEM CA certificate the API server's serving
	// certificate chains to.
	CAData []byte
	// Admin is the configuration of a system:masters client.
	Admin   *rest.Config
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface

	dir    string
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

// Binaries returns the paths of kube-apiserver and etcd: from the
// environment, else from the build script's default directory. When either
// is missing the test is skipped (failed in CI) with how to build them.
func Binaries(t testing.TB) (apiserver, etcd string) {
	t.Helper()
	apiserver, etcd = os.Getenv(EnvAPIServer), os.Getenv(EnvEtcd)
	if apiserver == "" || etcd == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache")
		}
		dir := filepath.Join(cache, "steward", "kube-"+KubeVersion)
		if apiserver == "" {
			apiserver = filepath.Join(dir, "kube-apiserver")
		}
		if etcd == "" {
			etcd = filepath.Join(dir, "etcd")
		}
	}
	for _, p := range []string{apiserver, etcd} {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			testenv.Missing(t, fmt.Sprintf("%s not found (set %s and %s; build both with scripts/build-kube-apiserver.sh)", p, EnvAPIServer, EnvEtcd))
		}
	}
	return apiserver, etcd
}

// Start runs etcd and kube-apiserver for the test and stops them at its
// cleanup. It fails the test when either does not come up in time, with the
// end of its log.
func Start(t testing.TB) *Cluster {
	t.Helper()
	apiserverBin, etcdBin := Binaries(t)
	dir := t.TempDir()
	c := &Cluster{dir: dir}

	begin := time.Now()
	etcdPort, peerPort, apiPort := freePort(t), freePort(t), freePort(t)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	etcd := startProcess(t, "etcd", filepath.Join(dir, "etcd.log"), etcdBin,
		"--name=kubetest",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls=http://127.0.0.1:"+strconv.Itoa(peerPort),
		"--initial-advertise-peer-urls=http://127.0.0.1:"+strconv.Itoa(peerPort),
		"--initial-cluster=kubetest=http://127.0.0.1:"+strconv.Itoa(peerPort),
	)
	etcd.waitHTTP(t, &http.Client{Timeout: 5 * time.Second}, etcdURL+"/health")
	t.Logf("etcd up in %.1fs", time.Since(begin).Seconds())

	pki := writePKI(t, dir)
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(adminToken+",kubetest-admin,kubetest-admin,system:masters\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.URL = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	c.CAData = pki.caPEM
	api := startProcess(t, "kube-apiserver", filepath.Join(dir, "apiserver.log"), apiserverBin,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(apiPort),
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--tls-cert-file="+pki.certFile,
		"--tls-private-key-file="+pki.keyFile,
		"--token-auth-file="+tokens,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+pki.saPubFile,
		"--service-account-signing-key-file="+pki.saKeyFile,
		"--service-cluster-ip-range=10.96.0.0/24",
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		"--v=0",
	)
	c.Admin = &rest.Config{
		Host:            c.URL,
		BearerToken:     adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.CAData},
		QPS:             200,
		Burst:           400,
		// The test uses the deprecated v1alpha1 on purpose.
		WarningHandler: rest.NoWarnings{},
	}
	hc, err := rest.HTTPClientFor(c.Admin)
	if err != nil {
		t.Fatal(err)
	}
	apiStart := time.Now()
	api.waitHTTP(t, hc, c.URL+"/readyz")
	t.Logf("kube-apiserver ready in %.1fs", time.Since(apiStart).Seconds())

	if c.Kube, err = kubernetes.NewForConfig(c.Admin); err != nil {
		t.Fatal(err)
	}
	if c.Dynamic, err = dynamic.NewForConfig(c.Admin); err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(c.Admin)
	if err != nil {
		t.Fatal(err)
	}
	c.mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	return c
}

// Namespace creates namespace name and its "default" ServiceAccount (which
// the ServiceAccount admission plugin requires of pods; there is no
// controller-manager to create it).
func (c *Cluster) Namespace(t testing.TB, name string) {
	t.Helper()
	ctx := context.Background()
	_, err := c.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	_, err = c.Kube.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create default ServiceAccount in %s: %v", name, err)
	}
}

// ReadObjects parses the YAML documents of file (empty documents skipped).
func ReadObjects(t testing.TB, file string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// Create creates each object as the admin, finding its resource through
// discovery (refreshed when a kind is unknown, e.g. right after its CRD).
func (c *Cluster) Create(t testing.TB, objs ...*unstructured.Unstructured) {
	t.Helper()
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			c.mapper.Reset()
			m, err = c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		}
		if err != nil {
			t.Fatalf("resource of %s: %v", gvk, err)
		}
		var ri dynamic.ResourceInterface = c.Dynamic.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = c.Dynamic.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		if _, err := ri.Create(context.Background(), o, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s %s/%s: %v", gvk.Kind, o.GetNamespace(), o.GetName(), err)
		}
	}
}

// WaitEstablished waits until the CustomResourceDefinition name is
// established, then refreshes discovery.
func (c *Cluster) WaitEstablished(t testing.TB, name string) {
	t.Helper()
	crds := c.Dynamic.Resource(crdGVR)
	deadline := time.Now().Add(startTimeout)
	for {
		u, err := crds.Get(context.Background(), name, metav1.GetOptions{})
		if err == nil {
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			for _, cd := range conds {
				m, _ := cd.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					c.mapper.Reset()
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRD %s not established: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ServiceAccountToken returns a token of ServiceAccount ns/name from the
// TokenRequest API (valid for an hour), as a pod's projected token is.
func (c *Cluster) ServiceAccountToken(t testing.TB, ns, name string) string {
	t.Helper()
	exp := int64(3600)
	tr, err := c.Kube.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token of ServiceAccount %s/%s: %v", ns, name, err)
	}
	return tr.Status.Token
}

// Kubeconfig writes a kubeconfig file that authenticates with token and
// returns its path.
func (c *Cluster) Kubeconfig(t testing.TB, token string) string {
	t.Helper()
	f, err := os.CreateTemp(c.dir, "kubeconfig-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, `apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: user
  user:
    token: %s
contexts:
- name: kubetest
  context: {cluster: kubetest, user: user}
current-context: kubetest
`, c.URL, base64.StdEncoding.EncodeToString(c.CAData), token)
	return f.Name()
}

// process is a started binary whose output goes to a log file.
type process struct {
	name, log string
	cmd       *exec.Cmd
	exited    chan struct{}
}

func startProcess(t testing.TB, name, logFile, bin string, args ...string) *process {
	t.Helper()
	lf, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, log: logFile, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); lf.Close(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// waitHTTP polls url until it answers 200, failing the test (with the end
// of the process's log) when the process exits or startTimeout passes.
func (p *process) waitHTTP(t testing.TB, hc *http.Client, url string) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	var last string
	for {
		resp, err := hc.Get(url)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited before it was ready (%v); log:\n%s", p.name, p.cmd.ProcessState, tail(p.log))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready at %s after %s: %s; log:\n%s", p.name, url, startTimeout, last, tail(p.log))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tail returns the last 4 KiB of a log file.
func tail(file string) string {
	b, _ := os.ReadFile(file)
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type pkiFiles struct {
	caPEM                                   []byte
	certFile, keyFile, saKeyFile, saPubFile string
}

// writePKI makes a CA, a serving certificate for 127.0.0.1 and localhost,
// and the service-account signing key pair, as PEM files in dir.
func writePKI(t testing.TB, dir string) pkiFiles {
	t.Helper()
	caKey := newKey(t)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kubetest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey := newKey(t)
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost", "kubernetes.default.svc"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	saKey := newKey(t)
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	f := pkiFiles{
		caPEM:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		certFile:  filepath.Join(dir, "apiserver.crt"),
		keyFile:   filepath.Join(dir, "apiserver.key"),
		saKeyFile: filepath.Join(dir, "sa.key"),
		saPubFile: filepath.Join(dir, "sa.pub"),
	}
	writePEM(t, f.certFile, "CERTIFICATE", srvDER)
	writePEM(t, f.keyFile, "PRIVATE KEY", pkcs8(t, srvKey))
	writePEM(t, f.saKeyFile, "PRIVATE KEY", pkcs8(t, saKey))
	writePEM(t, f.saPubFile, "PUBLIC KEY", saPub)
	return f
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pkcs8(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	b, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writePEM(t testing.TB, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
