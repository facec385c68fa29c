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
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crawlmesh/crawlmesh/pkg/clusterview"
	"github.com/crawlmesh/crawlmesh/pkg/command"
	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/heartbeat"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
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
	// Crawls, when set, makes this master start, cancel and complete crawls.
	Crawls *crawlctl.Control
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
	m := &Master{nc: nc, cfg: cfg, stop: make(chan struct{}), log: cfg.Log.With("component", "master", "node", cfg.ID)}
	vopts := []clusterview.Option{clusterview.WithLogger(cfg.Log)}
	if cfg.OfflineRetention > 0 {
		vopts = append(vopts, clusterview.WithRetention(cfg.OfflineRetention))
	}
	m.view = clusterview.New(nodes, vopts...)
	opts := append(heartbeat.Timing(cfg.HeartbeatInterval, cfg.HeartbeatTTL, cfg.Clock, cfg.Log),
		heartbeat.WithStatus(func() heartbeat.Status { return heartbeat.Status{State: mesh.StateRunning} }))
	b, err := heartbeat.New(nodes, cfg.ID, mesh.RoleMaster, opts...)
	if err != nil {
		return nil, err
	}
	m.beater = b
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(m.view); err != nil {
			return nil, fmt.Errorf("register cluster view metrics: %w", err)
		}
		if cfg.Crawls != nil {
			ctl := cfg.Crawls
			r := prometheus.WrapRegistererWith(prometheus.Labels{"node": cfg.ID}, cfg.Registerer)
			if err := r.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "crawlmesh_tasks_pending",
				Help: "Tasks in the work queue (queued, in flight or waiting for a retry), as this master last saw it."},
				func() float64 { return float64(ctl.PendingTasks()) })); err != nil {
				return nil, fmt.Errorf("register crawl metrics: %w", err)
			}
		}
	}
	return m, nil
}

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
		if ctl := m.cfg.Crawls; ctl != nil {
			wg.Go(func() { errs <- ctl.Run(ctx, 500*time.Millisecond) })
			wg.Go(func() { errs <- ctl.Serve(ctx, m.nc) })
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

func (m *Master) handle(_ context.Context, c mesh.Command) mesh.Reply {
	switch c.Name {
	case mesh.CmdPing:
		return mesh.Reply{OK: true, State: mesh.StateRunning}
	case mesh.CmdShutdown:
		m.stopOnce.Do(func() { close(m.stop) })
		return mesh.Reply{OK: true, State: mesh.StateStopping}
	default:
		return mesh.Reply{OK: false, State: mesh.StateRunning,
			Error: fmt.Sprintf("a master runs no tasks, so %s does not apply; send it to a worker", c.Name)}
	}
}
