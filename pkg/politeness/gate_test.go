package politeness_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/politeness"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// gates returns n gates (as n workers would have) on one server.
func gates(t *testing.T, n int) []*politeness.Gate {
	t.Helper()
	_, js := streamstest.Start(t, streams.Options{})
	hosts := streamstest.Bucket(t, js, mesh.HostsBucket)
	throttle := streamstest.Bucket(t, js, mesh.ThrottleBucket)
	var gs []*politeness.Gate
	for i := range n {
		g := politeness.New(hosts, throttle, "w"+string(rune('a'+i)), 10*time.Second, nil)
		if err := g.Measure(t.Context()); err != nil {
			t.Fatal(err)
		}
		gs = append(gs, g)
	}
	return gs
}

// hammer runs tasks request-like uses of host through the gates at once and
// returns the start times and the most permits held at any moment.
func hammer(t *testing.T, gs []*politeness.Gate, lim politeness.Limits, tasks int, hold time.Duration) ([]time.Time, int) {
	var mu sync.Mutex
	var starts []time.Time
	var cur, most atomic.Int32
	var wg sync.WaitGroup
	for i := range tasks {
		g := gs[i%len(gs)]
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			p, err := g.Acquire(ctx, "site.example:80", lim, nil, nil)
			if err != nil {
				t.Error(err)
				return
			}
			if c := cur.Add(1); c > most.Load() {
				most.Store(c)
			}
			now := time.Now()
			mu.Lock()
			starts = append(starts, now)
			mu.Unlock()
			time.Sleep(hold) // the request
			p.Started(time.Now())
			cur.Add(-1)
			p.Release(ctx, politeness.Outcome{Latency: hold})
		})
	}
	wg.Wait()
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	return starts, int(most.Load())
}

func TestParallelismAcrossGates(t *testing.T) {
	gs := gates(t, 3)
	_, most := hammer(t, gs, politeness.Limits{Parallelism: 2}, 30, 10*time.Millisecond)
	if most > 2 {
		t.Errorf("%d permits held at once with parallelism 2", most)
	}
	if most < 2 {
		t.Errorf("never 2 permits at once: the limit is not used")
	}
}

func TestDelayAcrossGates(t *testing.T) {
	gs := gates(t, 3)
	starts, _ := hammer(t, gs, politeness.Limits{Parallelism: 4, Delay: 40 * time.Millisecond}, 12, 5*time.Millisecond)
	for i := 1; i < len(starts); i++ {
		if d := starts[i].Sub(starts[i-1]); d < 40*time.Millisecond {
			t.Errorf("starts %d and %d %v apart, delay 40ms", i-1, i, d)
		}
	}
}

func TestRetryAfterPausesHost(t *testing.T) {
	g := gates(t, 1)[0]
	ctx := t.Context()
	lim := politeness.Limits{Parallelism: 1}
	p, err := g.Acquire(ctx, "h:1", lim, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Release(ctx, politeness.Outcome{Failed: true, RetryAfter: 1500 * time.Millisecond})
	t0 := time.Now()
	p, err = g.Acquire(ctx, "h:1", lim, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Release(ctx, politeness.Outcome{})
	if w := time.Since(t0); w < 1400*time.Millisecond {
		t.Errorf("next permit after Retry-After 1.5s came in %v", w)
	}
}

func TestOverrideAppliesLive(t *testing.T) {
	_, js := streamstest.Start(t, streams.Options{})
	hosts := streamstest.Bucket(t, js, mesh.HostsBucket)
	throttle := streamstest.Bucket(t, js, mesh.ThrottleBucket)
	g := politeness.New(hosts, throttle, "w1", 10*time.Second, nil)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = g.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	b, _ := json.Marshal(politeness.Override{Host: "h:1", Delay: "300ms", Parallelism: 5})
	if _, err := throttle.Put(t.Context(), politeness.Key("h:1"), b); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for g.Effective("h:1", politeness.Limits{}).Delay != 300*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatal("override not applied within 1s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := g.Effective("h:1", politeness.Limits{Parallelism: 1}); got.Parallelism != 5 {
		t.Errorf("override parallelism: %+v", got)
	}
}

func TestKey(t *testing.T) {
	for in, want := range map[string]string{
		"Example.COM:8080": "example.com_8080",
		"127.0.0.1:80":     "127.0.0.1_80",
		"[::1]:80":         "=__1=_80",
	} {
		if got := politeness.Key(in); got != want {
			t.Errorf("Key(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkPermit is the per-request cost of the gate: take and return a
// permit for a host with no delay (many hosts, so no waiting is measured)
// and with a delay of 1ns (every start goes through claim, read-back and
// start record).
func BenchmarkPermit(b *testing.B) {
	for _, tc := range []struct {
		name  string
		delay time.Duration
	}{{"no-delay", 0}, {"delay", time.Nanosecond}} {
		b.Run(tc.name, func(b *testing.B) {
			_, js := streamstest.Start(b, streams.Options{})
			g := politeness.New(streamstest.Bucket(b, js, mesh.HostsBucket), streamstest.Bucket(b, js, mesh.ThrottleBucket), "w", 10*time.Second, nil)
			lim := politeness.Limits{Parallelism: 1, Delay: tc.delay}
			i := 0
			for b.Loop() {
				host := "h" + string(rune('a'+i%26)) + ".example"
				i++
				p, err := g.Acquire(b.Context(), host, lim, nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				p.Started(time.Now())
				p.Release(b.Context(), politeness.Outcome{})
			}
		})
	}
}

// A slot kept or passed from a request with no delay (robots.txt, before
// its Crawl-delay is known) does not let a request that has a delay skip
// the spacing: every start with the delay comes Delay after the previous.
// (A crawl with delay 0 and Crawl-delay 2 once started 5 pages in 130 ms.)
func TestPassedSlotKeepsDelay(t *testing.T) {
	g := gates(t, 1)[0]
	ctx := t.Context()
	const host = "delayed.example:80"
	p, err := g.Acquire(ctx, host, politeness.Limits{Parallelism: 1}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Started(time.Now())
	p.Release(ctx, politeness.Outcome{Latency: time.Millisecond}) // kept for this worker's next task
	lim := politeness.Limits{Parallelism: 1, Delay: 300 * time.Millisecond}
	var starts []time.Time
	for range 3 {
		p, err := g.Acquire(ctx, host, lim, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		starts = append(starts, now)
		p.Started(now)
		p.Release(ctx, politeness.Outcome{Latency: time.Millisecond})
	}
	for i := 1; i < len(starts); i++ {
		if d := starts[i].Sub(starts[i-1]); d < 295*time.Millisecond {
			t.Errorf("start %d came %v after the previous, want >= 300ms", i, d)
		}
	}
}

// racingKV is bucket hosts with another worker's write slipped in just
// before a gate reads back its own claim, as happens under load: the
// bucket keeps one version, so the claim's revision is gone.
type racingKV struct {
	jetstream.KeyValue
	armed, raced atomic.Bool
}

func (r *racingKV) GetRevision(ctx context.Context, key string, rev uint64) (jetstream.KeyValueEntry, error) {
	if r.armed.CompareAndSwap(true, false) {
		if e, err := r.KeyValue.Get(ctx, key); err == nil {
			if _, err := r.KeyValue.Update(ctx, key, e.Value(), e.Revision()); err == nil {
				r.raced.Store(true)
			}
		}
	}
	return r.KeyValue.GetRevision(ctx, key, rev)
}

// TestClaimReadBackRaced: a claim whose revision another worker's write
// already replaced still gets its permit, spaced by the delay; the read
// had failed with "key not found", failing the task and spending one of
// its attempts, so pages were dead-lettered after fewer fetches than
// max_attempts (found by review).
func TestClaimReadBackRaced(t *testing.T) {
	_, js := streamstest.Start(t, streams.Options{})
	hosts := &racingKV{KeyValue: streamstest.Bucket(t, js, mesh.HostsBucket)}
	g := politeness.New(hosts, streamstest.Bucket(t, js, mesh.ThrottleBucket), "wa", 10*time.Second, nil)
	if err := g.Measure(t.Context()); err != nil {
		t.Fatal(err)
	}
	const host = "raced.example:80"
	lim := politeness.Limits{Parallelism: 2, Delay: 200 * time.Millisecond}
	p, err := g.Acquire(t.Context(), host, lim, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := time.Now()
	p.Started(first)
	p.Release(t.Context(), politeness.Outcome{Latency: time.Millisecond})
	hosts.armed.Store(true)
	p, err = g.Acquire(t.Context(), host, lim, nil, nil)
	if err != nil {
		t.Fatalf("permit after a raced read-back: %v", err)
	}
	second := time.Now()
	p.Started(second)
	p.Release(t.Context(), politeness.Outcome{Latency: time.Millisecond})
	if !hosts.raced.Load() {
		t.Fatal("the read-back was not raced: the test did not test")
	}
	if d := second.Sub(first); d < 195*time.Millisecond {
		t.Errorf("second start %v after the first, want >= 200ms", d)
	}
}
