package http

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// trustedProxies are the networks of reverse proxies whose forwarding
// headers (X-Forwarded-For, X-Forwarded-Proto) are believed. Headers from
// any other peer are ignored, since anyone can send them.
type trustedProxies []netip.Prefix

// ParseTrustedProxies parses a comma-separated list of CIDR prefixes or
// single addresses ("10.0.0.0/8,127.0.0.1").
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: not a CIDR prefix or an address", f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

func (t trustedProxies) trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peer is the address of the TCP peer of r (the zero Addr if unparsable).
func peer(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// clientAddr is the address of whoever made r: the TCP peer, unless the
// peer is a trusted proxy; then X-Forwarded-For is read from the right (the
// hop nearest to us) and the first address that is not a trusted proxy is
// the client. An unparsable entry ends the walk at the last trusted hop.
func (t trustedProxies) clientAddr(r *http.Request) netip.Addr {
	client := peer(r)
	if !t.trusts(client) {
		return client
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return client
		}
		client = a.Unmap()
		if !t.trusts(client) {
			return client
		}
	}
	return client
}

// forwardedHTTPS reports whether a trusted proxy says the client reached it
// over TLS (X-Forwarded-Proto: https).
func (t trustedProxies) forwardedHTTPS(r *http.Request) bool {
	if len(t) == 0 || !t.trusts(peer(r)) {
		return false
	}
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	return strings.EqualFold(strings.TrimSpace(proto), "https")
}
