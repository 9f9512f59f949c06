package bridge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderElection configures the election between bridges that watch the same
// namespaces, through a coordination.k8s.io Lease (client-go's
// tools/leaderelection). Namespace, Name and Identity are required.
type LeaderElection struct {
	// Namespace and Name of the Lease (the bridge creates it when
	// missing).
	Namespace, Name string
	// Identity of this bridge, unique among the candidates (e.g. the pod
	// name plus a random suffix).
	Identity string
	// LeaseDuration is how long a follower waits after the last renewal it
	// saw before taking over; a killed leader is replaced within about
	// this time. Default 15 s.
	LeaseDuration time.Duration
	// RenewDeadline: the leader stops acting when it could not renew the
	// Lease for this long (before the Lease can expire for the others).
	// Default 10 s; less than LeaseDuration.
	RenewDeadline time.Duration
	// RetryPeriod between attempts to acquire or renew. Default 2 s.
	RetryPeriod time.Duration
}

// ErrLeadershipLost is returned by Run when the bridge could not renew its
// Lease in time and stopped acting; the process should exit (and be
// restarted as a follower).
var ErrLeadershipLost = errors.New("bridge: lost the leader election Lease")

func (le LeaderElection) withDefaults() (*LeaderElection, error) {
	if le.Namespace == "" || le.Name == "" || le.Identity == "" {
		return nil, errors.New("bridge: leader election needs Namespace, Name and Identity")
	}
	if le.LeaseDuration <= 0 {
		le.LeaseDuration = 15 * time.Second
	}
	if le.RenewDeadline <= 0 {
		le.RenewDeadline = 10 * time.Second
	}
	if le.RetryPeriod <= 0 {
		le.RetryPeriod = 2 * time.Second
	}
	if le.RenewDeadline >= le.LeaseDuration {
		return nil, fmt.Errorf("RenewDeadline %s must be less than LeaseDuration %s", le.RenewDeadline, le.LeaseDuration)
	}
	if float64(le.RenewDeadline) <= leaderelection.JitterFactor*float64(le.RetryPeriod) {
		return nil, fmt.Errorf("RenewDeadline %s must exceed %.1f × RetryPeriod %s", le.RenewDeadline, leaderelection.JitterFactor, le.RetryPeriod)
	}
	return &le, nil
}

// runElected campaigns for the Lease until ctx ends. While it holds the
// Lease it serves (watches, keeps one agent per resource connected); a
// follower does nothing but watch the Lease. When ctx ends the leader first
// disconnects its agents, then releases the Lease so a follower takes over at
// once; a killed leader's Lease expires after LeaseDuration. Losing the Lease
// (renewal failed for RenewDeadline) disconnects every agent and returns
// ErrLeadershipLost.
func (b *Bridge) runElected(ctx context.Context) error {
	le := b.cfg.LeaderElection
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: le.Namespace, Name: le.Name},
		Client:     b.cfg.Kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: le.Identity},
	}
	var (
		mu       sync.Mutex
		over     bool          // the election ended: a late start must not serve
		serving  chan struct{} // closed when serve returned; nil until leading
		serveErr error
	)
	// The election has a context of its own: when ctx ends, the Lease is
	// released only after the agents were disconnected.
	elCtx, elCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer elCancel()
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   le.LeaseDuration,
		RenewDeadline:   le.RenewDeadline,
		RetryPeriod:     le.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            le.Namespace + "/" + le.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) {
				mu.Lock()
				if over {
					mu.Unlock()
					return
				}
				done := make(chan struct{})
				serving = done
				mu.Unlock()
				b.log.Info("leader election: leading", "lease", le.Namespace+"/"+le.Name, "identity", le.Identity)
				sctx, cancel := context.WithCancel(lctx)
				stop := context.AfterFunc(ctx, cancel)
				err := b.serve(sctx)
				stop()
				cancel()
				mu.Lock()
				serveErr = err
				mu.Unlock()
				close(done)
			},
			OnStoppedLeading: func() {},
			OnNewLeader: func(id string) {
				b.mu.Lock()
				b.leader = id
				b.mu.Unlock()
				if id != le.Identity {
					b.log.Info("leader election: following", "lease", le.Namespace+"/"+le.Name, "leader", id)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("bridge: leader election: %w", err)
	}
	stopOnCancel := context.AfterFunc(ctx, func() {
		mu.Lock()
		done := serving
		mu.Unlock()
		if done != nil {
			<-done
		}
		elCancel()
	})
	defer stopOnCancel()

	elector.Run(elCtx)

	mu.Lock()
	over = true
	done := serving
	mu.Unlock()
	if done == nil {
		return nil // ctx ended before this bridge led
	}
	<-done
	if ctx.Err() != nil {
		return serveErr
	}
	b.log.Error("leader election: lost the Lease; every agent was disconnected", "lease", le.Namespace+"/"+le.Name)
	return ErrLeadershipLost
}

// Leader reports the holder of the leader election Lease last observed and
// whether this bridge is it. Without leader election the bridge always
// leads.
func (b *Bridge) Leader() (holder string, leading bool) {
	if b.cfg.LeaderElection == nil {
		return "", true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.leader, b.leader == b.cfg.LeaderElection.Identity
}
