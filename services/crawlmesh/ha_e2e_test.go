package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/command"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// leaderWatch scrapes crawlmesh_leader of every live master every 50ms for
// the whole test and remembers any moment with two leaders.
type leaderWatch struct {
	mu      sync.Mutex
	addrs   map[string]string // id -> http address of live masters
	two     []string
	leader  string
	changed time.Time
	stop    chan struct{}
	done    chan struct{}
}

func watchLeaders(t *testing.T) *leaderWatch {
	w := &leaderWatch{addrs: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			w.mu.Lock()
			addrs := make(map[string]string, len(w.addrs))
			for k, v := range w.addrs {
				addrs[k] = v
			}
			w.mu.Unlock()
			// In parallel and briefly: a frozen master must not stall the
			// watch of the others.
			var leaders []string
			var lmu sync.WaitGroup
			var mu sync.Mutex
			for id, a := range addrs {
				lmu.Go(func() {
					c := http.Client{Timeout: 300 * time.Millisecond}
					resp, err := c.Get("http://" + a + "/metrics")
					if err != nil {
						return
					}
					defer resp.Body.Close()
					b, _ := io.ReadAll(resp.Body)
					if v, ok := metricValue(string(b), `crawlmesh_leader{node="`+id+`"}`); ok && v == 1 {
						mu.Lock()
						leaders = append(leaders, id)
						mu.Unlock()
					}
				})
			}
			lmu.Wait()
			w.mu.Lock()
			if len(leaders) > 1 {
				slices.Sort(leaders)
				w.two = append(w.two, time.Now().Format("15:04:05.000")+" "+strings.Join(leaders, ","))
			}
			cur := ""
			if len(leaders) == 1 {
				cur = leaders[0]
			}
			if cur != w.leader {
				w.leader, w.changed = cur, time.Now()
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { close(w.stop); <-w.done })
	return w
}

func (w *leaderWatch) set(id, addr string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if addr == "" {
		delete(w.addrs, id)
	} else {
		w.addrs[id] = addr
	}
}

func (w *leaderWatch) current() (string, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.leader, w.changed
}

// TestMasterFailover: three master processes; never two leaders (checked
// every 50ms all along); SIGKILL of the leader gives a new one within the
// lease + 1s, ten times in a row; a crawl running across the failovers
// completes with the exact item set.
func TestMasterFailover(t *testing.T) {
	const lease = 2 * time.Second
	site := newTrapSite(t, 600, 60*time.Millisecond)
	_, url := natsServer(t, true, t.TempDir(), 0)
	w := watchLeaders(t)
	masters := map[string]*proc{}
	startMaster := func(id string) {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		masters[id] = start(t, "master", "--nats", url, "--id", id, "--http", addr, "--lease", lease.String(), "--task-ack-wait", "5s")
		w.set(id, addr)
	}
	for _, id := range []string{"m1", "m2", "m3"} {
		startMaster(id)
	}
	m := &testMesh{t: t, url: url}
	for _, id := range []string{"w1", "w2"} {
		m.workers = append(m.workers, m.startWorker(id))
	}
	waitFor(t, 15*time.Second, "a leader", func() bool { l, _ := w.current(); return l != "" })
	m.apply(site.spec("failover"))
	id := strings.TrimSpace(m.mustCLI("crawl", "start", "failover"))

	var takeovers []time.Duration
	for range 10 {
		leader, _ := w.current()
		killed := time.Now()
		masters[leader].Signal(syscall.SIGKILL)
		exitCode(t, masters[leader], 5*time.Second)
		w.set(leader, "")
		waitFor(t, lease+3*time.Second, "a new leader after SIGKILL of "+leader, func() bool {
			l, _ := w.current()
			return l != "" && l != leader
		})
		_, at := w.current()
		takeovers = append(takeovers, at.Sub(killed))
		// The killed leader's heartbeat outlives it by up to the TTL: not
		// a second leader for doctor.
		if out, _, _ := m.cli("doctor"); strings.Contains(out, "masters say they lead") {
			t.Errorf("doctor during an ordinary failover:\n%s", out)
		}
		startMaster(leader) // back as a standby
	}
	if _, errOut, code := m.cli("crawl", "wait", id, "--timeout", "10s"); code != 0 {
		t.Fatalf("crawl across failovers: exit %d\n%s", code, errOut)
	}
	checkItems(t, m.export(id), site.expected())
	slices.Sort(takeovers)
	t.Logf("takeover after SIGKILL of the leader (lease %v, %d kills): median %v, max %v, all %v", lease, len(takeovers),
		takeovers[len(takeovers)/2].Round(time.Millisecond), takeovers[len(takeovers)-1].Round(time.Millisecond), takeovers)
	for _, d := range takeovers {
		if d > lease+time.Second {
			t.Errorf("takeover took %v, want <= lease + 1s", d)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.two) > 0 {
		t.Errorf("two leaders at once: %v", w.two)
	}
}

// TestStepDown: `crawlmesh master step-down` hands leadership to another
// master with a higher term. crawlmesh_tasks_pending comes from the
// leader only: the master that stepped down stops exporting it rather
// than keep its last figure (a standby's went stale, found by review).
func TestStepDown(t *testing.T) {
	_, url := natsServer(t, true, t.TempDir(), 0)
	w := watchLeaders(t)
	addrs := map[string]string{}
	for _, id := range []string{"m1", "m2"} {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		start(t, "master", "--nats", url, "--id", id, "--http", addr, "--lease", "2s")
		w.set(id, addr)
		addrs[id] = addr
	}
	// pending: whether master id exports crawlmesh_tasks_pending.
	pending := func(id string) bool {
		resp, err := http.Get("http://" + addrs[id] + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		_, ok := metricValue(string(b), `crawlmesh_tasks_pending{node="`+id+`"}`)
		return ok
	}
	waitFor(t, 15*time.Second, "a leader", func() bool { l, _ := w.current(); return l != "" })
	first, _ := w.current()
	other := map[string]string{"m1": "m2", "m2": "m1"}[first]
	waitFor(t, 5*time.Second, "crawlmesh_tasks_pending on the leader "+first, func() bool { return pending(first) })
	if pending(other) {
		t.Errorf("standby %s exports crawlmesh_tasks_pending", other)
	}
	if _, errOut, code := runBin(t, "crawlmesh", "master", "step-down", "--nats", url); code != 0 {
		t.Fatalf("master step-down: exit %d: %s", code, errOut)
	}
	waitFor(t, 5*time.Second, "the other master leading", func() bool {
		l, _ := w.current()
		return l != "" && l != first
	})
	waitFor(t, 5*time.Second, "crawlmesh_tasks_pending on "+other+" only", func() bool { return pending(other) && !pending(first) })
	// --lease 2s sets bucket election's TTL: doctor says so, and does not
	// warn about it on every run.
	dout, _, _ := runBin(t, "crawlmesh", "doctor", "--nats", url)
	if !strings.Contains(dout, "kv election: ttl is 2s, set by the masters' --lease") || strings.Contains(dout, "warn") {
		t.Errorf("doctor with masters at --lease 2s:\n%s", dout)
	}
	out, _, _ := runBin(t, "crawlmesh", "nodes", "--nats", url)
	if !strings.Contains(out, "* term") {
		t.Errorf("nodes does not show the leader and term:\n%s", out)
	}
}

// TestScheduleAcrossFailovers: a spider with `@every 1s` keeps firing
// while the leader is SIGKILLed 20 times: no tick fires twice, and after a
// gap only the most recent missed tick fires (no burst of catch-up crawls).
func TestScheduleAcrossFailovers(t *testing.T) {
	site := newTrapSite(t, 1, 0)
	_, url := natsServer(t, true, t.TempDir(), 0)
	w := watchLeaders(t)
	masters := map[string]*proc{}
	startMaster := func(id string) {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		masters[id] = start(t, "master", "--nats", url, "--id", id, "--http", addr, "--lease", "1s")
		w.set(id, addr)
	}
	for _, id := range []string{"m1", "m2", "m3"} {
		startMaster(id)
	}
	m := &testMesh{t: t, url: url}
	m.workers = append(m.workers, m.startWorker("w1"))
	waitFor(t, 15*time.Second, "a leader", func() bool { l, _ := w.current(); return l != "" })
	m.apply(`name: ticker
start_urls: ["` + site.srv.URL + `/cat/1"]
allowed_domains: ["` + site.host() + `"]
max_pages: 1
schedule: "@every 1s"
politeness: { delay: 0s }
`)
	t0 := time.Now()
	for range 20 {
		leader, _ := w.current()
		masters[leader].Signal(syscall.SIGKILL)
		exitCode(t, masters[leader], 5*time.Second)
		w.set(leader, "")
		waitFor(t, 5*time.Second, "a new leader", func() bool { l, _ := w.current(); return l != "" && l != leader })
		startMaster(leader)
	}
	time.Sleep(1500 * time.Millisecond) // one more tick under the last leader
	elapsed := time.Since(t0)
	var ids []string
	for _, line := range strings.Split(m.mustCLI("crawl", "ls"), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "ticker-") {
			ids = append(ids, f[0])
		}
	}
	seen := map[string]bool{}
	var ticks []time.Time
	for _, id := range ids {
		if seen[id] {
			t.Errorf("crawl %s listed twice", id)
		}
		seen[id] = true
		ts, err := time.Parse("20060102150405", strings.TrimSuffix(strings.TrimPrefix(id, "ticker-"), "-sched"))
		if err != nil {
			t.Fatalf("crawl id %q is not a tick id: %v", id, err)
		}
		ticks = append(ticks, ts)
	}
	slices.SortFunc(ticks, func(a, b time.Time) int { return a.Compare(b) })
	for i := 1; i < len(ticks); i++ {
		if !ticks[i].After(ticks[i-1]) {
			t.Errorf("tick %v fired twice", ticks[i])
		}
	}
	max := int(elapsed/time.Second) + 2
	t.Logf("20 failovers in %v: %d ticks fired (at most one per second: %d); first %v, last %v",
		elapsed.Round(time.Millisecond), len(ticks), max, ticks[0].Format("15:04:05"), ticks[len(ticks)-1].Format("15:04:05"))
	if len(ticks) > max {
		t.Errorf("%d ticks in %v: catch-up fired more than the latest missed tick", len(ticks), elapsed)
	}
	if len(ticks) < 10 {
		t.Errorf("only %d ticks fired in %v", len(ticks), elapsed)
	}
}

// TestDoctor: healthy mesh → exit 0; a paused worker is a warning; a worker
// 30s off the server's clock and a mesh without masters are failures,
// each explained.
func TestDoctor(t *testing.T) {
	_, url := natsServer(t, true, t.TempDir(), 0)
	mst := start(t, "master", "--nats", url, "--id", "m1", "--http", "")
	m := &testMesh{t: t, url: url}
	m.workers = append(m.workers, m.startWorker("w1"))
	nc := connect(t, url)
	waitFor(t, 15*time.Second, "mesh up", func() bool { v := view(t, nc); return v["m1"] && v["w1"] })
	waitFor(t, 10*time.Second, "doctor passes", func() bool { _, _, code := m.cli("doctor"); return code == 0 })

	m.mustCLI("node", "pause", "w1")
	start(t, "worker", "--nats", url, "--id", "skewed", "--http", "", "--clock-offset", "30s")
	waitFor(t, 10*time.Second, "skewed worker online", func() bool { return view(t, nc)["skewed"] })
	out, _, code := m.cli("doctor")
	if code == 0 {
		t.Errorf("doctor passed with a 30s clock skew:\n%s", out)
	}
	for _, want := range []string{"FAIL  clock", "skewed is +30", "WARN  workers", "w1 is paused"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
	mst.Signal(syscall.SIGTERM)
	exitCode(t, mst, 10*time.Second)
	out, _, code = m.cli("doctor")
	if code == 0 || !strings.Contains(out, "no master is online") {
		t.Errorf("doctor without masters: exit %d\n%s", code, out)
	}
	// A stream deleted by hand: doctor says so, not that the mesh is new.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(t.Context(), mesh.LogsStream); err != nil {
		t.Fatal(err)
	}
	out, _, code = m.cli("doctor")
	if code == 0 || !strings.Contains(out, "missing though the others exist") || !strings.Contains(out, "stream LOGS") {
		t.Errorf("doctor with stream LOGS deleted: exit %d\n%s", code, out)
	}
}

// TestDoctorPartitionsGrown: a master started with more --partitions
// grows the mesh's; a worker started before pulls only the old ones, which
// its heartbeat says and doctor reports, until it is restarted. (A crawl
// whose host hashed to a new partition sat silent while doctor was green.)
func TestDoctorPartitionsGrown(t *testing.T) {
	_, url := natsServer(t, true, t.TempDir(), 0)
	start(t, "master", "--nats", url, "--id", "m1", "--http", "")
	m := &testMesh{t: t, url: url}
	w1 := m.startWorker("w1")
	nc := connect(t, url)
	waitFor(t, 15*time.Second, "mesh up", func() bool { v := view(t, nc); return v["m1"] && v["w1"] })
	start(t, "master", "--nats", url, "--id", "m2", "--http", "", "--partitions", "2")
	const stale = "worker w1 pulls 1 of the mesh's 2 partitions"
	waitFor(t, 20*time.Second, "doctor reports w1's partitions", func() bool {
		out, _, code := m.cli("doctor")
		return code != 0 && strings.Contains(out, stale)
	})
	w1.Signal(syscall.SIGTERM)
	exitCode(t, w1, 10*time.Second)
	m.startWorker("w1")
	waitFor(t, 20*time.Second, "doctor passes once w1 pulls both", func() bool {
		out, _, code := m.cli("doctor")
		return code == 0 && !strings.Contains(out, "pulls 1 of")
	})
}

// TestSplitBrain: the leader is frozen (SIGSTOP) past its lease; another
// master wins and announces its term; the old one, thawed, says at once
// that it does not lead (never two leaders), and a command carrying its
// old term is refused by a worker.
func TestSplitBrain(t *testing.T) {
	const lease = 2 * time.Second
	_, url := natsServer(t, true, t.TempDir(), 0)
	w := watchLeaders(t)
	masters := map[string]*proc{}
	for _, id := range []string{"m1", "m2"} {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		masters[id] = start(t, "master", "--nats", url, "--id", id, "--http", addr, "--lease", lease.String())
		w.set(id, addr)
	}
	m := &testMesh{t: t, url: url}
	m.workers = append(m.workers, m.startWorker("w1"))
	waitFor(t, 15*time.Second, "a leader", func() bool { l, _ := w.current(); return l != "" })
	old, _ := w.current()
	oldTerm := leaderTerm(t, url, old)

	masters[old].Signal(syscall.SIGSTOP)
	waitFor(t, lease+3*time.Second, "another leader while "+old+" is frozen", func() bool {
		l, _ := w.current()
		return l != "" && l != old
	})
	time.Sleep(lease) // frozen well past its lease
	masters[old].Signal(syscall.SIGCONT)
	time.Sleep(time.Second) // the watcher scrapes the thawed master too

	// The old term, as the deposed leader would send it.
	nc := connect(t, url)
	_, err := command.Send(t.Context(), nc, "w1", mesh.Command{Name: mesh.CmdPing, Term: oldTerm})
	if !errors.Is(err, command.ErrRefused) || !strings.Contains(err.Error(), "stale term") {
		t.Errorf("a command with the deposed leader's term %d: %v, want a stale-term refusal", oldTerm, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.two) > 0 {
		t.Errorf("two leaders at once: %v", w.two)
	}
}

// leaderTerm reads a master's term from its heartbeat.
func leaderTerm(t *testing.T, url, id string) uint64 {
	t.Helper()
	out := strings.TrimSpace(runBinOut(t, "crawlmesh", "nodes", "-o", "json", "--nats", url))
	var got nodesOutput
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("nodes -o json: %v", err)
	}
	for _, n := range got.Nodes {
		if n.ID == id {
			return n.Heartbeat.Term
		}
	}
	t.Fatalf("no node %s", id)
	return 0
}

func runBinOut(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, errOut, code := runBin(t, name, args...)
	if code != 0 {
		t.Fatalf("%s %v: exit %d: %s", name, args, code, errOut)
	}
	return out
}
