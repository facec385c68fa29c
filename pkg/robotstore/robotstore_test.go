package robotstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/crawlmesh/crawlmesh/pkg/fetch"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func bucket(t *testing.T) jetstream.KeyValue {
	_, js := streamstest.Start(t, streams.Options{})
	return streamstest.Bucket(t, js, mesh.RobotsBucket)
}

const key = "http://127.0.0.1:8080 crawlmesh"

// TestSingleFlight: five workers (stores) load at once, one fetches.
func TestSingleFlight(t *testing.T) {
	kv := bucket(t)
	var calls atomic.Int32
	fetchFn := func(ctx context.Context) (fetch.RobotsFile, error) {
		calls.Add(1)
		time.Sleep(200 * time.Millisecond) // long enough for the others to wait
		return fetch.RobotsFile{Status: 200, Body: []byte("User-agent: *\nDisallow: /x\n"), Expires: time.Now().Add(time.Hour)}, nil
	}
	var wg sync.WaitGroup
	got := make([]fetch.RobotsFile, 5)
	errs := make([]error, 5)
	for i := range 5 {
		s := New(kv, Options{Owner: "w"})
		wg.Go(func() { got[i], errs[i] = s.Load(t.Context(), key, time.Hour, fetchFn) })
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("fetch ran %d times, want 1", n)
	}
	for i := range 5 {
		if errs[i] != nil || got[i].Status != 200 || string(got[i].Body) != "User-agent: *\nDisallow: /x\n" {
			t.Errorf("load %d = %+v, %v", i, got[i], errs[i])
		}
	}
	// A later load reads the record.
	f, err := New(kv, Options{}).Load(t.Context(), key, time.Hour, func(context.Context) (fetch.RobotsFile, error) {
		t.Error("fetched although a fresh record exists")
		return fetch.RobotsFile{}, nil
	})
	if err != nil || f.Status != 200 {
		t.Errorf("load of stored record = %+v, %v", f, err)
	}
	if _, err := kv.Get(t.Context(), "lock."+Key(key)); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("lock after the fetch: %v, want deleted", err)
	}
}

// TestExpiredRefetched: a record past Expires is fetched again.
func TestExpiredRefetched(t *testing.T) {
	kv := bucket(t)
	var calls atomic.Int32
	fetchFn := func(context.Context) (fetch.RobotsFile, error) {
		n := calls.Add(1)
		return fetch.RobotsFile{Status: 200 + int(n), Expires: time.Now().Add(50 * time.Millisecond)}, nil
	}
	s := New(kv, Options{})
	if f, err := s.Load(t.Context(), key, time.Hour, fetchFn); err != nil || f.Status != 201 {
		t.Fatalf("first load = %+v, %v", f, err)
	}
	if f, _ := s.Load(t.Context(), key, time.Hour, fetchFn); f.Status != 201 {
		t.Errorf("second load (fresh) = %+v, want the stored 201", f)
	}
	time.Sleep(100 * time.Millisecond)
	if f, err := s.Load(t.Context(), key, time.Hour, fetchFn); err != nil || f.Status != 202 {
		t.Errorf("load after expiry = %+v, %v; want a refetch (202)", f, err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("fetch ran %d times, want 2", n)
	}
}

// TestMaxAgeLowered: a record read 10 s ago, good for an hour, is fetched
// again by a worker whose robots_ttl is now 5 s.
func TestMaxAgeLowered(t *testing.T) {
	kv := bucket(t)
	var calls atomic.Int32
	fetchFn := func(context.Context) (fetch.RobotsFile, error) {
		n := calls.Add(1)
		now := time.Now()
		return fetch.RobotsFile{Status: 200 + int(n), Expires: now.Add(time.Hour), Fetched: now.Add(-10 * time.Second)}, nil
	}
	s := New(kv, Options{})
	if f, err := s.Load(t.Context(), key, time.Hour, fetchFn); err != nil || f.Status != 201 {
		t.Fatalf("first load = %+v, %v", f, err)
	}
	if f, _ := s.Load(t.Context(), key, time.Hour, fetchFn); f.Status != 201 {
		t.Errorf("load within robots_ttl 1h = %+v, want the stored 201", f)
	}
	if f, err := s.Load(t.Context(), key, 5*time.Second, fetchFn); err != nil || f.Status != 202 {
		t.Errorf("load with robots_ttl 5s = %+v, %v; want a refetch (202)", f, err)
	}
}

// TestDeadHolder: a lock whose holder died frees itself after its TTL and
// the waiters go on (one fetches, the rest read its record).
func TestDeadHolder(t *testing.T) {
	kv := bucket(t)
	if _, err := kv.Create(t.Context(), "lock."+Key(key), []byte("dead"), jetstream.KeyTTL(time.Second)); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	fetchFn := func(context.Context) (fetch.RobotsFile, error) {
		calls.Add(1)
		return fetch.RobotsFile{Status: 404, Expires: time.Now().Add(time.Hour)}, nil
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	for range 3 {
		s := New(kv, Options{LockTTL: time.Second, Wait: 20 * time.Second})
		wg.Go(func() {
			if f, err := s.Load(t.Context(), key, time.Hour, fetchFn); err != nil || f.Status != 404 {
				t.Errorf("load = %+v, %v", f, err)
			}
		})
	}
	wg.Wait()
	el := time.Since(t0)
	if el < 500*time.Millisecond || el > 10*time.Second {
		t.Errorf("waiters went on after %v, want about the lock TTL (1s)", el)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("fetch ran %d times, want 1", n)
	}
}

// TestFetchErrorReleases: a failed fetch stores nothing and frees the lock
// at once, so the next caller fetches without waiting.
func TestFetchErrorReleases(t *testing.T) {
	kv := bucket(t)
	s := New(kv, Options{})
	boom := errors.New("boom")
	if _, err := s.Load(t.Context(), key, time.Hour, func(context.Context) (fetch.RobotsFile, error) { return fetch.RobotsFile{}, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	t0 := time.Now()
	f, err := s.Load(t.Context(), key, time.Hour, func(context.Context) (fetch.RobotsFile, error) {
		return fetch.RobotsFile{Status: 200, Expires: time.Now().Add(time.Hour)}, nil
	})
	if err != nil || f.Status != 200 || time.Since(t0) > 2*time.Second {
		t.Errorf("load after a failed fetch = %+v, %v in %v", f, err, time.Since(t0))
	}
}

// TestWaitBounded: a waiter whose holder never finishes fetches itself
// after Wait.
func TestWaitBounded(t *testing.T) {
	kv := bucket(t)
	if _, err := kv.Create(t.Context(), "lock."+Key(key), []byte("slow"), jetstream.KeyTTL(time.Minute)); err != nil {
		t.Fatal(err)
	}
	s := New(kv, Options{Wait: 300 * time.Millisecond})
	t0 := time.Now()
	f, err := s.Load(t.Context(), key, time.Hour, func(context.Context) (fetch.RobotsFile, error) {
		return fetch.RobotsFile{Status: 200, Expires: time.Now().Add(time.Hour)}, nil
	})
	if err != nil || f.Status != 200 {
		t.Fatalf("load = %+v, %v", f, err)
	}
	if el := time.Since(t0); el > 3*time.Second {
		t.Errorf("waited %v, want about 300ms", el)
	}
	// ctx ends the wait too.
	_ = kv.Delete(t.Context(), Key(key))
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := New(kv, Options{}).Load(ctx, key, time.Hour, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("load with an ending ctx: %v, want deadline exceeded", err)
	}
}
