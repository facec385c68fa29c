package fetch

import (
	"context"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/politeness"
)

// chain holds the permit of the request in flight for one call (FetchWith,
// Sitemap, Prepare): a call may make several requests — redirect hops,
// robots.txt of a new host, a relogin and the refetch — and each needs a
// permit of its own host. Before the next request (or any wait on work
// shared with other goroutines, such as a robots.txt or login another
// goroutine is doing) the held permit is released, so a host with
// parallelism 1 never waits on itself. A chain is used by one goroutine.
type chain struct {
	f     *Fetcher
	gate  Gate
	cur   *politeness.Permit
	host  string
	fresh bool // cur is the caller's permit, not used by a request yet
	start time.Time
	out   politeness.Outcome
	ended bool // out was set by end
}

func newChain(f *Fetcher, permit *politeness.Permit, host string, gate Gate) *chain {
	return &chain{f: f, gate: gate, cur: permit, host: host, fresh: permit != nil}
}

// acquire gets a permit for a request to host: the caller's permit for
// the first request to its host, else a new one from the gate.
func (ch *chain) acquire(ctx context.Context, host string) error {
	if ch.fresh && ch.host == host {
		ch.fresh, ch.start, ch.ended = false, time.Now(), false
		return nil
	}
	ch.release(ctx)
	if ch.gate != nil {
		p, err := ch.gate(ctx, host)
		if err != nil {
			if ctx.Err() != nil {
				return &Error{Transient: true, Reason: "cancelled", Err: ctx.Err()}
			}
			return &Error{Transient: true, Reason: "politeness", Err: err}
		}
		ch.cur = p
	}
	ch.host, ch.start, ch.ended = host, time.Now(), false
	return nil
}

// end records how the request under the held permit went.
func (ch *chain) end(failed bool, retryAfter time.Duration) {
	if ch.ended {
		return
	}
	ch.out = politeness.Outcome{Failed: failed, RetryAfter: retryAfter, Latency: time.Since(ch.start)}
	ch.ended = true
}

// endErr records the outcome of a request that failed with e.
func (ch *chain) endErr(e *Error) {
	ch.end(e.Transient && e.Reason != "cancelled", e.RetryAfter)
}

// release returns the held permit, if any. Safe to call more than once.
func (ch *chain) release(ctx context.Context) {
	if ch.cur == nil {
		ch.fresh = false
		return
	}
	if !ch.ended && !ch.fresh {
		ch.out.Latency = time.Since(ch.start)
	}
	// Release never fails the caller; a cancelled task still frees its slot.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	ch.cur.Release(rctx, ch.out)
	cancel()
	if ch.f != nil && ch.f.onRelease != nil {
		ch.f.onRelease(ch.host, ch.out)
	}
	ch.cur, ch.fresh, ch.out, ch.ended = nil, false, politeness.Outcome{}, false
}
