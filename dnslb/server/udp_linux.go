package server

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP on Linux: each socket is read by a goroutine that blocks its OS
// thread in recvmmsg (MSG_WAITFORONE) on a blocking socket the Go
// netpoller never sees, answers the batch, and sends the answers with
// one sendmmsg. Below saturation most queries arrive at an idle server,
// and what a query costs there is the wake-up: a thread sleeping in
// recvmmsg is woken once and makes two system calls per batch, where a
// goroutine on the netpoller made four (recvmmsg, a recvmmsg that finds
// nothing, epoll_wait, sendmmsg), went through the Go scheduler twice
// and often woke a second thread. Under load the batch grows by itself:
// everything queued while a batch was being answered is read by the
// next recvmmsg.
//
// Two things keep the Go runtime out of the way. The reader keeps its P
// while it sleeps in the system call; Start raises GOMAXPROCS so one P
// is always idle, and the runtime then leaves a sleeping reader's P
// alone (with no idle P it would take it back, and wake a thread to do
// so, on every query). And the reader passes through the scheduler every
// few milliseconds by itself (yieldEvery), so the runtime's monitor
// never preempts it, which would also take its P and set the monitor
// polling every 20 µs again. It yields with the runtime's goyield, not
// runtime.Gosched: Gosched puts the goroutine on the global run queue and
// wakes the idle P's thread to take it, so every yield woke a second
// thread, which often took the reader over (at 1k q/s 0.3 extra thread
// wake-ups per query); goyield puts it on its own P's queue and wakes
// nobody, and the reader carries on on its own thread.

// udpBatch is how many datagrams one recvmmsg/sendmmsg moves. Under load
// a batch amortises the system call over many queries; when idle a
// batch returns with the one query there is.
const udpBatch = 32

// maxQuery is the largest query read; longer datagrams arrive truncated
// (MSG_TRUNC) and are dropped as malformed. Real queries are a few
// hundred bytes even with EDNS options.
const maxQuery = 4096

// udpWake is how often an idle reader wakes to see whether its socket
// is being closed, should the shutdown that wakes it at once fail.
const udpWake = time.Second

// yieldEvery is how often a busy reader passes through the Go scheduler
// on its own: inside the runtime's 10 ms preemption period (forcePreemptNS)
// with room for the monitor's own sleep.
const yieldEvery = 5 * time.Millisecond

// goyield is runtime.Gosched without the wake-up: it puts the calling
// goroutine at the back of its own P's run queue, not on the global one,
// and starts no other thread to take it (see the top of this file). The
// runtime keeps it for outside callers (gVisor among them) with this
// signature, go.dev/issue/67401.
//
//go:linkname goyield runtime.goyield
func goyield()

// udpSocket is a bound UDP socket in blocking mode, outside the netpoller.
type udpSocket struct {
	fd    int
	local string // the bound address, host:port

	mu      sync.Mutex // guards serving and closed
	serving bool       // serve owns fd and closes it when it returns
	closed  bool
	stop    atomic.Bool
}

// listenUDP binds a SO_REUSEPORT UDP socket to addr (host:port; an
// empty or unspecified host is every address, IPv4 and IPv6).
func listenUDP(addr string) (*udpSocket, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	family, v6only := unix.AF_INET6, 1
	var sa unix.Sockaddr
	switch ip := ua.IP; {
	case ip == nil || ip.IsUnspecified() && ip.To4() == nil:
		v6only = 0
		sa = &unix.SockaddrInet6{Port: ua.Port}
	case ip.To4() != nil:
		family = unix.AF_INET
		sa4 := &unix.SockaddrInet4{Port: ua.Port}
		copy(sa4.Addr[:], ip.To4())
		sa = sa4
	default:
		sa6 := &unix.SockaddrInet6{Port: ua.Port}
		copy(sa6.Addr[:], ip.To16())
		if ua.Zone != "" {
			ifi, err := net.InterfaceByName(ua.Zone)
			if err != nil {
				return nil, err
			}
			sa6.ZoneId = uint32(ifi.Index)
		}
		sa = sa6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	setup := func() error {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fmt.Errorf("SO_REUSEPORT: %w", err)
		}
		if family == unix.AF_INET6 {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only); err != nil {
				return fmt.Errorf("IPV6_V6ONLY: %w", err)
			}
		}
		// A deep receive buffer absorbs bursts while the thread is
		// descheduled; the kernel caps it at net.core.rmem_max.
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		tv := unix.NsecToTimeval(int64(udpWake))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return fmt.Errorf("SO_RCVTIMEO: %w", err)
		}
		if err := unix.Bind(fd, sa); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
		return nil
	}
	if err := setup(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("getsockname: %w", err)
	}
	return &udpSocket{fd: fd, local: sockaddrString(bound)}, nil
}

func sockaddrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String()
	}
	return ""
}

// addr is the bound address, host:port.
func (u *udpSocket) addr() string { return u.local }

// close stops the reader (waking it from recvmmsg) or, if none runs,
// closes the socket. The reader closes the socket itself on its way
// out, so a file descriptor number is never reused under it.
func (u *udpSocket) close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return
	}
	u.closed = true
	u.stop.Store(true)
	if u.serving {
		// Wakes a recvmmsg or sendmmsg blocked on the socket; it fails
		// with ENOTCONN on an unconnected UDP socket, but wakes it all
		// the same.
		unix.Shutdown(u.fd, unix.SHUT_RDWR)
		return
	}
	unix.Close(u.fd)
}

// mmsghdr is struct mmsghdr from <sys/socket.h>; Go's alignment pads it
// exactly as C does on every Linux architecture.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// udpWorker holds one reader's buffers. The reply goes to the address
// the query came from, reusing the kernel's sockaddr bytes without
// parsing them.
type udpWorker struct {
	fd    int
	st    *stats
	in    [udpBatch]mmsghdr
	inIov [udpBatch]unix.Iovec
	names [udpBatch]unix.RawSockaddrInet6 // big enough for IPv4 and IPv6
	qbuf  [udpBatch][maxQuery]byte
	out   [udpBatch]mmsghdr
	oIov  [udpBatch]unix.Iovec
	obuf  [udpBatch][]byte
	used  int // headers the last recvmmsg filled
}

// serveUDP answers queries on one socket on a thread of its own until
// the socket is closed.
func (s *Server) serveUDP(u *udpSocket, st *stats) {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return
	}
	u.serving = true
	u.mu.Unlock()
	defer unix.Close(u.fd)

	w := &udpWorker{fd: u.fd, st: st}
	for i := range udpBatch {
		w.inIov[i].Base = &w.qbuf[i][0]
		w.inIov[i].SetLen(maxQuery)
		w.in[i].hdr.Name = (*byte)(unsafe.Pointer(&w.names[i]))
		w.in[i].hdr.Iov = &w.inIov[i]
		w.in[i].hdr.SetIovlen(1)
		w.in[i].hdr.Namelen = uint32(unsafe.Sizeof(w.names[i]))
		w.obuf[i] = make([]byte, 0, max(s.udpSize(), 512))
		w.out[i].hdr.Iov = &w.oIov[i]
		w.out[i].hdr.SetIovlen(1)
	}
	var yielded time.Duration
	for !u.stop.Load() {
		n, errno := w.recv()
		if errno != 0 || n <= 0 {
			continue // EAGAIN (the wake-up timeout), EINTR, or shut down
		}
		start := monotonic()
		if start-yielded > yieldEvery {
			goyield()
			yielded = start
		}
		k := 0
		for i := range n {
			m := &w.in[i]
			if m.hdr.Flags&unix.MSG_TRUNC != 0 {
				st.drops[dropMalformed].Add(1)
				continue
			}
			resp := s.answerUDP(w.qbuf[i][:m.len], w.obuf[i], w.source(i), st)
			if resp == nil {
				continue
			}
			o := &w.out[k]
			o.hdr.Name = m.hdr.Name
			o.hdr.Namelen = m.hdr.Namelen
			w.oIov[k].Base = &resp[0]
			w.oIov[k].SetLen(len(resp))
			k++
		}
		w.send(k)
		st.observeN(monotonic()-start, k)
	}
}

// epoch is what monotonic counts from.
var epoch = time.Now()

// monotonic reads the monotonic clock only (one vDSO call; time.Now
// also reads the wall clock).
func monotonic() time.Duration { return time.Since(epoch) }

// recv reads up to udpBatch datagrams, sleeping in the kernel until the
// first arrives. The kernel writes the name length and flags of only the
// headers it fills, so only those of the last batch (w.used) are reset:
// when idle that is one header, not all of them, fewer cache lines to
// bring in on a wake-up.
func (w *udpWorker) recv() (int, syscall.Errno) {
	for i := range w.used {
		w.in[i].hdr.Namelen = uint32(unsafe.Sizeof(w.names[i]))
		w.in[i].hdr.Flags = 0
	}
	w.used = 0
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(w.fd), uintptr(unsafe.Pointer(&w.in[0])), udpBatch, unix.MSG_WAITFORONE, 0, 0)
	if e == 0 {
		w.used = int(r)
	}
	return int(r), e
}

// send writes the first k prepared answers, skipping any that fail. It
// never waits (MSG_DONTWAIT: an answer the socket has no room for is
// dropped, as a full queue drops a query), so it bypasses the runtime's
// system call bookkeeping (RawSyscall6).
func (w *udpWorker) send(k int) {
	for off := 0; off < k; {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(w.fd), uintptr(unsafe.Pointer(&w.out[off])), uintptr(k-off), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case e == unix.EINTR:
			continue
		case e == unix.EPIPE || e == unix.EBADF || e == unix.EAGAIN:
			// Shut down, or no room: the rest is not sent.
			w.st.drops[dropWrite].Add(uint64(k - off))
			return
		case e != 0 || int(r) <= 0:
			// The first message failed (e.g. an unreachable source):
			// drop it and go on with the rest.
			w.st.drops[dropWrite].Add(1)
			off++
		default:
			off += int(r)
		}
	}
}

// source is the address datagram i came from.
func (w *udpWorker) source(i int) netip.Addr {
	sa := &w.names[i]
	switch sa.Family {
	case unix.AF_INET:
		return netip.AddrFrom4((*unix.RawSockaddrInet4)(unsafe.Pointer(sa)).Addr)
	case unix.AF_INET6:
		return netip.AddrFrom16(sa.Addr).Unmap()
	}
	return netip.Addr{}
}

// raiseProcs makes sure one P stays idle while every UDP reader sleeps
// in recvmmsg (see the top of this file). It only ever raises
// GOMAXPROCS.
func raiseProcs(readers int) {
	want := cpus + readers
	if runtime.GOMAXPROCS(0) < want {
		runtime.GOMAXPROCS(want)
	}
}
