package server

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpBatch is how many datagrams one recvmmsg/sendmmsg moves. Under load
// a batch amortises the syscall and the scheduler's wake-up over many
// queries; when idle a batch returns with the one query there is.
const udpBatch = 32

// maxQuery is the largest query read; longer datagrams arrive truncated
// (MSG_TRUNC) and are dropped as malformed. Real queries are a few
// hundred bytes even with EDNS options.
const maxQuery = 4096

// mmsghdr is struct mmsghdr from <sys/socket.h>; Go's alignment pads it
// exactly as C does on every Linux architecture.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// udpWorker serves one socket with recvmmsg/sendmmsg. The reply goes to
// the address the query came from, reusing the kernel's sockaddr bytes
// without parsing them.
type udpWorker struct {
	s     *Server
	conn  *net.UDPConn
	raw   syscall.RawConn
	st    *stats
	in    [udpBatch]mmsghdr
	inIov [udpBatch]unix.Iovec
	names [udpBatch]unix.RawSockaddrInet6 // big enough for IPv4 and IPv6
	qbuf  [udpBatch][maxQuery]byte
	out   [udpBatch]mmsghdr
	oIov  [udpBatch]unix.Iovec
	obuf  [udpBatch][]byte

	// The raw-conn callbacks, made once: a closure built per call would
	// escape to the heap on every system call. They pass their results
	// through n, errno and the send window [off, k).
	recvFn, sendFn func(fd uintptr) bool
	n              int
	errno          syscall.Errno
	off, k         int
}

// serveUDP answers queries on one socket until it is closed.
func (s *Server) serveUDP(c *net.UDPConn, st *stats) {
	raw, err := c.SyscallConn()
	if err != nil {
		s.log.Error("UDP socket has no raw access", "op", "serve", "err", err)
		return
	}
	w := &udpWorker{s: s, conn: c, raw: raw, st: st}
	w.recvFn, w.sendFn = w.recvmmsg, w.sendmmsg
	for i := range udpBatch {
		w.inIov[i].Base = &w.qbuf[i][0]
		w.inIov[i].SetLen(maxQuery)
		w.in[i].hdr.Name = (*byte)(unsafe.Pointer(&w.names[i]))
		w.in[i].hdr.Iov = &w.inIov[i]
		w.in[i].hdr.SetIovlen(1)
		w.obuf[i] = make([]byte, 0, max(s.udpSize(), 512))
		w.out[i].hdr.Iov = &w.oIov[i]
		w.out[i].hdr.SetIovlen(1)
	}
	for {
		n, err := w.recv()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		start := time.Now()
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
		elapsed := time.Since(start)
		for range k {
			st.observe(elapsed)
		}
	}
}

// recv reads up to udpBatch datagrams, waiting for the first.
func (w *udpWorker) recv() (int, error) {
	for i := range udpBatch {
		w.in[i].hdr.Namelen = uint32(unsafe.Sizeof(w.names[i]))
		w.in[i].hdr.Flags = 0
	}
	if err := w.raw.Read(w.recvFn); err != nil {
		return 0, err
	}
	if w.errno != 0 {
		return 0, w.errno
	}
	return w.n, nil
}

func (w *udpWorker) recvmmsg(fd uintptr) bool {
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&w.in[0])), udpBatch, 0, 0, 0)
	if e == unix.EAGAIN || e == unix.EINTR {
		return false // wait until readable
	}
	w.n, w.errno = int(r), e
	return true
}

// send writes the first k prepared answers, skipping any that fail.
func (w *udpWorker) send(k int) {
	w.off, w.k = 0, k
	for w.off < w.k {
		if err := w.raw.Write(w.sendFn); err != nil {
			w.st.drops[dropWrite].Add(uint64(w.k - w.off))
			return
		}
		if w.errno != 0 || w.n <= 0 {
			// The first message failed (e.g. an unreachable source):
			// drop it and go on with the rest.
			w.st.drops[dropWrite].Add(1)
			w.off++
			continue
		}
		w.off += w.n
	}
}

func (w *udpWorker) sendmmsg(fd uintptr) bool {
	r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.out[w.off])), uintptr(w.k-w.off), 0, 0, 0)
	if e == unix.EAGAIN || e == unix.EINTR {
		return false // wait until writable
	}
	w.n, w.errno = int(r), e
	return true
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
