// Package worker is the crawler node: it keeps its heartbeat, obeys
// commands (pause, resume, drain, shutdown, set-concurrency) and runs tasks.
// The binary in services/worker and `crawlmesh up` both run it.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/crawlmesh/crawlmesh/pkg/clusterconfig"
	"github.com/crawlmesh/crawlmesh/pkg/command"
	"github.com/crawlmesh/crawlmesh/pkg/heartbeat"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// Config is a worker's configuration.
type Config struct {
	ID                string
	Concurrency       int
	HeartbeatInterval time.Duration
	HeartbeatTTL      time.Duration
	Clock             func() time.Time // for update_ts; nil means time.Now
	Log               *slog.Logger
	Registerer        prometheus.Registerer // nil: no metrics
	// Tasks opens the shared work-queue consumer and the task handler; nil
	// runs an idle node. It is retried until it succeeds, so a worker joins
	// the mesh (heartbeat, commands) before a master has created the stream.
	Tasks TaskSource
	// Agent is the id of the host agent that started this worker, carried
	// in its heartbeat; "" when none did.
	Agent string
	// GoSpiders names the Go spiders this worker has, for its heartbeat.
	GoSpiders []string
	// Drain, when closed, drains the worker as the drain command does: a
	// host agent asks its children so without NATS permissions of its own.
	Drain <-chan struct{}
	// Paused starts the worker paused (its stored config says so).
	Paused bool
	// Config, when set, is watched while the worker runs: concurrency,
	// paused and heartbeat_interval are applied here, then Apply (the
	// crawling settings the worker does not own) is called, and the
	// heartbeat carries the result.
	Config *clusterconfig.Watcher
	Apply  clusterconfig.ApplyFunc
}

// TaskSource opens the task consumers (one per partition of the work
// queue) and the handler that runs one task message to its
// acknowledgement.
type TaskSource func(ctx context.Context) ([]jetstream.Consumer, func(context.Context, jetstream.Msg), error)

// Worker is one crawler node.
type Worker struct {
	nc     *nats.Conn
	cfg    Config
	beater *heartbeat.Beater
	log    *slog.Logger

	mu          sync.Mutex
	state       string
	concurrency int
	active      int
	partitions  int           // work-queue partitions pulled, for the heartbeat
	stop        chan struct{} // closed when drain completes or on shutdown
	stopOnce    sync.Once
	changed     chan struct{} // state or concurrency changed (1-buffered)
	tasks       sync.WaitGroup
	slots       *Slots
	term        uint64 // highest master term seen in a command (fencing)
	// The config values last applied: a change of config is applied, an
	// unchanged one leaves what a command set alone.
	cfgConcurrency int
	cfgPaused      bool
	// taking is done while the worker takes no new tasks (paused), and
	// made anew when it resumes: see Taking.
	taking     context.Context
	stopTaking context.CancelFunc
}

// overcommit is how many tasks a worker holds per fetch slot: tasks
// waiting for their host's turn hold a goroutine, not a slot, so other
// hosts' tasks keep the slots busy.
const overcommit = 4

// New validates cfg and returns a worker that heartbeats in nodes.
func New(nc *nats.Conn, nodes heartbeat.KV, cfg Config) (*Worker, error) {
	if cfg.Concurrency < 1 {
		return nil, fmt.Errorf("worker: concurrency %d: must be at least 1", cfg.Concurrency)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	w := &Worker{nc: nc, cfg: cfg, state: mesh.StateRunning, concurrency: cfg.Concurrency,
		stop: make(chan struct{}), changed: make(chan struct{}, 1), slots: newSlots(cfg.Concurrency),
		log: cfg.Log.With("component", "worker", "node", cfg.ID), cfgConcurrency: cfg.Concurrency, cfgPaused: cfg.Paused}
	if cfg.Paused {
		w.state = mesh.StatePaused
	}
	w.taking, w.stopTaking = context.WithCancel(context.Background())
	w.syncTakingLocked()
	opts := append(heartbeat.Timing(cfg.HeartbeatInterval, cfg.HeartbeatTTL, cfg.Clock, cfg.Log), heartbeat.WithStatus(w.status))
	if cfg.Agent != "" {
		opts = append(opts, heartbeat.WithAgent(cfg.Agent))
	}
	b, err := heartbeat.New(nodes, cfg.ID, mesh.RoleWorker, opts...)
	if err != nil {
		return nil, err
	}
	w.beater = b
	if cfg.Registerer != nil {
		w.registerMetrics(cfg.Registerer)
	}
	return w, nil
}

func (w *Worker) registerMetrics(r prometheus.Registerer) {
	f := promauto.With(prometheus.WrapRegistererWith(prometheus.Labels{"node": w.cfg.ID}, r))
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "crawlmesh_worker_concurrency",
		Help: "Task slots of this worker (set-concurrency changes it)."},
		func() float64 { w.mu.Lock(); defer w.mu.Unlock(); return float64(w.concurrency) })
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "crawlmesh_worker_active_tasks",
		Help: "Tasks in flight on this worker."},
		func() float64 { w.mu.Lock(); defer w.mu.Unlock(); return float64(w.active) })
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "crawlmesh_worker_paused",
		Help: "1 while this worker takes no new tasks (paused or draining)."},
		func() float64 {
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.state == mesh.StateRunning {
				return 0
			}
			return 1
		})
}

func (w *Worker) status() heartbeat.Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := heartbeat.Status{State: w.state, ActiveTasks: w.active, Capacity: w.concurrency, Partitions: w.partitions, GoSpiders: w.cfg.GoSpiders}
	if w.cfg.Config != nil {
		st.Config = w.cfg.Config.Status()
	}
	return st
}

// applyConfig applies the worker's own keys of the cluster configuration,
// then cfg.Apply, and beats at once so the change shows.
func (w *Worker) applyConfig(e clusterconfig.Effective) []error {
	var errs []error
	w.mu.Lock()
	if n := e.Int(clusterconfig.Concurrency); n >= 1 && n != w.cfgConcurrency {
		w.cfgConcurrency = n
		if w.concurrency != n {
			w.concurrency = n
			w.slots.setLimit(n)
			w.notify()
		}
	}
	if p := e.Bool(clusterconfig.Paused); p != w.cfgPaused {
		w.cfgPaused = p
		switch {
		case w.state == mesh.StateDraining || w.state == mesh.StateStopping:
		case p && w.state != mesh.StatePaused:
			w.state = mesh.StatePaused
			w.notify()
		case !p && w.state == mesh.StatePaused:
			w.state = mesh.StateRunning
			w.notify()
		}
		w.syncTakingLocked()
	}
	w.mu.Unlock()
	if d := e.Duration(clusterconfig.HeartbeatInterval); d > 0 {
		if err := w.beater.SetInterval(d); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", clusterconfig.HeartbeatInterval, err))
		}
	}
	if w.cfg.Apply != nil {
		errs = append(errs, w.cfg.Apply(e)...)
	}
	return errs
}

// Slots are the worker's fetch slots (its concurrency): a task holds one
// only while it fetches.
func (w *Worker) Slots() *Slots { return w.slots }

// Healthy says whether the worker's heartbeat is current (see
// [heartbeat.Beater.Check]).
func (w *Worker) Healthy() error { return w.beater.Check() }

// State returns the worker's state and concurrency.
func (w *Worker) State() (state string, concurrency int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state, w.concurrency
}

// Run runs the worker until ctx is done, a shutdown command arrives, or a
// drain completes. It returns nil on every clean stop.
func (w *Worker) Run(ctx context.Context) error {
	return w.beater.Hold(ctx, func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		errc := make(chan error, 1)
		go func() { errc <- command.Serve(ctx, w.nc, w.cfg.ID, mesh.RoleWorker, w.handle, w.log) }()
		var consumeWG sync.WaitGroup
		if w.cfg.Tasks != nil {
			consumeWG.Go(func() { w.consume(ctx) })
		}
		if w.cfg.Drain != nil {
			consumeWG.Go(func() {
				select {
				case <-w.cfg.Drain:
					w.log.Info("drain asked by the host agent", "agent", w.cfg.Agent)
					w.handle(ctx, mesh.Command{Name: mesh.CmdDrain})
				case <-ctx.Done():
				}
			})
		}
		if w.cfg.Config != nil {
			consumeWG.Go(func() {
				_ = w.cfg.Config.Run(ctx, clusterconfig.Applier{Apply: w.applyConfig, Applied: w.beater.Kick})
			})
		}
		defer func() {
			cancel()
			consumeWG.Wait()
			w.tasks.Wait()
		}()
		w.log.Info("worker running", "concurrency", w.cfg.Concurrency, "paused", w.cfg.Paused)
		var err error
		select {
		case <-ctx.Done():
			// Stopped (SIGTERM, the agent gone): what is in flight is handed
			// back unfinished, and an operator reading the log wants to know.
			w.log.Info("stopping: tasks in flight are handed back", "tasks", w.Active())
		case <-w.stop:
		case err = <-errc:
		}
		cancel()
		if err == nil {
			err = <-errc
		}
		w.log.Info("worker stopped")
		return err
	})
}

func (w *Worker) handle(_ context.Context, c mesh.Command) mesh.Reply {
	w.mu.Lock()
	defer w.mu.Unlock()
	refuse := func(msg string) mesh.Reply {
		return mesh.Reply{OK: false, Error: msg, State: w.state, Concurrency: w.concurrency}
	}
	notForMe := func(msg string) mesh.Reply {
		r := refuse(msg)
		r.NA = true
		return r
	}
	// Fencing: a command from a master carries its term; one from an older
	// term than already seen comes from a deposed leader. Operators send 0.
	if c.Term > 0 {
		if c.Term < w.term {
			return refuse(fmt.Sprintf("stale term %d: a master with term %d leads now", c.Term, w.term))
		}
		w.term = c.Term
	}
	state, concurrency := w.state, w.concurrency
	switch c.Name {
	case mesh.CmdPause:
		if w.state == mesh.StateDraining || w.state == mesh.StateStopping {
			return refuse("node is " + w.state)
		}
		w.state = mesh.StatePaused
	case mesh.CmdResume:
		if w.state == mesh.StateDraining || w.state == mesh.StateStopping {
			return refuse("node is " + w.state + "; it cannot resume")
		}
		w.state = mesh.StateRunning
	case mesh.CmdDrain:
		if w.state != mesh.StateStopping {
			w.state = mesh.StateDraining
		}
		if w.active == 0 {
			w.stopLocked()
		}
	case mesh.CmdShutdown:
		w.state = mesh.StateStopping
		w.stopLocked()
	case mesh.CmdScale:
		return notForMe("scale is for a host agent (crawlmesh agent); this is a worker")
	case mesh.CmdStepDown:
		return notForMe("step-down is for the leading master; this is a worker")
	case mesh.CmdSetConcurrency:
		w.concurrency = c.N
		w.slots.setLimit(c.N)
	}
	// Only a change restarts the pull: each restart drains the old one
	// while its tasks run on, so a restart on every ping or step-down
	// piled pulls up to hundreds of held tasks a worker (found by review).
	if w.state != state || w.concurrency != concurrency {
		w.notify()
		w.syncTakingLocked()
	}
	w.beater.Kick()
	return mesh.Reply{OK: true, State: w.state, Concurrency: w.concurrency}
}

// Taking returns a context done once the worker takes no new tasks
// (paused). A held task still waiting for its host's turn has not
// started: the crawler gives it back to the queue when this is done.
// Found by review: a pause let each worker start the 4 × concurrency
// tasks it held, 408 requests over 10 s.
func (w *Worker) Taking() context.Context {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.taking
}

func (w *Worker) syncTakingLocked() {
	switch {
	case w.state == mesh.StatePaused:
		w.stopTaking()
	case w.state == mesh.StateRunning && w.taking.Err() != nil:
		w.taking, w.stopTaking = context.WithCancel(context.Background())
	}
}

func (w *Worker) stopLocked() { w.stopOnce.Do(func() { close(w.stop) }) }

func (w *Worker) notify() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// consume pulls tasks while the worker is running, never more than it
// has holders for (concurrency × overcommit), so no task waits unheld
// past its ack deadline. A change of state or concurrency ends the
// current pull: in-flight tasks finish, and a new pull starts with the
// new size.
func (w *Worker) consume(ctx context.Context) {
	cons, handle, err := w.cfg.Tasks(ctx)
	for logged := false; err != nil; cons, handle, err = w.cfg.Tasks(ctx) {
		if ctx.Err() != nil {
			return
		}
		if !logged {
			w.log.Warn("tasks not available yet, retrying", "err", err)
			logged = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	w.mu.Lock()
	w.partitions = len(cons)
	w.mu.Unlock()
	w.beater.Kick()
	for ctx.Err() == nil {
		state, n := w.State()
		if state != mesh.StateRunning {
			select {
			case <-ctx.Done():
				return
			case <-w.changed:
				continue
			}
		}
		// Fetches of exactly as many tasks as there are free holders: a
		// streaming pull (Messages) refills its buffer while every holder
		// waits for a host's turn, and a buffered task is kept alive by
		// nobody, so it went past its ack wait and came again, one
		// delivery nearer the dead letters (found by review).
		w.consumeParts(ctx, cons, handle, n*overcommit, n)
	}
}

// consumeParts pulls from the partitions' consumers (one or several) until ctx is done
// or the state or concurrency changes. The worker's held tasks are tokens
// the partitions compete for: each partition's puller takes what is free,
// fetches that many without waiting, and returns what it did not get; a
// partition with nothing pending waits for work holding one token only, so
// an empty partition never holds the capacity a busy one could use. With
// several partitions, one may hold at most partCap of them.
func (w *Worker) consumeParts(ctx context.Context, cons []jetstream.Consumer, handle func(context.Context, jetstream.Msg), held, concurrency int) {
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	tokens := make(chan struct{}, held)
	for range held {
		tokens <- struct{}{}
	}
	limit := partCap(held, concurrency, len(cons))
	var pullers sync.WaitGroup
	for _, c := range cons {
		p := &puller{c: c, tokens: tokens, own: make(chan struct{}, limit), held: held}
		pullers.Go(func() { w.pullPart(rctx, ctx, p, handle) })
	}
	select {
	case <-ctx.Done():
	case <-w.changed:
	}
	stop()
	pullers.Wait() // tasks already taken run on under ctx (w.tasks)
}

// partCap is how many of a worker's held tasks one of parts partitions
// may hold. Tasks waiting for a polite host's turn hold theirs, and as
// other tasks finish and give theirs back, a partition whose tasks all
// wait for one host took every one, so crawls in the other partitions
// waited behind it. At least concurrency: a partition working alone still
// fills every fetch slot.
func partCap(held, concurrency, parts int) int {
	if parts <= 1 {
		return held
	}
	return min(held, max(concurrency, (held+parts-1)/parts))
}

// puller is one partition's share of consumeParts: the worker's tokens,
// and its own bound on them (own holds one entry per task it holds).
type puller struct {
	c      jetstream.Consumer
	tokens chan struct{}
	own    chan struct{}
	held   int
}

// take waits for one task's room, then takes what more is free at once,
// up to the worker's held; 0 when rctx ends first.
func (p *puller) take(rctx context.Context) int {
	select {
	case <-rctx.Done():
		return 0
	case p.own <- struct{}{}:
	}
	select {
	case <-rctx.Done():
		<-p.own
		return 0
	case <-p.tokens:
	}
	k := 1
	for k < p.held {
		select {
		case p.own <- struct{}{}:
		default:
			return k
		}
		select {
		case <-p.tokens:
			k++
		default:
			<-p.own
			return k
		}
	}
	return k
}

// give returns n tasks' room.
func (p *puller) give(n int) {
	for range n {
		<-p.own
		p.tokens <- struct{}{}
	}
}

// pullPart is one partition's puller of consumeParts: it stops pulling
// when rctx ends; the tasks it took run until ctx ends.
func (w *Worker) pullPart(rctx, ctx context.Context, p *puller, handle func(context.Context, jetstream.Msg)) {
	for rctx.Err() == nil {
		k := p.take(rctx)
		if k == 0 {
			return
		}
		batch, err := p.c.FetchNoWait(k)
		got := 0
		if err == nil {
			got = w.run(ctx, batch.Messages(), handle, p)
			err = batch.Error()
		}
		if got == 0 && err == nil && rctx.Err() == nil {
			// Nothing pending: wait for one task, holding one token.
			p.give(k - 1)
			k = 1
			// Cut short when the pull stops (SIGTERM, a change): a stopping
			// worker must not wait out the 2 s for a task it would not run.
			fctx, cancel := context.WithTimeout(rctx, 2*time.Second)
			batch, err = p.c.Fetch(1, jetstream.FetchContext(fctx))
			if err == nil {
				got = w.run(ctx, batch.Messages(), handle, p)
				err = batch.Error()
			}
			cancel()
		}
		p.give(k - got)
		idle := errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
		if err != nil && !idle && rctx.Err() == nil {
			w.log.Warn("task pull failed, retrying", "err", err)
			select {
			case <-rctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// run starts a task for every message of msgs; each gives its room back
// to p when done. It returns how many it started.
func (w *Worker) run(ctx context.Context, msgs <-chan jetstream.Msg, handle func(context.Context, jetstream.Msg), p *puller) int {
	n := 0
	for msg := range msgs {
		n++
		w.begin()
		w.tasks.Go(func() {
			handle(ctx, msg)
			w.end()
			p.give(1)
		})
	}
	return n
}

// Active is the number of tasks the worker holds.
func (w *Worker) Active() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.active
}

func (w *Worker) begin() {
	w.mu.Lock()
	w.active++
	w.mu.Unlock()
}

func (w *Worker) end() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.active--
	if w.active == 0 && w.state == mesh.StateDraining {
		w.stopLocked()
	}
}
