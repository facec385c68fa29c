package main

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/services/internal/harness"
	"github.com/crawlmesh/crawlmesh/streams"
)

const ttl = 3 * time.Second // the default heartbeat TTL the binaries run with

// TestMeshEndToEnd: a real nats-server, one master and two workers as
// separate processes, observed through the CLI, the KV bucket and /metrics.
func TestMeshEndToEnd(t *testing.T) {
	_, url := natsServer(t, true, t.TempDir(), 0)
	mhttp := "127.0.0.1:" + strconv.Itoa(freePort(t))
	start(t, "master", "--nats", url, "--id", "m1", "--http", mhttp)
	w1 := start(t, "worker", "--nats", url, "--id", "w1", "--http", "")
	w2 := start(t, "worker", "--nats", url, "--id", "w2", "--http", "127.0.0.1:0", "--clock-offset", "30s")
	nc := connect(t, url)
	js, _ := jetstream.New(nc)
	var kv jetstream.KeyValue
	waitFor(t, 10*time.Second, "bucket nodes created", func() bool {
		var err error
		kv, err = js.KeyValue(t.Context(), mesh.NodesBucket)
		return err == nil
	})

	// Both workers in `crawlmesh nodes -o json`.
	waitFor(t, 10*time.Second, "w1 and w2 online in crawlmesh nodes -o json", func() bool {
		out, _, code := runBin(t, "crawlmesh", "nodes", "-o", "json", "--nats", url)
		if code != 0 {
			return false
		}
		var got nodesOutput
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("nodes -o json is not JSON: %v\n%s", err, out)
		}
		on := map[string]bool{}
		for _, n := range got.Nodes {
			on[n.ID] = n.Online && n.Role == mesh.RoleWorker
		}
		return got.Source == "m1" && on["w1"] && on["w2"]
	})
	table, _, code := runBin(t, "crawlmesh", "nodes", "--nats", url)
	if code != 0 || !strings.Contains(table, "w1") || !strings.Contains(table, "SKEW") {
		t.Fatalf("nodes table (exit %d):\n%s", code, table)
	}

	// pause shows in the heartbeat, resume clears it.
	if out, errOut, code := runBin(t, "crawlmesh", "node", "pause", "w1", "--nats", url); code != 0 {
		t.Fatalf("node pause w1: exit %d\n%s%s", code, out, errOut)
	}
	state := func(id string) string {
		e, err := kv.Get(t.Context(), id)
		if err != nil {
			return ""
		}
		var hb mesh.Heartbeat
		_ = json.Unmarshal(e.Value(), &hb)
		return hb.State
	}
	if s := state("w1"); s != mesh.StatePaused {
		t.Fatalf("w1 heartbeat state after pause = %q, want paused", s)
	}
	runBin(t, "crawlmesh", "node", "resume", "w1", "--nats", url)
	if s := state("w1"); s != mesh.StateRunning {
		t.Fatalf("w1 heartbeat state after resume = %q, want running", s)
	}

	// Commands that cannot succeed are clear errors, not hangs.
	_, errOut, code := runBin(t, "crawlmesh", "node", "pause", "nosuch", "--nats", url)
	if code == 0 || !strings.Contains(errOut, `unknown node "nosuch"`) {
		t.Fatalf("pause of unknown node: exit %d, %q", code, errOut)
	}
	_, errOut, code = runBin(t, "crawlmesh", "node", "drain", "m1", "--nats", url)
	if code == 0 || !strings.Contains(errOut, "refused") {
		t.Fatalf("drain of a master: exit %d, %q", code, errOut)
	}

	// A worker whose clock is 30s ahead stays online; its skew reads 30s.
	waitFor(t, 5*time.Second, "skew metric of w2", func() bool {
		_, ok := metricValue(scrape(t, mhttp), `crawlmesh_node_clock_skew_seconds{node="w2"}`)
		return ok
	})
	for deadline := time.Now().Add(ttl + time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		s := scrape(t, mhttp)
		skew, _ := metricValue(s, `crawlmesh_node_clock_skew_seconds{node="w2"}`)
		if skew < 29.5 || skew > 30.5 {
			t.Fatalf("skew of w2 = %.3fs, want 30±0.5s", skew)
		}
		if on, _ := metricValue(s, `crawlmesh_node_online{node="w2",role="worker"}`); on != 1 {
			t.Fatalf("w2 with a +30s clock went offline")
		}
	}

	// SIGTERM: the key is gone within 1s, and the process exits 0.
	w2.Signal(syscall.SIGTERM)
	gone := waitFor(t, 3*time.Second, "w2 key removed after SIGTERM", func() bool {
		_, err := kv.Get(t.Context(), "w2")
		return errors.Is(err, jetstream.ErrKeyNotFound)
	})
	if gone > time.Second {
		t.Errorf("w2 key removed %v after SIGTERM, want < 1s", gone)
	}
	if code := exitCode(t, w2, 5*time.Second); code != 0 {
		t.Errorf("w2 exit code after SIGTERM = %d, want 0", code)
	}

	// SIGKILL: offline in the master's view within TTL + 1s; still listed.
	w1.Signal(syscall.SIGKILL)
	off := waitFor(t, ttl+3*time.Second, "w1 offline in the master's view", func() bool {
		on, listed := view(t, nc)["w1"]
		return listed && !on
	})
	t.Logf("offline detection after SIGKILL: %v (TTL %v)", off.Round(time.Millisecond), ttl)
	if off > ttl+time.Second {
		t.Errorf("w1 offline %v after SIGKILL, want <= TTL+1s = %v", off, ttl+time.Second)
	}
	if v, _ := metricValue(scrape(t, mhttp), `crawlmesh_node_online{node="w1",role="worker"}`); v != 0 {
		t.Errorf("crawlmesh_node_online for killed w1 = %v, want 0 (listed, offline)", v)
	}
}

// TestOfflineDetectionTime kills five workers, each at a different phase
// of its heartbeat, and checks every one goes offline within TTL + 1s.
func TestOfflineDetectionTime(t *testing.T) {
	_, url := natsServer(t, true, t.TempDir(), 0)
	start(t, "master", "--nats", url, "--id", "m1", "--http", "")
	var ws []*proc
	for i := range 5 {
		ws = append(ws, start(t, "worker", "--nats", url, "--id", "k"+strconv.Itoa(i), "--http", ""))
	}
	nc := connect(t, url)
	waitFor(t, 10*time.Second, "5 workers online", func() bool {
		v := view(t, nc)
		for i := range 5 {
			if !v["k"+strconv.Itoa(i)] {
				return false
			}
		}
		return true
	})
	var times []time.Duration
	for i, w := range ws {
		time.Sleep(time.Duration(i) * 200 * time.Millisecond) // spread kills over the beat phase
		id := "k" + strconv.Itoa(i)
		w.Signal(syscall.SIGKILL)
		d := waitFor(t, ttl+3*time.Second, id+" offline", func() bool {
			on, listed := view(t, nc)[id]
			return listed && !on
		})
		times = append(times, d)
		if d > ttl+time.Second {
			t.Errorf("%s offline after %v, want <= %v", id, d, ttl+time.Second)
		}
	}
	slices.Sort(times)
	t.Logf("offline detection after SIGKILL (TTL %v, 5 kills): median %v, max %v, all %v",
		ttl, times[2].Round(time.Millisecond), times[4].Round(time.Millisecond), times)
}

// TestBadInput: each mistake gives one clear line and a non-zero exit.
func TestBadInput(t *testing.T) {
	_, url := natsServer(t, true, t.TempDir(), 0)
	_, noJS := natsServer(t, false, "", 0)
	dead := "nats://127.0.0.1:" + strconv.Itoa(freePort(t))

	nc := connect(t, url)
	js, _ := jetstream.New(nc)
	// Workers wait for a master's assets; create them as a master would.
	if err := streams.Ensure(t.Context(), js, streams.MustLoad(), streams.Options{}); err != nil {
		t.Fatal(err)
	}
	holder := start(t, "worker", "--nats", url, "--id", "dup", "--http", "")
	waitFor(t, 10*time.Second, "first dup worker has its key", func() bool {
		kv, err := js.KeyValue(t.Context(), mesh.NodesBucket)
		if err != nil {
			return false
		}
		_, err = kv.Get(t.Context(), "dup")
		return err == nil
	})

	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"unreachable nats", []string{"--nats", dead, "--http", ""}, []string{"cannot reach NATS at " + dead, "--nats"}},
		{"jetstream disabled", []string{"--nats", noJS, "--http", ""}, []string{"JetStream disabled", "-js"}},
		{"malformed http", []string{"--nats", url, "--http", "not-an-address"}, []string{`--http "not-an-address"`, "host:port"}},
		{"bad port", []string{"--nats", url, "--http", "127.0.0.1:99999"}, []string{"--http", "0-65535"}},
		{"duplicate id", []string{"--nats", url, "--id", "dup", "--http", ""}, []string{`"dup" is held by worker pid`, "--id"}},
		{"bad id", []string{"--nats", url, "--id", "a.b", "--http", ""}, []string{"--id", `"a.b"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runBin(t, "worker", tc.args...)
			if code == 0 {
				t.Fatalf("exit 0, want failure; stderr %q", stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 || stdout != "" {
				t.Fatalf("want exactly one line on stderr and nothing on stdout, got %d lines:\n%s%s", len(lines), stderr, stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("error %q does not contain %q", lines[0], w)
				}
			}
			t.Logf("%s: %s", tc.name, lines[0])
		})
	}
	if !holder.Running() {
		t.Fatalf("the worker holding id dup died: %s", holder.Output())
	}
}

// TestUpWithNatsCLI: `crawlmesh up` is watchable with the real nats CLI,
// reports busy ports by flag, and stops cleanly on SIGTERM.
func TestUpWithNatsCLI(t *testing.T) {
	natsPort, httpPort := freePort(t), freePort(t)
	data := t.TempDir()
	up := start(t, "crawlmesh", "up", "--workers", "2", "--data", data,
		"--nats-port", strconv.Itoa(natsPort), "--http", "127.0.0.1:"+strconv.Itoa(httpPort))
	url := "nats://127.0.0.1:" + strconv.Itoa(natsPort)
	host := hostID()
	waitFor(t, 15*time.Second, "up's NATS port open", func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(natsPort), 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	nc := connect(t, url)
	waitFor(t, 15*time.Second, "up's nodes in the view", func() bool {
		v := view(t, nc)
		return v[host+"-master"] && v[host+"-worker-1"] && v[host+"-worker-2"]
	})

	// The real nats CLI: a snapshot plus live updates, for 2.5s.
	watch := start(t, "nats", "--server", url, "kv", "watch", mesh.NodesBucket)
	waitFor(t, 10*time.Second, "nats kv watch shows two beats of worker-1", func() bool {
		return strings.Count(watch.Output(), "PUT nodes > "+host+"-worker-1: {") >= 2
	})
	watch.Signal(syscall.SIGINT)
	out := watch.Output()
	for _, line := range strings.Split(out, "\n") {
		if _, js, ok := strings.Cut(line, host+"-worker-1: "); ok {
			var hb mesh.Heartbeat
			if err := json.Unmarshal([]byte(js), &hb); err != nil || hb.Role != mesh.RoleWorker || hb.Key != host+"-worker-1" {
				t.Fatalf("nats kv watch line is not a readable heartbeat: %q (%v)", line, err)
			}
			break
		}
	}
	t.Logf("nats kv watch nodes:\n%s", firstLines(out, 4))

	// Busy ports are reported by the flag that changes them.
	_, errOut, code := runBin(t, "crawlmesh", "up", "--data", t.TempDir(), "--nats-port", strconv.Itoa(natsPort), "--http", "127.0.0.1:0")
	if code == 0 || !strings.Contains(errOut, "--nats-port") || !strings.Contains(errOut, "already in use") {
		t.Errorf("second up on the same NATS port: exit %d, %q", code, errOut)
	}
	_, errOut, code = runBin(t, "crawlmesh", "up", "--data", t.TempDir(), "--nats-port", strconv.Itoa(freePort(t)), "--http", "127.0.0.1:"+strconv.Itoa(httpPort))
	if code == 0 || !strings.Contains(errOut, "--http") || !strings.Contains(errOut, "already in use") {
		t.Errorf("second up on the same HTTP port: exit %d, %q", code, errOut)
	}

	if m := scrape(t, "127.0.0.1:"+strconv.Itoa(httpPort)); !strings.Contains(m, `crawlmesh_node_online{node="`+host+`-worker-2",role="worker"} 1`) {
		t.Errorf("up's /metrics lacks worker-2 online:\n%s", m)
	}

	up.Signal(syscall.SIGTERM)
	if code := exitCode(t, up, 10*time.Second); code != 0 {
		t.Fatalf("up exit code after SIGTERM = %d; output:\n%s", code, up.Output())
	}
	if !strings.Contains(up.Output(), "crawlmesh up: stopped") {
		t.Errorf("up did not report a clean stop:\n%s", up.Output())
	}
}

// TestReconnect: nodes survive a NATS restart without being restarted.
func TestReconnect(t *testing.T) {
	store := t.TempDir()
	port := freePort(t)
	ns, url := natsServer(t, true, store, port)
	start(t, "master", "--nats", url, "--id", "m1", "--http", "")
	w := start(t, "worker", "--nats", url, "--id", "rw", "--http", "")
	nc := connect(t, url)
	waitFor(t, 10*time.Second, "rw online", func() bool { return view(t, nc)["rw"] })

	ns.Signal(syscall.SIGTERM)
	exitCode(t, ns, 10*time.Second)
	time.Sleep(ttl) // NATS is away for longer than the TTL
	natsServer(t, true, store, port)
	back := time.Now()
	js, _ := jetstream.New(nc)
	// Fresh beats from both processes prove they reconnected by themselves
	// (the view alone could be a stale copy from before the outage).
	for _, id := range []string{"rw", "m1"} {
		waitFor(t, 20*time.Second, id+" heartbeats again after NATS came back", func() bool {
			kv, err := js.KeyValue(t.Context(), mesh.NodesBucket)
			if err != nil {
				return false
			}
			e, err := kv.Get(t.Context(), id)
			if err != nil {
				return false
			}
			var hb mesh.Heartbeat
			return json.Unmarshal(e.Value(), &hb) == nil && hb.UpdateTS.After(back)
		})
	}
	waitFor(t, 5*time.Second, "rw online in the master's view", func() bool { return view(t, nc)["rw"] })
	if !w.Running() {
		t.Fatalf("worker exited during the outage:\n%s", w.Output())
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

// TestUpDemo: `crawlmesh up --demo --exit-when-done` crawls the built-in
// bookshop, prints a summary with every page and item, and exits 0.
//
// Before it, an `up --demo` on the same --data is interrupted mid-crawl:
// its crawl, left running against a bookshop that is gone, is cancelled by
// the next demo instead of dead-lettering its tasks for as long as the
// mesh runs (found by review).
func TestUpDemo(t *testing.T) {
	data := t.TempDir()
	args := func(extra ...string) []string {
		return append([]string{"up", "--demo", "--data", data, "--nats-port", strconv.Itoa(freePort(t)),
			"--http", "127.0.0.1:" + strconv.Itoa(freePort(t)), "--log-level", "warn"}, extra...)
	}
	first := start(t, "crawlmesh", args()...)
	waitFor(t, 60*time.Second, "the first demo crawl started", func() bool { return strings.Contains(first.Output(), "demo: crawl books-") })
	first.Signal(syscall.SIGINT)
	if code := exitCode(t, first, 30*time.Second); code != 0 {
		t.Fatalf("interrupted up --demo exit %d:\n%s", code, first.Output())
	}
	if strings.Contains(first.Output(), "demo crawl books-") {
		t.Skip("the first demo crawl ended before the interrupt: nothing left to cancel") // a very fast machine
	}
	// The summary on stdout, for scripts; the rest on stderr.
	out, errOut, code := runBin(t, "crawlmesh", args("--exit-when-done")...)
	if code != 0 {
		t.Fatalf("up --demo exit %d:\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"526 fetched (the site has 526)", "items:   1000 (the site has 1000)", "0 dead letters",
		"export:  " + filepath.Join(bins(t), "crawlmesh") + " results export"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary on stdout lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{"of an earlier demo cancelled (its bookshop is gone)", "crawlmesh up: stopped"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

// TestUpStopsWithItsMaster: `node shutdown` of up's master stops up, as
// it stops a master process; up served on without it, its console and
// /healthz frozen at the master's last beat (found by review).
func TestUpStopsWithItsMaster(t *testing.T) {
	natsPort := freePort(t)
	up := start(t, "crawlmesh", "up", "--workers", "1", "--data", t.TempDir(),
		"--nats-port", strconv.Itoa(natsPort), "--http", "127.0.0.1:"+strconv.Itoa(freePort(t)))
	url := "nats://127.0.0.1:" + strconv.Itoa(natsPort)
	master := hostID() + "-master"
	waitFor(t, 20*time.Second, "up's NATS port open", func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(natsPort), 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	nc := connect(t, url)
	waitFor(t, 20*time.Second, "up's master online", func() bool { return view(t, nc)[master] })
	if _, errOut, code := runBin(t, "crawlmesh", "node", "shutdown", master, "--nats", url); code != 0 {
		t.Fatalf("node shutdown %s: exit %d\n%s", master, code, errOut)
	}
	if code := exitCode(t, up, 15*time.Second); code != 0 {
		t.Fatalf("up exit code after its master's shutdown = %d; output:\n%s", code, up.Output())
	}
	if !strings.Contains(up.Output(), "crawlmesh up: stopped") {
		t.Errorf("up did not report a clean stop:\n%s", up.Output())
	}
}

// TestUpKeepsSinkSecretsFromCommands: under up the masters' sinks share
// the process's environment with the workers, and a command spider read a
// webhook sink's token from its own (found by review). It does not get
// the sinks' variables now; other variables it does.
func TestUpKeepsSinkSecretsFromCommands(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Fatal("sh is not installed: this test needs it")
	}
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html><body>hi</body></html>"))
	}))
	defer site.Close()
	hook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer hook.Close()
	natsPort := freePort(t)
	startEnv(t, []string{"SINKPW=hunter2-sink-secret", "OTHER_VAR=visible"}, "crawlmesh", "up", "--workers", "1",
		"--data", t.TempDir(), "--nats-port", strconv.Itoa(natsPort), "--http", "127.0.0.1:"+strconv.Itoa(freePort(t)))
	cli := harness.NewCLI(t, "nats://127.0.0.1:"+strconv.Itoa(natsPort))
	waitFor(t, 30*time.Second, "up answering", func() bool { _, _, code := cli.Run("spider", "ls"); return code == 0 })
	cli.Must("sink", "add", "hook", "--webhook", hook.URL+"/h?token=${env:SINKPW}")
	cli.Apply(`name: envspy
start_urls: ["` + site.URL + `/"]
politeness: {robots_txt: false}
command: ["sh", "-c", "while read -r l; do printf '{\"items\":[{\"pw\":\"%s\",\"other\":\"%s\"}],\"links\":[]}\\n' \"$SINKPW\" \"$OTHER_VAR\"; done"]
`)
	id := cli.Start("envspy")
	if err := cli.Wait(id, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	items := cli.Export(id)
	if len(items) != 1 || items[0].Text("pw") != "" || items[0].Text("other") != "visible" {
		t.Fatalf("items %+v: want one, without the sink's secret and with OTHER_VAR", items)
	}
}
