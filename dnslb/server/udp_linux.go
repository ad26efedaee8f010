package server

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP on Linux: each socket has a reader goroutine that waits for
// queries in one of two ways, and moves between them with the load.
//
// Busy, the reader blocks its OS thread in recvmmsg (MSG_WAITFORONE),
// answers the batch and sends the answers with one sendmmsg: two system
// calls per wake-up, and under load the batch grows by itself, since
// everything queued while a batch was being answered is read by the next
// recvmmsg. The reader keeps its P while it sleeps in the system call;
// Start raises GOMAXPROCS so one P is always idle, and the runtime then
// leaves a sleeping reader's P alone (with no idle P it would take it
// back, and wake a thread to do so, on every query). The reader passes
// through the scheduler every few milliseconds by itself (yieldEvery),
// so the runtime's monitor never preempts it. It yields with the
// runtime's goyield, not runtime.Gosched, which would wake the idle P's
// thread to take it over.
//
// But a P held in a system call keeps the runtime's monitor thread
// (sysmon) awake: it wakes every 10 ms to watch it, and once the call
// has slept 10 ms it takes the P back; the next query's return from the
// call then wakes the monitor from its deep sleep and sets it polling
// every 20 µs for a millisecond and more. At 20 queries a second that
// was 60 thread wake-ups per query. So when queries come slower than
// blockAbove a second, the reader waits in Go's netpoller instead: the
// socket is non-blocking, the reader parks until epoll reports a
// datagram, reads with a raw system call (a recvmmsg through the
// runtime's system-call entry would wake the sleeping monitor), answers
// and parks again. That costs an epoll_wait or two more per wake-up, and
// no monitor activity at all. A batch that did not fill means the queue
// was empty when it was read, so the reader parks without the read that
// would find nothing: the edge-triggered epoll reports any datagram that
// came since. The reader measures its wake-ups over udpWindow and
// switches at blockAbove and pollBelow a second (apart, so a load near
// one of them does not flip the mode on every window); a blocking read
// that times out (udpWindow with no query) goes back to the netpoller.

// udpBatch is how many datagrams one recvmmsg/sendmmsg moves. Under load
// a batch amortises the system call over many queries; when idle a
// batch returns with the one query there is.
const udpBatch = 32

// maxQuery is the largest query read; longer datagrams arrive truncated
// (MSG_TRUNC) and are dropped as malformed. Real queries are a few
// hundred bytes even with EDNS options.
const maxQuery = 4096

// udpWindow is how long a reader counts its wake-ups before it decides
// how to wait, and how long a blocking read sleeps (SO_RCVTIMEO) before
// it gives the socket back to the netpoller.
const udpWindow = 100 * time.Millisecond

// blockAbove and pollBelow are the wake-up rates (a second) above which
// a reader blocks in recvmmsg and below which it waits in the netpoller.
// The monitor's 100 wake-ups a second cost about as much as the
// netpoller's extra system calls at a few hundred queries a second.
const (
	blockAbove = 700
	pollBelow  = 350
)

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

// udpSocket is a bound UDP socket. It is created non-blocking; its
// reader puts it in the netpoller and switches it to blocking mode for
// as long as it blocks in recvmmsg.
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
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_UDP)
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
		tv := unix.NsecToTimeval(int64(udpWindow))
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

// close stops the reader (waking it from recvmmsg or the netpoller) or, if none runs,
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
	used  int           // headers the last recvmmsg filled
	start time.Duration // when the last batch was read (monotonic)
}

// init points the headers at the worker's buffers; answers are built in
// buffers of size bytes.
func (w *udpWorker) init(size int) {
	for i := range udpBatch {
		w.inIov[i].Base = &w.qbuf[i][0]
		w.inIov[i].SetLen(maxQuery)
		w.in[i].hdr.Name = (*byte)(unsafe.Pointer(&w.names[i]))
		w.in[i].hdr.Iov = &w.inIov[i]
		w.in[i].hdr.SetIovlen(1)
		w.in[i].hdr.Namelen = uint32(unsafe.Sizeof(w.names[i]))
		w.obuf[i] = make([]byte, 0, max(size, 512))
		w.out[i].hdr.Iov = &w.oIov[i]
		w.out[i].hdr.SetIovlen(1)
	}
}

// serveUDP answers queries on one socket until the socket is closed,
// waiting in the netpoller or blocked in recvmmsg as the load asks (see
// the top of this file).
func (s *Server) serveUDP(u *udpSocket, st *stats) {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return
	}
	u.serving = true
	u.mu.Unlock()
	defer unix.Close(u.fd)

	r := &udpReader{s: s, u: u, w: &udpWorker{fd: u.fd, st: st}}
	r.w.init(s.udpSize())
	r.window = monotonic()
	for !u.stop.Load() {
		if r.blocking {
			r.block()
		} else if err := r.netpoll(); err != nil {
			s.log.Error("UDP reader cannot wait in the netpoller; blocking in recvmmsg from now on", "udp", u.local, "err", err)
			r.blocking, r.onlyBlock = true, true
		}
	}
}

// netpoll answers queries waiting in the Go netpoller until the load
// rises or the socket is being closed. It registers a duplicate of the
// socket's descriptor and closes it on the way out, which takes the
// socket out of epoll again: a blocking reader's socket must not be in
// it, or every datagram would also wake the thread sleeping in
// epoll_wait.
func (r *udpReader) netpoll() error {
	dup, err := unix.FcntlInt(uintptr(r.u.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("duplicating the socket: %w", err)
	}
	// O_NONBLOCK belongs to the socket, not the descriptor: both are
	// non-blocking now, which os.NewFile needs to use the netpoller.
	r.u.setBlocking(false)
	f := os.NewFile(uintptr(dup), r.u.local)
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	// poll returns true only to stop or to block; a shut-down socket
	// wakes the netpoller.
	if err := rc.Read(r.poll); err != nil {
		return err
	}
	return nil
}

// udpReader is one socket's reader: its buffers and how it waits.
type udpReader struct {
	s *Server
	u *udpSocket
	w *udpWorker

	blocking  bool          // blocked in recvmmsg, not in the netpoller
	onlyBlock bool          // the netpoller failed: never go back to it
	window    time.Duration // when the current count of wake-ups began
	wakes     int           // wake-ups since window
	yielded   time.Duration // when a blocking reader last yielded
}

// poll is the netpoller's read callback: it answers what is queued and
// returns false to park until epoll reports more, or true to leave the
// netpoller (to stop, or to block in recvmmsg).
func (r *udpReader) poll(uintptr) bool {
	for !r.u.stop.Load() {
		n, errno := r.w.recvNow()
		if errno != 0 || n <= 0 {
			// EAGAIN: nothing queued. Anything else (a shut-down
			// socket) is looked at by the caller after the wake-up.
			return false
		}
		r.answer(n)
		if r.blocking {
			return true
		}
		if n < udpBatch {
			// The queue was empty when read: park without the read
			// that would find nothing (see the top of this file).
			return false
		}
	}
	return true
}

// block answers queries blocked in recvmmsg until the load drops, the
// read times out or the socket is being closed.
func (r *udpReader) block() {
	r.u.setBlocking(true)
	for !r.u.stop.Load() {
		n, errno := r.w.recv()
		if errno == unix.EAGAIN {
			if r.onlyBlock {
				continue
			}
			// udpWindow without a query: the wake-ups counted so far
			// were all before it.
			r.switchTo(false)
			r.window, r.wakes = monotonic(), 0
		} else if errno != 0 || n <= 0 {
			continue // EINTR, or shut down
		} else {
			if r.w.start-r.yielded > yieldEvery {
				goyield()
				r.yielded = r.w.start
			}
			r.answer(n)
		}
		if !r.blocking {
			return
		}
	}
}

// answer answers the batch of n queries just read, counts the wake-up,
// and decides at the end of each udpWindow how the reader waits next.
func (r *udpReader) answer(n int) {
	w, st := r.w, r.w.st
	k := 0
	for i := range n {
		m := &w.in[i]
		if m.hdr.Flags&unix.MSG_TRUNC != 0 {
			st.drops[dropMalformed].Add(1)
			continue
		}
		resp := r.s.answerUDP(w.qbuf[i][:m.len], w.obuf[i], w.source(i), st)
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
	st.observeN(monotonic()-w.start, k)

	r.wakes++
	if span := w.start - r.window; span >= udpWindow {
		rate := int(int64(r.wakes) * int64(time.Second) / int64(span))
		switch {
		case !r.blocking && rate >= blockAbove:
			r.switchTo(true)
		case r.blocking && rate < pollBelow && !r.onlyBlock:
			r.switchTo(false)
		}
		r.window, r.wakes = w.start, 0
	}
}

// switchTo records that the reader waits blocked in recvmmsg (true) or
// in the netpoller from its next wait on.
func (r *udpReader) switchTo(blocking bool) {
	r.blocking = blocking
	r.w.st.waitSwitches.Add(1)
}

// setBlocking puts the socket in blocking mode for recvmmsg to sleep in,
// or back in non-blocking mode for the netpoller.
func (u *udpSocket) setBlocking(on bool) {
	unix.SetNonblock(u.fd, !on)
}

// epoch is what monotonic counts from.
var epoch = time.Now()

// monotonic reads the monotonic clock only (one vDSO call; time.Now
// also reads the wall clock).
func monotonic() time.Duration { return time.Since(epoch) }

// recv reads up to udpBatch datagrams, sleeping in the kernel until the
// first arrives (the socket is in blocking mode) or udpWindow passes.
func (w *udpWorker) recv() (int, syscall.Errno) {
	w.reset()
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(w.fd), uintptr(unsafe.Pointer(&w.in[0])), udpBatch, unix.MSG_WAITFORONE, 0, 0)
	return w.read(r, e)
}

// recvNow reads the datagrams queued, up to udpBatch, and never waits.
// A call that cannot block needs none of the runtime's system call
// bookkeeping (RawSyscall6), whose entry would also wake the runtime's
// sleeping monitor (see the top of this file).
func (w *udpWorker) recvNow() (int, syscall.Errno) {
	w.reset()
	r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(w.fd), uintptr(unsafe.Pointer(&w.in[0])), udpBatch, unix.MSG_DONTWAIT, 0, 0)
	return w.read(r, e)
}

// reset readies the headers for a read. The kernel writes the name
// length and flags of only the headers it fills, so only those of the
// last batch (w.used) are reset: when idle that is one header, not all
// of them, fewer cache lines to bring in on a wake-up.
func (w *udpWorker) reset() {
	for i := range w.used {
		w.in[i].hdr.Namelen = uint32(unsafe.Sizeof(w.names[i]))
		w.in[i].hdr.Flags = 0
	}
	w.used = 0
}

// read records a recvmmsg's outcome: how many headers it filled, and
// when.
func (w *udpWorker) read(r uintptr, e syscall.Errno) (int, syscall.Errno) {
	if e != 0 {
		return 0, e
	}
	w.used = int(r)
	w.start = monotonic()
	return int(r), 0
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
