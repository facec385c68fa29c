// Internal test package: a worker has no task runner yet, so the one test
// that needs a task in flight (drain that has to wait) sets the in-flight
// count directly. Everything else drives the worker only through
// command.Send, as an operator would. The master test lives here too.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/crawlmesh/crawlmesh/pkg/command"
	"github.com/crawlmesh/crawlmesh/pkg/master"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/natstest"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	hbInterval = 200 * time.Millisecond
	hbTTL      = time.Second
)

func setup(t *testing.T) (*nats.Conn, jetstream.KeyValue) {
	t.Helper()
	nc, js := streamstest.Start(t, streams.Options{NodesTTL: hbTTL})
	return nc, streamstest.Bucket(t, js, mesh.NodesBucket)
}

// running is a Run call in a goroutine; it is cancelled and waited for when
// the test ends.
type running struct {
	done chan struct{}
	err  error
}

func start(t *testing.T, run func(context.Context) error) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	r := &running{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not stop within 5s of cancel")
		}
	})
	return r
}

func (r *running) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(d):
		t.Fatalf("Run did not return within %v", d)
		return nil
	}
}

func (r *running) stopped() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func startWorker(t *testing.T, nc *nats.Conn, kv jetstream.KeyValue, id string) (*Worker, *running) {
	t.Helper()
	w, err := New(nc, kv, Config{ID: id, Concurrency: 4, HeartbeatInterval: hbInterval, HeartbeatTTL: hbTTL})
	if err != nil {
		t.Fatalf("worker.New: %v", err)
	}
	r := start(t, w.Run)
	waitServing(t, nc, id)
	return w, r
}

func waitServing(t *testing.T, nc *nats.Conn, id string) {
	t.Helper()
	natstest.Eventually(t, 5*time.Second, id+" answers commands", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err := command.Send(ctx, nc, id, mesh.Command{Name: mesh.CmdPing})
		return err == nil
	})
}

func send(t *testing.T, nc *nats.Conn, id string, c mesh.Command) mesh.Reply {
	t.Helper()
	r, err := command.Send(t.Context(), nc, id, c)
	if err != nil {
		t.Fatalf("send %s to %s: %v", c, id, err)
	}
	return r
}

func heartbeatOf(kv jetstream.KeyValue, id string) (mesh.Heartbeat, bool) {
	e, err := kv.Get(context.Background(), id)
	if err != nil {
		return mesh.Heartbeat{}, false
	}
	var hb mesh.Heartbeat
	if json.Unmarshal(e.Value(), &hb) != nil {
		return mesh.Heartbeat{}, false
	}
	return hb, true
}

func waitHeartbeat(t *testing.T, kv jetstream.KeyValue, id, msg string, cond func(mesh.Heartbeat) bool) {
	t.Helper()
	natstest.Eventually(t, 3*time.Second, msg, func() bool {
		hb, ok := heartbeatOf(kv, id)
		return ok && cond(hb)
	})
}

func keyGone(kv jetstream.KeyValue, id string) bool {
	_, err := kv.Get(context.Background(), id)
	return errors.Is(err, jetstream.ErrKeyNotFound)
}

func TestNewValidatesConfig(t *testing.T) {
	nc, kv := setup(t)
	for _, cfg := range []Config{
		{ID: "w1", Concurrency: 0},
		{ID: "w1", Concurrency: -1},
		{ID: "bad id", Concurrency: 4},
		{ID: "w1", Concurrency: 4, HeartbeatInterval: time.Second, HeartbeatTTL: time.Second},
	} {
		if _, err := New(nc, kv, cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestWorkerHeartbeat(t *testing.T) {
	nc, kv := setup(t)
	startWorker(t, nc, kv, "w1")
	waitHeartbeat(t, kv, "w1", "running worker heartbeat", func(hb mesh.Heartbeat) bool {
		return hb.Role == mesh.RoleWorker && hb.State == mesh.StateRunning && hb.Capacity == 4 && !hb.Master
	})
}

func TestWorkerPauseResume(t *testing.T) {
	nc, kv := setup(t)
	w, _ := startWorker(t, nc, kv, "w1")
	taking := w.Taking()
	if taking.Err() != nil {
		t.Fatal("a running worker's Taking is done")
	}
	r := send(t, nc, "w1", mesh.Command{Name: mesh.CmdPause})
	if r.State != mesh.StatePaused || r.Node != "w1" || r.Role != mesh.RoleWorker {
		t.Errorf("pause reply = %+v", r)
	}
	// Paused: its held tasks waiting for their host's turn go back.
	if taking.Err() == nil || w.Taking().Err() == nil {
		t.Error("a paused worker's Taking is not done")
	}
	waitHeartbeat(t, kv, "w1", `heartbeat state "paused"`, func(hb mesh.Heartbeat) bool { return hb.State == mesh.StatePaused })
	if st, _ := w.State(); st != mesh.StatePaused {
		t.Errorf("State() = %q after pause", st)
	}
	r = send(t, nc, "w1", mesh.Command{Name: mesh.CmdResume})
	if r.State != mesh.StateRunning {
		t.Errorf("resume reply = %+v", r)
	}
	if w.Taking().Err() != nil {
		t.Error("a resumed worker's Taking is done")
	}
	waitHeartbeat(t, kv, "w1", `heartbeat state "running"`, func(hb mesh.Heartbeat) bool { return hb.State == mesh.StateRunning })
}

func TestWorkerSetConcurrency(t *testing.T) {
	nc, kv := setup(t)
	startWorker(t, nc, kv, "w1")
	waitHeartbeat(t, kv, "w1", "heartbeat capacity 4", func(hb mesh.Heartbeat) bool { return hb.Capacity == 4 })
	r := send(t, nc, "w1", mesh.Command{Name: mesh.CmdSetConcurrency, N: 7})
	if r.Concurrency != 7 || r.State != mesh.StateRunning {
		t.Errorf("set-concurrency reply = %+v", r)
	}
	waitHeartbeat(t, kv, "w1", "heartbeat capacity 7", func(hb mesh.Heartbeat) bool { return hb.Capacity == 7 })
}

func TestWorkerDrain(t *testing.T) {
	nc, kv := setup(t)
	_, run := startWorker(t, nc, kv, "w1")
	r := send(t, nc, "w1", mesh.Command{Name: mesh.CmdDrain})
	if r.State != mesh.StateDraining {
		t.Errorf("drain reply = %+v", r)
	}
	if err := run.wait(t, 3*time.Second); err != nil {
		t.Fatalf("Run after drain = %v, want nil", err)
	}
	if !keyGone(kv, "w1") {
		t.Error("heartbeat key still there after Run returned")
	}
	_, err := command.Send(t.Context(), nc, "w1", mesh.Command{Name: mesh.CmdPause})
	if !errors.Is(err, command.ErrNoNode) {
		t.Errorf("pause after a completed drain = %v, want ErrNoNode", err)
	}
}

// A drain with a task in flight keeps the node up and visible as
// "draining"; it refuses pause and resume meanwhile.
func TestWorkerDrainingRefusesPause(t *testing.T) {
	nc, kv := setup(t)
	w, run := startWorker(t, nc, kv, "w1")
	w.mu.Lock()
	w.active = 1 // no task runner yet: pretend one task is in flight
	w.mu.Unlock()
	send(t, nc, "w1", mesh.Command{Name: mesh.CmdDrain})
	waitHeartbeat(t, kv, "w1", `heartbeat state "draining"`, func(hb mesh.Heartbeat) bool {
		return hb.State == mesh.StateDraining && hb.ActiveTasks == 1
	})
	if run.stopped() {
		t.Fatalf("Run stopped with a task in flight: %v", run.err)
	}
	for _, c := range []mesh.Command{{Name: mesh.CmdPause}, {Name: mesh.CmdResume}} {
		r, err := command.Send(t.Context(), nc, "w1", c)
		if !errors.Is(err, command.ErrRefused) {
			t.Errorf("%s while draining = %v, want ErrRefused", c, err)
		} else if !strings.Contains(err.Error(), mesh.StateDraining) || r.State != mesh.StateDraining {
			t.Errorf("%s while draining: err %q reply %+v; want state draining named", c, err, r)
		}
	}
	w.mu.Lock()
	w.active = 0
	w.mu.Unlock()
	send(t, nc, "w1", mesh.Command{Name: mesh.CmdDrain})
	if err := run.wait(t, 3*time.Second); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if !keyGone(kv, "w1") {
		t.Error("heartbeat key still there after Run returned")
	}
}

func TestWorkerShutdown(t *testing.T) {
	nc, kv := setup(t)
	_, run := startWorker(t, nc, kv, "w1")
	send(t, nc, "w1", mesh.Command{Name: mesh.CmdPause})
	r := send(t, nc, "w1", mesh.Command{Name: mesh.CmdShutdown})
	if r.State != mesh.StateStopping {
		t.Errorf("shutdown reply = %+v", r)
	}
	if err := run.wait(t, 3*time.Second); err != nil {
		t.Fatalf("Run after shutdown = %v, want nil", err)
	}
	if !keyGone(kv, "w1") {
		t.Error("heartbeat key still there after Run returned")
	}
}

func TestWorkerStopsOnCancel(t *testing.T) {
	nc, kv := setup(t)
	var logs natstest.SyncBuffer
	w, err := New(nc, kv, Config{ID: "w1", Concurrency: 4, HeartbeatInterval: hbInterval, HeartbeatTTL: hbTTL,
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	waitServing(t, nc, "w1")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if !keyGone(kv, "w1") {
		t.Error("heartbeat key still there after Run returned")
	}
	// The log says why it stopped and what it gave back.
	if !strings.Contains(logs.String(), `msg="stopping: tasks in flight are handed back" component=worker node=w1 tasks=0`) {
		t.Errorf("log lacks the stop line:\n%s", logs.String())
	}
}

func TestWorkerMetrics(t *testing.T) {
	nc, kv := setup(t)
	reg := prometheus.NewPedanticRegistry()
	w, err := New(nc, kv, Config{ID: "w1", Concurrency: 4, HeartbeatInterval: hbInterval, HeartbeatTTL: hbTTL, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	start(t, w.Run)
	waitServing(t, nc, "w1")
	send(t, nc, "w1", mesh.Command{Name: mesh.CmdSetConcurrency, N: 7})
	send(t, nc, "w1", mesh.Command{Name: mesh.CmdPause})
	want := map[string]float64{"crawlmesh_worker_concurrency": 7, "crawlmesh_worker_paused": 1, "crawlmesh_worker_active_tasks": 0}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		v, ok := want[mf.GetName()]
		if !ok {
			continue
		}
		delete(want, mf.GetName())
		m := mf.GetMetric()
		if len(m) != 1 || m[0].GetGauge().GetValue() != v {
			t.Errorf("%s = %v, want one series of %v", mf.GetName(), m, v)
			continue
		}
		if l := m[0].GetLabel(); len(l) != 1 || l[0].GetName() != "node" || l[0].GetValue() != "w1" {
			t.Errorf("%s labels = %v, want node=w1", mf.GetName(), l)
		}
	}
	if len(want) != 0 {
		t.Errorf("metrics missing: %v", want)
	}
}

func viewOf(t *testing.T, nc *nats.Conn) (master.ViewReply, bool) {
	t.Helper()
	msg, err := nc.Request(mesh.ViewSubject, nil, time.Second)
	if err != nil {
		return master.ViewReply{}, false
	}
	var vr master.ViewReply
	if err := json.Unmarshal(msg.Data, &vr); err != nil {
		t.Fatalf("view reply is not JSON: %v: %s", err, msg.Data)
	}
	return vr, true
}

func TestMaster(t *testing.T) {
	nc, kv := setup(t)
	reg := prometheus.NewPedanticRegistry()
	m, err := master.New(nc, kv, master.Config{ID: "m1", HeartbeatInterval: hbInterval, HeartbeatTTL: hbTTL, Registerer: reg})
	if err != nil {
		t.Fatalf("master.New: %v", err)
	}
	mrun := start(t, m.Run)
	startWorker(t, nc, kv, "w1")

	var vr master.ViewReply
	natstest.Eventually(t, 5*time.Second, "view lists m1 (master) and w1 (worker) online", func() bool {
		var ok bool
		vr, ok = viewOf(t, nc)
		if !ok || !vr.Ready {
			return false
		}
		roles := map[string]string{}
		for _, n := range vr.Nodes {
			if n.Online {
				roles[n.ID] = n.Role
			}
		}
		return roles["m1"] == mesh.RoleMaster && roles["w1"] == mesh.RoleWorker
	})
	if vr.Master != "m1" {
		t.Errorf("view answered by %q, want m1", vr.Master)
	}
	if mfs, err := reg.Gather(); err != nil || len(mfs) == 0 {
		t.Errorf("master registry gathered %d families, err %v; want the view's metrics", len(mfs), err)
	}

	if r := send(t, nc, "m1", mesh.Command{Name: mesh.CmdPing}); r.Role != mesh.RoleMaster || r.Node != "m1" {
		t.Errorf("ping reply = %+v", r)
	}
	_, err = command.Send(t.Context(), nc, "m1", mesh.Command{Name: mesh.CmdPause})
	if !errors.Is(err, command.ErrRefused) {
		t.Errorf("pause to a master = %v, want ErrRefused", err)
	}
	if mrun.stopped() {
		t.Fatalf("master stopped after a refused command: %v", mrun.err)
	}

	r := send(t, nc, "m1", mesh.Command{Name: mesh.CmdShutdown})
	if r.State != mesh.StateStopping {
		t.Errorf("shutdown reply = %+v", r)
	}
	if err := mrun.wait(t, 3*time.Second); err != nil {
		t.Fatalf("master Run after shutdown = %v, want nil", err)
	}
	if !keyGone(kv, "m1") {
		t.Error("master heartbeat key still there after Run returned")
	}
	if _, err := nc.Request(mesh.ViewSubject, nil, 500*time.Millisecond); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("view request after master stopped = %v, want no responders", err)
	}
}

// TestWorkerRefusesStaleTerm: after a command of term 7, one of term 5 (a
// deposed leader) is refused with a clear reply; operators' term 0 passes.
func TestWorkerRefusesStaleTerm(t *testing.T) {
	nc, kv := setup(t)
	w, err := New(nc, kv, Config{ID: "wt", Concurrency: 2, HeartbeatInterval: 200 * time.Millisecond, HeartbeatTTL: hbTTL})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	send := func(term uint64) error {
		var err error
		for range 50 { // until the worker serves commands
			_, err = command.Send(t.Context(), nc, "wt", mesh.Command{Name: mesh.CmdPing, Term: term})
			if !errors.Is(err, command.ErrNoNode) {
				return err
			}
			time.Sleep(20 * time.Millisecond)
		}
		return err
	}
	if err := send(7); err != nil {
		t.Fatalf("term 7: %v", err)
	}
	err = send(5)
	if !errors.Is(err, command.ErrRefused) || !strings.Contains(err.Error(), "stale term 5") {
		t.Fatalf("term 5 after 7: %v, want a stale-term refusal", err)
	}
	if err := send(0); err != nil {
		t.Fatalf("operator command (term 0): %v", err)
	}
	if err := send(8); err != nil {
		t.Fatalf("term 8: %v", err)
	}
}
