// Package master is the control-plane node: it keeps its heartbeat, holds
// the cluster view built from KV bucket `nodes`, exports it as metrics and
// answers view requests from the CLI. The binary in services/master and
// `crawlmesh up` both run it.
package master

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crawlmesh/crawlmesh/pkg/clusterconfig"
	"github.com/crawlmesh/crawlmesh/pkg/clusterview"
	"github.com/crawlmesh/crawlmesh/pkg/command"
	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/election"
	"github.com/crawlmesh/crawlmesh/pkg/heartbeat"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/scheduler"
)

// Config is a master's configuration.
type Config struct {
	ID                string
	HeartbeatInterval time.Duration
	HeartbeatTTL      time.Duration
	OfflineRetention  time.Duration // how long offline nodes stay listed; 0: 10m
	Clock             func() time.Time
	Log               *slog.Logger
	Registerer        prometheus.Registerer
	// Crawls, when set, makes this master start, cancel and complete crawls
	// while it leads.
	Crawls *crawlctl.Control
	// Elector, when set, makes the master campaign; only the leader runs
	// Crawls. Without one the master acts as the only master.
	Elector *election.Elector
	// Scheduler, when set, fires spiders' schedules while this master leads.
	Scheduler *scheduler.Scheduler
	// Config, when set, is watched while the master runs: it applies
	// heartbeat_interval here, then Apply (the log level), and its
	// heartbeat carries the result.
	Config *clusterconfig.Watcher
	Apply  clusterconfig.ApplyFunc
	// Sinks, when set, delivers items to the sinks while this master leads
	// (pkg/sink.Manager).
	Sinks interface{ Run(context.Context) error }
}

// Master is one control-plane node.
type Master struct {
	nc     *nats.Conn
	cfg    Config
	beater *heartbeat.Beater
	view   *clusterview.View
	log    *slog.Logger

	stop     chan struct{}
	stopOnce sync.Once

	leading  atomic.Bool
	lead     atomic.Pointer[election.Leadership]
	term     atomic.Uint64
	stepDown chan struct{} // 1-buffered: hand leadership over
}

// ViewReply is the answer to a request on mesh.ViewSubject.
type ViewReply struct {
	Master string             `json:"master"`
	Ready  bool               `json:"ready"`
	Nodes  []clusterview.Node `json:"nodes"`
}

// New validates cfg and returns a master over bucket nodes.
func New(nc *nats.Conn, nodes jetstream.KeyValue, cfg Config) (*Master, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	m := &Master{nc: nc, cfg: cfg, stop: make(chan struct{}), stepDown: make(chan struct{}, 1),
		log: cfg.Log.With("component", "master", "node", cfg.ID)}
	vopts := []clusterview.Option{clusterview.WithLogger(cfg.Log)}
	if cfg.OfflineRetention > 0 {
		vopts = append(vopts, clusterview.WithRetention(cfg.OfflineRetention))
	}
	m.view = clusterview.New(nodes, vopts...)
	opts := append(heartbeat.Timing(cfg.HeartbeatInterval, cfg.HeartbeatTTL, cfg.Clock, cfg.Log),
		heartbeat.WithStatus(func() heartbeat.Status {
			st := heartbeat.Status{State: mesh.StateRunning, Leader: m.isLeading(), Term: m.term.Load()}
			if cfg.Scheduler != nil {
				st.ScheduleTZ = cfg.Scheduler.Zone()
			}
			if cfg.Config != nil {
				st.Config = cfg.Config.Status()
			}
			return st
		}))
	b, err := heartbeat.New(nodes, cfg.ID, mesh.RoleMaster, opts...)
	if err != nil {
		return nil, err
	}
	m.beater = b
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(m.view); err != nil {
			return nil, fmt.Errorf("register cluster view metrics: %w", err)
		}
		r := prometheus.WrapRegistererWith(prometheus.Labels{"node": cfg.ID}, cfg.Registerer)
		if err := r.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "crawlmesh_leader",
			Help: "1 while this master leads."}, func() float64 {
			if m.isLeading() {
				return 1
			}
			return 0
		})); err != nil {
			return nil, fmt.Errorf("register leader metrics: %w", err)
		}
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "crawlmesh_leader_term",
			Help: "The term (fencing token) of this master's current or last leadership."},
			func() float64 { return float64(m.term.Load()) }))
		js, err := jetstream.New(nc)
		if err != nil {
			return nil, fmt.Errorf("jetstream: %w", err)
		}
		if err := r.Register(&jsCollector{js: js, timeout: 2 * time.Second}); err != nil {
			return nil, fmt.Errorf("register queue metrics: %w", err)
		}
		if cfg.Crawls != nil {
			ctl := cfg.Crawls
			if err := r.Register(pendingCollector{ctl.PendingTasks}); err != nil {
				return nil, fmt.Errorf("register crawl metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Scheduler is the master's scheduler (nil without one).
func (m *Master) Scheduler() *scheduler.Scheduler { return m.cfg.Scheduler }

// View is the master's cluster view.
func (m *Master) View() *clusterview.View { return m.view }

// Run runs the master until ctx is done or a shutdown command arrives.
func (m *Master) Run(ctx context.Context) error {
	return m.beater.Hold(ctx, func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		sub, err := m.nc.QueueSubscribe(mesh.ViewSubject, "masters", m.answerView)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", mesh.ViewSubject, err)
		}
		defer func() { _ = sub.Unsubscribe() }()
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		wg.Go(func() { errs <- m.view.Run(ctx) })
		wg.Go(func() { errs <- command.Serve(ctx, m.nc, m.cfg.ID, mesh.RoleMaster, m.handle, m.log) })
		wg.Go(func() { errs <- m.leadLoop(ctx) })
		if m.cfg.Config != nil {
			wg.Go(func() { _ = m.cfg.Config.Run(ctx, clusterconfig.Applier{Apply: m.applyConfig, Applied: m.beater.Kick}) })
		}
		m.log.Info("master running")
		select {
		case <-ctx.Done():
		case <-m.stop:
		case err = <-errs:
		}
		cancel()
		wg.Wait()
		m.log.Info("master stopped")
		return err
	})
}

// applyConfig applies the master's keys of the cluster configuration.
func (m *Master) applyConfig(e clusterconfig.Effective) []error {
	var errs []error
	if d := e.Duration(clusterconfig.HeartbeatInterval); d > 0 {
		if err := m.beater.SetInterval(d); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", clusterconfig.HeartbeatInterval, err))
		}
	}
	if m.cfg.Apply != nil {
		errs = append(errs, m.cfg.Apply(e)...)
	}
	return errs
}

// leadLoop campaigns and runs the leader's work for each term won. The
// work runs on the leadership's context, so it stops the moment the lease
// is lost; resigning uses a fresh context because ctx may be done.
func (m *Master) leadLoop(ctx context.Context) error {
	if m.cfg.Elector == nil {
		m.leading.Store(true)
		defer m.leading.Store(false)
		m.runLeader(ctx)
		return nil
	}
	for ctx.Err() == nil {
		l, err := m.cfg.Elector.Campaign(ctx)
		if err != nil {
			return nil // ctx done
		}
		m.term.Store(l.Term())
		m.lead.Store(l)
		m.leading.Store(true)
		m.beater.Kick()
		m.log.Info("leading", "term", l.Term())
		lctx, cancel := context.WithCancel(l.Context())
		stepped := false
		done := make(chan struct{})
		go func() {
			defer close(done)
			m.runLeader(lctx)
		}()
		select {
		case <-lctx.Done():
		case <-m.stepDown:
			stepped = true
		}
		m.leading.Store(false)
		cancel()
		<-done
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_ = l.Resign(rctx)
		rcancel()
		l.Done()
		m.beater.Kick()
		m.log.Info("not leading", "term", l.Term(), "cause", context.Cause(l.Context()))
		if stepped {
			// Let another master win the vacancy before campaigning again.
			select {
			case <-ctx.Done():
			case <-time.After(m.cfg.Elector.Lease()):
			}
		}
	}
	return nil
}

// announce tells every node the new term at once, so a deposed leader's
// commands are refused even before the nodes hear from it.
func (m *Master) announce(l *election.Leadership) {
	ctx, cancel := context.WithTimeout(l.Context(), 500*time.Millisecond)
	defer cancel()
	_, _ = command.Broadcast(ctx, m.nc, mesh.Command{Name: mesh.CmdPing, Term: l.Term()}, 0)
}

// isLeading is true only while the lease is certainly held: a leader
// frozen past its lease says no at once when it wakes, before its renewal
// loop has noticed.
func (m *Master) isLeading() bool {
	if !m.leading.Load() {
		return false
	}
	if l := m.lead.Load(); l != nil {
		return l.Valid()
	}
	return true
}

// runLeader is the work only the leader does, until ctx ends.
func (m *Master) runLeader(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	if l := m.lead.Load(); l != nil {
		wg.Go(func() { m.announce(l) })
	}
	if sk := m.cfg.Sinks; sk != nil {
		wg.Go(func() { _ = sk.Run(ctx) })
	}
	ctl := m.cfg.Crawls
	if ctl == nil {
		<-ctx.Done()
		return
	}
	wg.Go(func() { _ = ctl.Run(ctx, 500*time.Millisecond) })
	wg.Go(func() { _ = ctl.Serve(ctx, m.nc) })
	if sc := m.cfg.Scheduler; sc != nil {
		wg.Go(func() { _ = sc.Run(ctx) })
	}
}

// Leading reports whether this master leads, and its term.
func (m *Master) Leading() (bool, uint64) { return m.isLeading(), m.term.Load() }

func (m *Master) answerView(msg *nats.Msg) {
	ready := false
	select {
	case <-m.view.Ready():
		ready = true
	default:
	}
	b, _ := json.Marshal(ViewReply{Master: m.cfg.ID, Ready: ready, Nodes: m.view.Nodes()})
	_ = msg.Respond(b)
}

// Healthy says whether the master's heartbeat is current (see
// [heartbeat.Beater.Check]).
func (m *Master) Healthy() error { return m.beater.Check() }

func (m *Master) handle(_ context.Context, c mesh.Command) mesh.Reply {
	switch c.Name {
	case mesh.CmdPing:
		return mesh.Reply{OK: true, State: mesh.StateRunning}
	case mesh.CmdShutdown:
		m.stopOnce.Do(func() { close(m.stop) })
		return mesh.Reply{OK: true, State: mesh.StateStopping}
	case mesh.CmdStepDown:
		if !m.isLeading() || m.cfg.Elector == nil {
			return mesh.Reply{OK: false, NA: true, State: mesh.StateRunning, Error: "not the leader"}
		}
		select {
		case m.stepDown <- struct{}{}:
		default:
		}
		return mesh.Reply{OK: true, State: mesh.StateRunning}
	case mesh.CmdScale: // a worker refuses it too: only an agent scales
		return mesh.Reply{OK: false, NA: true, State: mesh.StateRunning,
			Error: "scale is for a host agent (crawlmesh agent); this is a master"}
	default:
		return mesh.Reply{OK: false, NA: true, State: mesh.StateRunning,
			Error: fmt.Sprintf("a master runs no tasks, so %s does not apply; send it to a worker", c.Name)}
	}
}
