package heartbeat_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/crawlmesh/crawlmesh/pkg/heartbeat"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/natstest"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const interval = 200 * time.Millisecond

// nodesKV starts a server and creates bucket nodes from its production
// definition with the given TTL.
func nodesKV(t *testing.T, ttl time.Duration) jetstream.KeyValue {
	t.Helper()
	_, js := streamstest.Start(t, streams.Options{NodesTTL: ttl})
	return streamstest.Bucket(t, js, mesh.NodesBucket)
}

func newBeater(t *testing.T, kv jetstream.KeyValue, id string, ttl time.Duration, opts ...heartbeat.Option) *heartbeat.Beater {
	t.Helper()
	opts = append([]heartbeat.Option{heartbeat.WithInterval(interval), heartbeat.WithTTL(ttl)}, opts...)
	b, err := heartbeat.New(kv, id, mesh.RoleWorker, opts...)
	if err != nil {
		t.Fatalf("heartbeat.New: %v", err)
	}
	return b
}

// run is a Beater's Run in a goroutine, stopped and waited for when the
// test ends.
type run struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func startRun(t *testing.T, b *heartbeat.Beater) *run {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	r := &run{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = b.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// wait waits up to d for Run to return and gives its error.
func (r *run) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(d):
		t.Fatalf("Run did not return within %v", d)
		return nil
	}
}

func claim(t *testing.T, b *heartbeat.Beater) {
	t.Helper()
	if err := b.Claim(t.Context()); err != nil {
		t.Fatalf("Claim: %v", err)
	}
}

func getHB(t *testing.T, kv jetstream.KeyValue, id string) (mesh.Heartbeat, jetstream.KeyValueEntry) {
	t.Helper()
	e, err := kv.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get %s: %v", id, err)
	}
	var hb mesh.Heartbeat
	if err := json.Unmarshal(e.Value(), &hb); err != nil {
		t.Fatalf("heartbeat %s is not JSON: %v: %s", id, err, e.Value())
	}
	return hb, e
}

func gone(kv jetstream.KeyValue, id string) bool {
	_, err := kv.Get(context.Background(), id)
	return errors.Is(err, jetstream.ErrKeyNotFound)
}

func TestNewValidates(t *testing.T) {
	kv := jetstream.KeyValue(nil) // New must not touch the KV
	tests := []struct {
		name string
		id   string
		opts []heartbeat.Option
		ok   bool
	}{
		{"defaults", "w1", nil, true},
		{"half ttl", "w1", []heartbeat.Option{heartbeat.WithInterval(500 * time.Millisecond), heartbeat.WithTTL(time.Second)}, true},
		{"interval over half ttl", "w1", []heartbeat.Option{heartbeat.WithInterval(600 * time.Millisecond), heartbeat.WithTTL(time.Second)}, false},
		{"interval equals ttl", "w1", []heartbeat.Option{heartbeat.WithInterval(time.Second), heartbeat.WithTTL(time.Second)}, false},
		{"zero interval", "w1", []heartbeat.Option{heartbeat.WithInterval(0)}, false},
		{"negative ttl", "w1", []heartbeat.Option{heartbeat.WithTTL(-time.Second)}, false},
		{"empty id", "", nil, false},
		{"dotted id", "a.b", nil, false},
		{"wildcard id", "w*", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := heartbeat.New(kv, tt.id, mesh.RoleWorker, tt.opts...)
			if tt.ok && (err != nil || b == nil) {
				t.Fatalf("New = %v, want a Beater", err)
			}
			if !tt.ok && err == nil {
				t.Fatal("New succeeded, want an error")
			}
		})
	}
	if _, err := heartbeat.New(kv, "a b", mesh.RoleWorker); !errors.Is(err, mesh.ErrBadNodeID) {
		t.Errorf("New with a bad id = %v, want it to wrap mesh.ErrBadNodeID", err)
	}
}

func TestHeartbeatHasDesignFields(t *testing.T) {
	kv := nodesKV(t, time.Second)
	b := newBeater(t, kv, "w1", time.Second, heartbeat.WithStatus(func() heartbeat.Status {
		return heartbeat.Status{State: mesh.StatePaused, ActiveTasks: 2, Capacity: 4}
	}))
	claim(t, b)
	startRun(t, b)

	e, err := kv.Get(t.Context(), "w1")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		t.Fatalf("value is not a JSON object: %v: %s", err, e.Value())
	}
	for _, k := range []string{"key", "ip", "mac", "hostname", "master", "update_ts", "update_ts_unix",
		"role", "version", "state", "leader", "started_at", "active_tasks", "capacity"} {
		if _, ok := m[k]; !ok {
			t.Errorf("heartbeat JSON has no %q: %s", k, e.Value())
		}
	}
	hb, _ := getHB(t, kv, "w1")
	if hb.Key != "w1" || hb.Role != mesh.RoleWorker || hb.Master || hb.State != mesh.StatePaused ||
		hb.ActiveTasks != 2 || hb.Capacity != 4 || hb.Version != mesh.Version || hb.Instance != b.Instance() {
		t.Errorf("heartbeat = %+v", hb)
	}
	if hb.UpdateTSUnix != hb.UpdateTS.Unix() {
		t.Errorf("update_ts_unix %d does not match update_ts %v", hb.UpdateTSUnix, hb.UpdateTS)
	}
}

func TestHeartbeatIsRenewed(t *testing.T) {
	kv := nodesKV(t, time.Second)
	b := newBeater(t, kv, "w1", time.Second)
	claim(t, b)
	_, e := getHB(t, kv, "w1")
	first := e.Revision()
	startRun(t, b)
	natstest.Eventually(t, 2*time.Second, "heartbeat revision increases", func() bool {
		e, err := kv.Get(t.Context(), "w1")
		return err == nil && e.Revision() > first
	})
	// Renewed beats keep the key alive well past the TTL.
	deadline := time.Now().Add(1500 * time.Millisecond)
	natstest.Eventually(t, 3*time.Second, "key alive past the TTL", func() bool {
		if gone(kv, "w1") {
			t.Fatal("key expired while Run was beating")
		}
		return time.Now().After(deadline)
	})
}

func TestCancelRunPurgesKey(t *testing.T) {
	kv := nodesKV(t, 2*time.Second) // expiry alone would take 2s
	b := newBeater(t, kv, "w1", 2*time.Second)
	claim(t, b)
	r := startRun(t, b)
	natstest.Eventually(t, 2*time.Second, "first renewal", func() bool {
		e, err := kv.Get(t.Context(), "w1")
		return err == nil && e.Revision() > 1
	})
	start := time.Now()
	r.cancel()
	if err := r.wait(t, 3*time.Second); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	natstest.Eventually(t, time.Second, "key gone after Run is cancelled", func() bool { return gone(kv, "w1") })
	if el := time.Since(start); el > time.Second {
		t.Errorf("key removal took %v", el)
	}
}

func TestSecondLiveBeaterIsRefused(t *testing.T) {
	kv := nodesKV(t, time.Second)
	b1 := newBeater(t, kv, "w1", time.Second)
	claim(t, b1)
	r1 := startRun(t, b1)

	b2 := newBeater(t, kv, "w1", time.Second)
	err := b2.Claim(t.Context())
	if !errors.Is(err, heartbeat.ErrDuplicateID) {
		t.Fatalf("second Claim = %v, want ErrDuplicateID", err)
	}
	hb, _ := getHB(t, kv, "w1")
	if hb.Instance != b1.Instance() {
		t.Errorf("key instance = %q, want the first beater's %q", hb.Instance, b1.Instance())
	}
	select {
	case <-r1.done:
		t.Fatalf("first beater stopped: %v", r1.err)
	default:
	}
}

func TestStaleKeyOfCrashedProcessIsTakenOver(t *testing.T) {
	const ttl = time.Second
	kv := nodesKV(t, ttl)
	crashed := newBeater(t, kv, "w1", ttl)
	claim(t, crashed) // and never Run: the key just expires

	b := newBeater(t, kv, "w1", ttl)
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), ttl+2*time.Second)
	defer cancel()
	if err := b.Claim(ctx); err != nil {
		t.Fatalf("Claim over a stale key: %v", err)
	}
	if el := time.Since(start); el > ttl+2*time.Second {
		t.Errorf("takeover took %v", el)
	}
	hb, _ := getHB(t, kv, "w1")
	if hb.Instance != b.Instance() {
		t.Errorf("key instance = %q, want the new beater's %q", hb.Instance, b.Instance())
	}
}

func TestWithClockShowsInUpdateTS(t *testing.T) {
	kv := nodesKV(t, time.Second)
	const off = time.Hour
	b := newBeater(t, kv, "w1", time.Second, heartbeat.WithClock(func() time.Time { return time.Now().Add(off) }))
	claim(t, b)
	hb, e := getHB(t, kv, "w1")
	skew := hb.UpdateTS.Sub(e.Created())
	if skew < off-time.Second || skew > off+time.Second {
		t.Errorf("update_ts %v minus server time %v = %v, want about %v", hb.UpdateTS, e.Created(), skew, off)
	}
	if d := hb.UpdateTSUnix - e.Created().Unix(); d < 3599 || d > 3601 {
		t.Errorf("update_ts_unix is %ds off the server time, want about 3600", d)
	}
}

func TestKeyRemovedBehindBeaterIsReclaimed(t *testing.T) {
	kv := nodesKV(t, time.Second)
	b := newBeater(t, kv, "w1", time.Second)
	claim(t, b)
	r := startRun(t, b)
	if err := kv.Purge(t.Context(), "w1"); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	natstest.Eventually(t, 2*time.Second, "key written again by the next beats", func() bool {
		e, err := kv.Get(t.Context(), "w1")
		if err != nil {
			return false
		}
		var hb mesh.Heartbeat
		return json.Unmarshal(e.Value(), &hb) == nil && hb.Instance == b.Instance()
	})
	select {
	case <-r.done:
		t.Fatalf("Run stopped after the key was removed: %v", r.err)
	default:
	}
	// and it keeps beating afterwards
	_, e := getHB(t, kv, "w1")
	rev := e.Revision()
	natstest.Eventually(t, 2*time.Second, "beats continue after reclaim", func() bool {
		e, err := kv.Get(t.Context(), "w1")
		return err == nil && e.Revision() > rev
	})
}

func TestForeignWriterStopsRun(t *testing.T) {
	kv := nodesKV(t, time.Second)
	b := newBeater(t, kv, "w1", time.Second)
	claim(t, b)
	r := startRun(t, b)
	other := mesh.Heartbeat{Key: "w1", Role: mesh.RoleWorker, State: mesh.StateRunning, Instance: "someone-else",
		PID: 4242, Hostname: "other-host", UpdateTS: time.Now().UTC()}
	v, _ := json.Marshal(other)
	if _, err := kv.Put(t.Context(), "w1", v); err != nil {
		t.Fatalf("Put: %v", err)
	}
	err := r.wait(t, 3*time.Second)
	if !errors.Is(err, heartbeat.ErrDuplicateID) {
		t.Fatalf("Run = %v, want ErrDuplicateID", err)
	}
	// The other process's key must be left alone.
	hb, _ := getHB(t, kv, "w1")
	if hb.Instance != "someone-else" {
		t.Errorf("key instance = %q, want the other process's", hb.Instance)
	}
}

func TestHoldRemovesKeyOnlyAfterWork(t *testing.T) {
	kv := nodesKV(t, time.Second)
	b := newBeater(t, kv, "w1", time.Second)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	workCtxDone := make(chan struct{})
	release := make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	holdErr := make(chan error, 1)
	workErr := errors.New("work result")
	go func() {
		holdErr <- b.Hold(ctx, func(wctx context.Context) error {
			<-wctx.Done()
			close(workCtxDone)
			<-release
			return workErr
		})
	}()
	natstest.Eventually(t, 2*time.Second, "key claimed by Hold", func() bool { return !gone(kv, "w1") })

	cancel()
	select {
	case <-workCtxDone:
	case <-time.After(2 * time.Second):
		t.Fatal("work's context not cancelled with Hold's")
	}
	// Work still runs: the key must stay, and keep being renewed past the TTL.
	_, e := getHB(t, kv, "w1")
	rev := e.Revision()
	natstest.Eventually(t, 2*time.Second, "beats continue while work runs", func() bool {
		e, err := kv.Get(context.Background(), "w1")
		return err == nil && e.Revision() > rev
	})
	until := time.Now().Add(1200 * time.Millisecond) // beyond the 1s TTL
	natstest.Eventually(t, 3*time.Second, "key kept while work runs", func() bool {
		if gone(kv, "w1") {
			t.Fatal("key removed before work returned")
		}
		return time.Now().After(until)
	})
	releaseOnce.Do(func() { close(release) })
	select {
	case err := <-holdErr:
		if !errors.Is(err, workErr) {
			t.Errorf("Hold = %v, want work's error", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Hold did not return after work")
	}
	if !gone(kv, "w1") {
		t.Error("key still there after Hold returned")
	}
}

func TestHoldClaimFailureSkipsWork(t *testing.T) {
	kv := nodesKV(t, time.Second)
	b1 := newBeater(t, kv, "w1", time.Second)
	claim(t, b1)
	startRun(t, b1)
	b2 := newBeater(t, kv, "w1", time.Second)
	ran := false
	err := b2.Hold(t.Context(), func(context.Context) error { ran = true; return nil })
	if !errors.Is(err, heartbeat.ErrDuplicateID) {
		t.Errorf("Hold = %v, want ErrDuplicateID", err)
	}
	if ran {
		t.Error("work ran without the key")
	}
}

// cancelInFlightKV is the real bucket with one fault injected: on the armed
// Update it lets the write reach the server, then cancels Run's context and
// reports the cancellation, exactly as nats.go does when a context ends
// while a publish waits for its ack (the write is stored, the ack is lost).
// That is what happens when a beat is in flight as a node stops, e.g. the
// Kick a worker's drain/shutdown handler sends right before Hold stops beats.
type cancelInFlightKV struct {
	jetstream.KeyValue
	mu     sync.Mutex
	cancel context.CancelFunc // armed when set
	fired  chan struct{}
}

func (k *cancelInFlightKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	k.mu.Lock()
	cancel := k.cancel
	k.cancel = nil
	k.mu.Unlock()
	if cancel == nil {
		return k.KeyValue.Update(ctx, key, value, rev)
	}
	_, err := k.KeyValue.Update(context.WithoutCancel(ctx), key, value, rev)
	cancel()
	close(k.fired)
	if err != nil {
		return 0, err
	}
	return 0, context.Canceled
}

// A beat whose ack is lost because Run is being cancelled must not leave
// the key behind: stopping must still remove it at once.
func TestCancelDuringInFlightBeatStillPurgesKey(t *testing.T) {
	const ttl = 2 * time.Second // expiry alone would take 2s
	bucket := nodesKV(t, ttl)
	kv := &cancelInFlightKV{KeyValue: bucket, fired: make(chan struct{})}
	b, err := heartbeat.New(kv, "w1", mesh.RoleWorker, heartbeat.WithInterval(interval), heartbeat.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	claim(t, b)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	kv.mu.Lock()
	kv.cancel = cancel
	kv.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	select {
	case <-kv.fired:
	case <-time.After(3 * time.Second):
		t.Fatal("no beat within 3s")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if !gone(bucket, "w1") {
		e, _ := bucket.Get(t.Context(), "w1")
		t.Errorf("key w1 still there (rev %d) after Run returned: the purge used a stale revision, "+
			"so the node stays online until the TTL expires it", e.Revision())
	}
}

// SetInterval changes a running Beater's interval within the TTL's rule,
// and beats at once when it changes.
func TestSetInterval(t *testing.T) {
	kv := nodesKV(t, 2*time.Second)
	b := newBeater(t, kv, "w1", 2*time.Second)
	if err := b.SetInterval(1500 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "half") {
		t.Errorf("SetInterval(1.5s) with TTL 2s: %v; want refused", err)
	}
	claim(t, b)
	_, e := getHB(t, kv, "w1")
	startRun(t, b)
	if err := b.SetInterval(time.Second); err != nil {
		t.Fatal(err)
	}
	if b.Interval() != time.Second {
		t.Errorf("Interval() = %v after SetInterval(1s)", b.Interval())
	}
	natstest.Eventually(t, 2*time.Second, "a beat on the change", func() bool {
		got, err := kv.Get(t.Context(), "w1")
		return err == nil && got.Revision() > e.Revision()
	})
}
