package politeness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defaults when a spider says nothing.
const (
	DefaultParallelism = 2
	DefaultDelay       = 250 * time.Millisecond
	// Margin is added to every delay: clock-offset error and the time
	// between taking a permit and the request leaving.
	Margin = 2 * time.Millisecond
	// poll is the longest wait before looking at a busy host again.
	poll = 20 * time.Millisecond
)

// Limits are a host's limits before overrides and back-off.
type Limits struct {
	Parallelism int
	Delay       time.Duration
}

// Outcome is what a request with a permit ended with.
type Outcome struct {
	Failed     bool          // 429, 5xx, timeout, connection error
	RetryAfter time.Duration // from a 429/503
	Latency    time.Duration
}

// Override is a live per-host setting in bucket throttle.
type Override struct {
	Host        string    `json:"host"`
	Delay       string    `json:"delay,omitempty"` // "250ms"; empty keeps the spider's
	Parallelism int       `json:"parallelism,omitempty"`
	UpdatedAt   time.Time `json:"updated_at"`
}

type slot struct {
	ID    string `json:"id"`
	Until int64  `json:"until"` // server unix ns when the lease runs out
}

type state struct {
	Slots      []slot `json:"slots,omitempty"`
	Last       int64  `json:"last"` // server unix ns of the last request start
	PauseUntil int64  `json:"pause_until,omitempty"`
	Penalty    int64  `json:"penalty,omitempty"` // adaptive extra delay, ns
}

// Gate hands out per-host permits. It is safe for concurrent use.
type Gate struct {
	hosts     jetstream.KeyValue
	throttle  jetstream.KeyValue
	node      string
	lease     time.Duration
	log       *slog.Logger
	offset    atomic.Int64 // server minus local clock, ns
	overrides sync.Map     // host key -> Override
	seq       atomic.Uint64
	waits     func(time.Duration)

	mu    sync.Mutex
	local map[string]*localHost // host key -> tasks of this worker waiting for it
}

// localHost queues this worker's tasks that wait for a busy host, so a
// permit ending with no delay to respect can pass straight to the next of
// them without a round trip (the slot stays held in KV, under its lease).
type localHost struct {
	waiters []chan *Permit
}

// New returns a Gate over buckets hosts and throttle. lease bounds how long
// a permit of a dead worker blocks its slot; use the request timeout plus a
// margin.
func New(hosts, throttle jetstream.KeyValue, node string, lease time.Duration, log *slog.Logger) *Gate {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Gate{hosts: hosts, throttle: throttle, node: node, lease: lease, log: log.With("component", "politeness"),
		waits: func(time.Duration) {}, local: map[string]*localHost{}}
}

// OnWait sets a function told every time a task waits for its host (for
// metrics).
func (g *Gate) OnWait(f func(time.Duration)) { g.waits = f }

// Key is the KV key of a host ("host:port" or "host").
func Key(host string) string {
	host = strings.ToLower(host)
	var b strings.Builder
	for _, r := range host {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.':
			b.WriteRune(r)
		case r == ':':
			b.WriteByte('_')
		default:
			b.WriteByte('=') // IPv6 brackets and the like; '=' is never in a host name
		}
	}
	k := strings.Trim(b.String(), ".")
	if k == "" {
		return "_"
	}
	return k
}

// Run keeps the clock offset measured and the overrides current until ctx
// is done.
func (g *Gate) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { g.watchOverrides(ctx) })
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		if err := g.measure(ctx); err != nil && ctx.Err() == nil {
			g.log.Warn("clock offset not measured", "err", err)
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-t.C:
		}
	}
}

// measure estimates the server clock's offset from this process's clock:
// the server stamps the write somewhere between send and ack, so the
// midpoint is the estimate, off by at most half the round trip.
func (g *Gate) measure(ctx context.Context) error {
	key := "_clock." + Key(g.node)
	t0 := time.Now()
	rev, err := g.hosts.Put(ctx, key, nil)
	t1 := time.Now()
	if err != nil {
		return err
	}
	e, err := g.hosts.GetRevision(ctx, key, rev)
	if err != nil {
		return err
	}
	mid := t0.Add(t1.Sub(t0) / 2)
	g.offset.Store(e.Created().Sub(mid).Nanoseconds())
	return nil
}

// Measure takes one clock-offset measurement now (Run does it periodically).
func (g *Gate) Measure(ctx context.Context) error { return g.measure(ctx) }

func (g *Gate) serverNow() int64 { return time.Now().UnixNano() + g.offset.Load() }

func (g *Gate) watchOverrides(ctx context.Context) {
	for ctx.Err() == nil {
		w, err := g.throttle.WatchAll(ctx)
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
				continue
			}
		}
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				g.overrides.Delete(e.Key())
				continue
			}
			var o Override
			if json.Unmarshal(e.Value(), &o) == nil {
				g.overrides.Store(e.Key(), o)
			}
		}
		_ = w.Stop()
	}
}

// Effective applies an override of host to lim.
func (g *Gate) Effective(host string, lim Limits) Limits {
	if lim.Parallelism <= 0 {
		lim.Parallelism = DefaultParallelism
	}
	if v, ok := g.overrides.Load(Key(host)); ok {
		o := v.(Override)
		if o.Parallelism > 0 {
			lim.Parallelism = o.Parallelism
		}
		if d, err := time.ParseDuration(o.Delay); err == nil {
			lim.Delay = d
		}
	}
	return lim
}

// Permit is one request's right to go to a host.
type Permit struct {
	g     *Gate
	key   string
	id    string
	until int64 // server ns when the slot's lease runs out
	taken int64 // server ns when the slot was last written to KV
	// passable: the host had no delay, pause or penalty when this permit
	// was taken, so the slot may go straight to a local waiter.
	passable bool
	done     bool
}

// Acquire waits for a permit for host within lim (after overrides) and
// returns it; it gives up only when ctx is done. before, if set, runs
// before each try and after is called after a try that must wait: the
// crawler holds a fetch slot only around tries, so a waiting task does not
// keep one.
func (g *Gate) Acquire(ctx context.Context, host string, lim Limits, before func(context.Context) error, after func()) (*Permit, error) {
	lim = g.Effective(host, lim)
	key := Key(host)
	var waited time.Duration
	for {
		if before != nil {
			if err := before(ctx); err != nil {
				return nil, err
			}
		}
		p, wait, err := g.try(ctx, key, lim)
		if err != nil || p != nil {
			if waited > 0 {
				g.waits(waited)
			}
			if err != nil && after != nil {
				after()
			}
			return p, err
		}
		if after != nil {
			after()
		}
		waited += wait
		ch := g.enqueue(key)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			if p := g.dequeue(key, ch); p != nil {
				p.Release(ctx, Outcome{})
			}
			return nil, ctx.Err()
		case p := <-ch:
			t.Stop()
			// A slot passed on by a finished request of this worker.
			if before != nil {
				if err := before(ctx); err != nil {
					p.Release(ctx, Outcome{})
					return nil, err
				}
			}
			g.waits(waited)
			return p, nil
		case <-t.C:
			if p := g.dequeue(key, ch); p != nil {
				if before != nil {
					if err := before(ctx); err != nil {
						p.Release(ctx, Outcome{})
						return nil, err
					}
				}
				g.waits(waited)
				return p, nil
			}
		}
	}
}

func (g *Gate) enqueue(key string) chan *Permit {
	ch := make(chan *Permit, 1)
	g.mu.Lock()
	lh := g.local[key]
	if lh == nil {
		lh = &localHost{}
		g.local[key] = lh
	}
	lh.waiters = append(lh.waiters, ch)
	g.mu.Unlock()
	return ch
}

// dequeue removes ch from the waiters; a permit passed to it meanwhile is
// returned so it is not lost.
func (g *Gate) dequeue(key string, ch chan *Permit) *Permit {
	g.mu.Lock()
	defer g.mu.Unlock()
	if lh := g.local[key]; lh != nil {
		for i, c := range lh.waiters {
			if c == ch {
				lh.waiters = append(lh.waiters[:i], lh.waiters[i+1:]...)
				if len(lh.waiters) == 0 {
					delete(g.local, key)
				}
				return nil
			}
		}
	}
	select {
	case p := <-ch:
		return p
	default:
		return nil
	}
}

// pass hands p's slot to the first local waiter, if any.
func (g *Gate) pass(p *Permit) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	lh := g.local[p.key]
	if lh == nil || len(lh.waiters) == 0 {
		return false
	}
	ch := lh.waiters[0]
	lh.waiters = lh.waiters[1:]
	if len(lh.waiters) == 0 {
		delete(g.local, p.key)
	}
	ch <- &Permit{g: g, key: p.key, id: p.id, until: p.until, taken: p.taken, passable: true}
	return true
}

// try takes a permit if the host allows one now, or says how long to wait.
func (g *Gate) try(ctx context.Context, key string, lim Limits) (*Permit, time.Duration, error) {
	for range 16 { // CAS conflicts: another worker took a turn; look again
		st, rev, err := g.load(ctx, key)
		if err != nil {
			return nil, 0, err
		}
		now := g.serverNow()
		st.prune(now)
		delay := lim.Delay + time.Duration(st.Penalty)
		earliest := max(st.Last+int64(delay+Margin), st.PauseUntil)
		if st.Last == 0 {
			earliest = st.PauseUntil
		}
		if now < earliest {
			return nil, min(time.Duration(earliest-now), time.Second), nil
		}
		if len(st.Slots) >= lim.Parallelism {
			return nil, poll, nil
		}
		id := g.node + "/" + nonce(g.seq.Add(1))
		until := now + g.lease.Nanoseconds()
		st.Slots = append(st.Slots, slot{ID: id, Until: until})
		st.Last = now
		if err := g.store(ctx, key, st, rev); err != nil {
			if isConflict(err) {
				continue
			}
			return nil, 0, err
		}
		passable := lim.Delay == 0 && st.Penalty == 0 && st.PauseUntil <= now
		return &Permit{g: g, key: key, id: id, until: until, taken: now, passable: passable}, 0, nil
	}
	return nil, poll, nil
}

// Release returns the permit and records how the request went. It is
// idempotent and never fails the caller: a lost release costs only the
// lease.
func (p *Permit) Release(ctx context.Context, o Outcome) {
	if p == nil || p.done {
		return
	}
	p.done = true
	// With no delay to space starts, a clean finish passes the slot to the
	// next local waiter without a round trip — for up to a second after
	// the slot was taken from KV, so a live override or a penalty applies
	// within a second.
	if p.passable && !o.Failed && o.RetryAfter == 0 && o.Latency < 2*time.Second &&
		p.g.serverNow()-p.taken < int64(time.Second) && p.g.pass(p) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	for range 16 {
		st, rev, err := p.g.load(ctx, p.key)
		if err != nil {
			p.g.log.Warn("permit not returned; its lease will free it", "host", p.key, "err", err)
			return
		}
		now := p.g.serverNow()
		st.prune(now)
		for i, s := range st.Slots {
			if s.ID == p.id {
				st.Slots = append(st.Slots[:i], st.Slots[i+1:]...)
				break
			}
		}
		st.adapt(now, o)
		if err := p.g.store(ctx, p.key, st, rev); err == nil {
			return
		} else if !isConflict(err) {
			p.g.log.Warn("permit not returned; its lease will free it", "host", p.key, "err", err)
			return
		}
	}
}

// adapt applies the back-off rule of the package doc.
func (st *state) adapt(now int64, o Outcome) {
	const (
		minFail = int64(500 * time.Millisecond)
		minSlow = int64(250 * time.Millisecond)
		maxPen  = int64(30 * time.Second)
		slow    = 2 * time.Second
	)
	switch {
	case o.Failed:
		st.Penalty = min(max(st.Penalty*2, minFail), maxPen)
	case o.Latency > slow:
		st.Penalty = min(max(st.Penalty*3/2, minSlow), maxPen)
	default:
		st.Penalty /= 2
		if st.Penalty < int64(10*time.Millisecond) {
			st.Penalty = 0
		}
	}
	if o.RetryAfter > 0 {
		st.PauseUntil = max(st.PauseUntil, now+o.RetryAfter.Nanoseconds())
	}
}

func (st *state) prune(now int64) {
	kept := st.Slots[:0]
	for _, s := range st.Slots {
		if s.Until > now {
			kept = append(kept, s)
		}
	}
	st.Slots = kept
}

func (g *Gate) load(ctx context.Context, key string) (state, uint64, error) {
	var st state
	e, err := g.hosts.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return st, 0, nil
	}
	if err != nil {
		return st, 0, fmt.Errorf("host state %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		// A damaged value must not wedge the host: start from a clean
		// state (conservatively paused for a second).
		st = state{PauseUntil: g.serverNow() + int64(time.Second)}
	}
	return st, e.Revision(), nil
}

func (g *Gate) store(ctx context.Context, key string, st state, rev uint64) error {
	b, _ := json.Marshal(st)
	var err error
	if rev == 0 {
		_, err = g.hosts.Create(ctx, key, b)
	} else {
		_, err = g.hosts.Update(ctx, key, b, rev)
	}
	return err
}

func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

func nonce(seq uint64) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:]) + fmt.Sprintf("%x", seq)
}
