package controlplane

import (
	"context"
	"sync"

	"github.com/stewardhq/steward"
)

// Bus is an in-process steward.EventBus. Publish never blocks; a subscriber
// whose buffer is full has its channel closed and must resubscribe (the UI's
// EventSource reconnects by itself).
type Bus struct {
	mu   sync.Mutex
	subs map[chan *steward.Event]struct{}
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{subs: make(map[chan *steward.Event]struct{})} }

// subscriberBuffer is how many events a subscriber may lag behind.
const subscriberBuffer = 1024

// Publish delivers e to every subscriber without waiting.
func (b *Bus) Publish(e *steward.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- e:
		default: // too slow: drop the subscriber, it will reconnect
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// Watched reports whether the bus has subscribers.
func (b *Bus) Watched() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs) > 0
}

// Subscribe returns a channel of events, closed when ctx ends or the
// subscriber falls too far behind.
func (b *Bus) Subscribe(ctx context.Context) <-chan *steward.Event {
	ch := make(chan *steward.Event, subscriberBuffer)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	go func() {
		<-ctx.Done()
		b.mu.Lock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
		b.mu.Unlock()
	}()
	return ch
}
