package files

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultLookupTTL is how long a [Cache] trusts the digest it last read
// for a name when no watch is running.
const DefaultLookupTTL = time.Second

// Cache keeps stored files on local disk, one file per digest, for the
// workers: a changed file (a new digest) is fetched by the next caller
// after the change is seen, an unchanged one is never downloaded twice, and
// callers asking for the same digest at once share one download.
//
// Which digest a name has now is read from the store at most once per
// lookup TTL; while [Cache.Run] watches the store, a change invalidates the
// name at once and lookups are served from memory until then.
type Cache struct {
	store *Store
	dir   string
	ttl   time.Duration

	mu       sync.Mutex
	names    map[string]lookup
	gen      uint64 // bumped by every change the watch sees
	flights  map[string]*flight
	watching atomic.Bool

	downloads atomic.Int64
}

type lookup struct {
	info Info
	at   time.Time
}

type flight struct {
	done chan struct{}
	err  error
}

// CacheOption tunes a Cache.
type CacheOption func(*Cache)

// WithLookupTTL sets how long a name's digest is trusted without a watch
// (0: read it on every call).
func WithLookupTTL(d time.Duration) CacheOption { return func(c *Cache) { c.ttl = max(d, 0) } }

// NewCache keeps the files of store under dir (created if missing).
func NewCache(store *Store, dir string, opts ...CacheOption) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("file cache %s: %w", dir, err)
	}
	c := &Cache{store: store, dir: dir, ttl: DefaultLookupTTL, names: map[string]lookup{}, flights: map[string]*flight{}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Dir is the directory the cache keeps files in.
func (c *Cache) Dir() string { return c.dir }

// Downloads counts the files fetched from the store so far.
func (c *Cache) Downloads() int64 { return c.downloads.Load() }

// Run watches the store until ctx is done, so a changed or deleted file is
// noticed at once and unchanged names cost no request. Without it (or
// while the watch is down) lookups fall back to the TTL.
func (c *Cache) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		err := c.watchOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		_ = err
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

func (c *Cache) watchOnce(ctx context.Context) error {
	w, err := c.store.obs.Watch(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	// Changes made before the watch began are not seen: forget every
	// lookup so the first ones under the watch read the store.
	c.mu.Lock()
	c.names = map[string]lookup{}
	c.gen++
	c.mu.Unlock()
	c.watching.Store(true)
	defer func() {
		c.watching.Store(false)
		c.mu.Lock()
		c.gen++
		c.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch ended")
			}
			if e == nil {
				continue
			}
			c.mu.Lock()
			delete(c.names, e.Name)
			c.gen++
			c.mu.Unlock()
		}
	}
}

// Path returns a local file holding the current version of the named
// file, downloading it only when no earlier call fetched that digest. The
// file is shared: read it, never write it.
func (c *Cache) Path(ctx context.Context, name string) (string, Info, error) {
	info, err := c.current(ctx, name)
	if err != nil {
		return "", Info{}, err
	}
	p := filepath.Join(c.dir, digestFile(info.Digest))
	if _, err := os.Stat(p); err == nil {
		return p, info, nil
	}
	c.mu.Lock()
	if f, ok := c.flights[info.Digest]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return "", Info{}, ctx.Err()
		}
		if f.err != nil {
			return "", Info{}, f.err
		}
		return p, info, nil
	}
	// Re-check under the lock: a flight may have ended between the stat
	// and here.
	if _, err := os.Stat(p); err == nil {
		c.mu.Unlock()
		return p, info, nil
	}
	f := &flight{done: make(chan struct{})}
	c.flights[info.Digest] = f
	c.mu.Unlock()

	f.err = c.download(ctx, name, info, p)
	c.mu.Lock()
	delete(c.flights, info.Digest)
	c.mu.Unlock()
	close(f.done)
	if f.err != nil {
		return "", Info{}, f.err
	}
	return p, info, nil
}

// current is the name's Info as of at most the TTL ago (or the watch).
func (c *Cache) current(ctx context.Context, name string) (Info, error) {
	c.mu.Lock()
	l, ok := c.names[name]
	gen := c.gen
	fresh := ok && (c.watching.Load() || time.Since(l.at) < c.ttl)
	c.mu.Unlock()
	if fresh {
		return l.info, nil
	}
	info, err := c.store.Stat(ctx, name)
	if err != nil {
		return Info{}, err
	}
	c.mu.Lock()
	if c.gen == gen { // no change seen meanwhile: the answer may be kept
		c.names[name] = lookup{info: info, at: time.Now()}
	}
	c.mu.Unlock()
	return info, nil
}

// download fetches the version with info's digest into p, through a
// temporary file renamed into place once complete and verified.
func (c *Cache) download(ctx context.Context, name string, want Info, p string) error {
	tmp, err := os.CreateTemp(c.dir, ".part-*")
	if err != nil {
		return fmt.Errorf("file cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	c.downloads.Add(1)
	got, err := c.store.Get(ctx, name, tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fetch %s into the file cache: %w", name, err)
	}
	if got.Digest != want.Digest {
		// Changed between the lookup and the download: keep what was
		// fetched under its own digest, and let the caller try again.
		_ = os.Rename(tmp.Name(), filepath.Join(c.dir, digestFile(got.Digest)))
		c.mu.Lock()
		delete(c.names, name)
		c.mu.Unlock()
		return fmt.Errorf("file %s changed while it was fetched (digest %s, then %s): try again", name, want.Digest, got.Digest)
	}
	if err := os.Chmod(tmp.Name(), 0o444); err != nil {
		return fmt.Errorf("file cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("file cache: %w", err)
	}
	return nil
}

// digestFile is the cache's file name for a digest: "sha256-" and hex.
func digestFile(digest string) string {
	if b64, ok := strings.CutPrefix(digest, "SHA-256="); ok {
		if b, err := base64.URLEncoding.DecodeString(b64); err == nil {
			return "sha256-" + hex.EncodeToString(b)
		}
		if b, err := base64.RawURLEncoding.DecodeString(b64); err == nil {
			return "sha256-" + hex.EncodeToString(b)
		}
	}
	// Unknown form: keep it as a file name, without separators.
	return "digest-" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, digest)
}
