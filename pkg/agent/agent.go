package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/command"
	"github.com/crawlmesh/crawlmesh/pkg/heartbeat"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// Config is an agent's configuration.
type Config struct {
	// ID is the agent's node id; its children are ID-1..ID-N.
	ID string
	// Workers is N at start (0..mesh.MaxAgentWorkers).
	Workers int
	// Command builds the process of child id, whose /metrics and /healthz
	// listen on httpAddr. The agent sets its Stdin, Stdout and Stderr.
	Command func(id, httpAddr string) *exec.Cmd
	// Output receives the children's output lines, each marked with the
	// child's id (nil: discarded). JSON says the lines are JSON objects.
	Output io.Writer
	JSON   bool

	HeartbeatInterval time.Duration
	HeartbeatTTL      time.Duration
	Log               *slog.Logger

	// MinBackoff is the first restart delay, doubled at each restart up to
	// MaxBackoff, and back to MinBackoff once a child ran StableAfter.
	MinBackoff, MaxBackoff, StableAfter time.Duration
	// DrainTimeout is how long a child may take to drain before it gets
	// SIGTERM; StopTimeout how long after SIGTERM it gets SIGKILL.
	DrainTimeout, StopTimeout time.Duration
}

func (c *Config) defaults() {
	if c.MinBackoff <= 0 {
		c.MinBackoff = 250 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.StableAfter <= 0 {
		c.StableAfter = 10 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = time.Minute
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 10 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Output == nil {
		c.Output = io.Discard
	}
}

// Agent supervises the worker processes of one host.
type Agent struct {
	cfg    Config
	nc     *nats.Conn
	kv     heartbeat.KV
	beater *heartbeat.Beater
	log    *slog.Logger
	out    *lineMux
	stop   chan struct{} // closed by a drain or shutdown command
	once   sync.Once

	mu     sync.Mutex
	runCtx context.Context // the context children run under; nil before Run
	state  string
	target int
	slots  []*slot // slot i+1 is child ID-(i+1)
	wg     sync.WaitGroup
}

// slot is one child id; its fields are guarded by Agent.mu.
type slot struct {
	idx      int
	id       string
	want     bool          // the agent wants this child running
	running  bool          // its goroutine is alive
	wake     chan struct{} // want changed (1-buffered)
	pid      int
	state    string
	restarts int
	lastExit string
	http     string
	// stdin is the running child's drain channel; asked says a drain was
	// written to it (askErr: and failed). Scale writes the ask itself, under
	// Agent.mu, so that asks go out highest index first as the README says.
	stdin  io.Writer
	asked  bool
	askErr error
}

// New validates cfg and returns an agent heartbeating in nodes.
func New(nc *nats.Conn, nodes heartbeat.KV, cfg Config) (*Agent, error) {
	cfg.defaults()
	if err := mesh.ValidateNodeID(cfg.ID); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	// The children's ids must be valid too: the longest is ID-MAX.
	if err := mesh.ValidateNodeID(childID(cfg.ID, mesh.MaxAgentWorkers)); err != nil {
		return nil, fmt.Errorf("agent: id %q is too long for its workers' ids (%s-N): %w", cfg.ID, cfg.ID, err)
	}
	if cfg.Workers < 0 || cfg.Workers > mesh.MaxAgentWorkers {
		return nil, fmt.Errorf("agent: workers %d: want 0..%d", cfg.Workers, mesh.MaxAgentWorkers)
	}
	if cfg.Command == nil {
		return nil, errors.New("agent: no Command to start a worker")
	}
	if cfg.MinBackoff > cfg.MaxBackoff {
		return nil, fmt.Errorf("agent: min back-off %v is more than max %v", cfg.MinBackoff, cfg.MaxBackoff)
	}
	a := &Agent{cfg: cfg, nc: nc, kv: nodes, state: mesh.StateRunning, stop: make(chan struct{}),
		log: cfg.Log.With("component", "agent", "agent", cfg.ID), out: &lineMux{w: cfg.Output, json: cfg.JSON}}
	opts := append(heartbeat.Timing(cfg.HeartbeatInterval, cfg.HeartbeatTTL, nil, cfg.Log), heartbeat.WithStatus(a.status))
	b, err := heartbeat.New(nodes, cfg.ID, mesh.RoleAgent, opts...)
	if err != nil {
		return nil, err
	}
	a.beater = b
	return a, nil
}

func childID(agent string, i int) string { return agent + "-" + strconv.Itoa(i) }

// Children returns the children as the heartbeat lists them.
func (a *Agent) Children() []mesh.Child {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.childrenLocked()
}

func (a *Agent) childrenLocked() []mesh.Child {
	var out []mesh.Child
	for _, s := range a.slots {
		if !s.want && !s.running {
			continue
		}
		out = append(out, mesh.Child{ID: s.id, PID: s.pid, State: s.state, Restarts: s.restarts, LastExit: s.lastExit, HTTP: s.http})
	}
	return out
}

func (a *Agent) status() heartbeat.Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	// No capacity: an agent runs no tasks, and crawlmesh_node_capacity
	// sums the workers' (its children report their own).
	return heartbeat.Status{State: a.state, Children: a.childrenLocked()}
}

// Run claims the agent's key, starts the workers and supervises them until
// ctx ends or a drain or shutdown command arrives; then it drains every
// child, stops it, and removes the agent's key. It returns nil on a clean
// stop.
func (a *Agent) Run(ctx context.Context) error {
	return a.beater.Hold(ctx, func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
		defer stopServing()
		errc := make(chan error, 1)
		go func() { errc <- command.ServeOwn(serveCtx, a.nc, a.cfg.ID, mesh.RoleAgent, a.handle, a.log) }()
		a.mu.Lock()
		a.runCtx = ctx
		a.mu.Unlock()
		a.Scale(a.cfg.Workers)
		a.log.Info("agent running", "workers", a.cfg.Workers)
		var err error
		served := false
		select {
		case <-ctx.Done():
		case <-a.stop:
		case err = <-errc:
			served = true
		}
		a.mu.Lock()
		a.state = mesh.StateDraining
		n := 0
		for _, s := range a.slots {
			if s.running {
				n++
			}
		}
		a.mu.Unlock()
		a.beater.Kick()
		a.log.Info("agent stopping: draining its workers", "workers", n)
		cancel() // every slot drains its child, then stops it
		a.wg.Wait()
		stopServing()
		if !served {
			err = <-errc
		}
		a.log.Info("agent stopped: every worker exited")
		return err
	})
}

// Scale sets the number of workers to n: new ones start at once, and the
// ones above n (highest index first) are drained, then stopped.
func (a *Agent) Scale(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ctx := a.runCtx
	// Once Run has begun to stop (state draining, set before it cancels
	// ctx and waits), no slot may start: wg.Go must not race wg.Wait.
	if ctx == nil || ctx.Err() != nil || a.state != mesh.StateRunning {
		return
	}
	old := a.target
	a.target = n
	for len(a.slots) < n {
		i := len(a.slots) + 1
		a.slots = append(a.slots, &slot{idx: i, id: childID(a.cfg.ID, i), wake: make(chan struct{}, 1)})
	}
	// Highest index first: the drain asks go out in that order.
	for i := len(a.slots); i >= 1; i-- {
		s := a.slots[i-1]
		want := i <= n
		if s.want != want {
			s.want = want
			if !want {
				a.askDrainLocked(s)
			}
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
		if want && !s.running {
			s.running = true
			a.wg.Go(func() { a.runSlot(ctx, s) })
		}
	}
	if old != n {
		a.log.Info("workers scaled", "from", old, "to", n)
	}
	a.beater.Kick()
}

func (a *Agent) handle(_ context.Context, c mesh.Command) mesh.Reply {
	a.mu.Lock()
	state, target := a.state, a.target
	a.mu.Unlock()
	reply := func() mesh.Reply {
		a.mu.Lock()
		defer a.mu.Unlock()
		return mesh.Reply{OK: true, State: a.state, Workers: a.target}
	}
	switch c.Name {
	case mesh.CmdPing:
		return reply()
	case mesh.CmdScale:
		if state != mesh.StateRunning {
			return mesh.Reply{OK: false, State: state, Workers: target, Error: "agent is " + state}
		}
		a.Scale(c.N)
		return reply()
	case mesh.CmdDrain, mesh.CmdShutdown:
		a.once.Do(func() { close(a.stop) })
		r := reply()
		r.State = mesh.StateDraining
		return r
	default:
		return mesh.Reply{OK: false, NA: true, State: state, Workers: target,
			Error: fmt.Sprintf("an agent runs no tasks, so %s does not apply: send it to its workers (%s), or use node scale", c.Name, childID(a.cfg.ID, 1)+"..")}
	}
}

// askDrainLocked writes a drain ask to s's running child, once per
// child; a.mu is held. The 6-byte write cannot block: a child gets one ask.
func (a *Agent) askDrainLocked(s *slot) {
	if s.stdin == nil || s.asked {
		return
	}
	a.log.Info("draining worker", "child", s.id, "pid", s.pid)
	_, s.askErr = io.WriteString(s.stdin, "drain\n")
	s.asked = true
}

// wanted says whether s should (still) run; if not, it marks the slot's
// goroutine gone, under the same lock Scale reads it with.
func (a *Agent) wanted(ctx context.Context, s *slot) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.want && ctx.Err() == nil {
		return true
	}
	s.running, s.state, s.pid, s.http = false, "", 0, ""
	if ctx.Err() != nil {
		s.want = false // the agent stops: nothing is wanted any more
	}
	return false
}

// runSlot keeps child s running while it is wanted, restarting it with
// exponential back-off when it exits unasked.
func (a *Agent) runSlot(ctx context.Context, s *slot) {
	defer a.beater.Kick()
	backoff := a.cfg.MinBackoff
	for a.wanted(ctx, s) {
		started := time.Now()
		asked, err := a.runChild(ctx, s)
		if asked {
			continue // stopped on purpose; wanted decides what next
		}
		ran := time.Since(started)
		if ran >= a.cfg.StableAfter {
			backoff = a.cfg.MinBackoff
		}
		a.mu.Lock()
		s.restarts++
		s.lastExit = exitText(err)
		s.state, s.pid, s.http = mesh.ChildBackoff, 0, ""
		restarts := s.restarts
		a.mu.Unlock()
		a.beater.Kick()
		a.log.Warn("worker exited; restarting it", "child", s.id, "exit", exitText(err), "ran", ran.Round(time.Millisecond),
			"restarts", restarts, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
		backoff = min(2*backoff, a.cfg.MaxBackoff)
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// runChild starts child s and waits for it to exit. It drains the child
// when s is no longer wanted or ctx ends; asked reports that the exit was
// asked for.
func (a *Agent) runChild(ctx context.Context, s *slot) (asked bool, err error) {
	addr, err := freeAddr()
	if err != nil {
		return false, err
	}
	cmd := a.cfg.Command(s.id, addr)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return false, err
	}
	w := a.out.child(s.id)
	cmd.Stdout, cmd.Stderr = w, w
	// A grandchild (a command spider) holding the output open must not
	// keep Wait from returning.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		_ = stdin.Close()
		a.log.Error("worker not started", "child", s.id, "err", err)
		return false, err
	}
	pid := cmd.Process.Pid
	a.mu.Lock()
	s.pid, s.state, s.http = pid, mesh.ChildRunning, addr
	s.stdin, s.asked, s.askErr = stdin, false, nil
	restarts := s.restarts
	a.mu.Unlock()
	a.beater.Kick()
	a.log.Info("worker started", "child", s.id, "pid", pid, "http", addr, "restarts", restarts)

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }() // ends when the process does; received below
	const (
		running = iota
		draining
		terminating
		killed
	)
	phase := running
	var timer *time.Timer
	var timeout <-chan time.Time
	ctxDone := ctx.Done()
	setState := func(st string) {
		a.mu.Lock()
		s.state = st
		a.mu.Unlock()
		a.beater.Kick()
	}
	terminate := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		phase = terminating
		setState(mesh.ChildStopping)
		timer = time.NewTimer(a.cfg.StopTimeout)
		timeout = timer.C
	}
	drain := func() {
		a.mu.Lock()
		a.askDrainLocked(s) // a no-op when Scale asked already
		err := s.askErr
		a.mu.Unlock()
		if err != nil {
			terminate() // it no longer reads its stdin: stop it
			return
		}
		phase = draining
		setState(mesh.ChildDraining)
		timer = time.NewTimer(a.cfg.DrainTimeout)
		timeout = timer.C
	}
	for {
		select {
		case err := <-done:
			if timer != nil {
				timer.Stop()
			}
			a.mu.Lock()
			s.stdin = nil
			a.mu.Unlock()
			_ = stdin.Close()
			w.flush()
			a.purgeStale(ctx, s.id, pid)
			if phase != running {
				a.log.Info("worker stopped", "child", s.id, "pid", pid, "exit", exitText(err))
			}
			return phase != running, err
		case <-s.wake:
			a.mu.Lock()
			stop := !s.want || s.asked // asked, then wanted again: it drains all the same
			a.mu.Unlock()
			if stop && phase == running {
				drain()
			}
		case <-ctxDone:
			ctxDone = nil
			if phase == running {
				drain()
			}
		case <-timeout:
			timer.Stop()
			switch phase {
			case draining:
				a.log.Warn("worker did not drain in time; sending SIGTERM", "child", s.id, "pid", pid, "timeout", a.cfg.DrainTimeout)
				terminate()
			case terminating:
				a.log.Warn("worker did not stop in time; killing it", "child", s.id, "pid", pid, "timeout", a.cfg.StopTimeout)
				_ = cmd.Process.Kill()
				phase, timeout = killed, nil
			}
		}
	}
}

// purgeStale removes the heartbeat key a dead child left (SIGKILLed, it
// could not), so that the restarted child claims it at once instead of
// waiting out the bucket's TTL, and `nodes` does not show a dead process.
// Only a key written by that very process (same pid and agent) is purged.
func (a *Agent) purgeStale(ctx context.Context, id string, pid int) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	e, err := a.kv.Get(ctx, id)
	if err != nil {
		return // gone already: a clean exit removes its own key
	}
	hb, err := mesh.DecodeHeartbeat(e.Value())
	if err != nil || hb.PID != pid || hb.Agent != a.cfg.ID || hb.Hostname != heartbeat.LocalHostInfo().Hostname {
		return
	}
	if err := a.kv.Purge(ctx, id, jetstream.LastRevision(e.Revision()), jetstream.PurgeTTL(time.Minute)); err != nil {
		a.log.Warn("dead worker's heartbeat key not removed; it expires with the bucket's TTL", "child", id, "err", err)
		return
	}
	a.log.Info("dead worker's heartbeat key removed", "child", id, "pid", pid)
}

// freeAddr returns a loopback address whose port was free a moment ago:
// each child's /metrics and /healthz.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free loopback port for a worker's --http: %w", err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr, nil
}
