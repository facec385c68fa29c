package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
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

func freePort(t testing.TB) int { return harness.FreePort(t) }

// syncBuf is an io.Writer safe for a process's output and a test's reads.
type syncBuf = harness.SyncBuf

// proc is a started binary (the harness's process, killed when the test
// ends, its output printed when it failed).
type proc = harness.Proc

func start(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	return harness.StartProc(t, name, name, args...)
}

// startEnv is start with extra environment variables.
func startEnv(t testing.TB, env []string, name string, args ...string) *proc {
	t.Helper()
	return harness.StartProcEnv(t, env, name, name, args...)
}

// exitCode waits for p to exit and returns its exit code.
func exitCode(t testing.TB, p *proc, timeout time.Duration) int {
	t.Helper()
	code, ok := p.Wait(timeout)
	if !ok {
		t.Fatalf("%s did not exit within %v; output:\n%s", p.Name(), timeout, p.Output())
	}
	return code
}

// runBin runs a binary to completion and returns stdout, stderr and the exit code.
func runBin(t testing.TB, name string, args ...string) (string, string, int) {
	t.Helper()
	return harness.RunBin(t, 60*time.Second, name, args...)
}

// natsServer starts the nats-server binary on a free loopback port.
func natsServer(t testing.TB, js bool, storeDir string, port int, extra ...string) (*proc, string) {
	t.Helper()
	if port == 0 {
		port = freePort(t)
	}
	args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port)}
	if js {
		args = append(args, "-js", "-sd", storeDir)
	}
	p := start(t, "nats-server", append(args, extra...)...)
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

// waitFor polls cond until it holds and returns how long that took; it
// fails the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return harness.Eventually(t, timeout, what, cond)
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
