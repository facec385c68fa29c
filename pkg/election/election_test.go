package election_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/crawlmesh/crawlmesh/pkg/election"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const lease = 2 * time.Second

func bucket(t *testing.T) jetstream.KeyValue {
	t.Helper()
	_, js := streamstest.Start(t, streams.Options{Lease: lease})
	return streamstest.Bucket(t, js, "election")
}

func elector(t *testing.T, kv jetstream.KeyValue, id string, opts ...election.Option) *election.Elector {
	t.Helper()
	e, err := election.New(kv, id, append([]election.Option{election.WithLease(lease)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestOneLeaderAndFailover: three candidates, exactly one leads at a time,
// checked continuously; when the leader stops renewing (a crash: no
// resign), another leads within the lease + 1s, with a higher term.
func TestOneLeaderAndFailover(t *testing.T) {
	kv := bucket(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var leading atomic.Int32
	var violations atomic.Int32
	type won struct {
		id   string
		term uint64
		at   time.Time
		kill context.CancelFunc
	}
	wins := make(chan won, 10)
	var wg sync.WaitGroup
	for _, id := range []string{"a", "b", "c"} {
		e := elector(t, kv, id)
		wg.Go(func() {
			for ctx.Err() == nil {
				cctx, crash := context.WithCancel(ctx)
				l, err := e.Campaign(cctx)
				if err != nil {
					crash()
					return
				}
				if leading.Add(1) > 1 {
					violations.Add(1)
				}
				wins <- won{id, l.Term(), time.Now(), crash}
				<-l.Context().Done()
				leading.Add(-1)
				l.Done()
				crash()
				// a crashed candidate does not come back in this test
				return
			}
		})
	}
	first := <-wins
	t0 := time.Now()
	first.kill() // crash: stops renewing without resigning
	var second won
	select {
	case second = <-wins:
	case <-time.After(lease + 3*time.Second):
		t.Fatal("no new leader after the leader crashed")
	}
	took := second.at.Sub(t0)
	t.Logf("takeover after a crash: %v (lease %v)", took.Round(time.Millisecond), lease)
	if took > lease+time.Second {
		t.Errorf("new leader after %v, want <= lease + 1s", took)
	}
	if second.term <= first.term {
		t.Errorf("term went from %d to %d; it must grow", first.term, second.term)
	}
	if violations.Load() > 0 {
		t.Errorf("two leaders at once %d times", violations.Load())
	}
	cancel()
	wg.Wait()
}

// TestResignHandsOver: a resigning leader's successor takes over at once.
func TestResignHandsOver(t *testing.T) {
	kv := bucket(t)
	a, b := elector(t, kv, "a"), elector(t, kv, "b")
	la, err := a.Campaign(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *election.Leadership, 1)
	go func() {
		lb, err := b.Campaign(t.Context())
		if err == nil {
			got <- lb
		}
	}()
	time.Sleep(100 * time.Millisecond) // b is waiting on the key
	t0 := time.Now()
	if err := la.Resign(t.Context()); err != nil {
		t.Fatal(err)
	}
	if la.Context().Err() == nil {
		t.Error("resigned leadership's context not cancelled")
	}
	select {
	case lb := <-got:
		if d := time.Since(t0); d > time.Second {
			t.Errorf("handover took %v", d)
		}
		if lb.Term() <= la.Term() {
			t.Errorf("term %d after %d", lb.Term(), la.Term())
		}
		_ = lb.Resign(t.Context())
	case <-time.After(3 * time.Second):
		t.Fatal("no handover after resign")
	}
}

// TestStolenKeyCancelsLeadership: a leader whose key is rewritten behind
// its back loses leadership at the next renew.
func TestStolenKeyCancelsLeadership(t *testing.T) {
	kv := bucket(t)
	l, err := elector(t, kv, "a").Campaign(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), election.Key, []byte(`{"id":"intruder"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Context().Done():
		if !errors.Is(context.Cause(l.Context()), election.ErrLost) {
			t.Errorf("cause %v, want ErrLost", context.Cause(l.Context()))
		}
	case <-time.After(lease):
		t.Fatal("leadership not lost after the key was taken")
	}
	l.Done()
}

// TestObserve follows the leader and the vacancy.
func TestObserve(t *testing.T) {
	kv := bucket(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch, err := election.Observe(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	l, err := elector(t, kv, "a").Campaign(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	waitLeader := func(want string) {
		t.Helper()
		deadline := time.After(3 * time.Second)
		for {
			select {
			case ld := <-ch:
				if ld.ID == want && (want == "" || ld.Term == l.Term()) {
					return
				}
			case <-deadline:
				t.Fatalf("observer never saw leader %q", want)
			}
		}
	}
	waitLeader("a")
	_ = l.Resign(t.Context())
	waitLeader("")
	cancel()
	for range ch {
	}
}

func TestPriorityWinsVacancy(t *testing.T) {
	kv := bucket(t)
	holder, err := elector(t, kv, "holder").Campaign(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan string, 2)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for _, c := range []struct {
		id   string
		prio int
	}{{"low", 1}, {"high", 90}} {
		e := elector(t, kv, c.id, election.WithPriority(c.prio))
		wg.Go(func() {
			l, err := e.Campaign(ctx)
			if err == nil {
				res <- c.id
				<-ctx.Done()
				_ = l.Resign(context.Background())
				l.Done()
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	_ = holder.Resign(t.Context())
	if got := <-res; got != "high" {
		t.Errorf("vacancy won by %q, want the higher priority", got)
	}
	cancel()
	wg.Wait()
}
