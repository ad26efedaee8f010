package cluster

import (
	"slices"
	"testing"
)

func TestMetricValue(t *testing.T) {
	text := "# HELP appnode_fanout_outbox_entries Inbox deliveries waiting.\n" +
		"# TYPE appnode_fanout_outbox_entries gauge\n" +
		"appnode_fanout_outbox_entries_total 9\n" +
		"appnode_fanout_outbox_entries 3\n"
	if v, err := metricValue(text, "appnode_fanout_outbox_entries"); err != nil || v != 3 {
		t.Errorf("metricValue = %v, %v; want 3", v, err)
	}
	if _, err := metricValue(text, "appnode_missing"); err == nil {
		t.Error("no error for a missing metric")
	}
}

func TestMemberEnv(t *testing.T) {
	got := memberEnv([]string{"PATH=/bin", "APPNODE_LISTEN=0.0.0.0:1", "GOGC=100", "XAPPNODE_X=1"})
	want := []string{"PATH=/bin", "GOGC=100", "XAPPNODE_X=1"}
	if !slices.Equal(got, want) {
		t.Errorf("memberEnv = %q, want %q", got, want)
	}
}
