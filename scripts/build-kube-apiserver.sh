#!/usr/bin/env bash
# build-kube-apiserver.sh [outdir] — build a real kube-apiserver and a small
# embedded etcd for the Kubernetes bridge's real-cluster tests
# (bridge/kubetest).
#
# Both are built from a wrapper Go module generated in OUTDIR/src (default
# OUTDIR: ${XDG_CACHE_HOME:-~/.cache}/steward/kube-$KUBE_VERSION, outside the
# repository): it requires k8s.io/kubernetes at $KUBE_VERSION and replaces each
# of its 31 staging modules (which its go.mod pins at v0.0.0) with the
# published v0.$minor.$patch release, and holds a ten-line etcd main around
# go.etcd.io/etcd/server/v3/embed. kube-apiserver is linked with the version
# variables set, without which it reports an unparseable version.
#
# Idempotent: nothing is rebuilt when both binaries exist and were built from
# the same inputs (recorded in OUTDIR/.inputs-hash); a rebuild after the
# binaries are lost is served by the Go build cache (seconds, not minutes).
# The last two lines printed are the absolute paths of kube-apiserver and
# etcd, so callers can do:
#   out=$(scripts/build-kube-apiserver.sh)
#   export STEWARD_KUBE_APISERVER_BIN=$(sed -n 1p <<<"$(tail -n2 <<<"$out")")
set -euo pipefail

KUBE_VERSION=v1.37.2
STAGING_VERSION=v0.37.2
ETCD_VERSION=v3.7.0
STAGING_MODULES=(
	api apiextensions-apiserver apimachinery apiserver cli-runtime client-go
	cloud-provider cluster-bootstrap code-generator component-base
	component-helpers controller-manager cri-api cri-client cri-streaming
	csi-translation-lib dynamic-resource-allocation endpointslice externaljwt
	kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler
	kubectl kubelet metrics mount-utils pod-security-admission sample-apiserver
	streaming
)

outdir=${1:-"${XDG_CACHE_HOME:-$HOME/.cache}/steward/kube-$KUBE_VERSION"}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
apiserver="$outdir/kube-apiserver"
etcd="$outdir/etcd"
stamp="$outdir/.inputs-hash"
src="$outdir/src"

export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "build-kube-apiserver: go not found" >&2; exit 1; }

gomod() {
	echo "module steward.local/kubebuild"
	echo
	echo "go 1.26.0"
	echo
	echo "require ("
	echo "	k8s.io/kubernetes $KUBE_VERSION"
	echo "	go.etcd.io/etcd/server/v3 $ETCD_VERSION"
	echo ")"
	echo
	echo "replace ("
	for m in "${STAGING_MODULES[@]}"; do
		echo "	k8s.io/$m => k8s.io/$m $STAGING_VERSION"
	done
	echo ")"
}

# tools.go keeps kube-apiserver's imports in the wrapper's module graph (a
# main package cannot be imported), so go mod tidy records their checksums.
tools_go='//go:build tools

package main

import (
	_ "k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
)
'

# etcd: a single-member server on the given URLs until SIGINT/SIGTERM. Its
# flags are the subset of the etcd binary's that the tests pass, so Debian's
# etcd-server can stand in for it.
etcd_go='package main

import (
	"flag"
	"log"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	cfg := embed.NewConfig()
	flag.StringVar(&cfg.Name, "name", "default", "member name")
	flag.StringVar(&cfg.Dir, "data-dir", "", "data directory")
	client := flag.String("listen-client-urls", "http://127.0.0.1:2379", "client URL (one)")
	advClient := flag.String("advertise-client-urls", "", "advertised client URL (default: the listen URL)")
	peer := flag.String("listen-peer-urls", "http://127.0.0.1:2380", "peer URL (one)")
	advPeer := flag.String("initial-advertise-peer-urls", "", "advertised peer URL (default: the listen URL)")
	flag.StringVar(&cfg.InitialCluster, "initial-cluster", "", "name=peer URL (default: this member alone)")
	flag.Parse()
	or := func(a, b string) string {
		if a != "" {
			return a
		}
		return b
	}
	urls := func(flagName, s string) []url.URL {
		u, err := url.Parse(s)
		if err != nil {
			log.Fatalf("etcd: --%s: %v", flagName, err)
		}
		return []url.URL{*u}
	}
	cfg.ListenClientUrls = urls("listen-client-urls", *client)
	cfg.AdvertiseClientUrls = urls("advertise-client-urls", or(*advClient, *client))
	cfg.ListenPeerUrls = urls("listen-peer-urls", *peer)
	cfg.AdvertisePeerUrls = urls("initial-advertise-peer-urls", or(*advPeer, *peer))
	if cfg.InitialCluster == "" {
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	}
	cfg.LogLevel = "warn"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		log.Fatalf("etcd: start: %v", err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-e.Server.ReadyNotify():
		log.Printf("etcd: ready on %s", *client)
	case err := <-e.Err():
		log.Fatalf("etcd: %v", err)
	}
	select {
	case <-sig:
	case err := <-e.Err():
		log.Fatalf("etcd: %v", err)
	}
	e.Close()
}'

ldflags="-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
ldflags+=" -X k8s.io/component-base/version.gitMajor=$(cut -d. -f1 <<<"${KUBE_VERSION#v}")"
ldflags+=" -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"${KUBE_VERSION#v}")"

want=$( { go version; gomod; echo "$tools_go"; echo "$etcd_go"; echo "$ldflags"; } | sha256sum | cut -d' ' -f1)
if [[ -x "$apiserver" && -x "$etcd" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
	echo "build-kube-apiserver: up to date (inputs hash ${want:0:12})" >&2
	echo "$apiserver"
	echo "$etcd"
	exit 0
fi

start=$(date +%s)
mkdir -p "$src"
gomod >"$src/go.mod"
printf '%s' "$tools_go" >"$src/tools.go"
printf '%s' "$etcd_go" >"$src/main.go"
cd "$src"
export GOFLAGS=-buildvcs=false CGO_ENABLED=0
echo "build-kube-apiserver: resolving modules" >&2
go mod tidy >&2
echo "build-kube-apiserver: building etcd $ETCD_VERSION" >&2
go build -o "$etcd.tmp" .
mv -f "$etcd.tmp" "$etcd"
echo "build-kube-apiserver: building kube-apiserver $KUBE_VERSION (10-20 minutes cold on 2 cores, seconds warm)" >&2
go build -ldflags "$ldflags" -o "$apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
mv -f "$apiserver.tmp" "$apiserver"
echo "$want" >"$stamp"
echo "build-kube-apiserver: built in $(( $(date +%s) - start ))s" >&2
echo "$apiserver"
echo "$etcd"
