//go:build !linux

package server

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// udpSocket is a bound UDP socket (Linux reads its sockets on threads of
// their own with recvmmsg instead).
type udpSocket struct{ c *net.UDPConn }

// reusePort lets several sockets bind one address (SO_REUSEPORT).
var reusePort = net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}}

func listenUDP(addr string) (*udpSocket, error) {
	c, err := reusePort.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		return nil, err
	}
	uc := c.(*net.UDPConn)
	uc.SetReadBuffer(4 << 20)
	return &udpSocket{c: uc}, nil
}

func (u *udpSocket) addr() string { return u.c.LocalAddr().String() }

func (u *udpSocket) close() { u.c.Close() }

func raiseProcs(int) {}

// serveUDP answers queries on one socket until it is closed, one
// datagram per system call.
func (s *Server) serveUDP(u *udpSocket, st *stats) {
	c := u.c
	buf := make([]byte, 65535)
	out := make([]byte, 0, 65535)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		start := time.Now()
		resp := s.answerUDP(buf[:n], out, from.Addr().Unmap(), st)
		if resp == nil {
			continue
		}
		if _, err := c.WriteToUDPAddrPort(resp, from); err != nil {
			st.drops[dropWrite].Add(1)
			continue
		}
		st.observe(time.Since(start))
	}
}
