package files

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
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
//
// Old versions do not pile up: the current version of every name asked
// for is kept, and of the others (versions since replaced, files since
// deleted) only the most recently used, within [WithRetention]'s bounds;
// the rest are deleted from disk after each download and each release. A
// version handed out by [Cache.Acquire] is never deleted before its
// release, so a caller can copy or read it by path; one already opened
// stays readable after deletion (the disk keeps an open file's data).
type Cache struct {
	store     *Store
	dir       string
	ttl       time.Duration
	keepFiles int
	keepBytes int64

	mu       sync.Mutex
	names    map[string]lookup
	curFile  map[string]string // name -> file of its digest as last read from the store
	entries  map[string]*entry // by file (digestFile) in dir
	gen      uint64            // bumped by every change the watch sees
	flights  map[string]*flight
	watching atomic.Bool

	downloads atomic.Int64
	evictions atomic.Int64
}

// entry is one version on disk.
type entry struct {
	size int64
	used time.Time // last handed out (the file's mtime after a restart)
	pins int       // Acquires not yet released
}

// Default bounds of the versions kept beyond the current ones.
const (
	DefaultKeepFiles       = 16
	DefaultKeepBytes int64 = 256 << 20
)

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

// WithRetention bounds the versions kept on disk beyond the current ones
// (and those in use): at most files of them, together at most bytes, the
// most recently used first. Zero keeps none; a negative value is the
// default (DefaultKeepFiles, DefaultKeepBytes).
func WithRetention(files int, bytes int64) CacheOption {
	return func(c *Cache) {
		c.keepFiles, c.keepBytes = files, bytes
		if files < 0 {
			c.keepFiles = DefaultKeepFiles
		}
		if bytes < 0 {
			c.keepBytes = DefaultKeepBytes
		}
	}
}

// NewCache keeps the files of store under dir (created if missing). The
// versions a previous cache left in dir are reused, and bounded like new
// ones from the first download on.
func NewCache(store *Store, dir string, opts ...CacheOption) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("file cache %s: %w", dir, err)
	}
	c := &Cache{store: store, dir: dir, ttl: DefaultLookupTTL, keepFiles: DefaultKeepFiles, keepBytes: DefaultKeepBytes,
		names: map[string]lookup{}, curFile: map[string]string{}, entries: map[string]*entry{}, flights: map[string]*flight{}}
	for _, o := range opts {
		o(c)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("file cache %s: %w", dir, err)
	}
	for _, de := range des {
		name := de.Name()
		switch {
		case strings.HasPrefix(name, ".part-"):
			// A download cut short by a crash: the dir is this cache's alone.
			_ = os.Remove(filepath.Join(dir, name))
		case de.Type().IsRegular() && strings.HasPrefix(name, "sha256-"):
			// A file is reused only if its content is what its name
			// says: it runs as spider code, and what a crash, a full disk
			// or someone else left there is not the stored file.
			p := filepath.Join(dir, name)
			if !hasDigest(p, strings.TrimPrefix(name, "sha256-")) {
				_ = os.Remove(p)
				continue
			}
			if fi, err := de.Info(); err == nil {
				c.entries[name] = &entry{size: fi.Size(), used: fi.ModTime()}
			}
		case de.Type().IsRegular() && strings.HasPrefix(name, "digest-"):
			// A digest this version cannot check: fetched again when used.
			_ = os.Remove(filepath.Join(dir, name))
		}
	}
	return c, nil
}

// hasDigest reports whether the file at p has SHA-256 hexDigest.
func hasDigest(p, hexDigest string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false
	}
	return hex.EncodeToString(h.Sum(nil)) == hexDigest
}

// Dir is the directory the cache keeps files in.
func (c *Cache) Dir() string { return c.dir }

// Downloads counts the files fetched from the store so far.
func (c *Cache) Downloads() int64 { return c.downloads.Load() }

// Evictions counts the versions deleted from disk so far.
func (c *Cache) Evictions() int64 { return c.evictions.Load() }

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
// file is shared: read it, never write it. It stays while current and
// then while among the recent versions kept; to be sure it is there until
// done with it, use [Cache.Acquire].
func (c *Cache) Path(ctx context.Context, name string) (string, Info, error) {
	p, info, release, err := c.Acquire(ctx, name)
	if err != nil {
		return "", Info{}, err
	}
	release()
	return p, info, nil
}

// Acquire is [Cache.Path] with the version held: the cache does not delete
// it before release is called (once; later calls do nothing).
func (c *Cache) Acquire(ctx context.Context, name string) (path string, info Info, release func(), err error) {
	// Bounded: each round either hands out the file or waits for/does a
	// download; only a version deleted between a download and the pin
	// (replaced and evicted at once) costs another round.
	for range 5 {
		info, err = c.current(ctx, name)
		if err != nil {
			return "", Info{}, nil, err
		}
		df := digestFile(info.Digest)
		p := filepath.Join(c.dir, df)
		c.mu.Lock()
		if e := c.entries[df]; e != nil {
			if _, err := os.Stat(p); err == nil {
				e.pins++
				e.used = time.Now()
				c.mu.Unlock()
				return p, info, c.releaser(df), nil
			}
			delete(c.entries, df) // removed behind the cache's back
		}
		if f, ok := c.flights[info.Digest]; ok {
			c.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return "", Info{}, nil, ctx.Err()
			}
			if f.err != nil {
				return "", Info{}, nil, f.err
			}
			continue
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
			return "", Info{}, nil, f.err
		}
	}
	return "", Info{}, nil, fmt.Errorf("file %s: its version kept changing while it was fetched: try again", name)
}

// releaser is the release of one pin on the version in file df.
func (c *Cache) releaser(df string) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if e := c.entries[df]; e != nil {
				e.pins--
				if e.pins == 0 {
					c.evictLocked()
				}
			}
		})
	}
}

// added records a version just renamed into the cache, then bounds the
// cache.
func (c *Cache) added(df string, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[df] = &entry{size: size, used: time.Now()}
	c.evictLocked()
}

// evictLocked deletes the versions that are neither current, nor held,
// nor among the most recently used within the retention bounds. c.mu is
// held.
func (c *Cache) evictLocked() {
	keep := map[string]bool{}
	for _, df := range c.curFile {
		keep[df] = true
	}
	type old struct {
		df string
		e  *entry
	}
	var others []old
	for df, e := range c.entries {
		if e.pins == 0 && !keep[df] {
			others = append(others, old{df, e})
		}
	}
	slices.SortFunc(others, func(a, b old) int { return b.e.used.Compare(a.e.used) })
	n, bytes := 0, int64(0)
	for _, o := range others {
		if n < c.keepFiles && bytes+o.e.size <= c.keepBytes {
			n++
			bytes += o.e.size
			continue
		}
		if err := os.Remove(filepath.Join(c.dir, o.df)); err != nil && !errors.Is(err, os.ErrNotExist) {
			continue // try again at the next eviction
		}
		delete(c.entries, o.df)
		c.evictions.Add(1)
	}
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
		if errors.Is(err, ErrNotFound) {
			c.mu.Lock()
			delete(c.curFile, name) // its last version is kept only as a recent one
			c.mu.Unlock()
		}
		return Info{}, err
	}
	c.mu.Lock()
	if c.gen == gen { // no change seen meanwhile: the answer may be kept
		c.names[name] = lookup{info: info, at: time.Now()}
	}
	c.curFile[name] = digestFile(info.Digest)
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
		if os.Chmod(tmp.Name(), 0o444) == nil && os.Rename(tmp.Name(), filepath.Join(c.dir, digestFile(got.Digest))) == nil {
			c.added(digestFile(got.Digest), got.Size)
		}
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
	c.added(filepath.Base(p), got.Size)
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
