package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/crawlmesh/crawlmesh/pkg/master"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/services/internal/harness"
)

// The end-to-end tests drive the real binaries as separate processes: the
// master, worker and crawlmesh of this repository, nats-server built from
// the module graph, and the nats CLI (a tool dependency in go.mod).

// bins builds every binary once per test run (the harness's build: master,
// worker, crawlmesh, nats-server and the nats CLI) and returns their
// directory; TestMain removes it.
func bins(t testing.TB) string { return harness.Bins(t) }

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// syncBuf is an io.Writer safe for a process's output and a test's reads.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// proc is a started binary.
type proc struct {
	name   string
	cmd    *exec.Cmd
	out    *syncBuf
	done   chan struct{}
	waitEr error
}

func start(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	return startEnv(t, nil, name, args...)
}

// startEnv is start with extra environment variables.
func startEnv(t testing.TB, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &syncBuf{}, done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(bins(t), name), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = append(cleanEnv(), env...)
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.waitEr = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("--- output of %s %v:\n%s", name, args, p.out.String())
		}
	})
	return p
}

// cleanEnv drops CRAWLMESH_* so a developer's shell cannot change a test.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CRAWLMESH_") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *proc) signal(s os.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(s)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v; output:\n%s", p.name, timeout, p.out.String())
		return -1
	}
}

// runBin runs a binary to completion and returns stdout, stderr and the exit code.
func runBin(t testing.TB, name string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bins(t), name), args...)
	cmd.Env = cleanEnv()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("run %s: %v", name, err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// natsServer starts the nats-server binary on a free loopback port.
func natsServer(t testing.TB, js bool, storeDir string, port int) (*proc, string) {
	t.Helper()
	if port == 0 {
		port = freePort(t)
	}
	args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port)}
	if js {
		args = append(args, "-js", "-sd", storeDir)
	}
	p := start(t, "nats-server", args...)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	waitFor(t, 15*time.Second, "nats-server accepting connections", func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p, url
}

// waitFor polls cond every 25ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	t0 := time.Now()
	for {
		if cond() {
			return time.Since(t0)
		}
		if time.Since(t0) > timeout {
			t.Fatalf("not within %v: %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// view asks the masters for their cluster view.
func view(t testing.TB, nc *nats.Conn) map[string]bool {
	t.Helper()
	m, err := nc.Request(mesh.ViewSubject, nil, time.Second)
	if err != nil {
		return nil
	}
	var v master.ViewReply
	if err := json.Unmarshal(m.Data, &v); err != nil {
		t.Fatalf("view: %v", err)
	}
	online := map[string]bool{}
	for _, n := range v.Nodes {
		online[n.ID] = n.Online
	}
	return online
}

func scrape(t testing.TB, addr string) string {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metricValue finds `name{labels} value` in a scrape.
func metricValue(scrape, series string) (float64, bool) {
	for _, line := range strings.Split(scrape, "\n") {
		if strings.HasPrefix(line, series+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, series)), 64)
			return v, err == nil
		}
	}
	return 0, false
}

func hostID() string {
	h, _ := os.Hostname()
	return mesh.NodeIDFromHostname(h)
}
