package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// agentKV reads heartbeats of bucket nodes for the agent tests.
type agentKV struct {
	t  *testing.T
	kv jetstream.KeyValue
}

func openAgentKV(t *testing.T, url string) *agentKV {
	t.Helper()
	nc := connect(t, url)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var kv jetstream.KeyValue
	waitFor(t, 15*time.Second, "bucket nodes", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		kv, err = js.KeyValue(ctx, mesh.NodesBucket)
		return err == nil
	})
	return &agentKV{t: t, kv: kv}
}

// get returns node id's heartbeat; ok is false when it has no key.
func (a *agentKV) get(id string) (mesh.Heartbeat, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	e, err := a.kv.Get(ctx, id)
	if err != nil {
		return mesh.Heartbeat{}, false
	}
	hb, err := mesh.DecodeHeartbeat(e.Value())
	if err != nil {
		a.t.Fatalf("heartbeat of %s: %v", id, err)
	}
	return hb, true
}

// childrenRunning reports whether agent's heartbeat lists exactly ids, each
// running, and each of them heartbeats as a worker of agent with the pid
// the agent lists.
func (a *agentKV) childrenRunning(agent string, ids ...string) bool {
	hb, ok := a.get(agent)
	if !ok || hb.Role != mesh.RoleAgent || len(hb.Children) != len(ids) {
		return false
	}
	for i, ch := range hb.Children {
		if ch.ID != ids[i] || ch.State != mesh.ChildRunning || ch.PID == 0 {
			return false
		}
		w, ok := a.get(ch.ID)
		if !ok || w.Role != mesh.RoleWorker || w.Agent != agent || w.PID != ch.PID {
			return false
		}
	}
	return true
}

// TestAgent drives `crawlmesh agent` as a user would: three workers come
// online; one SIGKILLed is back within 5 s; node scale to 1 and back to 3
// during a crawl loses and doubles no item; SIGTERM removes every key and
// exits 0.
func TestAgent(t *testing.T) {
	// Slow enough that the crawl outlives a scale-down and a scale-up.
	site := newTrapSite(t, 300, 150*time.Millisecond)
	m := startMesh(t, 0)
	kv := openAgentKV(t, m.url)
	ag := start(t, "crawlmesh", "agent", "--nats", m.url, "--id", "a1", "--workers", "3",
		"--", "--concurrency", "4", "--request-timeout", "5s")
	all := []string{"a1-1", "a1-2", "a1-3"}
	waitFor(t, 30*time.Second, "agent a1 with 3 workers online", func() bool { return kv.childrenRunning("a1", all...) })

	// The agent was given no --heartbeat-interval or --log-level: its
	// workers' values come from the defaults, not from a flag (review).
	for _, key := range []string{"heartbeat_interval", "log_level"} {
		out := m.mustCLI("config", "get", key, "--node", "a1-1", "-o", "json")
		if !strings.Contains(out, `"source": "default"`) && !strings.Contains(out, `"source":"default"`) {
			t.Errorf("config get %s --node a1-1:\n%s\nwant its source default", key, out)
		}
	}

	// Each child serves /metrics and /healthz on its own loopback port.
	first, _ := kv.get("a1")
	for _, ch := range first.Children {
		if !strings.HasPrefix(ch.HTTP, "127.0.0.1:") {
			t.Errorf("child %s http %q; want a loopback port", ch.ID, ch.HTTP)
			continue
		}
		waitFor(t, 10*time.Second, ch.ID+" /healthz 200", func() bool { code, _ := getHealthz(ch.HTTP); return code == 200 })
	}

	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", ag.PID())); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmRSS:") {
				t.Logf("agent with 3 workers: %s", strings.Join(strings.Fields(l), " "))
			}
		}
	}

	// nodes shows the agent and its children.
	out := m.mustCLI("nodes")
	for _, want := range []string{"a1 ", " agent ", "AGENT", "a1-3", "running"} {
		if !strings.Contains(out, want) {
			t.Errorf("crawlmesh nodes lacks %q:\n%s", want, out)
		}
	}
	// Each child's output reaches the agent's, marked with its id.
	waitFor(t, 5*time.Second, "child output in the agent's log", func() bool {
		return strings.Contains(ag.Output(), "child=a1-2 ")
	})

	// SIGKILL one child: the agent restarts it, back online within 5 s.
	before, _ := kv.get("a1")
	var victim mesh.Child
	for _, ch := range before.Children {
		if ch.ID == "a1-2" {
			victim = ch
		}
	}
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill child a1-2 (pid %d): %v", victim.PID, err)
	}
	back := waitFor(t, 10*time.Second, "a1-2 back online with a new process", func() bool {
		w, ok := kv.get("a1-2")
		return ok && w.PID != victim.PID && w.Agent == "a1"
	})
	t.Logf("agent restart: a1-2 SIGKILLed, back online (new pid heartbeating) in %v", back.Round(time.Millisecond))
	if back > 5*time.Second {
		t.Errorf("a1-2 back online after %v; want within 5s", back)
	}
	waitFor(t, 5*time.Second, "agent lists the restart", func() bool {
		hb, _ := kv.get("a1")
		for _, ch := range hb.Children {
			if ch.ID == "a1-2" {
				return ch.Restarts == 1 && ch.State == mesh.ChildRunning && ch.LastExit == "signal: killed"
			}
		}
		return false
	})
	if !strings.Contains(ag.Output(), "worker exited; restarting it") {
		t.Errorf("agent log does not say it restarted a worker:\n%s", ag.Output())
	}

	// Scale down to 1 and back to 3 while a crawl runs.
	m.apply(site.spec("scale"))
	id := strings.TrimSpace(m.mustCLI("crawl", "start", "scale"))
	waitFor(t, 30*time.Second, "40 pages done", func() bool { return m.status(id).PagesOK >= 40 })
	if out := m.mustCLI("node", "scale", "a1", "1"); !strings.Contains(out, "a1") || !strings.Contains(out, "WORKERS") {
		t.Errorf("node scale a1 1 printed:\n%s", out)
	}
	waitFor(t, 30*time.Second, "a1-3 and a1-2 drained and gone", func() bool {
		_, ok2 := kv.get("a1-2")
		_, ok3 := kv.get("a1-3")
		return !ok2 && !ok3 && kv.childrenRunning("a1", "a1-1")
	})
	var drained []string
	for _, line := range strings.Split(ag.Output(), "\n") {
		if strings.Contains(line, `msg="draining worker"`) && !strings.HasPrefix(line, "child=") {
			for _, f := range strings.Fields(line) {
				if c, ok := strings.CutPrefix(f, "child="); ok {
					drained = append(drained, c)
				}
			}
		}
	}
	if !slices.Equal(drained, []string{"a1-3", "a1-2"}) {
		t.Errorf("scale-down drained %v; want a1-3, then a1-2", drained)
	}
	if st := m.status(id); st.State != mesh.CrawlRunning {
		t.Fatalf("crawl already %s after the scale-down; make the site slower", st.State)
	}
	m.mustCLI("node", "scale", "a1", "3")
	waitFor(t, 30*time.Second, "3 workers again", func() bool { return kv.childrenRunning("a1", all...) })
	if _, errOut, code := m.cli("crawl", "wait", id); code != 0 {
		t.Fatalf("crawl wait: exit %d\n%s", code, errOut)
	}
	checkItems(t, m.export(id), site.expected())

	// Refusals name what is wrong.
	if _, errOut, code := m.cli("node", "scale", "a1", "300"); code != 2 || !strings.Contains(errOut, "want 0..256") {
		t.Errorf("node scale a1 300: exit %d, %s", code, errOut)
	}
	if _, errOut, code := m.cli("node", "scale", "a1-1", "2"); code != 1 || !strings.Contains(errOut, "host agent") {
		t.Errorf("node scale of a worker: exit %d, %s", code, errOut)
	}
	doc, _, _ := m.cli("doctor")
	if !strings.Contains(doc, "agent a1: 3 worker(s), none restarting") {
		t.Errorf("doctor does not report the agent:\n%s", doc)
	}

	// SIGTERM: every child drained and gone, the agent's key too, exit 0.
	last, _ := kv.get("a1")
	if code := ag.Stop(60 * time.Second); code != 0 {
		t.Fatalf("agent exit %d after SIGTERM; output:\n%s", code, ag.Output())
	}
	for _, id := range append(slices.Clone(all), "a1") {
		if hb, ok := kv.get(id); ok {
			t.Errorf("%s still has a heartbeat key after the agent stopped: %+v", id, hb)
		}
	}
	for _, ch := range last.Children {
		if syscall.Kill(ch.PID, 0) == nil {
			t.Errorf("child %s (pid %d) still runs after the agent exited", ch.ID, ch.PID)
		}
	}
	if !strings.Contains(ag.Output(), "agent stopped: every worker exited") {
		t.Errorf("agent log lacks its clean stop:\n%s", ag.Output())
	}
}

// TestAgentSecondSignal: an agent running the worker binary (--worker-bin).
// SIGTERM starts a drain that waits for slow pages;
// a second SIGTERM makes the agent exit at once (130), and its workers,
// whose stdin closed, stop by themselves and remove their keys.
func TestAgentSecondSignal(t *testing.T) {
	site := newTrapSite(t, 20, 20*time.Second) // every page takes 20 s
	m := startMesh(t, 0)
	kv := openAgentKV(t, m.url)
	// The worker binary this time, rather than crawlmesh's worker mode.
	ag := start(t, "crawlmesh", "agent", "--nats", m.url, "--id", "b1", "--workers", "2",
		"--worker-bin", filepath.Join(bins(t), "worker"), "--", "--concurrency", "2", "--request-timeout", "60s")
	waitFor(t, 30*time.Second, "agent b1 with 2 workers online", func() bool { return kv.childrenRunning("b1", "b1-1", "b1-2") })
	hb, _ := kv.get("b1")
	m.apply(site.spec("slow"))
	m.mustCLI("crawl", "start", "slow")
	waitFor(t, 20*time.Second, "a worker busy with a slow page", func() bool {
		w1, _ := kv.get("b1-1")
		w2, _ := kv.get("b1-2")
		return w1.ActiveTasks+w2.ActiveTasks > 0
	})
	ag.Signal(syscall.SIGTERM)
	waitFor(t, 5*time.Second, "agent draining", func() bool { h, _ := kv.get("b1"); return h.State == mesh.StateDraining })
	ag.Signal(syscall.SIGTERM)
	code := exitCode(t, ag, 5*time.Second)
	if code != 130 {
		t.Errorf("agent exit %d after a second SIGTERM; want 130", code)
	}
	waitFor(t, 10*time.Second, "the workers stopped and their keys gone", func() bool {
		for _, ch := range hb.Children {
			if _, ok := kv.get(ch.ID); ok || syscall.Kill(ch.PID, 0) == nil {
				return false
			}
		}
		return true
	})
	// They stopped cleanly, not killed: a stopping worker hands its slow
	// pages back as new messages (handed_back), where a killed one leaves
	// them to its ack wait. Their log lines to the dead agent's pipe
	// killed them with SIGPIPE before (found by review).
	js, err := jetstream.New(connect(t, m.url))
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(t.Context(), mesh.TasksStream)
	if err != nil {
		t.Fatal(err)
	}
	handed := 0
	for seq := s.CachedInfo().State.FirstSeq; seq > 0 && seq <= s.CachedInfo().State.LastSeq; seq++ {
		if msg, err := s.GetMsg(t.Context(), seq); err == nil {
			if tk, err := mesh.DecodeTask(msg.Data); err == nil && tk.HandedBack > 0 {
				handed++
			}
		}
	}
	if handed == 0 {
		t.Errorf("no task was handed back by the agent's workers: they did not stop cleanly once the agent was gone")
	}
}
