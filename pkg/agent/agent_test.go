package agent

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/crawlmesh/crawlmesh/pkg/command"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/natstest"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

// The children here are real processes: this test binary started again
// in a child mode (childEnv), which behaves as a worker does towards its
// agent: "drain" on stdin or the end of stdin makes it exit 0.
const childEnv = "CRAWLMESH_AGENT_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		goleak.VerifyTestMain(m)
	case "worker":
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if sc.Text() == "drain" {
				os.Stderr.WriteString("level=INFO msg=\"drained\"\n")
				os.Exit(0)
			}
		}
		os.Exit(0)
	case "crash":
		os.Stderr.WriteString("level=ERROR msg=\"cannot start\"\n")
		os.Exit(1)
	case "stubborn": // ignores drain; SIGTERM (default action) ends it
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
		}
		time.Sleep(time.Minute)
		os.Exit(0)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// run starts an agent whose children run mode (per child id, default
// "worker") and returns it, its NATS connection and nodes bucket, and a
// stop function that cancels it and returns Run's error.
func run(t *testing.T, cfg Config, modes map[string]string) (*Agent, *nats.Conn, jetstream.KeyValue, *syncBuf, func() error) {
	t.Helper()
	nc, js := streamstest.Start(t, streams.Options{NodesTTL: time.Second})
	kv := streamstest.Bucket(t, js, mesh.NodesBucket)
	out := &syncBuf{}
	cfg.ID, cfg.Output = "a", out
	cfg.HeartbeatInterval, cfg.HeartbeatTTL = 100*time.Millisecond, time.Second
	cfg.Command = func(id, addr string) *exec.Cmd {
		mode := modes[id]
		if mode == "" {
			mode = "worker"
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+mode)
		return cmd
	}
	a, err := New(nc, kv, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	var runErr error
	stop := func() error {
		if stopped {
			return runErr
		}
		stopped = true
		cancel()
		select {
		case runErr = <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("agent did not stop within 30s of its context's end")
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return a, nc, kv, out, stop
}

// states is the children's "id:state" list.
func states(a *Agent) string {
	var s []string
	for _, c := range a.Children() {
		s = append(s, c.ID+":"+c.State)
	}
	return strings.Join(s, " ")
}

func TestScaleAndStop(t *testing.T) {
	logs := &syncBuf{}
	a, nc, kv, out, stop := run(t, Config{Workers: 2, Log: slog.New(slog.NewTextHandler(logs, nil))}, nil)
	natstest.Eventually(t, 10*time.Second, "2 children running", func() bool { return states(a) == "a-1:running a-2:running" })
	natstest.Eventually(t, 5*time.Second, "heartbeat lists them", func() bool {
		e, err := kv.Get(t.Context(), "a")
		if err != nil {
			return false
		}
		hb, err := mesh.DecodeHeartbeat(e.Value())
		return err == nil && hb.Role == mesh.RoleAgent && len(hb.Children) == 2 && hb.Children[1].PID > 0 && hb.Children[1].HTTP != ""
	})

	// Over NATS, as node scale sends it.
	r, err := command.Send(t.Context(), nc, "a", mesh.Command{Name: mesh.CmdScale, N: 3})
	if err != nil || r.Workers != 3 || r.Role != mesh.RoleAgent {
		t.Fatalf("scale 3: %+v, %v", r, err)
	}
	natstest.Eventually(t, 10*time.Second, "3 children running", func() bool { return states(a) == "a-1:running a-2:running a-3:running" })
	if _, err := command.Send(t.Context(), nc, "a", mesh.Command{Name: mesh.CmdPause}); !errors.Is(err, command.ErrRefused) {
		t.Errorf("pause sent to an agent: %v; want a refusal", err)
	}
	// A broadcast is for the workers, not the agent.
	if rs, _ := command.Broadcast(t.Context(), nc, mesh.Command{Name: mesh.CmdPing}, 0); len(rs) != 0 {
		t.Errorf("agent answered a broadcast: %+v", rs)
	}

	a.Scale(1)
	natstest.Eventually(t, 10*time.Second, "a-2 and a-3 drained", func() bool { return states(a) == "a-1:running" })
	// The README promises the asks highest index first (it once depended
	// on which child's goroutine ran first).
	var asked []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `msg="draining worker"`) {
			asked = append(asked, strings.Fields(line[strings.Index(line, "child="):])[0])
		}
	}
	if !slices.Equal(asked, []string{"child=a-3", "child=a-2"}) {
		t.Errorf("drain asks went out as %v; want a-3, then a-2", asked)
	}
	if !strings.Contains(out.String(), `child=a-3 level=INFO msg="drained"`) {
		t.Errorf("a drained child's output is not in the agent's, marked:\n%s", out.String())
	}
	// Back up at once, even right after a scale-down.
	a.Scale(2)
	a.Scale(0)
	a.Scale(2)
	natstest.Eventually(t, 10*time.Second, "2 children again", func() bool { return states(a) == "a-1:running a-2:running" })
	for _, c := range a.Children() {
		if c.Restarts != 0 {
			t.Errorf("%s counted %d restarts; asked stops are not restarts", c.ID, c.Restarts)
		}
	}

	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := kv.Get(t.Context(), "a"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("agent key after stop: %v", err)
	}
	if n := len(a.Children()); n != 0 {
		t.Errorf("%d children listed after stop: %s", n, states(a))
	}
}

func TestRestartWithBackoff(t *testing.T) {
	a, _, _, out, stop := run(t, Config{Workers: 2, MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond},
		map[string]string{"a-2": "crash"})
	natstest.Eventually(t, 20*time.Second, "a-2 restarted 4 times", func() bool {
		for _, c := range a.Children() {
			if c.ID == "a-2" {
				return c.Restarts >= 4 && c.LastExit == "exit status 1"
			}
		}
		return false
	})
	for _, c := range a.Children() {
		if c.ID == "a-1" && (c.Restarts != 0 || c.State != mesh.ChildRunning) {
			t.Errorf("a-1 %+v; its sibling's crashes must not touch it", c)
		}
	}
	log := out.String()
	if !strings.Contains(log, `child=a-2 level=ERROR msg="cannot start"`) {
		t.Errorf("a crashing child's output is not in the agent's:\n%s", log)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestDrainTimeoutThenSIGTERM(t *testing.T) {
	a, _, _, _, stop := run(t, Config{Workers: 1, DrainTimeout: 100 * time.Millisecond, StopTimeout: 5 * time.Second},
		map[string]string{"a-1": "stubborn"})
	natstest.Eventually(t, 10*time.Second, "a-1 running", func() bool { return states(a) == "a-1:running" })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestNewRefuses(t *testing.T) {
	nc, js := streamstest.Start(t, streams.Options{NodesTTL: time.Second})
	kv := streamstest.Bucket(t, js, mesh.NodesBucket)
	cmd := func(string, string) *exec.Cmd { return nil }
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{ID: "a.b", Command: cmd}, "bad node id"},
		{Config{ID: strings.Repeat("x", 62), Command: cmd}, "too long for its workers' ids"},
		{Config{ID: "a", Workers: mesh.MaxAgentWorkers + 1, Command: cmd}, "want 0..256"},
		{Config{ID: "a"}, "no Command"},
	} {
		if _, err := New(nc, kv, c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v; want %q", c.cfg.ID, err, c.want)
		}
	}
}
