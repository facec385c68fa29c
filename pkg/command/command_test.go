package command_test

import (
	"context"
	"encoding/json"
	"errors"
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
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func conn(t *testing.T) *nats.Conn {
	t.Helper()
	s := natstest.RunServer(t)
	nc, _ := natstest.Connect(t, s)
	return nc
}

// serve runs command.Serve for id until the test ends, and waits until it
// answers.
func serve(t *testing.T, nc *nats.Conn, id string, h command.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- command.Serve(ctx, nc, id, mesh.RoleWorker, h, nil) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve %s: %v", id, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve %s did not stop", id)
		}
	})
	natstest.Eventually(t, 5*time.Second, id+" serving", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err := command.Send(ctx, nc, id, mesh.Command{Name: mesh.CmdPing})
		return !errors.Is(err, command.ErrNoNode)
	})
}

func okHandler(state string) command.Handler {
	return func(_ context.Context, c mesh.Command) mesh.Reply {
		return mesh.Reply{OK: true, State: state, Concurrency: c.N}
	}
}

func TestSendRoundTrip(t *testing.T) {
	nc := conn(t)
	var mu sync.Mutex
	var got []mesh.Command
	serve(t, nc, "w1", func(_ context.Context, c mesh.Command) mesh.Reply {
		mu.Lock()
		got = append(got, c)
		mu.Unlock()
		return mesh.Reply{OK: true, State: mesh.StatePaused, Concurrency: 4}
	})
	r, err := command.Send(t.Context(), nc, "w1", mesh.Command{Name: mesh.CmdSetConcurrency, N: 9, Term: 2})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if r.Node != "w1" || r.Role != mesh.RoleWorker || r.State != mesh.StatePaused || !r.OK || r.Concurrency != 4 {
		t.Errorf("reply = %+v, want node w1 role worker state paused ok", r)
	}
	mu.Lock()
	defer mu.Unlock()
	last := got[len(got)-1]
	if last.Name != mesh.CmdSetConcurrency || last.N != 9 || last.Term != 2 {
		t.Errorf("handler saw %+v, want set-concurrency 9 term 2", last)
	}
}

func TestSendNoNode(t *testing.T) {
	nc := conn(t)
	_, err := command.Send(t.Context(), nc, "nobody", mesh.Command{Name: mesh.CmdPing})
	if !errors.Is(err, command.ErrNoNode) {
		t.Fatalf("Send to nobody = %v, want ErrNoNode", err)
	}
	var ce *command.Error
	if !errors.As(err, &ce) || !strings.Contains(ce.Error(), "nobody") {
		t.Errorf("error %v does not name the node", err)
	}
}

func TestSendTimeout(t *testing.T) {
	nc := conn(t)
	release := make(chan struct{})
	defer close(release)
	serve(t, nc, "w1", func(ctx context.Context, c mesh.Command) mesh.Reply {
		if c.Name == mesh.CmdPause {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return mesh.Reply{OK: true}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := command.Send(ctx, nc, "w1", mesh.Command{Name: mesh.CmdPause})
	if !errors.Is(err, command.ErrTimeout) {
		t.Fatalf("Send to a blocked handler = %v, want ErrTimeout", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Send took %v, want about the 300ms deadline", el)
	}
}

func TestSendRefused(t *testing.T) {
	nc := conn(t)
	serve(t, nc, "w1", func(_ context.Context, c mesh.Command) mesh.Reply {
		if c.Name == mesh.CmdDrain {
			return mesh.Reply{OK: false, Error: "busy with the harvest", State: mesh.StateRunning}
		}
		return mesh.Reply{OK: true}
	})
	r, err := command.Send(t.Context(), nc, "w1", mesh.Command{Name: mesh.CmdDrain})
	if !errors.Is(err, command.ErrRefused) {
		t.Fatalf("Send = %v, want ErrRefused", err)
	}
	if !strings.Contains(err.Error(), "busy with the harvest") {
		t.Errorf("error %q does not carry the handler's text", err)
	}
	if r.OK || r.Node != "w1" || r.State != mesh.StateRunning {
		t.Errorf("refused reply = %+v", r)
	}
}

func TestSendRejectsInvalidBeforeSending(t *testing.T) {
	nc := conn(t)
	// Anything reaching the node subjects would be seen here.
	sub, err := nc.SubscribeSync("crawlmesh.cmd.>")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id string
		c  mesh.Command
	}{
		{"w1", mesh.Command{Name: "reboot"}},
		{"w1", mesh.Command{Name: ""}},
		{"w1", mesh.Command{Name: mesh.CmdSetConcurrency, N: 0}},
		{"w1", mesh.Command{Name: mesh.CmdSetConcurrency, N: -3}},
		{"a.b", mesh.Command{Name: mesh.CmdPing}},
		{"*", mesh.Command{Name: mesh.CmdPing}},
	} {
		_, err := command.Send(t.Context(), nc, tc.id, tc.c)
		if err == nil {
			t.Errorf("Send(%q, %+v) succeeded", tc.id, tc.c)
			continue
		}
		for _, kind := range []error{command.ErrNoNode, command.ErrTimeout, command.ErrRefused} {
			if errors.Is(err, kind) {
				t.Errorf("Send(%q, %+v) = %v: it was sent; want it rejected locally", tc.id, tc.c, err)
			}
		}
	}
	if _, err := command.Broadcast(t.Context(), nc, mesh.Command{Name: "reboot"}, 0); err == nil {
		t.Error("Broadcast of an unknown command succeeded")
	}
	// A marker published after the rejected sends is the first message seen:
	// nothing was published before it.
	if err := nc.Publish("crawlmesh.cmd.marker", nil); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(2 * time.Second)
	if err != nil {
		t.Fatalf("marker not received: %v", err)
	}
	if m.Subject != "crawlmesh.cmd.marker" {
		t.Errorf("an invalid command was published on %s: %s", m.Subject, m.Data)
	}
}

func TestServeAnswersMalformedRequest(t *testing.T) {
	nc := conn(t)
	called := make(chan mesh.Command, 10)
	serve(t, nc, "w1", func(_ context.Context, c mesh.Command) mesh.Reply {
		if c.Name != mesh.CmdPing {
			called <- c
		}
		return mesh.Reply{OK: true}
	})
	for _, body := range []string{`{not json`, `{"cmd":"reboot"}`, `{"cmd":"set-concurrency","n":0}`} {
		msg, err := nc.Request(mesh.CommandSubject("w1"), []byte(body), 2*time.Second)
		if err != nil {
			t.Fatalf("request %s: %v", body, err)
		}
		var r mesh.Reply
		if err := json.Unmarshal(msg.Data, &r); err != nil {
			t.Fatalf("reply to %s is not JSON: %v: %s", body, err, msg.Data)
		}
		if r.OK || r.Error == "" || r.Node != "w1" || r.Role != mesh.RoleWorker {
			t.Errorf("reply to %s = %+v, want OK false with an error, from w1", body, r)
		}
	}
	select {
	case c := <-called:
		t.Errorf("handler called with invalid command %+v", c)
	default:
	}
	// Serve still works after bad input.
	if _, err := command.Send(t.Context(), nc, "w1", mesh.Command{Name: mesh.CmdPause}); err != nil {
		t.Errorf("Send after malformed requests: %v", err)
	}
}

func TestBroadcast(t *testing.T) {
	nc := conn(t)
	ids := []string{"w1", "w2", "w3"}
	for _, id := range ids {
		serve(t, nc, id, okHandler(mesh.StateRunning))
	}
	// want=3 returns as soon as three replies are in, not at the deadline.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	rs, err := command.Broadcast(ctx, nc, mesh.Command{Name: mesh.CmdPing}, 3)
	if err != nil {
		t.Fatalf("Broadcast: %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("Broadcast with want=3 took %v; it should return when the 3rd reply arrives", el)
	}
	seen := map[string]bool{}
	for _, r := range rs {
		if !r.OK || r.State != mesh.StateRunning {
			t.Errorf("reply %+v", r)
		}
		seen[r.Node] = true
	}
	if len(rs) != 3 || len(seen) != 3 {
		t.Errorf("replies from %v (%d replies), want %v", seen, len(rs), ids)
	}
}

func TestBroadcastWaitsForDeadline(t *testing.T) {
	nc := conn(t)
	for _, id := range []string{"w1", "w2"} {
		serve(t, nc, id, okHandler(mesh.StatePaused))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	rs, err := command.Broadcast(ctx, nc, mesh.Command{Name: mesh.CmdPause}, 0)
	if err != nil {
		t.Fatalf("Broadcast: %v", err)
	}
	if len(rs) != 2 {
		t.Errorf("Broadcast want=0 got %d replies, want all 2: %+v", len(rs), rs)
	}
	// Asking for more than exist returns what arrived at the deadline.
	ctx2, cancel2 := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel2()
	rs, err = command.Broadcast(ctx2, nc, mesh.Command{Name: mesh.CmdPing}, 5)
	if err != nil || len(rs) != 2 {
		t.Errorf("Broadcast want=5 = %d replies, %v; want 2 and nil", len(rs), err)
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	nc := conn(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- command.Serve(ctx, nc, "w1", mesh.RoleWorker, okHandler(mesh.StateRunning), nil) }()
	natstest.Eventually(t, 5*time.Second, "w1 serving", func() bool {
		_, err := command.Send(t.Context(), nc, "w1", mesh.Command{Name: mesh.CmdPing})
		return err == nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	// Its subscriptions are gone: the node no longer answers.
	_, err := command.Send(t.Context(), nc, "w1", mesh.Command{Name: mesh.CmdPing})
	if !errors.Is(err, command.ErrNoNode) {
		t.Errorf("Send after Serve stopped = %v, want ErrNoNode", err)
	}
}

// nodesBucket is a bucket nodes holding a heartbeat for each id with its
// role and state, as live nodes would keep it.
func nodesBucket(t *testing.T, js jetstream.JetStream, beats map[string][2]string) jetstream.KeyValue {
	t.Helper()
	kv, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: mesh.NodesBucket, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for id, rs := range beats {
		b, _ := json.Marshal(mesh.Heartbeat{Key: id, Role: rs[0], State: rs[1]})
		if _, err := kv.Put(t.Context(), id, b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kv.Put(t.Context(), "garbled", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	return kv
}

func TestOnline(t *testing.T) {
	_, js := natstest.Connect(t, natstest.RunServer(t))
	kv := nodesBucket(t, js, map[string][2]string{
		"m1": {mesh.RoleMaster, mesh.StateRunning},
		"w1": {mesh.RoleWorker, mesh.StatePaused},
		"w2": {mesh.RoleWorker, mesh.StateStopping}, // about to remove its key
		"a1": {mesh.RoleAgent, mesh.StateRunning},   // answers on its own subject only
	})
	if _, err := kv.Put(t.Context(), "w3", []byte(`{"key":"w3","role":"worker"}`)); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(t.Context(), "w3"); err != nil { // gone: not online
		t.Fatal(err)
	}
	got, err := command.Online(t.Context(), kv)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b command.Target) int { return strings.Compare(a.ID, b.ID) })
	want := []command.Target{{ID: "m1", Role: mesh.RoleMaster}, {ID: "w1", Role: mesh.RoleWorker}}
	if !slices.Equal(got, want) {
		t.Errorf("Online = %+v, want %+v", got, want)
	}
}

// BroadcastTo returns once every expected node answered, well before its
// context ends; Broadcast with want 0 waits the context out.
func TestBroadcastToReturnsWhenExpectedAnswered(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.RunServer(t))
	beats := map[string][2]string{}
	for _, id := range []string{"w1", "w2", "w3"} {
		serve(t, nc, id, okHandler(mesh.StateRunning))
		beats[id] = [2]string{mesh.RoleWorker, mesh.StateRunning}
	}
	online, err := command.Online(t.Context(), nodesBucket(t, js, beats))
	if err != nil || len(online) != 3 {
		t.Fatalf("Online = %+v, %v; want w1..w3", online, err)
	}
	// The context outlives any test run; if BroadcastTo waited for it, the
	// result below would never come and the select's bound fails the test.
	ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
	defer cancel()
	done := make(chan []mesh.Reply, 1)
	go func() {
		rs, err := command.BroadcastTo(ctx, nc, mesh.Command{Name: mesh.CmdPing}, online)
		if err != nil {
			t.Errorf("BroadcastTo: %v", err)
		}
		done <- rs
	}()
	var rs []mesh.Reply
	select {
	case rs = <-done:
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Fatal("BroadcastTo did not return after w1, w2 and w3 answered; it waits for its context's end")
	}
	if ctx.Err() != nil {
		t.Errorf("BroadcastTo returned at its context's end (%v), not when everyone had answered", ctx.Err())
	}
	seen := map[string]bool{}
	for _, r := range rs {
		if !r.OK || r.Timeout {
			t.Errorf("reply %+v", r)
		}
		seen[r.Node] = true
	}
	if len(rs) != 3 || len(seen) != 3 {
		t.Errorf("replies %+v; want one from each of w1, w2, w3", rs)
	}
	if noAnswer, refused := command.Failures(rs); noAnswer != nil || refused != nil {
		t.Errorf("Failures = %v, %v; want none", noAnswer, refused)
	}
}

// A node online but silent is in the result as not answering; a node that
// answers without being expected (it just joined) is kept; a refusal by a
// node the command does not apply to is no failure, one by a worker is.
func TestBroadcastToMarksSilentNodes(t *testing.T) {
	nc := conn(t)
	serve(t, nc, "w1", okHandler(mesh.StatePaused))
	serve(t, nc, "w4", func(context.Context, mesh.Command) mesh.Reply { return mesh.Reply{OK: false, Error: "draining"} })
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	cm := mesh.Command{Name: mesh.CmdPause}
	expect := []command.Target{{ID: "w1", Role: mesh.RoleWorker}, {ID: "w2", Role: mesh.RoleWorker}, {ID: "w2", Role: mesh.RoleWorker}}
	rs, err := command.BroadcastTo(ctx, nc, cm, expect)
	if err != nil {
		t.Fatal(err)
	}
	byNode := map[string]mesh.Reply{}
	for _, r := range rs {
		byNode[r.Node] = r
	}
	if len(rs) != 3 || !byNode["w1"].OK || byNode["w4"].OK || byNode["w4"].Timeout {
		t.Errorf("replies %+v; want w1 ok, w4 refused, w2 not answering", rs)
	}
	if w2 := byNode["w2"]; w2.OK || !w2.Timeout || w2.Role != mesh.RoleWorker || w2.Error != "did not answer pause in time" {
		t.Errorf("w2's entry = %+v; want timeout with %q", w2, "did not answer pause in time")
	}
	// A master refusing pause does not count; a worker refusing it does.
	rs = append(rs, mesh.Reply{Node: "m1", Role: mesh.RoleMaster, NA: true, Error: "a master runs no tasks"})
	noAnswer, refused := command.Failures(rs)
	if !slices.Equal(noAnswer, []string{"w2"}) || !slices.Equal(refused, []string{"w4"}) {
		t.Errorf("Failures = %v, %v; want [w2], [w4]", noAnswer, refused)
	}
}
