package heartbeat_test

import (
	"strings"
	"testing"

	"github.com/crawlmesh/crawlmesh/pkg/heartbeat"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// A Beater of another role would write heartbeats every reader drops
// (mesh.DecodeHeartbeat), and then take its own key for a foreign one.
func TestNewRefusesUnknownRole(t *testing.T) {
	for _, role := range []string{"", "Worker", "scheduler"} {
		if _, err := heartbeat.New(nil, "w1", role); err == nil || !strings.Contains(err.Error(), "role") {
			t.Errorf("New(role %q) = %v, want an error about the role", role, err)
		}
	}
	for _, role := range []string{mesh.RoleMaster, mesh.RoleWorker, mesh.RoleAgent} {
		if _, err := heartbeat.New(nil, "w1", role); err != nil {
			t.Errorf("New(role %q) = %v", role, err)
		}
	}
}
