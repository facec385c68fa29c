// Package election elects one leader among masters on a NATS KV key, with
// the shape of etcd's concurrency.Election: [Elector.Campaign] blocks until
// this candidate leads, the [Leadership] context is cancelled the moment
// leadership is lost, [Leadership.Resign] hands over, [Elector.Observe]
// follows the current leader.
//
// The key lives in a bucket whose TTL is the lease (default 3 s on one
// server). Campaign is a KV Create, which fails while the key exists;
// the leader renews with Update on its last revision every third of the
// lease, which also restarts the TTL (a per-key TTL would not survive
// Update). The revision of the winning Create is the term: it only grows,
// across failovers and restarts, so workers use it as a fencing token.
//
// A leader that cannot renew steps down on its own clock before its key
// can expire: after lease − margin without a successful renew it cancels
// its context, even if the renews only timed out. A frozen leader (SIGSTOP)
// finds on waking that this time has passed and stops at once; anything it
// sends afterwards carries its old term, which workers refuse.
//
// On a 3-node NATS cluster, a JetStream leader change stalls writes for
// seconds (Raft election timeout 4–9 s): use a lease of 15 s there
// (`--lease 15s`), renewed every 5 s, or leaders will step down during
// stream failovers.
package election

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/natsconn"
)

// ErrLost is the cause of a Leadership context cancelled because the
// lease was lost (or could not be renewed in time).
var ErrLost = errors.New("election: leadership lost")

// Key is the election key in the bucket.
const Key = "master"

// KV is the part of jetstream.KeyValue the election uses.
type KV interface {
	Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error)
	Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error)
	Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error)
	Purge(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error
	Watch(ctx context.Context, keys string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error)
}

var _ KV = jetstream.KeyValue(nil)

// Leader is who leads, as observers see it.
type Leader struct {
	ID       string `json:"id"`
	Term     uint64 `json:"term"`
	Priority int    `json:"priority"`
}

// Elector campaigns for one candidate.
type Elector struct {
	kv       KV
	id       string
	lease    time.Duration
	priority int
	log      *slog.Logger
}

// Option configures an Elector.
type Option func(*Elector)

// WithLease sets the lease: the bucket's TTL (default 3s).
func WithLease(d time.Duration) Option { return func(e *Elector) { e.lease = d } }

// WithPriority makes a candidate win vacancies over lower ones (default 0).
func WithPriority(p int) Option { return func(e *Elector) { e.priority = p } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(e *Elector) { e.log = l } }

// New returns an Elector for candidate id.
func New(kv KV, id string, opts ...Option) (*Elector, error) {
	e := &Elector{kv: kv, id: id, lease: 3 * time.Second, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(e)
	}
	if e.lease < time.Second {
		return nil, fmt.Errorf("election: lease %v below the 1s the server can expire", e.lease)
	}
	if e.priority < 0 || e.priority > 100 {
		return nil, fmt.Errorf("election: priority %d: want 0-100", e.priority)
	}
	e.log = e.log.With("component", "election", "node", id)
	return e, nil
}

// Lease is the lease length.
func (e *Elector) Lease() time.Duration { return e.lease }

// backoff is how long this candidate waits after a vacancy before it
// tries: 1 ms less per priority point (at most 0.1 s, little against the
// lease), ties broken by a hash of the id (deterministic, spread over
// 1 ms). The CAS decides; this only orders.
func (e *Elector) backoff() time.Duration {
	h := fnv.New32a()
	h.Write([]byte(e.id))
	return time.Duration(100-e.priority)*time.Millisecond + time.Duration(h.Sum32()%1000)*time.Microsecond
}

// Campaign blocks until this candidate leads or ctx is done.
func (e *Elector) Campaign(ctx context.Context) (*Leadership, error) {
	for {
		val, _ := json.Marshal(Leader{ID: e.id, Priority: e.priority})
		rev, err := e.kv.Create(ctx, Key, val)
		if err == nil {
			return e.lead(ctx, rev)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !natsconn.KeyExists(err) {
			e.log.Warn("campaign write failed, retrying", "err", err)
			if !sleep(ctx, 250*time.Millisecond) {
				return nil, ctx.Err()
			}
			continue
		}
		if err := e.waitVacancy(ctx); err != nil {
			return nil, err
		}
		if !sleep(ctx, e.backoff()) {
			return nil, ctx.Err()
		}
	}
}

// waitVacancy returns when the key is deleted, purged or expired.
func (e *Elector) waitVacancy(ctx context.Context) error {
	w, err := e.kv.Watch(ctx, Key)
	if err != nil {
		if !sleep(ctx, 250*time.Millisecond) {
			return ctx.Err()
		}
		return nil
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case en, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if en != nil && en.Operation() != jetstream.KeyValuePut {
				return nil
			}
		}
	}
}

func (e *Elector) lead(ctx context.Context, rev uint64) (*Leadership, error) {
	l := &Leadership{e: e, term: rev, rev: rev, renewed: time.Now(), stop: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancelCause(ctx)
	// Write the term into the value so observers see it.
	val, _ := json.Marshal(Leader{ID: e.id, Term: rev, Priority: e.priority})
	if r, err := e.kv.Update(ctx, Key, val, rev); err == nil {
		l.setRev(r)
	}
	l.wg.Go(l.renew)
	e.log.Info("became leader", "rev", rev)
	return l, nil
}

// Leadership is a won term.
type Leadership struct {
	e      *Elector
	term   uint64
	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	mu      sync.Mutex
	rev     uint64
	renewed time.Time // send time of the last successful renew (monotonic)
}

// Context is cancelled the moment leadership is lost or resigned.
func (l *Leadership) Context() context.Context { return l.ctx }

// Term is the fencing token of this leadership.
func (l *Leadership) Term() uint64 { return l.term }

// Valid reports whether the lease is certainly still ours: checked right
// before anything only a leader may do.
func (l *Leadership) Valid() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ctx.Err() == nil && time.Since(l.renewed) < l.e.lease-l.margin()
}

func (l *Leadership) margin() time.Duration { return l.e.lease / 6 }

func (l *Leadership) setRev(r uint64) { l.mu.Lock(); l.rev = r; l.mu.Unlock() }

func (l *Leadership) renew() {
	every := l.e.lease / 3
	t := time.NewTicker(every / 4) // check the deadline more often than we write
	defer t.Stop()
	next := time.Now().Add(every)
	for {
		select {
		case <-l.stop:
			return
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		since, rev := time.Since(l.renewed), l.rev
		l.mu.Unlock()
		if since >= l.e.lease-l.margin() {
			l.e.log.Warn("lease not renewed in time, stepping down", "term", l.term, "since", since.Round(time.Millisecond))
			l.cancel(ErrLost)
			return
		}
		if time.Now().Before(next) {
			continue
		}
		sent := time.Now()
		ctx, cancel := context.WithTimeout(l.ctx, l.e.lease-l.margin()-since)
		val, _ := json.Marshal(Leader{ID: l.e.id, Term: l.term, Priority: l.e.priority})
		r, err := l.e.kv.Update(ctx, Key, val, rev)
		cancel()
		switch {
		case err == nil:
			l.mu.Lock()
			l.rev, l.renewed = r, sent
			l.mu.Unlock()
			next = sent.Add(every)
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyNotFound):
			l.e.log.Warn("leadership taken over", "term", l.term)
			l.cancel(ErrLost)
			return
		default:
			l.e.log.Warn("renew failed, retrying", "term", l.term, "err", err)
			next = time.Now().Add(every / 4)
		}
	}
}

// Resign ends the term: the renewals stop and the key is removed if it is
// still ours (a stale revision cannot remove a successor's key).
func (l *Leadership) Resign(ctx context.Context) error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		l.wg.Wait()
		l.mu.Lock()
		rev := l.rev
		l.mu.Unlock()
		l.cancel(errors.New("election: resigned"))
		err = l.e.kv.Purge(ctx, Key, jetstream.LastRevision(rev))
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			err = nil // someone else leads already
		}
		l.e.log.Info("resigned", "term", l.term)
	})
	return err
}

// Done waits for the renewal goroutine after the context ended.
func (l *Leadership) Done() { l.wg.Wait() }

// Observe sends the current leader (ID "" when vacant) and every change,
// keeping only the newest if the reader is slow; the channel closes when
// ctx is done.
func Observe(ctx context.Context, kv KV) (<-chan Leader, error) {
	w, err := kv.Watch(ctx, Key)
	if err != nil {
		return nil, err
	}
	out := make(chan Leader, 1)
	go func() {
		defer close(out)
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case en, ok := <-w.Updates():
				if !ok {
					return
				}
				var ld Leader
				if en == nil {
					continue
				}
				if en.Operation() == jetstream.KeyValuePut {
					_ = json.Unmarshal(en.Value(), &ld)
					if ld.Term == 0 {
						ld.Term = en.Revision()
					}
				}
				select { // keep only the newest
				case <-out:
				default:
				}
				out <- ld
			}
		}
	}()
	return out, nil
}

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
