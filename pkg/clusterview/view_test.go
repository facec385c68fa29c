package clusterview_test

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"go.uber.org/goleak"

	"github.com/crawlmesh/crawlmesh/pkg/clusterview"
	"github.com/crawlmesh/crawlmesh/pkg/heartbeat"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/natstest"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	ttl      = time.Second
	interval = 200 * time.Millisecond
)

func nodesKV(t *testing.T) jetstream.KeyValue {
	t.Helper()
	_, js := streamstest.Start(t, streams.Options{NodesTTL: ttl})
	return streamstest.Bucket(t, js, mesh.NodesBucket)
}

// goRun runs f in a goroutine; the returned stop cancels it and waits.
// stop is also called when the test ends.
func goRun(t *testing.T, f func(ctx context.Context) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		err = f(ctx)
	}()
	stop = func() error {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("goroutine did not stop within 5s")
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func startView(t *testing.T, kv jetstream.KeyValue, opts ...clusterview.Option) *clusterview.View {
	t.Helper()
	v := clusterview.New(kv, opts...)
	goRun(t, v.Run)
	select {
	case <-v.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("view not ready within 5s")
	}
	return v
}

func newBeater(t *testing.T, kv jetstream.KeyValue, id, role string, opts ...heartbeat.Option) *heartbeat.Beater {
	t.Helper()
	opts = append([]heartbeat.Option{heartbeat.WithInterval(interval), heartbeat.WithTTL(ttl)}, opts...)
	b, err := heartbeat.New(kv, id, role, opts...)
	if err != nil {
		t.Fatalf("heartbeat.New: %v", err)
	}
	if err := b.Claim(t.Context()); err != nil {
		t.Fatalf("Claim: %v", err)
	}
	return b
}

// startBeater claims id and beats until the returned stop is called.
func startBeater(t *testing.T, kv jetstream.KeyValue, id, role string, opts ...heartbeat.Option) (stop func() error) {
	t.Helper()
	b := newBeater(t, kv, id, role, opts...)
	return goRun(t, b.Run)
}

func node(v *clusterview.View, id string) (clusterview.Node, bool) {
	for _, n := range v.Nodes() {
		if n.ID == id {
			return n, true
		}
	}
	return clusterview.Node{}, false
}

func waitOnline(t *testing.T, v *clusterview.View, id string) clusterview.Node {
	t.Helper()
	var n clusterview.Node
	natstest.Eventually(t, 3*time.Second, id+" online in the view", func() bool {
		var ok bool
		n, ok = node(v, id)
		return ok && n.Online
	})
	return n
}

func waitOffline(t *testing.T, v *clusterview.View, id string, within time.Duration) clusterview.Node {
	t.Helper()
	var n clusterview.Node
	natstest.Eventually(t, within, id+" offline in the view", func() bool {
		var ok bool
		n, ok = node(v, id)
		return ok && !n.Online
	})
	return n
}

func TestNodeOnlineWithRole(t *testing.T) {
	kv := nodesKV(t)
	v := startView(t, kv)
	startBeater(t, kv, "w1", mesh.RoleWorker, heartbeat.WithStatus(func() heartbeat.Status {
		return heartbeat.Status{State: mesh.StateRunning, ActiveTasks: 1, Capacity: 4}
	}))
	startBeater(t, kv, "m1", mesh.RoleMaster)
	w := waitOnline(t, v, "w1")
	if w.Role != mesh.RoleWorker || w.State != mesh.StateRunning || w.Capacity != 4 || w.ActiveTasks != 1 || w.OfflineSince != nil {
		t.Errorf("w1 = %+v", w)
	}
	m := waitOnline(t, v, "m1")
	if m.Role != mesh.RoleMaster || !m.Heartbeat.Master {
		t.Errorf("m1 = %+v", m)
	}
	if ns := v.Nodes(); len(ns) != 2 || ns[0].ID != "m1" || ns[1].ID != "w1" {
		t.Errorf("Nodes() = %v, want m1 then w1 (sorted by role, id)", ns)
	}
	// The view follows renewals.
	rev := w.Revision
	natstest.Eventually(t, 2*time.Second, "view sees renewals", func() bool {
		n, _ := node(v, "w1")
		return n.Revision > rev
	})
}

func TestPurgedNodeGoesOfflineAndStaysListed(t *testing.T) {
	kv := nodesKV(t)
	v := startView(t, kv)
	stop := startBeater(t, kv, "w1", mesh.RoleWorker)
	waitOnline(t, v, "w1")
	before := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("beater Run: %v", err)
	}
	// A purge is seen at once, well before the 1s TTL would expire the key.
	n := waitOffline(t, v, "w1", 500*time.Millisecond)
	if n.OfflineSince == nil {
		t.Fatal("OfflineSince not set")
	}
	if n.OfflineSince.Before(before.Add(-time.Second)) || n.OfflineSince.After(time.Now().Add(time.Second)) {
		t.Errorf("OfflineSince = %v, want about %v", n.OfflineSince, before)
	}
	if n.Role != mesh.RoleWorker {
		t.Errorf("offline node lost its role: %+v", n)
	}
	// It stays listed (default retention 10m) past a few prune ticks.
	until := time.Now().Add(1500 * time.Millisecond)
	natstest.Eventually(t, 3*time.Second, "offline node still listed", func() bool {
		if _, ok := node(v, "w1"); !ok {
			t.Fatal("offline node dropped from the view before its retention")
		}
		return time.Now().After(until)
	})
}

func TestExpiredKeyGoesOffline(t *testing.T) {
	kv := nodesKV(t)
	v := startView(t, kv)
	newBeater(t, kv, "w1", mesh.RoleWorker) // claimed, never beats: it just expires
	claimed := time.Now()
	waitOnline(t, v, "w1")
	n := waitOffline(t, v, "w1", ttl+time.Second+time.Since(claimed))
	if n.OfflineSince == nil {
		t.Error("OfflineSince not set")
	}
	if _, err := kv.Get(t.Context(), "w1"); err == nil {
		t.Error("key still readable after the view saw it expire")
	}
}

func TestClockSkew(t *testing.T) {
	kv := nodesKV(t)
	v := startView(t, kv)
	startBeater(t, kv, "w1", mesh.RoleWorker, heartbeat.WithClock(func() time.Time { return time.Now().Add(30 * time.Second) }))
	startBeater(t, kv, "w2", mesh.RoleWorker)
	n := waitOnline(t, v, "w1")
	if math.Abs(n.SkewSeconds-30) > 0.5 {
		t.Errorf("skew of w1 = %.3fs, want 30±0.5s", n.SkewSeconds)
	}
	n2 := waitOnline(t, v, "w2")
	if math.Abs(n2.SkewSeconds) > 0.5 {
		t.Errorf("skew of w2 = %.3fs, want 0±0.5s", n2.SkewSeconds)
	}
	if n.AgeSeconds < 0 || n.AgeSeconds > 2 {
		t.Errorf("heartbeat age of w1 = %.3fs, want 0..2s", n.AgeSeconds)
	}
}

func TestRetentionPrunesOfflineNodes(t *testing.T) {
	kv := nodesKV(t)
	v := startView(t, kv, clusterview.WithRetention(100*time.Millisecond))
	stopW1 := startBeater(t, kv, "w1", mesh.RoleWorker)
	startBeater(t, kv, "w2", mesh.RoleWorker)
	waitOnline(t, v, "w1")
	waitOnline(t, v, "w2")
	if err := stopW1(); err != nil {
		t.Fatalf("beater Run: %v", err)
	}
	waitOffline(t, v, "w1", time.Second)
	// prune runs on a 1s ticker
	natstest.Eventually(t, 3*time.Second, "offline w1 pruned", func() bool {
		_, ok := node(v, "w1")
		return !ok
	})
	if n, ok := node(v, "w2"); !ok || !n.Online {
		t.Errorf("online w2 pruned or offline: %+v %v", n, ok)
	}
}

// The brief asked for prometheus/testutil, but importing it needs go.sum
// entries for github.com/kylelemons/godebug that this module does not have
// (and test files may not change go.mod/go.sum), so count and gauge read
// the registry's Gather output directly, as testutil does, and lint with
// testutil/promlint, which has no extra dependencies.

// count returns how many series of metric name g gathers.
func count(t *testing.T, g prometheus.Gatherer, name string) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// gauge returns the value of the gauge name with labels, and whether it exists.
func gauge(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metrics
				}
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	kv := nodesKV(t)
	v := startView(t, kv)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(v); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if n := count(t, reg, "crawlmesh_node_online"); n != 0 {
		t.Errorf("empty view: %d crawlmesh_node_online series, want 0", n)
	}
	stop := startBeater(t, kv, "w1", mesh.RoleWorker, heartbeat.WithStatus(func() heartbeat.Status {
		return heartbeat.Status{State: mesh.StateRunning, Capacity: 4}
	}))
	w1 := map[string]string{"node": "w1", "role": mesh.RoleWorker}
	natstest.Eventually(t, 3*time.Second, "crawlmesh_node_online{node=w1,role=worker} 1", func() bool {
		val, ok := gauge(t, reg, "crawlmesh_node_online", w1)
		return ok && val == 1
	})
	for _, name := range []string{"crawlmesh_node_clock_skew_seconds", "crawlmesh_node_heartbeat_age_seconds",
		"crawlmesh_node_capacity", "crawlmesh_node_active_tasks"} {
		if n := count(t, reg, name); n != 1 {
			t.Errorf("%s: %d series, want 1", name, n)
		}
	}
	if c, ok := gauge(t, reg, "crawlmesh_node_capacity", map[string]string{"node": "w1"}); !ok || c != 4 {
		t.Errorf("crawlmesh_node_capacity{node=w1} = %v (exists %v), want 4", c, ok)
	}
	if c, ok := gauge(t, reg, "crawlmesh_nodes", map[string]string{"role": mesh.RoleWorker, "online": "1"}); !ok || c != 1 {
		t.Errorf("crawlmesh_nodes{role=worker,online=1} = %v (exists %v), want 1", c, ok)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	if problems, err := promlint.NewWithMetricFamilies(mfs).Lint(); err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}

	if err := stop(); err != nil {
		t.Fatalf("beater Run: %v", err)
	}
	natstest.Eventually(t, 2*time.Second, "crawlmesh_node_online{node=w1,role=worker} 0", func() bool {
		val, ok := gauge(t, reg, "crawlmesh_node_online", w1)
		return ok && val == 0
	})
	if c, ok := gauge(t, reg, "crawlmesh_nodes", map[string]string{"role": mesh.RoleWorker, "online": "0"}); !ok || c != 1 {
		t.Errorf("crawlmesh_nodes{role=worker,online=0} = %v (exists %v), want 1", c, ok)
	}
}

func TestReadyAfterFirstSnapshot(t *testing.T) {
	kv := nodesKV(t)
	startBeater(t, kv, "w1", mesh.RoleWorker)
	startBeater(t, kv, "w2", mesh.RoleWorker)
	v := clusterview.New(kv)
	select {
	case <-v.Ready():
		t.Fatal("Ready closed before Run")
	default:
	}
	goRun(t, v.Run)
	select {
	case <-v.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("Ready not closed within 5s")
	}
	// When Ready is closed, the snapshot is in: both nodes, no polling.
	ns := v.Nodes()
	if len(ns) != 2 || !ns[0].Online || !ns[1].Online {
		t.Errorf("Nodes() right after Ready = %+v, want w1 and w2 online", ns)
	}
}

func TestReadyOnEmptyBucket(t *testing.T) {
	kv := nodesKV(t)
	v := startView(t, kv)
	if ns := v.Nodes(); len(ns) != 0 {
		t.Errorf("Nodes() = %v, want none", ns)
	}
}

func TestUnreadableValueIgnored(t *testing.T) {
	kv := nodesKV(t)
	if _, err := kv.Put(t.Context(), "junk0", []byte("not json at all")); err != nil {
		t.Fatal(err)
	}
	v := startView(t, kv)
	if _, err := kv.Put(t.Context(), "junk1", []byte("{broken")); err != nil {
		t.Fatal(err)
	}
	startBeater(t, kv, "w1", mesh.RoleWorker)
	waitOnline(t, v, "w1")
	for _, id := range []string{"junk0", "junk1"} {
		if n, ok := node(v, id); ok {
			t.Errorf("unreadable %s listed: %+v", id, n)
		}
	}
	startBeater(t, kv, "w2", mesh.RoleWorker)
	waitOnline(t, v, "w2")
}

// blindWatch is the real nodes bucket whose watches never say that a key
// was deleted or expired, as a watch did across a NATS server restart: a
// worker killed then stayed online in every master's view for good.
type blindWatch struct{ jetstream.KeyValue }

func (b blindWatch) WatchAll(ctx context.Context, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	w, err := b.KeyValue.WatchAll(ctx, opts...)
	if err != nil {
		return nil, err
	}
	out := make(chan jetstream.KeyValueEntry)
	go func() { // ends when the watch's channel closes (Stop, ctx)
		defer close(out)
		for e := range w.Updates() {
			if e != nil && e.Operation() != jetstream.KeyValuePut {
				continue
			}
			select {
			case out <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	return filtered{w, out}, nil
}

type filtered struct {
	jetstream.KeyWatcher
	out chan jetstream.KeyValueEntry
}

func (f filtered) Updates() <-chan jetstream.KeyValueEntry { return f.out }

// A node whose key expired goes offline even when the watch misses the
// expiry: a node silent past the bucket's TTL has its key read.
func TestMissedExpiryNoticed(t *testing.T) {
	kv := nodesKV(t)
	v := startView(t, blindWatch{kv})
	newBeater(t, kv, "w1", mesh.RoleWorker) // claimed, never beats: it just expires
	waitOnline(t, v, "w1")
	n := waitOffline(t, v, "w1", ttl+5*time.Second)
	if n.OfflineSince == nil {
		t.Error("OfflineSince not set")
	}
	// One that keeps beating stays online past the TTL.
	b := newBeater(t, kv, "w2", mesh.RoleWorker)
	goRun(t, b.Run)
	waitOnline(t, v, "w2")
	time.Sleep(3 * ttl)
	if n, ok := node(v, "w2"); !ok || !n.Online {
		t.Errorf("a beating node %+v went offline", n)
	}
}

// A node gone offline leads nothing, runs nothing and holds no task; its
// last heartbeat still says what it did. Found by review: the console,
// the API and crawlmesh_node_leader showed a killed leader as leader and
// running beside the new one.
func TestOfflineNodeLeadsNothing(t *testing.T) {
	kv := nodesKV(t)
	v := startView(t, kv)
	hb, _ := json.Marshal(mesh.Heartbeat{Key: "m1", Role: mesh.RoleMaster, Leader: true, Term: 3, State: mesh.StateRunning,
		ActiveTasks: 5, UpdateTS: time.Now().UTC()})
	if _, err := kv.Put(t.Context(), "m1", hb); err != nil {
		t.Fatal(err)
	}
	if n := waitOnline(t, v, "m1"); !n.Leader || n.ActiveTasks != 5 {
		t.Fatalf("online: %+v", n)
	}
	if err := kv.Delete(t.Context(), "m1"); err != nil {
		t.Fatal(err)
	}
	n := waitOffline(t, v, "m1", 3*time.Second)
	if n.Leader || n.State != clusterview.StateOffline || n.ActiveTasks != 0 || !n.Heartbeat.Leader {
		t.Errorf("offline: leader %v, state %q, active %d, last heartbeat's leader %v; want false, offline, 0, true",
			n.Leader, n.State, n.ActiveTasks, n.Heartbeat.Leader)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(v)
	if got, ok := gauge(t, reg, "crawlmesh_node_leader", map[string]string{"node": "m1"}); !ok || got != 0 {
		t.Errorf("crawlmesh_node_leader{node=m1} = %v (present %v), want 0", got, ok)
	}
}
