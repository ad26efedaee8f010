// Package dnsperf reads the summary Debian's dnsperf prints after a run,
// for the benchmarks that drive it (bench/dns, bench/scale).
package dnsperf

import (
	"bufio"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Summary is what a dnsperf run reports.
type Summary struct {
	Completed float64 // queries answered
	Lost      int     // queries that got no answer in time
	QPS       float64 // queries answered per second
}

var line = regexp.MustCompile(`^\s*(Queries completed|Queries lost|Queries per second):\s+([0-9.]+)`)

// Parse reads dnsperf's output; a run that completed no queries is an
// error that quotes the output.
func Parse(out []byte) (Summary, error) {
	var s Summary
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, _ := strconv.ParseFloat(m[2], 64)
		switch m[1] {
		case "Queries completed":
			s.Completed = v
		case "Queries lost":
			s.Lost = int(v)
		case "Queries per second":
			s.QPS = v
		}
	}
	if s.Completed == 0 {
		return s, fmt.Errorf("dnsperf completed no queries:\n%s", out)
	}
	return s, nil
}
