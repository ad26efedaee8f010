package transport

import (
	"net/http"
	"net/netip"
)

// ClientAddr is the address of the client that sent r: HeaderClient
// when r comes from another member (FromMember) that named it, else
// r's peer address (over a link, the forwarding member sends its
// client's). A header a client sent itself is never believed: a
// forwarder drops it (memberHeader), and a request that does not come
// from a member is not asked. The zero Addr when there is none.
func ClientAddr(r *http.Request) netip.Addr {
	if FromMember(r) {
		if a, err := netip.ParseAddr(r.Header.Get(HeaderClient)); err == nil {
			return a.Unmap()
		}
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
