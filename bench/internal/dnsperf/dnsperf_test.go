package dnsperf

import "testing"

// TestParse reads a summary as dnsperf 2.10 prints it, and refuses one
// without answers.
func TestParse(t *testing.T) {
	out := `Statistics:

  Queries sent:         1200000
  Queries completed:    1199871 (99.99%)
  Queries lost:         129 (0.01%)

  Response codes:       NOERROR 959897 (80.00%), NXDOMAIN 239974 (20.00%)
  Average packet size:  request 33, response 86
  Run time (s):         10.000123
  Queries per second:   119985.621234
`
	s, err := Parse([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if s.Completed != 1199871 || s.Lost != 129 || s.QPS < 119985 || s.QPS > 119986 {
		t.Errorf("Parse = %+v", s)
	}
	if _, err := Parse([]byte("Queries sent: 10\n  Queries completed:    0 (0.00%)\n")); err == nil {
		t.Error("a run without answers parsed without an error")
	}
}
