package clusterview

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// Node is one node as the view sees it.
type Node struct {
	ID           string         `json:"id"`
	Role         string         `json:"role"`
	Online       bool           `json:"online"`
	Leader       bool           `json:"leader"`
	State        string         `json:"state"`
	ActiveTasks  int            `json:"active_tasks"`
	Capacity     int            `json:"capacity"`
	AgeSeconds   float64        `json:"heartbeat_age_seconds"`
	SkewSeconds  float64        `json:"clock_skew_seconds"`
	Revision     uint64         `json:"revision"`
	OfflineSince *time.Time     `json:"offline_since,omitempty"`
	Heartbeat    mesh.Heartbeat `json:"heartbeat"`

	seen time.Time // local receive time (monotonic)
}

// Watcher is the part of jetstream.KeyValue the view needs.
type Watcher interface {
	WatchAll(ctx context.Context, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error)
	Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error)
	Status(ctx context.Context) (jetstream.KeyValueStatus, error)
}

var _ Watcher = jetstream.KeyValue(nil)

// View is the cluster view. Its zero value is not usable; call [New].
type View struct {
	kv     Watcher
	retain time.Duration
	now    func() time.Time
	log    *slog.Logger

	stale time.Duration // the bucket's TTL and a second: a node silent so long is checked

	mu    sync.RWMutex
	nodes map[string]*Node
	ready chan struct{}
	once  sync.Once
}

// Option configures a View.
type Option func(*View)

// WithRetention sets how long offline nodes stay listed (default 10m).
func WithRetention(d time.Duration) Option { return func(v *View) { v.retain = d } }

// WithLogger sets the logger; online/offline transitions are logged at info.
func WithLogger(l *slog.Logger) Option { return func(v *View) { v.log = l } }

// New returns a view over the nodes bucket kv.
func New(kv Watcher, opts ...Option) *View {
	v := &View{kv: kv, retain: 10 * time.Minute, now: time.Now,
		log: slog.New(slog.DiscardHandler), nodes: map[string]*Node{}, ready: make(chan struct{})}
	for _, o := range opts {
		o(v)
	}
	v.log = v.log.With("component", "clusterview")
	return v
}

// Ready is closed once the first snapshot of the bucket is loaded.
func (v *View) Ready() <-chan struct{} { return v.ready }

// Run watches the bucket until ctx is done. A watch that ends (connection
// closed) is started again; its fresh snapshot also settles keys that
// expired meanwhile.
func (v *View) Run(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		err := v.watch(ctx, t.C)
		if ctx.Err() != nil {
			return nil
		}
		v.log.Warn("nodes watch ended, watching again", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (v *View) watch(ctx context.Context, tick <-chan time.Time) error {
	w, err := v.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch nodes: %w", err)
	}
	defer func() { _ = w.Stop() }()
	inSnapshot := map[string]bool{}
	snapshot := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			v.prune()
			v.verify(ctx)
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watcher closed")
			}
			if e == nil {
				v.endSnapshot(inSnapshot)
				snapshot, inSnapshot = false, nil
				continue
			}
			if snapshot {
				inSnapshot[e.Key()] = true
			}
			v.apply(e)
		}
	}
}

func (v *View) apply(e jetstream.KeyValueEntry) {
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	n := v.nodes[e.Key()]
	if e.Operation() != jetstream.KeyValuePut {
		if n != nil && n.Online {
			n.offline(now)
			v.log.Info("node offline", "node", n.ID, "role", n.Role, "rev", e.Revision())
		}
		return
	}
	hb, err := mesh.DecodeHeartbeat(e.Value())
	if err != nil {
		v.log.Warn("unreadable heartbeat ignored", "node", e.Key(), "rev", e.Revision(), "err", err)
		return
	}
	if n == nil {
		n = &Node{ID: e.Key()}
		v.nodes[e.Key()] = n
	}
	if !n.Online {
		v.log.Info("node online", "node", n.ID, "role", hb.Role, "rev", e.Revision())
	}
	n.Online, n.OfflineSince = true, nil
	n.Role, n.Leader, n.State = hb.Role, hb.Leader, hb.State
	n.ActiveTasks, n.Capacity = hb.ActiveTasks, hb.Capacity
	n.Revision, n.Heartbeat, n.seen = e.Revision(), hb, now
	n.SkewSeconds = hb.UpdateTS.Sub(e.Created()).Seconds()
}

// StateOffline is the state of a node whose heartbeat expired.
const StateOffline = "offline"

// offline marks n offline. A dead node leads nothing, runs nothing and
// holds no task: its last heartbeat (n.Heartbeat) says what it did. Found
// by review: the console, the API and crawlmesh_node_leader showed a
// killed leader as leader and running beside the new one.
func (n *Node) offline(now time.Time) {
	n.Online, n.OfflineSince = false, &now
	n.Leader, n.State, n.ActiveTasks = false, StateOffline, 0
}

// endSnapshot turns offline the nodes the view held online that the fresh
// snapshot no longer has (they expired while no watch ran).
func (v *View) endSnapshot(seen map[string]bool) {
	now := v.now()
	v.mu.Lock()
	for id, n := range v.nodes {
		if n.Online && !seen[id] {
			n.offline(now)
			v.log.Info("node offline", "node", id, "role", n.Role)
		}
	}
	v.mu.Unlock()
	v.once.Do(func() { close(v.ready) })
}

// maxVerify bounds the keys read per tick, so that a mesh of many nodes
// during a NATS outage cannot hold the watch loop up.
const maxVerify = 16

// verify reads the key of each node online in the view but silent for
// longer than the bucket's TTL: a watch may miss a key's expiry (a NATS
// server restarted while the node died), and the node would stay online
// for good. A key that is gone turns the node offline; a newer heartbeat
// than the watch gave is applied.
func (v *View) verify(ctx context.Context) {
	if v.stale == 0 {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := v.kv.Status(sctx)
		cancel()
		if err != nil {
			return // asked again next tick
		}
		v.stale = st.TTL() + time.Second
		if st.TTL() <= 0 {
			v.stale = time.Minute
		}
	}
	now := v.now()
	var silent []string
	v.mu.RLock()
	for id, n := range v.nodes {
		if n.Online && now.Sub(n.seen) > v.stale {
			silent = append(silent, id)
		}
	}
	v.mu.RUnlock()
	// Map order is random: with more than maxVerify silent, each tick
	// checks others.
	for _, id := range silent[:min(len(silent), maxVerify)] {
		gctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		e, err := v.kv.Get(gctx, id)
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			v.mu.Lock()
			if n := v.nodes[id]; n != nil && n.Online && v.now().Sub(n.seen) > v.stale {
				n.offline(v.now())
				v.log.Info("node offline", "node", id, "role", n.Role, "why", "its key is gone; the watch did not say so")
			}
			v.mu.Unlock()
		case err == nil:
			v.mu.RLock()
			newer := v.nodes[id] != nil && e.Revision() > v.nodes[id].Revision
			v.mu.RUnlock()
			if newer {
				v.apply(e)
			}
		}
	}
}

func (v *View) prune() {
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	for id, n := range v.nodes {
		if !n.Online && n.OfflineSince != nil && now.Sub(*n.OfflineSince) > v.retain {
			delete(v.nodes, id)
		}
	}
}

// Nodes returns a snapshot of every node, sorted by role then id.
func (v *View) Nodes() []Node {
	now := v.now()
	v.mu.RLock()
	out := make([]Node, 0, len(v.nodes))
	for _, n := range v.nodes {
		c := *n
		c.AgeSeconds = now.Sub(n.seen).Seconds()
		out = append(out, c)
	}
	v.mu.RUnlock()
	slices.SortFunc(out, func(a, b Node) int {
		if a.Role != b.Role {
			if a.Role < b.Role {
				return -1
			}
			return 1
		}
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}
