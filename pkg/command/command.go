// Package command carries operator and master commands to nodes over NATS
// request/reply: [Serve] answers them on a node, [Send] and [Broadcast] ask;
// [BroadcastTo] also names the online nodes ([Online]) that did not answer.
//
// Every node listens on its own subject and on a broadcast subject (see
// pkg/mesh). Replies say whether the node accepted the command and its state
// afterwards, so a caller never has to guess; no responders, a timeout and
// a refusal are distinct errors.
package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/kvscan"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// Errors a caller can tell apart with errors.Is.
var (
	ErrNoNode  = errors.New("command: no node answers on that id")
	ErrTimeout = errors.New("command: no reply in time")
	ErrRefused = errors.New("command: refused by node")
)

// Error is a command failure; errors.Is matches its Kind.
type Error struct {
	Kind error // ErrNoNode, ErrTimeout or ErrRefused
	Msg  string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

// Handler executes one validated command and says what happened.
type Handler func(ctx context.Context, c mesh.Command) mesh.Reply

// Serve answers commands for node id until ctx is done. Commands are handled
// one at a time, in arrival order.
func Serve(ctx context.Context, nc *nats.Conn, id, role string, h Handler, log *slog.Logger) error {
	return serve(ctx, nc, id, role, h, log, mesh.CommandSubject(id), mesh.CommandAllSubject)
}

// ServeOwn is [Serve] on the node's own subject only: a host agent is not
// one of the nodes a broadcast (node pause all) is meant for.
func ServeOwn(ctx context.Context, nc *nats.Conn, id, role string, h Handler, log *slog.Logger) error {
	return serve(ctx, nc, id, role, h, log, mesh.CommandSubject(id))
}

func serve(ctx context.Context, nc *nats.Conn, id, role string, h Handler, log *slog.Logger, subjects ...string) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ch := make(chan *nats.Msg, 64)
	var subs []*nats.Subscription
	for _, subj := range subjects {
		s, err := nc.ChanSubscribe(subj, ch)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", subj, err)
		}
		subs = append(subs, s)
	}
	defer func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}()
	if err := nc.FlushTimeout(5 * time.Second); err != nil && ctx.Err() == nil {
		return fmt.Errorf("subscribe commands: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-ch:
			var c mesh.Command
			var r mesh.Reply
			if err := json.Unmarshal(m.Data, &c); err != nil {
				r = mesh.Reply{OK: false, Error: fmt.Sprintf("malformed command: %v", err)}
			} else if err := c.Validate(); err != nil {
				r = mesh.Reply{OK: false, Error: err.Error()}
			} else {
				log.Info("command received", "subject", m.Subject, "cmd", c.String())
				r = h(ctx, c)
			}
			r.Node, r.Role = id, role
			b, _ := json.Marshal(r)
			if m.Reply != "" {
				if err := m.Respond(b); err != nil {
					log.Warn("command reply not sent", "err", err)
				}
			}
		}
	}
}

// Send sends c to node id and waits for its reply until ctx's deadline
// (5s if ctx has none).
func Send(ctx context.Context, nc *nats.Conn, id string, c mesh.Command) (mesh.Reply, error) {
	if err := mesh.ValidateNodeID(id); err != nil {
		return mesh.Reply{}, err
	}
	if err := c.Validate(); err != nil {
		return mesh.Reply{}, err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	body, _ := json.Marshal(c)
	m, err := nc.RequestWithContext(ctx, mesh.CommandSubject(id), body)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return mesh.Reply{}, &Error{ErrNoNode, fmt.Sprintf("node %q is not listening (offline, or no such node)", id)}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return mesh.Reply{}, &Error{ErrTimeout, fmt.Sprintf("node %q did not answer %s in time", id, c)}
	case err != nil:
		return mesh.Reply{}, fmt.Errorf("send %s to %s: %w", c, id, err)
	}
	var r mesh.Reply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return mesh.Reply{}, fmt.Errorf("node %q sent an unreadable reply: %w", id, err)
	}
	if !r.OK {
		return r, &Error{ErrRefused, fmt.Sprintf("node %q refused %s: %s", id, c, r.Error)}
	}
	return r, nil
}

// Broadcast sends c to every node and collects replies until ctx's deadline
// (2s if it has none) or until want replies arrived (want <= 0: wait for
// the deadline). Refusals are in the replies, not the error. A caller that
// must know who did not answer uses [BroadcastTo].
func Broadcast(ctx context.Context, nc *nats.Conn, c mesh.Command, want int) ([]mesh.Reply, error) {
	return broadcast(ctx, nc, c, func(out []mesh.Reply) bool { return want > 0 && len(out) >= want })
}

// Target is a node a broadcast is expected to reach.
type Target struct {
	ID   string
	Role string
}

// Online lists the nodes that should answer a broadcast: those with a live
// heartbeat key in kv (bucket nodes, as crawlmesh nodes and the masters'
// cluster view read it), except host agents, which listen on their own
// subject only, and nodes stopping, which are about to remove their key.
// Unreadable heartbeats are skipped, as the cluster view skips them.
func Online(ctx context.Context, kv jetstream.KeyValue) ([]Target, error) {
	es, err := kvscan.Entries(ctx, kv, mesh.NodesBucket)
	if err != nil {
		return nil, err
	}
	var out []Target
	for _, e := range es {
		hb, err := mesh.DecodeHeartbeat(e.Value())
		if err != nil || hb.Role == mesh.RoleAgent || hb.State == mesh.StateStopping {
			continue
		}
		out = append(out, Target{ID: e.Key(), Role: hb.Role})
	}
	return out, nil
}

// BroadcastTo sends c to every node, as [Broadcast], and collects replies
// until every node of expect (see [Online]) answered, or ctx's deadline
// (2s if it has none). A reply from a node not in expect, one that joined
// since, is kept. Each node of expect that did not answer is in the result
// too, after the replies: OK false, Timeout set, and Error "did not answer
// CMD in time".
func BroadcastTo(ctx context.Context, nc *nats.Conn, c mesh.Command, expect []Target) ([]mesh.Reply, error) {
	waiting := make(map[string]bool, len(expect))
	for _, t := range expect {
		waiting[t.ID] = true
	}
	seen := 0 // replies already struck off waiting
	out, err := broadcast(ctx, nc, c, func(out []mesh.Reply) bool {
		for ; seen < len(out); seen++ {
			delete(waiting, out[seen].Node)
		}
		return len(waiting) == 0
	})
	if err != nil {
		return nil, err
	}
	for _, t := range expect {
		if waiting[t.ID] {
			delete(waiting, t.ID) // a duplicate in expect is listed once
			out = append(out, mesh.Reply{Node: t.ID, Role: t.Role, Timeout: true,
				Error: fmt.Sprintf("did not answer %s in time", c)})
		}
	}
	return out, nil
}

// Failures sorts out a broadcast's result: the nodes that did not answer
// in time, and those that refused c, except refusals marked not for them
// ([mesh.Reply.NA]: a master asked to pause, a standby to step down).
func Failures(rs []mesh.Reply) (noAnswer, refused []string) {
	for _, r := range rs {
		switch {
		case r.Timeout:
			noAnswer = append(noAnswer, r.Node)
		case !r.OK && !r.NA:
			refused = append(refused, r.Node)
		}
	}
	return noAnswer, refused
}

// broadcast publishes c on the broadcast subject and collects replies
// until done says so (it is asked before the first wait too) or ctx's
// deadline (2s if it has none).
func broadcast(ctx context.Context, nc *nats.Conn, c mesh.Command, done func([]mesh.Reply) bool) ([]mesh.Reply, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
	}
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("broadcast %s: %w", c, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	body, _ := json.Marshal(c)
	if err := nc.PublishRequest(mesh.CommandAllSubject, inbox, body); err != nil {
		return nil, fmt.Errorf("broadcast %s: %w", c, err)
	}
	var out []mesh.Reply
	for !done(out) {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			break // deadline: what arrived is the answer
		}
		var r mesh.Reply
		if json.Unmarshal(m.Data, &r) == nil {
			r.Timeout = false // only the caller says a node did not answer
			out = append(out, r)
		}
	}
	return out, nil
}

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, 5*time.Second)
}
