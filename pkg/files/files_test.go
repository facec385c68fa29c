package files_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/crawlmesh/crawlmesh/pkg/files"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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
