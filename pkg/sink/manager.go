package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// Config is what a [Manager] needs.
type Config struct {
	JS     jetstream.JetStream
	Sinks  jetstream.KeyValue // bucket sinks
	Crawls jetstream.KeyValue // bucket crawls
	Node   string
	Log    *slog.Logger
	// Registerer receives the crawlmesh_sink_* metrics; nil: none.
	Registerer prometheus.Registerer
	// Lookup reads the masters' environment for ${env:NAME}; nil:
	// os.LookupEnv.
	Lookup func(string) (string, bool)
	// AckWait of the sink consumers [10s]: how soon a batch held by a
	// master that died is delivered again.
	AckWait time.Duration
	// MinBackoff and MaxBackoff bound the pause between attempts of a
	// failing batch [500ms, 30s].
	MinBackoff, MaxBackoff time.Duration
}

// Manager runs every sink in bucket sinks: one goroutine and one durable
// consumer each.
type Manager struct {
	cfg Config
	m   *metrics
	log *slog.Logger
}

// New checks cfg and registers the metrics.
func New(cfg Config) (*Manager, error) {
	if cfg.JS == nil || cfg.Sinks == nil || cfg.Crawls == nil {
		return nil, errors.New("sink: JS, Sinks and Crawls are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Lookup == nil {
		cfg.Lookup = os.LookupEnv
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 10 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register sink metrics: %w", err)
	}
	return &Manager{cfg: cfg, m: m, log: cfg.Log.With("component", "sink", "node", cfg.Node)}, nil
}

type running struct {
	def    []byte
	cancel context.CancelFunc
	done   chan struct{}
}

// Run delivers every sink until ctx ends (the master runs it while it
// leads). It follows bucket sinks: a sink added starts, one changed
// restarts, one removed stops and loses its consumer and status.
func (mg *Manager) Run(ctx context.Context) error {
	var w jetstream.KeyWatcher
	for {
		var err error
		w, err = mg.cfg.Sinks.WatchAll(ctx)
		if err == nil {
			break
		}
		mg.log.Warn("watch sinks", "err", err)
		if !sleep(ctx, 2*time.Second) {
			return nil
		}
	}
	defer func() { _ = w.Stop() }()
	runs := map[string]*running{}
	stop := func(name string) {
		if r := runs[name]; r != nil {
			r.cancel()
			<-r.done
			delete(runs, name)
		}
	}
	defer func() {
		for name := range runs {
			stop(name)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil {
				mg.dropOrphans(ctx, runs)
				continue
			}
			name := e.Key()
			if strings.HasPrefix(name, StatusPrefix) {
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				stop(name)
				mg.remove(ctx, name)
				continue
			}
			if r := runs[name]; r != nil && string(r.def) == string(e.Value()) {
				continue
			}
			stop(name)
			var s Sink
			if err := json.Unmarshal(e.Value(), &s); err != nil {
				mg.log.Error("sink not readable; skipped", "sink", name, "err", err)
				continue
			}
			s.Normalize()
			if err := s.Validate(); err != nil {
				mg.log.Error("sink invalid; skipped", "sink", name, "err", err)
				continue
			}
			rctx, cancel := context.WithCancel(ctx)
			r := &running{def: e.Value(), cancel: cancel, done: make(chan struct{})}
			runs[name] = r
			sr := newRunner(mg, s)
			go func() {
				defer close(r.done)
				sr.run(rctx)
			}()
		}
	}
}

// remove deletes a removed sink's consumer and status.
func (mg *Manager) remove(ctx context.Context, name string) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := mg.cfg.JS.DeleteConsumer(rctx, mesh.ResultsStream, mesh.SinkConsumer(name)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		mg.log.Warn("delete consumer of removed sink", "sink", name, "err", err)
	}
	_ = mg.cfg.Sinks.Purge(rctx, StatusPrefix+name)
	mg.m.lag.DeleteLabelValues(name)
	mg.log.Info("sink removed", "sink", name)
}

// dropOrphans deletes sink consumers whose sink was removed while no
// master led.
func (mg *Manager) dropOrphans(ctx context.Context, runs map[string]*running) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := mg.cfg.JS.Stream(rctx, mesh.ResultsStream)
	if err != nil {
		return
	}
	names := st.ConsumerNames(rctx)
	var orphans []string
	for n := range names.Name() {
		if sink, ok := strings.CutPrefix(n, mesh.SinkConsumer("")); ok && runs[sink] == nil {
			orphans = append(orphans, sink)
		}
	}
	for _, sink := range orphans {
		mg.remove(ctx, sink)
	}
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// ReadAll reads every sink in bucket sinks and the status of each, by
// name (a sink not started yet has none).
func ReadAll(ctx context.Context, kv jetstream.KeyValue) ([]Sink, map[string]Status, error) {
	keys, err := kv.Keys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil, err
	}
	var sinks []Sink
	sts := map[string]Status{}
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue
		}
		if name, ok := strings.CutPrefix(k, StatusPrefix); ok {
			var st Status
			if json.Unmarshal(e.Value(), &st) == nil {
				sts[name] = st
			}
			continue
		}
		var s Sink
		if json.Unmarshal(e.Value(), &s) == nil {
			s.Normalize()
			sinks = append(sinks, s)
		}
	}
	return sinks, sts, nil
}
