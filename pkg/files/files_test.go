package files_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/crawlmesh/crawlmesh/pkg/files"
	"github.com/crawlmesh/crawlmesh/pkg/natstest"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions()...) }

func open(t *testing.T, opts ...files.Option) *files.Store {
	t.Helper()
	_, js := streamstest.Start(t, streams.Options{})
	st, err := files.Open(t.Context(), js, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "shop.py", "seeds-2024_01.txt", "A.B.C", strings.Repeat("x", 128)} {
		if err := files.ValidName(ok); err != nil {
			t.Errorf("ValidName(%q) = %v", ok, err)
		}
	}
	for name, rule := range map[string]string{
		"":                       "empty",
		strings.Repeat("x", 129): "at most 128",
		".hidden":                "dot",
		"a/b":                    "'/'",
		"a b":                    "' ' not allowed",
		"é":                      "not allowed",
	} {
		err := files.ValidName(name)
		var ne *files.NameError
		if !errors.As(err, &ne) || !strings.Contains(err.Error(), rule) || !strings.Contains(err.Error(), "file name") {
			t.Errorf("ValidName(%q) = %v, want a NameError about %s", name, err, rule)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	st := open(t)
	ctx := t.Context()
	body := bytes.Repeat([]byte("0123456789abcdef"), 100_000) // 1.6 MB: many chunks
	info, err := st.Put(ctx, "big.bin", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(body)) || !strings.HasPrefix(info.Digest, "SHA-256=") || info.Modified.IsZero() {
		t.Errorf("Put info = %+v", info)
	}
	var buf bytes.Buffer
	if _, err := st.Get(ctx, "big.bin", &buf); err != nil || !bytes.Equal(buf.Bytes(), body) {
		t.Fatalf("Get = %d bytes, %v", buf.Len(), err)
	}
	if _, err := st.Put(ctx, "a.txt", strings.NewReader("a")); err != nil {
		t.Fatal(err)
	}
	ls, err := st.List(ctx)
	if err != nil || len(ls) != 2 || ls[0].Name != "a.txt" || ls[1].Name != "big.bin" || ls[1].Digest != info.Digest {
		t.Errorf("List = %+v, %v", ls, err)
	}
	if err := st.Delete(ctx, "a.txt"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "a.txt"); !errors.Is(err, files.ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	if _, err := st.Get(ctx, "a.txt", &buf); !errors.Is(err, files.ErrNotFound) || !strings.Contains(err.Error(), "a.txt") {
		t.Errorf("Get of a deleted file = %v, want ErrNotFound naming it", err)
	}
	if ls, _ := st.List(ctx); len(ls) != 1 {
		t.Errorf("List after Delete = %+v", ls)
	}
	if _, err := st.Put(ctx, "../etc", strings.NewReader("x")); err == nil || !strings.Contains(err.Error(), "dot") {
		t.Errorf("Put ../etc = %v", err)
	}
}

func TestSizeLimit(t *testing.T) {
	st := open(t, files.WithMaxSize(1000))
	ctx := t.Context()
	if _, err := st.Put(ctx, "f", strings.NewReader("old")); err != nil {
		t.Fatal(err)
	}
	_, err := st.Put(ctx, "f", bytes.NewReader(make([]byte, 300_000)))
	var se *files.SizeError
	if !errors.As(err, &se) || se.Limit != 1000 || !strings.Contains(err.Error(), "over the limit of 1000 B") {
		t.Fatalf("Put over the limit = %v, want a SizeError", err)
	}
	var buf bytes.Buffer
	if _, err := st.Get(ctx, "f", &buf); err != nil || buf.String() != "old" {
		t.Errorf("after a refused put the old file reads %q, %v", buf.String(), err)
	}
	if err := st.CheckSize("g", 64<<20+1); err == nil {
		t.Error("CheckSize over the limit passed")
	}
	if err := open(t).CheckSize("g", 100<<20); err == nil || !strings.Contains(err.Error(), "file g is 100 MiB: over the limit of 64 MiB") {
		t.Errorf("CheckSize = %v", err)
	}
}

func TestCacheDownloadsEachDigestOnce(t *testing.T) {
	st := open(t)
	ctx := t.Context()
	if _, err := st.Put(ctx, "s.js", strings.NewReader("v1")); err != nil {
		t.Fatal(err)
	}
	c, err := files.NewCache(st, t.TempDir(), files.WithLookupTTL(0))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	paths := make([]string, 20)
	for i := range paths {
		wg.Go(func() {
			p, _, err := c.Path(ctx, "s.js")
			if err != nil {
				t.Error(err)
			}
			paths[i] = p
		})
	}
	wg.Wait()
	if n := c.Downloads(); n != 1 {
		t.Errorf("20 concurrent callers downloaded %d times, want 1", n)
	}
	for _, p := range paths {
		if b, _ := os.ReadFile(p); string(b) != "v1" {
			t.Errorf("%s holds %q", p, b)
		}
	}
	// A new version is fetched by the next caller; the old one stays.
	if _, err := st.Put(ctx, "s.js", strings.NewReader("v2")); err != nil {
		t.Fatal(err)
	}
	p2, info, err := c.Path(ctx, "s.js")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p2); string(b) != "v2" || p2 == paths[0] {
		t.Errorf("after put v2: %s holds %q", p2, b)
	}
	if c.Downloads() != 2 {
		t.Errorf("downloads = %d, want 2", c.Downloads())
	}
	// Putting v1 back: its digest is on disk already.
	if _, err := st.Put(ctx, "s.js", strings.NewReader("v1")); err != nil {
		t.Fatal(err)
	}
	p3, _, _ := c.Path(ctx, "s.js")
	if p3 != paths[0] || c.Downloads() != 2 {
		t.Errorf("v1 again: %s, downloads %d; want %s without a download", p3, c.Downloads(), paths[0])
	}
	// A second cache on the same directory (a restarted worker) downloads nothing.
	c2, _ := files.NewCache(st, c.Dir())
	if _, _, err := c2.Path(ctx, "s.js"); err != nil || c2.Downloads() != 0 {
		t.Errorf("restarted cache: %v, downloads %d", err, c2.Downloads())
	}
	if err := st.Delete(ctx, "s.js"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Path(ctx, "s.js"); !errors.Is(err, files.ErrNotFound) {
		t.Errorf("Path of a deleted file = %v", err)
	}
	_ = info
}

func TestCacheTTLAndWatch(t *testing.T) {
	st := open(t)
	ctx := t.Context()
	if _, err := st.Put(ctx, "s.js", strings.NewReader("v1")); err != nil {
		t.Fatal(err)
	}
	c, _ := files.NewCache(st, t.TempDir(), files.WithLookupTTL(300*time.Millisecond))
	if _, _, err := c.Path(ctx, "s.js"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, "s.js", strings.NewReader("v2")); err != nil {
		t.Fatal(err)
	}
	// Within the TTL the cached digest may serve; after it, v2.
	time.Sleep(350 * time.Millisecond)
	if p, _, _ := c.Path(ctx, "s.js"); readFile(p) != "v2" {
		t.Errorf("after the TTL: %q", readFile(p))
	}

	// With the watch running, a change is seen at once despite a long TTL.
	c2, _ := files.NewCache(st, t.TempDir(), files.WithLookupTTL(time.Hour))
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = c2.Run(wctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for i := 3; time.Now().Before(deadline); i++ {
		want := "v" + string(rune('0'+i%10))
		if _, err := st.Put(ctx, "s.js", strings.NewReader(want)); err != nil {
			t.Fatal(err)
		}
		var got string
		for range 100 {
			p, _, err := c2.Path(ctx, "s.js")
			if err != nil {
				t.Fatal(err)
			}
			if got = readFile(p); got == want {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got != want {
			t.Fatalf("watching cache serves %q after put %q", got, want)
		}
		if i > 6 {
			break
		}
	}
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// cached lists the versions in a cache's directory.
func cached(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

// TestCacheEviction: five versions of a file leave the current one, the
// held one and the two most recent others on disk; a version held by
// Acquire survives until released, one already opened stays readable
// after its deletion, and the bytes bound holds too.
func TestCacheEviction(t *testing.T) {
	st := open(t)
	ctx := t.Context()
	dir := t.TempDir()
	c, err := files.NewCache(st, dir, files.WithLookupTTL(0), files.WithRetention(2, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	put := func(v string) {
		t.Helper()
		if _, err := st.Put(ctx, "s.js", strings.NewReader(v)); err != nil {
			t.Fatal(err)
		}
	}
	put("v1")
	p1, _, release1, err := c.Acquire(ctx, "s.js")
	if err != nil {
		t.Fatal(err)
	}
	var opened *os.File
	for i := 2; i <= 5; i++ {
		v := "v" + string(rune('0'+i))
		put(v)
		p, _, release, err := c.Acquire(ctx, "s.js")
		if err != nil {
			t.Fatal(err)
		}
		if got := readFile(p); got != v {
			t.Fatalf("after put %s the cache serves %q", v, got)
		}
		if i == 2 {
			// A reader with the file open, as a process reading it would.
			if opened, err = os.Open(p); err != nil {
				t.Fatal(err)
			}
			defer opened.Close()
		}
		release()
		if got := readFile(p1); got != "v1" {
			t.Fatalf("the held v1 reads %q after put %s", got, v)
		}
	}
	// v5 current, v1 held, v4 and v3 the recent others; v2 deleted.
	if got := cached(t, dir); len(got) != 4 || c.Evictions() != 1 {
		t.Errorf("after 5 versions with v1 held: %v, %d evictions; want 4 files, 1 eviction", got, c.Evictions())
	}
	if b, err := io.ReadAll(opened); err != nil || string(b) != "v2" {
		t.Errorf("v2, opened before its deletion, reads %q, %v", b, err)
	}
	release1()
	release1() // a second release does nothing
	if got := cached(t, dir); len(got) != 3 {
		t.Errorf("after v1's release: %v, want v5, v4, v3", got)
	}
	if _, err := os.Stat(p1); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("v1, released and the oldest, is still there: %v", err)
	}
	if p, _, err := c.Path(ctx, "s.js"); err != nil || readFile(p) != "v5" || c.Downloads() != 5 {
		t.Errorf("current: %q, %v, %d downloads; want v5 without a download", readFile(p), err, c.Downloads())
	}

	// A restarted worker's cache bounds what the last one left, keeping
	// the current version without fetching it again.
	c2, err := files.NewCache(st, dir, files.WithLookupTTL(0), files.WithRetention(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if p, _, err := c2.Path(ctx, "s.js"); err != nil || readFile(p) != "v5" || c2.Downloads() != 0 {
		t.Errorf("restarted: %q, %v, %d downloads", readFile(p), err, c2.Downloads())
	}
	if got := cached(t, dir); len(got) != 1 {
		t.Errorf("restarted with no retention: %v, want only the current version", got)
	}

	// The bytes bound: versions of 100 bytes, at most 250 bytes of others.
	dir3 := t.TempDir()
	c3, _ := files.NewCache(st, dir3, files.WithLookupTTL(0), files.WithRetention(10, 250))
	for i := range 5 {
		put(strings.Repeat(string(rune('a'+i)), 100))
		if _, _, err := c3.Path(ctx, "s.js"); err != nil {
			t.Fatal(err)
		}
	}
	if got := cached(t, dir3); len(got) != 3 {
		t.Errorf("with 250 bytes for others: %v, want the current and 2 others", got)
	}
}

// A cache reuses a file a previous cache left only if its content is
// what its name says: the files run as spider code, and a planted file
// named after the stored script's digest was run instead of it (found by
// review). A genuine one is reused without a download.
func TestCacheChecksReusedFiles(t *testing.T) {
	st := open(t)
	ctx := t.Context()
	info, err := st.Put(ctx, "s.js", strings.NewReader("function parse() { return 'stored' }"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, err := files.NewCache(st, dir)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := c.Path(ctx, "s.js")
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(p)

	// A genuine file from an earlier cache is reused.
	c, err = files.NewCache(st, dir)
	if err != nil {
		t.Fatal(err)
	}
	if p2, _, err := c.Path(ctx, "s.js"); err != nil || p2 != p || c.Downloads() != 0 {
		t.Errorf("genuine file: path %q, %v, %d downloads; want %q reused", p2, err, c.Downloads(), p)
	}

	// A planted one is not.
	if err := os.WriteFile(filepath.Join(dir, name), []byte("function parse() { return 'planted' }"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = files.NewCache(st, dir)
	if err != nil {
		t.Fatal(err)
	}
	p3, _, err := c.Path(ctx, "s.js")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p3)
	if err != nil || !strings.Contains(string(b), "stored") || c.Downloads() != 1 {
		t.Errorf("after a planted file the cache gives %q (%v, %d downloads), want the stored file (digest %s) fetched again", b, err, c.Downloads(), info.Digest)
	}
}
