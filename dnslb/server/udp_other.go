//go:build !linux

package server

import (
	"errors"
	"net"
	"time"
)

// serveUDP answers queries on one socket until it is closed, one
// datagram per system call (Linux uses recvmmsg/sendmmsg instead).
func (s *Server) serveUDP(c *net.UDPConn, st *stats) {
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
