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

	"github.com/nats-io/nats.go"
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
	Until int64  `json:"until"` // estimated server ns when the lease runs out
	// Pending: taken for a host with a delay, request not started yet.
	// Nobody else starts while one is pending, so starts stay ordered.
	Pending bool `json:"pending,omitempty"`
}

// state is a host's value in bucket hosts. Request starts are kept in
// server time derived from the server's own stamps, never a worker's
// clock: StartAgo says a request started that long before this entry was
// stored, and the next writer folds it into LastStart using the entry's
// stamp. Leases and pauses use the workers' offset-corrected clocks; they
// are coarse, and an error there never shortens a delay.
type state struct {
	Slots      []slot `json:"slots,omitempty"`
	LastStart  int64  `json:"last_start,omitempty"`
	StartAgo   *int64 `json:"start_ago,omitempty"`
	PauseUntil int64  `json:"pause_until,omitempty"`
	Penalty    int64  `json:"penalty,omitempty"` // adaptive extra delay, ns
}

// normalize folds StartAgo into LastStart; created is this entry's stamp.
func (st *state) normalize(created int64) {
	if st.StartAgo != nil {
		st.LastStart = max(st.LastStart, created-*st.StartAgo)
		st.StartAgo = nil
	}
}

func (st *state) pending() bool {
	for _, s := range st.Slots {
		if s.Pending {
			return true
		}
	}
	return false
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

	mu     sync.Mutex
	local  map[string]*localHost // host key -> tasks of this worker waiting for it
	paused map[string]int64      // host key -> server ns; from this worker's or others' Retry-After
	nc     *nats.Conn
}

// pauseSubject carries Retry-After pauses to every worker at once, so
// slots passed between a worker's own tasks (which skip KV) stop too.
const pauseSubject = "crawlmesh.politeness.pause"

type pauseMsg struct {
	Key   string `json:"key"`
	Until int64  `json:"until"` // server ns
}

// Broadcast makes the gate tell other workers of pauses over nc, and hear
// theirs (Run subscribes).
func (g *Gate) Broadcast(nc *nats.Conn) { g.nc = nc }

func (g *Gate) pause(key string, until int64) {
	g.mu.Lock()
	if until > g.paused[key] {
		g.paused[key] = until
	}
	var idle []*Permit
	if lh := g.local[key]; lh != nil {
		idle, lh.idle = lh.idle, nil
		g.gc(key, lh)
	}
	g.mu.Unlock()
	for _, p := range idle { // no more passing: back to KV, which holds the pause
		p.passable = false
		p.done = false
		p.Release(context.Background(), Outcome{})
	}
}

func (g *Gate) isPaused(key string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	u, ok := g.paused[key]
	if !ok {
		return false
	}
	if u <= g.serverNow() {
		delete(g.paused, key)
		return false
	}
	return true
}

// localHost queues this worker's tasks that wait for a busy host, so a
// permit ending with no delay to respect can pass straight to the next of
// them without a round trip (the slot stays held in KV, under its lease).
type localHost struct {
	waiters []chan *Permit
	idle    []*Permit // slots kept for a moment after a request, for the next
}

// linger is how long a finished request's slot stays with this worker for
// its next task of the same host before it goes back to KV. It spans the
// gaps of a worker whose tasks arrive in bursts (a command spider's pool
// answering in batches): at 20 ms, slots went back to KV and were taken
// from it again page after page, a KV read and write each, a fifth of the
// worker's CPU in that case.
const linger = 100 * time.Millisecond

// New returns a Gate over buckets hosts and throttle. lease bounds how long
// a permit of a dead worker blocks its slot; use the request timeout plus a
// margin.
func New(hosts, throttle jetstream.KeyValue, node string, lease time.Duration, log *slog.Logger) *Gate {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Gate{hosts: hosts, throttle: throttle, node: node, lease: lease, log: log.With("component", "politeness"),
		waits: func(time.Duration) {}, local: map[string]*localHost{}, paused: map[string]int64{}}
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
	if g.nc != nil {
		sub, err := g.nc.Subscribe(pauseSubject, func(m *nats.Msg) {
			var pm pauseMsg
			if json.Unmarshal(m.Data, &pm) == nil {
				g.pause(pm.Key, pm.Until)
			}
		})
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", pauseSubject, err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
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
// the server stamps a write somewhere between send and ack, so the
// midpoint is the estimate, off by at most half the round trip. Of a few
// samples the one with the shortest round trip is kept (as NTP does), so a
// busy moment does not skew the estimate.
func (g *Gate) measure(ctx context.Context) error {
	key := "_clock." + Key(g.node)
	best := time.Duration(-1)
	var offset int64
	for range 5 {
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
		if rtt := t1.Sub(t0); best < 0 || rtt < best {
			best = rtt
			offset = e.Created().Sub(t0.Add(rtt / 2)).Nanoseconds()
		}
	}
	g.offset.Store(offset)
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
	// pending: the host has a delay; Started records the start in KV.
	pending bool
	wait    time.Duration // before starting, so the start is Delay after the last
	started chan struct{} // closed when the start is recorded
	done    bool
}

// Started records that the site had started handling the request by t
// (the first response byte is the safe moment to say so). For a host with
// a delay it stores the start, measured back from the server's stamp of
// that write, so the next start is spaced from it; other workers wait
// until it is stored. A permit released without Started counts its
// release as the start: the request may have reached the site.
func (p *Permit) Started(t time.Time) {
	if p == nil || !p.pending || p.started != nil {
		return
	}
	p.started = make(chan struct{})
	go func() { // owned by the permit: Release waits for it
		defer close(p.started)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.g.update(ctx, p.key, func(st *state, now int64) {
			for i := range st.Slots {
				if st.Slots[i].ID == p.id {
					st.Slots[i].Pending = false
					st.Slots[i].Until = now + p.g.lease.Nanoseconds()
				}
			}
			ago := time.Since(t).Nanoseconds() // up to the send: the stamp comes after
			st.StartAgo = &ago
		})
	}()
}

// Acquire waits for a permit for host within lim (after overrides) and
// returns it; it gives up only when ctx is done. before, if set, runs
// before each try and after is called after a try that must wait: the
// crawler holds a fetch slot only around tries, so a waiting task does not
// keep one.
func (g *Gate) Acquire(ctx context.Context, host string, lim Limits, before func(context.Context) error, after func()) (*Permit, error) {
	key := Key(host)
	var waited time.Duration
	for {
		lim := g.Effective(host, lim) // each time: an override applies to waiting tasks too
		if before != nil {
			if err := before(ctx); err != nil {
				return nil, err
			}
		}
		// A slot this worker kept skips KV, so it may only serve a request
		// whose starts need no spacing: one kept from a request without
		// delay (robots.txt, read before its Crawl-delay was known) must
		// not start a page that has one.
		if p := g.takeIdle(key); p != nil && !g.isPaused(key) && lim.Delay == 0 {
			return p, nil
		} else if p != nil {
			p.passable = false
			p.Release(ctx, Outcome{})
		}
		p, wait, err := g.try(ctx, key, lim)
		if p != nil && p.wait > 0 {
			// Our turn is taken; the start must still be Delay after the
			// last one. Wait without holding a fetch slot.
			if after != nil {
				after()
			}
			waited += p.wait
			t := time.NewTimer(p.wait)
			select {
			case <-ctx.Done():
				t.Stop()
				p.Release(ctx, Outcome{})
				return nil, ctx.Err()
			case <-t.C:
			}
			if ok, err := slotWhileHolding(ctx, before); !ok {
				p.Release(ctx, Outcome{})
				if err != nil {
					return nil, err
				}
				continue
			}
		}
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
			if p == nil {
				continue // a request of this worker ended: look again now
			}
			if p, err := g.passed(ctx, p, lim, before, waited); p != nil || err != nil {
				return p, err
			}
		case <-t.C:
			if p := g.dequeue(key, ch); p != nil {
				if p, err := g.passed(ctx, p, lim, before, waited); p != nil || err != nil {
					return p, err
				}
			}
		}
	}
}

// passed takes a slot passed on by a finished request of this worker. It
// returns nil and no error when no fetch slot is free, or when lim has a
// delay (a passed slot skips KV, where starts are spaced; see Acquire):
// the permit is given back and the caller looks again.
func (g *Gate) passed(ctx context.Context, p *Permit, lim Limits, before func(context.Context) error, waited time.Duration) (*Permit, error) {
	if lim.Delay > 0 {
		p.passable = false
		p.Release(ctx, Outcome{})
		return nil, nil
	}
	if ok, err := slotWhileHolding(ctx, before); !ok {
		p.Release(ctx, Outcome{})
		return nil, err
	}
	g.waits(waited)
	return p, nil
}

// slotHoldWait is how long a task holding a host's permit waits for a fetch
// slot before it gives the permit back.
const slotHoldWait = 20 * time.Millisecond

// slotWhileHolding takes a fetch slot (before) for a task that already
// holds a host's permit. It waits only briefly: the tasks holding every slot
// may themselves be waiting for this host (a redirect hop, a relogin take
// their own permit inside the fetch), and a permit held meanwhile would stall
// them until its lease ran out. ok false with a nil error means no slot came.
func slotWhileHolding(ctx context.Context, before func(context.Context) error) (ok bool, err error) {
	if before == nil {
		return true, nil
	}
	sctx, cancel := context.WithTimeout(ctx, slotHoldWait)
	err = before(sctx)
	cancel()
	switch {
	case err == nil:
		return true, nil
	case ctx.Err() != nil:
		return false, ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		return false, nil
	default:
		return false, err
	}
}

// popWaiter removes and returns the first local waiter of key; g.mu held.
func (g *Gate) popWaiter(key string) chan *Permit {
	lh := g.local[key]
	if lh == nil || len(lh.waiters) == 0 {
		return nil
	}
	ch := lh.waiters[0]
	lh.waiters = lh.waiters[1:]
	g.gc(key, lh)
	return ch
}

// gc forgets key's local state once nothing waits and nothing is kept;
// g.mu held.
func (g *Gate) gc(key string, lh *localHost) {
	if len(lh.waiters) == 0 && len(lh.idle) == 0 {
		delete(g.local, key)
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
				g.gc(key, lh)
				return nil
			}
		}
	}
	select {
	case p := <-ch:
		return p // nil for a nudge
	default:
		return nil
	}
}

// nudge wakes the first local waiter of key to look again at once.
func (g *Gate) nudge(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ch := g.popWaiter(key); ch != nil {
		ch <- nil
	}
}

// takeIdle returns a slot this worker kept from a finished request.
func (g *Gate) takeIdle(key string) *Permit {
	g.mu.Lock()
	defer g.mu.Unlock()
	lh := g.local[key]
	if lh == nil || len(lh.idle) == 0 {
		return nil
	}
	p := lh.idle[len(lh.idle)-1]
	lh.idle = lh.idle[:len(lh.idle)-1]
	g.gc(key, lh)
	return &Permit{g: g, key: p.key, id: p.id, until: p.until, taken: p.taken, passable: true}
}

// keep holds p's slot for linger; unless a task of this worker takes it
// meanwhile, it then goes back to KV.
func (g *Gate) keep(p *Permit) {
	g.mu.Lock()
	lh := g.local[p.key]
	if lh == nil {
		lh = &localHost{}
		g.local[p.key] = lh
	}
	lh.idle = append(lh.idle, p)
	g.mu.Unlock()
	time.AfterFunc(linger, func() {
		g.mu.Lock()
		lh := g.local[p.key]
		found := false
		if lh != nil {
			for i, q := range lh.idle {
				if q == p {
					lh.idle = append(lh.idle[:i], lh.idle[i+1:]...)
					found = true
					break
				}
			}
			g.gc(p.key, lh)
		}
		g.mu.Unlock()
		if found {
			p.passable = false // back to KV this time
			p.done = false
			p.Release(context.Background(), Outcome{})
		}
	})
}

// pass hands p's slot to the first local waiter, or keeps it for a moment.
func (g *Gate) pass(p *Permit) bool {
	g.mu.Lock()
	ch := g.popWaiter(p.key)
	g.mu.Unlock()
	if ch == nil {
		g.keep(p)
		return true
	}
	ch <- &Permit{g: g, key: p.key, id: p.id, until: p.until, taken: p.taken, passable: true}
	return true
}

// try takes a permit if the host allows one now, or says how long to wait.
func (g *Gate) try(ctx context.Context, key string, lim Limits) (*Permit, time.Duration, error) {
	for range 16 { // CAS conflicts: another worker took a turn; look again
		st, rev, created, err := g.load(ctx, key)
		if err != nil {
			return nil, 0, err
		}
		now := g.serverNow()
		st.prune(now)
		st.normalize(created)
		delay := lim.Delay + time.Duration(st.Penalty)
		switch {
		case st.PauseUntil > now:
			return nil, min(time.Duration(st.PauseUntil-now), time.Second), nil
		case len(st.Slots) >= lim.Parallelism, delay > 0 && st.pending():
			return nil, poll, nil
		}
		if delay > 0 && st.LastStart > 0 {
			// Not our turn yet by our own clock: no point holding a slot.
			if early := time.Duration(st.LastStart + int64(delay) - now); early > 5*time.Millisecond {
				return nil, min(early-2*time.Millisecond, time.Second), nil
			}
		}
		id := g.node + "/" + nonce(g.seq.Add(1))
		until := now + g.lease.Nanoseconds()
		if delay > 0 {
			until = now + int64(delay) + 5*int64(time.Second) // extended by Started
		}
		st.Slots = append(st.Slots, slot{ID: id, Until: until, Pending: delay > 0})
		newRev, err := g.store(ctx, key, st, rev)
		if err != nil {
			if isConflict(err) {
				continue
			}
			return nil, 0, err
		}
		p := &Permit{g: g, key: key, id: id, until: until, taken: now,
			passable: delay == 0 && st.PauseUntil <= now, pending: delay > 0}
		if delay > 0 && st.LastStart > 0 {
			// Spacing in server time from server stamps only: our claim's
			// stamp is at or before the moment we read it back, so waiting
			// the rest from now puts our start at least Delay after the last.
			stamp := created // the state we replaced: stamped before ours
			e, err := g.hosts.GetRevision(ctx, key, newRev)
			switch {
			case err == nil:
				stamp = e.Created().UnixNano()
			case !errors.Is(err, jetstream.ErrKeyNotFound):
				p.Release(ctx, Outcome{})
				return nil, 0, fmt.Errorf("host state %s: %w", key, err)
			}
			// Not found: another worker's write already replaced ours
			// (the bucket keeps one version). Waiting from the earlier
			// stamp waits longer, never less; it had failed the task and
			// spent one of its attempts (found by review).
			p.wait = max(time.Duration(st.LastStart+int64(delay+Margin)-stamp), 0)
		}
		return p, 0, nil
	}
	return nil, poll, nil
}

// update applies f to the host's state with compare-and-swap, retrying
// on conflicts; now is the offset-corrected server time.
func (g *Gate) update(ctx context.Context, key string, f func(st *state, now int64)) bool {
	for range 16 {
		st, rev, created, err := g.load(ctx, key)
		if err != nil {
			g.log.Warn("host state not updated; leases will settle it", "host", key, "err", err)
			return false
		}
		now := g.serverNow()
		st.prune(now)
		st.normalize(created)
		f(&st, now)
		if _, err := g.store(ctx, key, st, rev); err == nil {
			return true
		} else if !isConflict(err) {
			g.log.Warn("host state not updated; leases will settle it", "host", key, "err", err)
			return false
		}
	}
	return false
}

// Release returns the permit and records how the request went. It is
// idempotent and never fails the caller: a lost release costs only the
// lease.
func (p *Permit) Release(ctx context.Context, o Outcome) {
	if p == nil || p.done {
		return
	}
	p.done = true
	if p.started != nil {
		<-p.started // the start must be stored before the slot is freed
	}
	// With no delay to space starts, a clean finish passes the slot to the
	// next local waiter without a round trip — for up to a second after
	// the slot was taken from KV, so a live override or a penalty applies
	// within a second.
	if o.RetryAfter > 0 {
		until := p.g.serverNow() + o.RetryAfter.Nanoseconds()
		p.g.pause(p.key, until)
		if p.g.nc != nil {
			b, _ := json.Marshal(pauseMsg{Key: p.key, Until: until})
			_ = p.g.nc.Publish(pauseSubject, b)
		}
	}
	if p.passable && !o.Failed && o.RetryAfter == 0 && o.Latency < 2*time.Second &&
		p.g.serverNow()-p.taken < int64(time.Second) && !p.g.isPaused(p.key) && p.g.pass(p) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	unstarted := p.pending && p.started == nil
	if p.g.update(ctx, p.key, func(st *state, now int64) {
		if unstarted {
			zero := int64(0)
			st.StartAgo = &zero
		}
		for i, s := range st.Slots {
			if s.ID == p.id {
				st.Slots = append(st.Slots[:i], st.Slots[i+1:]...)
				break
			}
		}
		st.adapt(now, o)
	}) {
		p.g.nudge(p.key)
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

func (g *Gate) load(ctx context.Context, key string) (state, uint64, int64, error) {
	var st state
	e, err := g.hosts.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return st, 0, 0, nil
	}
	if err != nil {
		return st, 0, 0, fmt.Errorf("host state %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		// A damaged value must not wedge the host: start from a clean
		// state (conservatively paused for a second).
		st = state{PauseUntil: g.serverNow() + int64(time.Second)}
	}
	return st, e.Revision(), e.Created().UnixNano(), nil
}

func (g *Gate) store(ctx context.Context, key string, st state, rev uint64) (uint64, error) {
	b, _ := json.Marshal(st)
	if rev == 0 {
		return g.hosts.Create(ctx, key, b)
	}
	return g.hosts.Update(ctx, key, b, rev)
}

func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

func nonce(seq uint64) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:]) + fmt.Sprintf("%x", seq)
}
