package frame

import (
	"bufio"
	"net"
	"strings"
	"testing"
)

func TestReadFrameLimits(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	fw := NewWriter(c1)
	go fw.Write(7, []byte("ab"), []byte("cd"))
	br := bufio.NewReader(c2)
	id, p, err := Read(br, nil)
	if err != nil || id != 7 || string(p) != "abcd" {
		t.Fatalf("Read = %d %q %v", id, p, err)
	}
	// A length beyond the limit is refused before anything is allocated.
	go c1.Write([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1})
	if _, _, err := Read(br, nil); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("oversized frame: %v", err)
	}
}
