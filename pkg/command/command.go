// Package command carries operator and master commands to nodes over NATS
// request/reply: [Serve] answers them on a node, [Send] and [Broadcast] ask.
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
// the deadline). Refusals are in the replies, not the error.
func Broadcast(ctx context.Context, nc *nats.Conn, c mesh.Command, want int) ([]mesh.Reply, error) {
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
	for want <= 0 || len(out) < want {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			break // deadline: what arrived is the answer
		}
		var r mesh.Reply
		if json.Unmarshal(m.Data, &r) == nil {
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
