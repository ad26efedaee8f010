//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The fixed-rate load generator. One blocking UDP socket, connected to
// the server; a sender thread paces queries at the rate with absolute
// clock_nanosleep (timer slack 1 ns), and a receiver thread reads the
// answers with blocking recvmmsg. Latency is the kernel's receive
// timestamp of the answer (SO_TIMESTAMPNS) minus the clock read just
// before the query was sent, so the generator's own wake-up delay after
// an answer arrives is not counted. Both threads are OS threads locked to
// their goroutines and never park in the Go scheduler, so the generator
// paces evenly on the one CPU it is pinned to.

// query kinds of the mix: what the answer must be.
const (
	kindA      = iota // NOERROR with answers
	kindNoData        // NOERROR, no answers (AAAA of an IPv4-only name)
	kindNX            // NXDOMAIN
)

// mixEntry is one query of the mix.
type mixEntry struct {
	name  string
	qtype uint16
	kind  uint8
}

// mix is the query mix, ten entries that repeat: 80% A (six for the
// load-balanced name, two for static names), 10% AAAA NODATA, 10%
// NXDOMAIN. NX names cycle through nxNames, so a cache in front of
// the server (there is none here) would not hold them all.
func mix(n int) mixEntry {
	switch n % 10 {
	case 3:
		return mixEntry{"mail.example.org.", 1, kindA}
	case 6:
		return mixEntry{"api.example.org.", 1, kindA}
	case 8:
		return mixEntry{"www.example.org.", 28, kindNoData}
	case 9:
		return mixEntry{nxNames[(n/10)%len(nxNames)], 1, kindNX}
	}
	return mixEntry{"www.example.org.", 1, kindA}
}

var nxNames = []string{
	"nope.example.org.", "old.example.org.", "shop.example.org.", "vpn.example.org.",
	"ftp.example.org.", "dev.example.org.", "cdn.example.org.", "m.example.org.",
}

// encodeQuery builds a query with EDNS0 (UDP size 1232, no options), as
// today's resolvers send, ID 0.
func encodeQuery(name string, qtype uint16) []byte {
	b := []byte{0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1}
	for _, l := range splitLabels(name) {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, qtype)
	b = binary.BigEndian.AppendUint16(b, 1)
	// OPT: root, type 41, UDP size 1232, ext rcode/version/flags 0, rdlen 0.
	b = append(b, 0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0)
	return b
}

func splitLabels(name string) []string {
	var out []string
	start := 0
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			if i > start {
				out = append(out, name[start:i])
			}
			start = i + 1
		}
	}
	if start < len(name) {
		out = append(out, name[start:])
	}
	return out
}

// loadResult is what one fixed-rate run measured.
type loadResult struct {
	sent, answered, wrong, lost int
	sendErrors                  int
	latencies                   []int64 // nanoseconds, sorted
	elapsed                     time.Duration
}

func (r loadResult) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(p * float64(len(r.latencies)-1))
	return time.Duration(r.latencies[i])
}

// batch is how many answers one recvmmsg takes at most.
const batch = 64

type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// fixedRate sends rate queries per second to 127.0.0.1:port for d, then
// waits grace for the last answers. Queries not answered by then are
// lost.
func fixedRate(port, rate int, d, grace time.Duration) (loadResult, error) {
	var res loadResult
	if rate <= 0 || rate > 1_000_000 {
		return res, fmt.Errorf("rate %d is out of range", rate)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return res, err
	}
	defer unix.Close(fd)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 8<<20)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return res, fmt.Errorf("SO_TIMESTAMPNS: %w", err)
	}
	// The receiver wakes at least this often to see that sending is over.
	tv := unix.Timeval{Usec: 50_000}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return res, err
	}

	// Every ID has a slot: when its query was sent (0: none outstanding)
	// and what kind of answer it needs. IDs wrap after 65536 queries,
	// well over a second even at 50k q/s, longer than grace.
	var sentAt [65536]atomic.Int64
	var kinds [65536]uint8
	total := int(int64(rate) * int64(d) / int64(time.Second))
	lat := make([]int64, 0, total)
	var done atomic.Bool
	var wg sync.WaitGroup
	var recvErr error
	var answered, wrong int
	wg.Go(func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		answered, wrong, recvErr = receive(fd, &sentAt, &kinds, &lat, &done)
	})

	templates := make([][]byte, 10*len(nxNames))
	for i := range templates {
		m := mix(i)
		templates[i] = encodeQuery(m.name, m.qtype)
	}
	interval := time.Second / time.Duration(rate)
	var sendErrors int
	sendStart := time.Now()
	func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
		var mono unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
		start := mono.Nano()
		for n := range total {
			due := start + int64(n)*int64(interval)
			unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
			if mono.Nano() < due {
				ts := unix.NsecToTimespec(due)
				for unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &ts, nil) == unix.EINTR {
				}
			}
			q := templates[n%len(templates)]
			id := uint16(n)
			binary.BigEndian.PutUint16(q, id)
			kinds[id] = mix(n % len(templates)).kind
			var rt unix.Timespec
			unix.ClockGettime(unix.CLOCK_REALTIME, &rt)
			sentAt[id].Store(rt.Nano())
			if _, err := unix.Write(fd, q); err != nil {
				sendErrors++
				sentAt[id].Store(0)
			}
		}
	}()
	res.elapsed = time.Since(sendStart)
	time.Sleep(grace)
	done.Store(true)
	wg.Wait()
	if recvErr != nil {
		return res, recvErr
	}
	res.sent = total - sendErrors
	res.sendErrors = sendErrors
	res.answered, res.wrong = answered, wrong
	res.lost = res.sent - answered
	slices.Sort(lat)
	res.latencies = lat
	return res, nil
}

// receive reads answers until done is set, recording latencies.
func receive(fd int, sentAt *[65536]atomic.Int64, kinds *[65536]uint8, lat *[]int64, done *atomic.Bool) (answered, wrong int, err error) {
	var (
		msgs [batch]mmsghdr
		iovs [batch]unix.Iovec
		bufs [batch][1500]byte
		oobs [batch][64]byte
	)
	for i := range batch {
		iovs[i].Base = &bufs[i][0]
		iovs[i].SetLen(len(bufs[i]))
		msgs[i].hdr.Iov = &iovs[i]
		msgs[i].hdr.SetIovlen(1)
		msgs[i].hdr.Control = &oobs[i][0]
	}
	for !done.Load() {
		for i := range batch {
			msgs[i].hdr.SetControllen(len(oobs[i]))
			msgs[i].hdr.Flags = 0
		}
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), batch, unix.MSG_WAITFORONE, 0, 0)
		if e != 0 {
			if e == unix.EAGAIN || e == unix.EINTR || e == unix.ECONNREFUSED {
				continue
			}
			return answered, wrong, fmt.Errorf("recvmmsg: %w", e)
		}
		for i := range int(r) {
			m := &msgs[i]
			b := bufs[i][:m.len]
			if len(b) < 12 {
				wrong++
				continue
			}
			id := binary.BigEndian.Uint16(b)
			sent := sentAt[id].Swap(0)
			if sent == 0 {
				continue // late or duplicate
			}
			at, ok := rxTime(oobs[i][:m.hdr.Controllen])
			if !ok {
				return answered, wrong, errors.New("an answer came without a receive timestamp")
			}
			answered++
			*lat = append(*lat, at-sent)
			if !answerFits(b, kinds[id]) {
				wrong++
			}
		}
	}
	return answered, wrong, nil
}

// rxTime reads the SCM_TIMESTAMPNS control message: the kernel's receive
// time, CLOCK_REALTIME nanoseconds.
func rxTime(oob []byte) (int64, bool) {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if int(h.Len) < unix.SizeofCmsghdr || int(h.Len) > len(oob) {
			return 0, false
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SO_TIMESTAMPNS && int(h.Len) >= unix.SizeofCmsghdr+16 {
			ts := (*unix.Timespec)(unsafe.Pointer(&oob[unix.SizeofCmsghdr]))
			return ts.Nano(), true
		}
		step := (int(h.Len) + 7) &^ 7
		if step > len(oob) {
			break
		}
		oob = oob[step:]
	}
	return 0, false
}

// answerFits checks the answer's rcode and answer count against the kind
// of query, so a misconfigured server cannot win by answering wrongly.
func answerFits(b []byte, kind uint8) bool {
	flags := binary.BigEndian.Uint16(b[2:])
	rcode := flags & 0xF
	ancount := binary.BigEndian.Uint16(b[6:])
	if flags&(1<<15) == 0 || flags&(1<<9) != 0 { // not a response, or truncated
		return false
	}
	switch kind {
	case kindA:
		return rcode == 0 && ancount > 0
	case kindNoData:
		return rcode == 0 && ancount == 0
	case kindNX:
		return rcode == 3
	}
	return false
}
