package nodeconfig_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/crawlmesh/crawlmesh/pkg/nodeconfig"
)

// TestPartitionTags: --partition-tags is a comma list of server tags,
// lower-cased; a blank or wildcard tag is refused with its position, and
// tags without --replicas are refused (chosen replicas could not place 3
// copies in a tag of one server).
func TestPartitionTags(t *testing.T) {
	got, err := nodeconfig.ParseTags(" Rack-A ,rack-b")
	if err != nil || !slices.Equal(got, []string{"rack-a", "rack-b"}) {
		t.Errorf("ParseTags: %q, %v", got, err)
	}
	if got, err := nodeconfig.ParseTags(""); err != nil || got != nil {
		t.Errorf("ParseTags(\"\"): %q, %v", got, err)
	}
	for _, bad := range []string{"a,,b", "a,b c", "a,>"} {
		if _, err := nodeconfig.ParseTags(bad); err == nil || !strings.Contains(err.Error(), "tag ") {
			t.Errorf("ParseTags(%q): %v, want an error naming the tag", bad, err)
		}
	}
	n := nodeconfig.Node{ID: "m1", HeartbeatInterval: 1e9, HeartbeatTTL: 3e9, LogLevel: "info", LogFormat: "text", PartitionTags: "a,b"}
	n.NATS.URL = "nats://127.0.0.1:4222"
	if err := n.Validate(); err == nil || !strings.Contains(err.Error(), "--replicas") {
		t.Errorf("tags without --replicas: %v", err)
	}
	n.Replicas = 1
	if err := n.Validate(); err != nil {
		t.Errorf("tags with --replicas 1: %v", err)
	}
}
