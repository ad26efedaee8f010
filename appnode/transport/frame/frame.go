// Package frame is the member link's framing (package transport): frames,
// all integers big-endian:
//
//	uint32 length of what follows (id and payload)
//	uint64 id
//	payload
//
// A request's payload is uvarint-prefixed strings: method, request URI,
// the client's address, the header count, then name and value pairs;
// the rest is the body. An answer's payload is the status code
// (uvarint), the header count and pairs, then the body. Answers carry the
// id of their request and may come in any order.
//
// A Writer combines the frames of concurrent writers into one system
// call; Read reads one frame; the payloads are built with AppendString
// and AppendHeader and read with a Decoder.
package frame

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
)

// Max bounds one frame: a request body is small, but an answer (a
// celebrity's follower list) can be large.
const Max = 64 << 20

// Writer writes frames for many goroutines, combining them: the
// goroutine that finds no write in progress writes everything queued so
// far in one system call, including frames queued while it wrote.
// NewWriter returns a Writer on c.
func NewWriter(c net.Conn) *Writer { return &Writer{c: c} }

type Writer struct {
	mu      sync.Mutex
	c       net.Conn
	queued  []byte
	spare   []byte
	writing bool
	err     error
}

// Write queues one frame (id and payload, given in two parts) and
// writes the queue unless another goroutine is writing it already.
func (fw *Writer) Write(id uint64, a, b []byte) error {
	if err := fw.Enqueue(id, a, b); err != nil {
		return err
	}
	return fw.Flush()
}

// Enqueue appends one frame to the queue.
func (fw *Writer) Enqueue(id uint64, a, b []byte) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.err != nil {
		return fw.err
	}
	fw.queued = binary.BigEndian.AppendUint32(fw.queued, uint32(8+len(a)+len(b)))
	fw.queued = binary.BigEndian.AppendUint64(fw.queued, id)
	fw.queued = append(fw.queued, a...)
	fw.queued = append(fw.queued, b...)
	return nil
}

// Flush writes the queue, frames queued meanwhile included, unless a
// write is in progress: that writer takes what was queued on its next
// round. A write error closes the writer for good; the connection's
// reader sees the broken connection and fails what is waiting.
func (fw *Writer) Flush() error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.writing {
		return nil
	}
	fw.writing = true
	for len(fw.queued) > 0 && fw.err == nil {
		buf := fw.queued
		fw.queued = fw.spare[:0]
		fw.mu.Unlock()
		_, err := fw.c.Write(buf)
		fw.mu.Lock()
		fw.spare = buf[:0]
		if err != nil {
			fw.err = err
		}
	}
	fw.writing = false
	if cap(fw.spare) > 1<<20 {
		fw.spare = nil // do not keep a huge answer's buffer
	}
	return fw.err
}

// Read reads one frame into buf (grown as needed).
func Read(r *bufio.Reader, buf []byte) (id uint64, payload []byte, err error) {
	var hdr [12]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 8 || n > Max {
		return 0, nil, fmt.Errorf("member link frame of %d bytes (at most %d)", n, Max)
	}
	id = binary.BigEndian.Uint64(hdr[4:])
	size := int(n) - 8
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, fmt.Errorf("reading a member link frame: %w", err)
	}
	return id, buf, nil
}

// AppendString appends a uvarint-prefixed string.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Decoder reads what appendString and AppendUvarint wrote.
type Decoder struct {
	b   []byte
	err error
}

// NewDecoder reads payload.
func NewDecoder(payload []byte) *Decoder { return &Decoder{b: payload} }

// Err is the first malformed value met.
func (d *Decoder) Err() error { return d.err }

// Rest is what is left after the values read.
func (d *Decoder) Rest() []byte { return d.b }

// Uvarint reads a uvarint.
func (d *Decoder) Uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("malformed member link frame")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// String reads a uvarint-prefixed string.
func (d *Decoder) String() string {
	n := d.Uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errors.New("malformed member link frame")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// Header reads a header count and its pairs.
func (d *Decoder) Header() http.Header {
	n := d.Uvarint()
	if n > uint64(len(d.b))/2 {
		d.err = errors.New("malformed member link frame")
	}
	if d.err != nil {
		return nil
	}
	h := make(http.Header, n)
	for range n {
		k, v := d.String(), d.String()
		h[k] = append(h[k], v)
	}
	return h
}

// AppendHeader appends h's pairs, less the names skip refuses, led by
// their count.
func AppendHeader(b []byte, h http.Header, skip func(string) bool) []byte {
	b = binary.AppendUvarint(b, uint64(CountHeader(h, skip)))
	return AppendPairs(b, h, skip)
}

// CountHeader counts h's values whose names skip does not refuse.
func CountHeader(h http.Header, skip func(string) bool) int {
	n := 0
	for k, vs := range h {
		if !skip(k) {
			n += len(vs)
		}
	}
	return n
}

// AppendPairs appends h's name and value pairs, less the names skip
// refuses, without the count that leads them in a frame.
func AppendPairs(b []byte, h http.Header, skip func(string) bool) []byte {
	for k, vs := range h {
		if skip(k) {
			continue
		}
		for _, v := range vs {
			b = AppendString(AppendString(b, k), v)
		}
	}
	return b
}
