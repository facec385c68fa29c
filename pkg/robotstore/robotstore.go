// Package robotstore shares robots.txt answers mesh-wide: it implements
// fetch.RobotsStore over KV bucket robots (streams/kv/robots.json), so a
// host's robots.txt is fetched once for the whole mesh, not once per worker.
//
// A record's key is the hex sha256/16 of the store key (origin and product
// token), its value the JSON of a fetch.RobotsFile, whose Expires says when
// it must be fetched again. Fetches are single-flight across workers: the
// worker that creates "lock.<key>" (a per-key TTL, so a holder that dies
// frees it) fetches and stores the file and deletes the lock; the others
// watch the record and the lock until a fresh record appears, or the lock
// goes (then one of them takes it), bounded by their context and a wait
// limit after which they fetch on their own rather than stall a crawl.
package robotstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/fetch"
	"github.com/crawlmesh/crawlmesh/pkg/natsconn"
)

// Defaults of [Options].
const (
	DefaultLockTTL = 30 * time.Second
	DefaultWait    = 30 * time.Second
)

// Options tune a Store.
type Options struct {
	// LockTTL is how long a fetch lock lives if its holder never deletes it
	// (the holder died); at least 1 s (the server's per-message TTL unit).
	LockTTL time.Duration
	// Wait bounds how long a caller waits for another worker's fetch
	// before fetching itself.
	Wait time.Duration
	// Owner is written into locks (a node id), for whoever reads the bucket.
	Owner string
	Log   *slog.Logger
	now   func() time.Time
}

// Store is a fetch.RobotsStore over one KV bucket.
type Store struct {
	kv jetstream.KeyValue
	o  Options
}

var _ fetch.RobotsStore = (*Store)(nil)

// New returns a Store over kv (bucket robots).
func New(kv jetstream.KeyValue, o Options) *Store {
	if o.LockTTL < time.Second {
		o.LockTTL = DefaultLockTTL
	}
	if o.Wait <= 0 {
		o.Wait = DefaultWait
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.now == nil {
		o.now = time.Now
	}
	o.Log = o.Log.With("component", "robotstore")
	return &Store{kv: kv, o: o}
}

// Key is the bucket key of a store key.
func Key(storeKey string) string {
	h := sha256.Sum256([]byte(storeKey))
	return hex.EncodeToString(h[:16])
}

// Load returns the stored file for key while it has not expired, else runs
// fetch once mesh-wide and stores its answer. A bucket that cannot be read
// or written never stops a crawl: Load then fetches on its own.
func (s *Store) Load(ctx context.Context, key string, maxAge time.Duration, fetchFn func(ctx context.Context) (fetch.RobotsFile, error)) (fetch.RobotsFile, error) {
	k := Key(key)
	lock := "lock." + k
	deadline := time.Now().Add(s.o.Wait)
	// Each round either returns or waited for the lock to go; the deadline
	// bounds the rounds.
	for time.Now().Before(deadline) {
		if f, ok := s.fresh(ctx, k, maxAge); ok {
			return f, nil
		}
		_, err := s.kv.Create(ctx, lock, []byte(s.o.Owner), jetstream.KeyTTL(s.o.LockTTL))
		if err == nil {
			// Look again with the lock held: another worker may have
			// stored the record and dropped its lock between our read and
			// our Create.
			if f, ok := s.fresh(ctx, k, maxAge); ok {
				s.unlock(ctx, lock)
				return f, nil
			}
			return s.fetchAndStore(ctx, k, lock, fetchFn, true)
		}
		if ctx.Err() != nil {
			return fetch.RobotsFile{}, ctx.Err()
		}
		if !natsconn.KeyExists(err) {
			s.o.Log.Warn("robots.txt lock unavailable, fetching alone", "err", err)
			break
		}
		f, ok, err := s.wait(ctx, k, lock, deadline, maxAge)
		if err != nil {
			return fetch.RobotsFile{}, err
		}
		if ok {
			return f, nil
		}
	}
	return s.fetchAndStore(ctx, k, lock, fetchFn, false)
}

// fresh reads the record; ok only if it exists and has not expired.
func (s *Store) fresh(ctx context.Context, k string, maxAge time.Duration) (fetch.RobotsFile, bool) {
	e, err := s.kv.Get(ctx, k)
	if err != nil {
		return fetch.RobotsFile{}, false
	}
	return s.decode(e, maxAge)
}

func (s *Store) decode(e jetstream.KeyValueEntry, maxAge time.Duration) (fetch.RobotsFile, bool) {
	if e == nil || e.Operation() != jetstream.KeyValuePut {
		return fetch.RobotsFile{}, false
	}
	var f fetch.RobotsFile
	if err := json.Unmarshal(e.Value(), &f); err != nil {
		return fetch.RobotsFile{}, false
	}
	return f, f.ExpiresBy(maxAge).After(s.o.now())
}

// fetchAndStore runs fetchFn, stores a successful answer and deletes the
// lock if held.
func (s *Store) fetchAndStore(ctx context.Context, k, lock string, fetchFn func(context.Context) (fetch.RobotsFile, error), held bool) (fetch.RobotsFile, error) {
	f, err := fetchFn(ctx)
	// The record and the lock are written even when ctx ended meanwhile:
	// others are waiting for them.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err == nil {
		b, _ := json.Marshal(f)
		if _, perr := s.kv.Put(wctx, k, b); perr != nil {
			s.o.Log.Warn("robots.txt not shared", "err", perr)
		}
	}
	if held {
		s.unlock(wctx, lock)
	}
	if err != nil {
		return fetch.RobotsFile{}, err
	}
	return f, nil
}

// unlock deletes the lock; if that fails its TTL frees it.
func (s *Store) unlock(ctx context.Context, lock string) {
	if err := s.kv.Delete(ctx, lock); err != nil {
		s.o.Log.Debug("robots.txt lock not deleted (its TTL frees it)", "err", err)
	}
}

// wait watches the record and the lock until a fresh record appears (ok),
// the lock goes (not ok: take it), or the deadline passes (not ok).
func (s *Store) wait(ctx context.Context, k, lock string, deadline time.Time, maxAge time.Duration) (fetch.RobotsFile, bool, error) {
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	w, err := s.kv.WatchFiltered(wctx, []string{k, lock})
	if err != nil {
		if ctx.Err() != nil {
			return fetch.RobotsFile{}, false, ctx.Err()
		}
		return fetch.RobotsFile{}, false, nil
	}
	defer func() { _ = w.Stop() }()
	lockSeen := false
	for {
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return fetch.RobotsFile{}, false, ctx.Err()
			}
			return fetch.RobotsFile{}, false, nil
		case e, open := <-w.Updates():
			if !open {
				return fetch.RobotsFile{}, false, nil
			}
			if e == nil {
				// Initial values delivered: no lock among them means it
				// went between our Create and the watch.
				if !lockSeen {
					return fetch.RobotsFile{}, false, nil
				}
				continue
			}
			if e.Key() == lock {
				if e.Operation() != jetstream.KeyValuePut {
					return fetch.RobotsFile{}, false, nil // released or expired
				}
				lockSeen = true
				continue
			}
			if f, ok := s.decode(e, maxAge); ok {
				return f, true, nil
			}
		}
	}
}

// String names the store for logs.
func (s *Store) String() string { return fmt.Sprintf("robotstore(%s)", s.kv.Bucket()) }
