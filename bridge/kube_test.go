package bridge

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestBearerTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	f := BearerTokenFile(path)
	if h := f(http.Header{"X": {"y"}}); h.Get("Authorization") != "" || h.Get("X") != "y" {
		t.Errorf("missing file: %v", h)
	}
	if err := os.WriteFile(path, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if h := f(nil); h.Get("Authorization") != "Bearer s3cret" {
		t.Errorf("header = %v", h)
	}
	if err := os.WriteFile(path, []byte("rotated"), 0o600); err != nil {
		t.Fatal(err)
	}
	if h := f(http.Header{}); h.Get("Authorization") != "Bearer rotated" {
		t.Errorf("rotated token not re-read: %v", h)
	}
}

func TestHealthHandler(t *testing.T) {
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{GVR("v1beta1"): "OpenTelemetryCollectorList"})
	b := mustNew(t, Config{Dynamic: dyn})
	hs := httptest.NewServer(HealthHandler(b))
	defer hs.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, _ := get("/readyz"); code != 503 {
		t.Errorf("/readyz before Run = %d", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	select {
	case <-b.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("not ready")
	}
	if code, body := get("/readyz"); code != 200 || !strings.Contains(body, "0 collector pools") {
		t.Errorf("/readyz = %d %q", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := b.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
}

// TestRunForbidden: while listing is refused (no RBAC) the bridge is not
// ready and starts nothing; cancelling ctx still ends Run cleanly.
func TestRunForbidden(t *testing.T) {
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{GVR("v1beta1"): "OpenTelemetryCollectorList"})
	var lists atomic.Int32
	dyn.PrependReactor("list", Resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		lists.Add(1)
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: Group, Resource: Resource}, "", errors.New("RBAC: access denied"))
	})
	b := mustNew(t, Config{Dynamic: dyn, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for lists.Load() < 2 { // refused, then retried
		if time.Now().After(deadline) {
			t.Fatal("bridge did not retry listing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-b.Ready():
		t.Fatal("ready although listing is forbidden")
	default:
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
}
