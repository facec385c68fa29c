package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/crawlmesh/crawlmesh/pkg/clusterview"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// doctor reports an agent whose workers keep restarting: a warning, and a
// failure while one is down waiting for its next restart.
func TestDoctorAgent(t *testing.T) {
	node := func(children ...mesh.Child) clusterview.Node {
		return clusterview.Node{ID: "h1", Role: mesh.RoleAgent, Online: true, Heartbeat: mesh.Heartbeat{Children: children}}
	}
	for _, tc := range []struct {
		n    clusterview.Node
		want []string
	}{
		{node(mesh.Child{ID: "h1-1", State: mesh.ChildRunning, Restarts: 2}), []string{"ok agents agent h1: 1 worker(s), none restarting"}},
		{node(mesh.Child{ID: "h1-1", State: mesh.ChildRunning, Restarts: 3, LastExit: "exit status 1"}),
			[]string{"warn agents agent h1: worker h1-1 restarted 3 times (last: exit status 1), now running"}},
		{node(mesh.Child{ID: "h1-1", State: mesh.ChildRunning}, mesh.Child{ID: "h1-2", State: mesh.ChildBackoff, Restarts: 7, LastExit: "signal: killed"}),
			[]string{"fail agents agent h1: worker h1-2 restarted 7 times (last: signal: killed), now backoff: its output is in the agent's log, marked child=h1-2"}},
	} {
		var got []string
		doctorAgent(tc.n, func(level, check, format string, a ...any) {
			got = append(got, level+" "+check+" "+fmt.Sprintf(format, a...))
		})
		if len(got) != len(tc.want) {
			t.Errorf("got %q, want %q", got, tc.want)
			continue
		}
		for i := range got {
			if !strings.HasPrefix(got[i], tc.want[i]) {
				t.Errorf("got %q, want %q", got[i], tc.want[i])
			}
		}
	}
}
