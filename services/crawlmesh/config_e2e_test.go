package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/clusterconfig"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/services/internal/harness"
)

// configMesh is a harness mesh with the helpers the config tests share.
type configMesh struct {
	*harness.Mesh
	t *testing.T
}

// beat reads node id's heartbeat (zero when it has none).
func (m configMesh) beat(id string) mesh.Heartbeat {
	hb, _ := m.Heartbeat(id)
	return hb
}

// waitBeat waits until node id's heartbeat satisfies cond.
func (m configMesh) waitBeat(id, what string, cond func(hb mesh.Heartbeat) bool) mesh.Heartbeat {
	m.t.Helper()
	var hb mesh.Heartbeat
	harness.Eventually(m.t, 10*time.Second, id+": "+what, func() bool {
		hb = m.beat(id)
		return cond(hb)
	}, func() string { b, _ := json.Marshal(hb); return string(b) })
	return hb
}

// value is key's effective value and source in a heartbeat.
func value(hb mesh.Heartbeat, key string) mesh.ConfigValue {
	if hb.Config == nil {
		return mesh.ConfigValue{}
	}
	return hb.Config.Values[key]
}

func (m configMesh) waitCapacity(id string, n int, source string) mesh.Heartbeat {
	m.t.Helper()
	return m.waitBeat(id, fmt.Sprintf("capacity %d from %s", n, source), func(hb mesh.Heartbeat) bool {
		return hb.Capacity == n && value(hb, clusterconfig.Concurrency) == mesh.ConfigValue{Value: strconv.Itoa(n), Source: source}
	})
}

// stored is `config ls -o json`.
func (m configMesh) stored() []clusterconfig.Entry {
	m.t.Helper()
	var es []clusterconfig.Entry
	if err := json.Unmarshal([]byte(m.CLI.Must("config", "ls", "-o", "json")), &es); err != nil {
		m.t.Fatal(err)
	}
	return es
}

// restart stops worker i cleanly and starts it again.
func (m configMesh) restart(i int) {
	m.t.Helper()
	w := m.Workers[i]
	if code := w.Stop(15 * time.Second); code != 0 {
		m.t.Fatalf("%s exited %d on SIGTERM", w.Name(), code)
	}
	w.Restart()
}

// TestConfigLive: three worker processes and the CLI as a user drives them.
// A role-wide value reaches every worker's heartbeat; a node override wins;
// config rm restores; a restarted worker comes back with the stored value;
// bad values are refused and change nothing; node set-concurrency and pause
// survive a restart, and sent to all they hold for workers that join
// later; nodes -o wide shows the config version; doctor reports
// an override of a node that does not exist and a value a node could not
// apply.
func TestConfigLive(t *testing.T) {
	m := configMesh{harness.StartMesh(t, harness.MeshConfig{Workers: 3}), t}
	workers := []string{"w1", "w2", "w3"}
	for _, id := range workers {
		m.waitCapacity(id, 4, clusterconfig.SourceFlag) // --concurrency 4
	}

	// A role-wide value reaches every worker.
	out := m.CLI.Must("config", "set", "concurrency", "7", "--role", "worker")
	if !strings.Contains(out, "concurrency = 7 at role worker") {
		t.Errorf("config set printed %q", out)
	}
	t0 := time.Now()
	for _, id := range workers {
		m.waitCapacity(id, 7, clusterconfig.LevelRole)
	}
	t.Logf("concurrency 7 --role worker in all three heartbeats %v after config set returned", time.Since(t0).Round(time.Millisecond))
	if hb := m.beat("m1"); value(hb, clusterconfig.Concurrency) != (mesh.ConfigValue{}) {
		t.Errorf("the master reports concurrency %+v; it is a worker key", value(hb, clusterconfig.Concurrency))
	}

	// A node override wins, for that node only.
	m.CLI.Must("config", "set", "concurrency", "3", "--node", "w2")
	m.waitCapacity("w2", 3, clusterconfig.LevelNode)
	for _, id := range []string{"w1", "w3"} {
		if hb := m.beat(id); hb.Capacity != 7 {
			t.Errorf("%s capacity %d after w2's override; want 7", id, hb.Capacity)
		}
	}
	get := m.CLI.Must("config", "get", "concurrency", "--node", "w2")
	if !regexpLine(get, "concurrency", "3", "node") {
		t.Errorf("config get concurrency --node w2:\n%s", get)
	}
	// A role's value, and the cluster-wide view saying what wins on nodes.
	if get := m.CLI.Must("config", "get", "concurrency", "--role", "worker"); !regexpLine(get, "concurrency", "7", "role") {
		t.Errorf("config get concurrency --role worker:\n%s", get)
	}
	if out, errOut, code := m.CLI.Run("config", "get", "concurrency"); code != 0 ||
		!strings.Contains(errOut, "role.worker.concurrency") || !strings.Contains(errOut, "node.w2.concurrency") {
		t.Errorf("config get concurrency (cluster-wide) does not say a role and a node set it: exit %d\n%s%s", code, out, errOut)
	}
	var view clusterconfig.NodeView
	if err := json.Unmarshal([]byte(m.CLI.Must("config", "get", "--node", "w1", "-o", "json")), &view); err != nil {
		t.Fatal(err)
	}
	if !view.Online || view.Values["concurrency"].Source != "role" || view.Values["user_agent"].Source != "default" ||
		view.Values["log_level"].Source != "default" || view.Values["request_timeout"] != (mesh.ConfigValue{Value: "2s", Source: "flag"}) {
		t.Errorf("config get --node w1 -o json: %+v", view)
	}

	// config rm restores the role's value.
	m.CLI.Must("config", "rm", "concurrency", "--node", "w2")
	m.waitCapacity("w2", 7, clusterconfig.LevelRole)
	if _, errOut, code := m.CLI.Run("config", "rm", "concurrency", "--node", "w2"); code == 0 || !strings.Contains(errOut, "not set") {
		t.Errorf("a second config rm: exit %d %s", code, errOut)
	}

	// A restarted worker starts with the stored value: its very first
	// heartbeat has it.
	old := m.beat("w1").Instance
	m.restart(0)
	hb := m.waitBeat("w1", "a heartbeat of the new process", func(hb mesh.Heartbeat) bool { return hb.Instance != "" && hb.Instance != old })
	if hb.Capacity != 7 || value(hb, clusterconfig.Concurrency).Source != "role" {
		t.Errorf("restarted w1's first heartbeat: capacity %d %+v; want 7 from role", hb.Capacity, value(hb, clusterconfig.Concurrency))
	}

	// Bad values are refused, naming the key, and nothing changes.
	before := m.stored()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"config", "set", "concurrency", "-1", "--role", "worker"}, `concurrency "-1": out of range`},
		{[]string{"config", "set", "concurrency", "-1"}, `concurrency "-1": out of range`},
		{[]string{"config", "set", "concurrency", "lots"}, `concurrency "lots"`},
		{[]string{"config", "set", "colour", "red"}, `unknown config key "colour"`},
		{[]string{"config", "set", "concurrency", "5", "--role", "master"}, "not to role master"},
		{[]string{"config", "set", "concurrency", "5", "--node", "m1"}, "node m1 is a master"},
		{[]string{"config", "set", "heartbeat_interval", "2s"}, "TTL"}, // bucket nodes' TTL is 3s
		{[]string{"config", "set", "proxies", "http://u:hunter2@127.0.0.1:3128"}, "${env:NAME}"},
		{[]string{"config", "set", "log_level", "debug", "--node", "w1", "--role", "worker"}, "not both"},
	} {
		out, errOut, code := m.CLI.Run(tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("crawlmesh %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
		if strings.Contains(out+errOut, "hunter2") {
			t.Errorf("crawlmesh %s printed the proxy password", strings.Join(tc.args, " "))
		}
	}
	if after := m.stored(); !slices.EqualFunc(before, after, func(a, b clusterconfig.Entry) bool { return a.Revision == b.Revision && a.Value == b.Value }) {
		t.Errorf("refused values changed the bucket:\nbefore %+v\nafter  %+v", before, after)
	}
	for _, id := range workers {
		if hb := m.beat(id); hb.Capacity != 7 || len(hb.Config.Errors) > 0 {
			t.Errorf("%s after refused values: capacity %d, errors %q", id, hb.Capacity, hb.Config.Errors)
		}
	}

	// node set-concurrency and pause are stored at node level: a restart
	// keeps them.
	m.CLI.Must("node", "set-concurrency", "w3", "5")
	m.CLI.Must("node", "pause", "w3")
	m.waitBeat("w3", "paused with capacity 5", func(hb mesh.Heartbeat) bool {
		return hb.State == mesh.StatePaused && hb.Capacity == 5 && value(hb, "paused").Source == "node"
	})
	old = m.beat("w3").Instance
	m.restart(2)
	hb = m.waitBeat("w3", "a heartbeat of the new process", func(hb mesh.Heartbeat) bool { return hb.Instance != "" && hb.Instance != old })
	if hb.State != mesh.StatePaused || hb.Capacity != 5 {
		t.Errorf("restarted w3: state %s capacity %d; want paused with 5 (node pause and set-concurrency are stored)", hb.State, hb.Capacity)
	}
	m.CLI.Must("node", "resume", "w3")
	m.waitBeat("w3", "running", func(hb mesh.Heartbeat) bool { return hb.State == mesh.StateRunning })
	m.CLI.Must("config", "rm", "concurrency", "--node", "w3")
	m.waitCapacity("w3", 7, clusterconfig.LevelRole)

	// node pause all holds for every worker, not only those that answered:
	// it is stored at the worker role's level, so a worker that joins
	// later starts paused, and w3's own "paused false" (from its resume
	// above) is removed rather than left to win. node resume all runs them
	// all again.
	isPaused := func(hb mesh.Heartbeat) bool {
		return hb.State == mesh.StatePaused && value(hb, clusterconfig.Paused) == mesh.ConfigValue{Value: "true", Source: clusterconfig.LevelRole}
	}
	m.CLI.Must("node", "pause", "all")
	for _, id := range workers {
		m.waitBeat(id, "paused by the worker role's value", isPaused)
	}
	w4 := m.StartWorker("w4")
	m.waitBeat("w4", "joined paused", isPaused)
	m.CLI.Must("node", "resume", "all")
	for _, id := range append(workers, "w4") {
		m.waitBeat(id, "running", func(hb mesh.Heartbeat) bool { return hb.State == mesh.StateRunning })
	}
	for _, e := range m.stored() {
		if e.Key == clusterconfig.Paused && e.Scope.Level == clusterconfig.LevelNode {
			t.Errorf("after node pause all: %s keeps its own paused = %s", e.Scope.Target, e.Value)
		}
	}
	if code := w4.Stop(15 * time.Second); code != 0 {
		t.Fatalf("w4 exited %d on SIGTERM", code)
	}

	// log_level applies live: w2 at warn does not log a ping it answers;
	// back at info, it logs the next one (its output is in order, so the
	// first ping's line would be there before the second's).
	m.CLI.Must("config", "set", "log_level", "warn", "--node", "w2")
	m.waitBeat("w2", "log_level warn", func(hb mesh.Heartbeat) bool { return value(hb, "log_level").Value == "warn" })
	m.CLI.Must("node", "ping", "w2")
	m.CLI.Must("config", "rm", "log_level", "--node", "w2")
	m.waitBeat("w2", "log_level info", func(hb mesh.Heartbeat) bool { return value(hb, "log_level").Value == "info" })
	m.CLI.Must("node", "ping", "w2")
	harness.Eventually(t, 10*time.Second, "w2 logs the second ping", func() bool { return strings.Contains(m.Workers[1].Output(), "cmd=ping") })
	if n := strings.Count(m.Workers[1].Output(), "cmd=ping"); n != 1 {
		t.Errorf("w2 logged %d pings; want 1 (the one at log_level info)", n)
	}
	// Masters apply log_level and heartbeat_interval too; workers apply
	// heartbeat_interval.
	m.CLI.Must("config", "set", "log_level", "warn", "--role", "master")
	m.CLI.Must("config", "set", "heartbeat_interval", "500ms")
	m.waitBeat("m1", "log_level warn from role, heartbeat_interval from cluster", func(hb mesh.Heartbeat) bool {
		return value(hb, "log_level") == mesh.ConfigValue{Value: "warn", Source: "role"} && value(hb, "heartbeat_interval").Source == "cluster" && len(hb.Config.Errors) == 0
	})
	for _, id := range workers {
		m.waitBeat(id, "heartbeat_interval 500ms", func(hb mesh.Heartbeat) bool {
			return value(hb, "heartbeat_interval") == mesh.ConfigValue{Value: "500ms", Source: "cluster"} && len(hb.Config.Errors) == 0
		})
	}
	m.CLI.Must("config", "rm", "log_level", "--role", "master")
	m.CLI.Must("config", "rm", "heartbeat_interval")

	// nodes -o wide: every node's config version.
	wide := m.CLI.Must("nodes", "-o", "wide")
	if !strings.Contains(wide, "CONFIG") {
		t.Errorf("nodes -o wide has no CONFIG column:\n%s", wide)
	}
	for _, id := range append([]string{"m1"}, workers...) {
		rev := m.beat(id).Config.Rev
		if !regexpLine(wide, id, "rev "+strconv.FormatUint(rev, 10)) {
			t.Errorf("nodes -o wide: no line for %s with rev %d:\n%s", id, rev, wide)
		}
	}

	// doctor: an override of a node that does not exist, and a value a
	// node could not apply (written past the CLI's checks, by hand).
	m.CLI.Must("config", "set", "user_agent", "ghostbot/1", "--node", "ghost")
	kv, err := m.JS.KeyValue(t.Context(), mesh.ConfigBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.PutString(t.Context(), "node.w1.max_attempts", "0"); err != nil {
		t.Fatal(err)
	}
	m.waitBeat("w1", "the bad value reported", func(hb mesh.Heartbeat) bool { return hb.Config != nil && len(hb.Config.Errors) == 1 })
	if hb := m.beat("w1"); value(hb, "max_attempts") != (mesh.ConfigValue{Value: "3", Source: "flag"}) {
		t.Errorf("w1 max_attempts %+v with a bad node value; want its flag's 3", value(hb, "max_attempts"))
	}
	doc, _, code := m.CLI.Run("doctor")
	if code == 0 || !strings.Contains(doc, "node ghost, which no longer exists") || !strings.Contains(doc, "worker w1 could not apply a value: node w1: bad config value: max_attempts \"0\"") {
		t.Errorf("doctor (exit %d) does not report the config problems:\n%s", code, doc)
	}
	m.CLI.Must("config", "rm", "user_agent", "--node", "ghost")
	m.CLI.Must("config", "rm", "max_attempts", "--node", "w1")
	m.waitBeat("w1", "no error left", func(hb mesh.Heartbeat) bool { return hb.Config != nil && len(hb.Config.Errors) == 0 })
	if doc := m.CLI.Must("doctor"); !strings.Contains(doc, "every online node applied its configuration") {
		t.Errorf("doctor after the fixes:\n%s", doc)
	}

	// Propagation: 20 changes, each timed from the bucket's ack to the
	// moment all three workers' heartbeats carry it (a watch of bucket
	// nodes sees each beat as it is written).
	times := propagation(t, m, kv, workers, 20)
	slices.Sort(times)
	t.Logf("config propagation over %d changes, 3 workers: median %v, max %v", len(times),
		times[len(times)/2].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
}

// propagation sets concurrency n times at role worker and returns, per
// change, the time from the write's ack until every worker's heartbeat
// reported it.
func propagation(t *testing.T, m configMesh, kv jetstream.KeyValue, workers []string, n int) []time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	nodes, err := m.JS.KeyValue(ctx, mesh.NodesBucket)
	if err != nil {
		t.Fatal(err)
	}
	w, err := nodes.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop() }()
	role := clusterconfig.Scope{Level: clusterconfig.LevelRole, Target: mesh.RoleWorker}
	var out []time.Duration
	for i := range n {
		want := 10 + i%5
		if _, err := clusterconfig.Set(ctx, kv, role, clusterconfig.Concurrency, strconv.Itoa(want), 0); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		seen := map[string]bool{}
		for len(seen) < len(workers) {
			select {
			case <-ctx.Done():
				t.Fatalf("change %d (concurrency %d) not in every heartbeat within a minute: %v", i, want, seen)
			case e := <-w.Updates():
				if e == nil || e.Operation() != jetstream.KeyValuePut {
					continue
				}
				if hb, err := mesh.DecodeHeartbeat(e.Value()); err == nil && hb.Capacity == want && slices.Contains(workers, e.Key()) {
					seen[e.Key()] = true
				}
			}
		}
		out = append(out, time.Since(t0))
	}
	return out
}

// regexpLine reports whether some line of text has the words of want
// as fields, in order (other fields may come between).
func regexpLine(text string, want ...string) bool {
	tokens := strings.Fields(strings.Join(want, " "))
	for _, line := range strings.Split(text, "\n") {
		i := 0
		for _, f := range strings.Fields(line) {
			if i < len(tokens) && f == tokens[i] {
				i++
			}
		}
		if i == len(tokens) {
			return true
		}
	}
	return false
}

// TestConfigDuringCrawl: concurrency and user_agent change mid-crawl of
// the trap site, three worker processes; the crawl completes with the
// exact item set (nothing lost, nothing doubled), and requests after the
// change carry the new user agent.
func TestConfigDuringCrawl(t *testing.T) {
	m := configMesh{harness.StartMesh(t, harness.MeshConfig{Workers: 3}), t}
	site := newTrapSite(t, 300, 30*time.Millisecond)
	m.CLI.Apply(site.spec("cfgcrawl"))
	id := m.CLI.Start("cfgcrawl")
	m.WaitPages(id, 40, 60*time.Second)
	m.CLI.Must("config", "set", "concurrency", "2", "--role", "worker")
	m.CLI.Must("config", "set", "user_agent", "cfgbot/2 (+http://127.0.0.1/)")
	for _, w := range []string{"w1", "w2", "w3"} {
		m.waitCapacity(w, 2, clusterconfig.LevelRole)
	}
	mid, err := m.Status(id)
	if err != nil {
		t.Fatal(err)
	}
	m.WaitPages(id, mid.PagesOK+mid.PagesFailed+mid.Dead+40, 60*time.Second)
	m.CLI.Must("config", "set", "concurrency", "9", "--role", "worker")
	m.CLI.Must("config", "set", "request_timeout", "4s")
	if err := m.CLI.Wait(id, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	harness.CheckItems(t, m.CLI.Export(id), site.expected())
	uas := site.userAgents()
	if uas["cfgbot/2 (+http://127.0.0.1/)"] == 0 {
		t.Errorf("no request carried the new user agent: %v", uas)
	}
	t.Logf("requests by user agent: %v", uas)
}
