package mesh_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

func TestValidateNodeID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"w1", true},
		{"worker-01", true},
		{"worker_01", true},
		{"A", true},
		{"0", true},
		{"ABC-def_123", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{"a.b", false},      // would be two subject tokens
		{"a b", false},      // space
		{"a*", false},       // subject wildcard
		{"a>", false},       // subject wildcard
		{"a/b", false},      // not a KV key character we allow
		{"a=b", false},      // valid KV key char, but not allowed here
		{"é", false},        // non-ASCII
		{"w1\n", false},     // trailing newline must not slip past ^...$
		{"\nw1", false},     // leading newline
		{"node\x00", false}, // NUL
	}
	for _, tt := range tests {
		err := mesh.ValidateNodeID(tt.id)
		if tt.ok && err != nil {
			t.Errorf("ValidateNodeID(%q) = %v, want nil", tt.id, err)
		}
		if !tt.ok {
			if err == nil {
				t.Errorf("ValidateNodeID(%q) = nil, want an error", tt.id)
			} else if !errors.Is(err, mesh.ErrBadNodeID) {
				t.Errorf("ValidateNodeID(%q) = %v, want it to wrap ErrBadNodeID", tt.id, err)
			}
		}
	}
}

func TestNodeIDFromHostname(t *testing.T) {
	tests := []struct{ host, want string }{
		{"worker-1", "worker-1"},
		{"worker-1.example.com", "worker-1"},
		{"Crawler_7.local", "Crawler_7"},
		{"my host", "my-host"},
		{"héllo", "h-llo"},
		{"", "node"},
		{".example.com", "node"},
		{strings.Repeat("x", 100), strings.Repeat("x", 64)},
		{strings.Repeat("é", 100), strings.Repeat("-", 64)},
	}
	for _, tt := range tests {
		got := mesh.NodeIDFromHostname(tt.host)
		if got != tt.want {
			t.Errorf("NodeIDFromHostname(%q) = %q, want %q", tt.host, got, tt.want)
		}
		if err := mesh.ValidateNodeID(got); err != nil {
			t.Errorf("NodeIDFromHostname(%q) = %q, which fails validation: %v", tt.host, got, err)
		}
	}
}

func FuzzNodeIDFromHostname(f *testing.F) {
	for _, s := range []string{
		"", ".", "..", "worker-1", "worker-1.example.com", "a b c", "héllo.wörld",
		strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 65), strings.Repeat("é", 40),
		"\xff\xfe", "*.>", "node\x00", "\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		id := mesh.NodeIDFromHostname(host)
		if err := mesh.ValidateNodeID(id); err != nil {
			t.Fatalf("NodeIDFromHostname(%q) = %q, which fails validation: %v", host, id, err)
		}
		// A host already named like a node keeps its name.
		if again := mesh.NodeIDFromHostname(id); again != id {
			t.Fatalf("NodeIDFromHostname(%q) = %q, not a fixed point of %q", id, again, host)
		}
	})
}

func TestCommandValidate(t *testing.T) {
	tests := []struct {
		c  mesh.Command
		ok bool
	}{
		{mesh.Command{Name: mesh.CmdPing}, true},
		{mesh.Command{Name: mesh.CmdPause}, true},
		{mesh.Command{Name: mesh.CmdResume}, true},
		{mesh.Command{Name: mesh.CmdDrain}, true},
		{mesh.Command{Name: mesh.CmdShutdown}, true},
		{mesh.Command{Name: mesh.CmdPause, Term: 3}, true},
		{mesh.Command{Name: mesh.CmdSetConcurrency, N: 1}, true},
		{mesh.Command{Name: mesh.CmdSetConcurrency, N: 7}, true},
		{mesh.Command{Name: mesh.CmdSetConcurrency, N: mesh.MaxConcurrency}, true},
		{mesh.Command{Name: mesh.CmdSetConcurrency, N: mesh.MaxConcurrency + 1}, false},
		{mesh.Command{Name: mesh.CmdSetConcurrency, N: 0}, false},
		{mesh.Command{Name: mesh.CmdSetConcurrency, N: -1}, false},
		{mesh.Command{Name: mesh.CmdSetConcurrency, N: 100001}, false},
		{mesh.Command{Name: ""}, false},
		{mesh.Command{Name: "reboot"}, false},
		{mesh.Command{Name: "PAUSE"}, false},
	}
	for _, tt := range tests {
		err := tt.c.Validate()
		if tt.ok != (err == nil) {
			t.Errorf("%+v.Validate() = %v, want ok=%v", tt.c, err, tt.ok)
		}
	}
}

func TestCommandString(t *testing.T) {
	if got := (mesh.Command{Name: mesh.CmdSetConcurrency, N: 7}).String(); got != "set-concurrency 7" {
		t.Errorf("String() = %q, want %q", got, "set-concurrency 7")
	}
	if got := (mesh.Command{Name: mesh.CmdPause}).String(); got != "pause" {
		t.Errorf("String() = %q, want %q", got, "pause")
	}
}

func TestCommandSubject(t *testing.T) {
	if got, want := mesh.CommandSubject("w1"), "crawlmesh.cmd.node.w1"; got != want {
		t.Errorf("CommandSubject = %q, want %q", got, want)
	}
	if strings.HasPrefix(mesh.CommandSubject("all"), mesh.CommandAllSubject) {
		t.Errorf("a node named \"all\" must not collide with the broadcast subject %q", mesh.CommandAllSubject)
	}
}
