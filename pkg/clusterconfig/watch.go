package clusterconfig

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// WatchKV is the part of jetstream.KeyValue a [Watcher] uses.
type WatchKV interface {
	WatchFiltered(ctx context.Context, keys []string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error)
}

var _ WatchKV = jetstream.KeyValue(nil)

// Applier is what a node does with its configuration: Apply applies
// effective values (see [ApplyFunc]); Applied, if set, is called after the
// status has been published (a node beats then, so the change shows).
type Applier struct {
	Apply   ApplyFunc
	Applied func()
}

// ApplyFunc applies effective values to a running node and returns the
// ones it could not apply, each error naming its key. It is called with
// every key each time (values that did not change must be no-ops).
type ApplyFunc func(Effective) []error

// Watcher follows a node's keys in bucket config: the cluster's, its
// role's and its own.
type Watcher struct {
	kv       WatchKV
	id, role string
	base     Base
	log      *slog.Logger
	lookup   func(string) (string, bool) // the node's environment, for ${env:NAME} values

	mu     sync.Mutex
	eff    Effective
	status *mesh.NodeConfig
}

// NewWatcher returns a watcher for node id of role over base (its flags).
func NewWatcher(kv WatchKV, id, role string, base Base, log *slog.Logger) *Watcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{kv: kv, id: id, role: role, base: maps.Clone(base), log: log.With("component", "config", "node", id), lookup: os.LookupEnv}
	w.eff, _ = Resolve(nil, id, role, base, nil)
	w.status = &mesh.NodeConfig{Values: w.eff}
	return w
}

func (w *Watcher) filters() []string {
	return []string{LevelCluster + ".*", LevelRole + "." + w.role + ".*", LevelNode + "." + w.id + ".*"}
}

// Load reads what is stored for the node, so it starts with it (a
// restarted node comes back with the stored values), and returns the
// effective values. Bad stored values are in [Watcher.Status].
func (w *Watcher) Load(ctx context.Context) (Effective, error) {
	kw, err := w.kv.WatchFiltered(ctx, w.filters())
	if err != nil {
		return nil, fmt.Errorf("watch bucket %s: %w", mesh.ConfigBucket, err)
	}
	defer func() { _ = kw.Stop() }()
	stored, rev := map[string]string{}, uint64(0)
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("read bucket %s: %w", mesh.ConfigBucket, ctx.Err())
		case e, ok := <-kw.Updates():
			if !ok {
				return nil, fmt.Errorf("read bucket %s: watch closed", mesh.ConfigBucket)
			}
			if e == nil {
				eff, _ := w.resolve(stored, rev, nil)
				return eff, nil
			}
			rev = max(rev, e.Revision())
			record(stored, e)
		}
	}
}

func record(stored map[string]string, e jetstream.KeyValueEntry) {
	if e.Operation() == jetstream.KeyValuePut {
		stored[e.Key()] = string(e.Value())
	} else {
		delete(stored, e.Key())
	}
}

// resolve computes the effective values, applies them when apply is not
// nil, and publishes the status.
func (w *Watcher) resolve(stored map[string]string, rev uint64, a *Applier) (Effective, []string) {
	eff, errs := Resolve(stored, w.id, w.role, w.base, w.lookup)
	if a != nil && a.Apply != nil {
		for _, err := range a.Apply(eff) {
			errs = append(errs, err.Error())
		}
	}
	if a != nil && a.Applied != nil {
		defer a.Applied()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !slices.Equal(errs, w.status.Errors) {
		for _, e := range errs {
			w.log.Warn("config value not applied", "err", e)
		}
	}
	if rev != w.status.Rev {
		w.log.Info("config applied", "rev", rev)
	}
	w.eff = eff
	w.status = &mesh.NodeConfig{Rev: rev, Values: eff, Errors: errs}
	return eff, errs
}

// Status is what the node reports in its heartbeat: the config revision it
// applied, the effective values and their sources, and the errors.
func (w *Watcher) Status() *mesh.NodeConfig {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

// Effective returns the values in effect now.
func (w *Watcher) Effective() Effective {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.eff
}

// Run watches the node's keys and calls a.Apply with the effective values
// once everything stored has been read, then after every change, until
// ctx is done. A watch that ends (the bucket deleted, NATS away for long)
// is opened again after a second; it reads every key again, so no change
// is lost. Run returns nil when ctx is done.
func (w *Watcher) Run(ctx context.Context, a Applier) error {
	for ctx.Err() == nil {
		if err := w.watch(ctx, &a); err != nil && ctx.Err() == nil {
			w.log.Warn("config watch ended, watching again in 1s", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

func (w *Watcher) watch(ctx context.Context, a *Applier) error {
	kw, err := w.kv.WatchFiltered(ctx, w.filters())
	if err != nil {
		return fmt.Errorf("watch bucket %s: %w", mesh.ConfigBucket, err)
	}
	defer func() { _ = kw.Stop() }()
	stored, rev, initial := map[string]string{}, uint64(0), true
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-kw.Updates():
			if !ok {
				return fmt.Errorf("watch of bucket %s closed", mesh.ConfigBucket)
			}
			if e == nil {
				initial = false
				w.resolve(stored, rev, a)
				continue
			}
			rev = max(rev, e.Revision())
			record(stored, e)
			if !initial {
				w.resolve(stored, rev, a)
			}
		}
	}
}
