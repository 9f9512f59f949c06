package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"google.golang.org/protobuf/proto"

	"github.com/stewardhq/steward/opamp"
)

// startHTTP starts the pollers of plain-HTTP agents. They share one client
// whose keep-alive connections come from the source addresses round-robin.
func (g *Generator) startHTTP() {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return g.dialer().DialContext(ctx, network, addr)
	}
	g.client = &http.Client{
		Transport: &http.Transport{
			DialContext:         dial,
			MaxIdleConns:        g.cfg.Workers,
			MaxIdleConnsPerHost: g.cfg.Workers,
			MaxConnsPerHost:     g.cfg.Workers,
			IdleConnTimeout:     90 * time.Second,
		},
		Timeout: g.cfg.HandshakeTimeout,
	}
	g.pollq = make(chan *agent, g.cfg.Workers*4)
	for range g.cfg.Workers {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			for {
				select {
				case <-g.ctx.Done():
					return
				case a := <-g.pollq:
					if g.limiter != nil && !a.onlineNow() {
						select {
						case <-g.limiter:
						case <-g.ctx.Done():
							return
						}
					}
					g.poll(a)
				}
			}
		}()
	}
}

func (a *agent) onlineNow() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.online
}

// poll performs one poll of an HTTP agent: its full status when the server
// has not seen it yet (or asked for it), else a heartbeat; then, while the
// server's reply calls for an answer (an applied config, a full state),
// further requests at once. The next poll is scheduled a heartbeat interval
// later, or with backoff after a failure.
func (g *Generator) poll(a *agent) {
	a.mu.Lock()
	if a.polling || a.state == stateClosed {
		a.mu.Unlock()
		return
	}
	a.polling = true
	var queue []*protobufs.AgentToServer
	if a.full {
		a.full = false
		queue = append(queue, a.fullLocked())
	} else {
		queue = append(queue, a.nextLocked())
	}
	ep := a.endpointLocked()
	a.mu.Unlock()

	for i := 0; len(queue) > 0 && i < 8; i++ {
		m := queue[0]
		queue = queue[1:]
		reply, err := g.post(ep, m)
		a.mu.Lock()
		if err != nil {
			g.connectErrors.Add(1)
			if a.online {
				a.online = false
				g.connected.Add(-1)
				g.disconnects.Add(1)
			}
			a.full = true // the server may have lost us: report everything again
			a.failoverLocked()
			d := g.backoff(int(a.failures))
			if a.failures < 255 {
				a.failures++
			}
			if ra, ok := err.(*retryAfterError); ok && ra.d > d {
				d = ra.d
			}
			a.polling = false
			if g.ctx.Err() == nil {
				a.afterLocked(d)
			}
			a.mu.Unlock()
			return
		}
		g.sent.Add(1)
		a.failures = 0
		if !a.online {
			a.online = true
			g.connected.Add(1)
			g.connects.Add(1)
		}
		queue = append(queue, a.handleLocked(reply)...)
		a.mu.Unlock()
	}
	a.mu.Lock()
	a.polling = false
	if g.ctx.Err() == nil {
		a.afterLocked(g.heartbeatDelay())
	}
	a.mu.Unlock()
}

// post sends one message to endpoint u over HTTP and decodes the reply.
func (g *Generator) post(u *url.URL, m *protobufs.AgentToServer) (*protobufs.ServerToAgent, error) {
	body, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(g.ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, vs := range g.cfg.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", opamp.ContentType)
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, maxMessage+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp)
	}
	if len(rb) > maxMessage {
		return nil, fmt.Errorf("loadgen: reply larger than %d bytes", maxMessage)
	}
	var reply protobufs.ServerToAgent
	if err := proto.Unmarshal(rb, &reply); err != nil {
		g.malformed.Add(1)
		return nil, fmt.Errorf("loadgen: malformed reply: %w", err)
	}
	return &reply, nil
}
