package synthsite

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

// TestReachable checks the promise benchmarks rely on: a walk from page 0
// over LinksOf reaches every page, and each page has the right number of
// distinct links.
func TestReachable(t *testing.T) {
	for _, cfg := range []Config{
		{Pages: 1}, {Pages: 2}, {Pages: 3}, {Pages: 11}, {Pages: 12, Links: 30},
		{Pages: 1000}, {Pages: 10007, Links: 3}, {Pages: 104729 * 2, Links: 1},
	} {
		c := cfg.withDefaults()
		seen := make([]bool, cfg.Pages)
		seen[0] = true
		queue, reached := []int{0}, 1
		for len(queue) > 0 {
			i := queue[0]
			queue = queue[1:]
			links := cfg.LinksOf(i)
			if want := min(c.Links, cfg.Pages-1); len(links) != want {
				t.Fatalf("%+v: page %d has %d links, want %d", cfg, i, len(links), want)
			}
			dup := map[int]bool{}
			for _, j := range links {
				if j < 0 || j >= cfg.Pages || j == i || dup[j] {
					t.Fatalf("%+v: page %d: bad link %d in %v", cfg, i, j, links)
				}
				dup[j] = true
				if !seen[j] {
					seen[j] = true
					reached++
					queue = append(queue, j)
				}
			}
		}
		if reached != cfg.Pages {
			t.Errorf("%+v: reached %d of %d pages", cfg, reached, cfg.Pages)
		}
	}
	if l := (Config{Pages: 5}).LinksOf(5); l != nil {
		t.Errorf("Links outside the site: %v", l)
	}
}

var (
	linkRe = regexp.MustCompile(`<a class="l" href="/p/(\d+)\.html">`)
	itemRe = regexp.MustCompile(`<div class="item"><span class="name">Item (\d+)</span><span class="price">([0-9.]+)</span></div>`)
)

func TestPage(t *testing.T) {
	cfg := Config{Pages: 500}
	h := New(cfg)
	for _, i := range []int{0, 1, 250, 499} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/p/"+strconv.Itoa(i)+".html", nil))
		body := rec.Body.String()
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
			t.Fatalf("page %d: %d %q", i, rec.Code, rec.Header().Get("Content-Type"))
		}
		if len(body) != DefaultPageBytes {
			t.Errorf("page %d: %d bytes, want %d", i, len(body), DefaultPageBytes)
		}
		items := itemRe.FindAllStringSubmatch(body, -1)
		if len(items) != 1 || items[0][1] != strconv.Itoa(i) || items[0][2] != Price(i) {
			t.Errorf("page %d: items %v", i, items)
		}
		var got []int
		for _, m := range linkRe.FindAllStringSubmatch(body, -1) {
			j, _ := strconv.Atoi(m[1])
			got = append(got, j)
		}
		want := cfg.LinksOf(i)
		if len(got) != DefaultLinks || len(got) != len(want) {
			t.Fatalf("page %d: links %v, want %v", i, got, want)
		}
		for k := range want {
			if got[k] != want[k] {
				t.Fatalf("page %d: links %v, want %v", i, got, want)
			}
		}
	}
}

func TestPageBytes(t *testing.T) {
	sizes := []int{1, 6000, 10000}
	for n := 800; n < 1500; n++ { // every way the last paragraph can fall
		sizes = append(sizes, n)
	}
	for _, n := range sizes {
		h := New(Config{Pages: 20, PageBytes: n})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/p/3.html", nil))
		if size := rec.Body.Len(); size != max(n, size) || (n >= 800 && size != n) {
			t.Errorf("PageBytes %d: got %d bytes", n, size)
		}
		if !strings.HasSuffix(rec.Body.String(), "</html>\n") {
			t.Errorf("PageBytes %d: page not closed", n)
		}
	}
}

func TestNotFound(t *testing.T) {
	h := New(Config{Pages: 10})
	for _, p := range []string{"/robots.txt", "/", "/p/10.html", "/p/-1.html", "/p/01.html", "/p/1", "/p/x.html", "/q/1.html"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, rec.Code)
		}
	}
}

func TestLatency(t *testing.T) {
	h := New(Config{Pages: 2, Latency: 50 * time.Millisecond})
	start := time.Now()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/p/1.html", nil))
	if d := time.Since(start); d < 50*time.Millisecond || rec.Code != 200 {
		t.Errorf("served in %v with %d, want >= 50ms and 200", d, rec.Code)
	}

	// A cancelled request returns at once rather than sleeping it out.
	h = New(Config{Pages: 2, Latency: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	go func() {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/p/1.html", nil).WithContext(ctx))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("handler ignored request cancellation")
	}
}

func TestServer(t *testing.T) {
	srv := httptest.NewServer(New(Config{Pages: 3}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + StartPath)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(b) != DefaultPageBytes || resp.ContentLength != int64(len(b)) {
		t.Errorf("GET %s: %d, %d bytes, Content-Length %d", StartPath, resp.StatusCode, len(b), resp.ContentLength)
	}
}

func TestSpecParses(t *testing.T) {
	base := "http://127.0.0.1:9000"
	s, err := spec.Parse([]byte(Spec("synth", base, Config{Pages: 100})))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "synth" || len(s.StartURLs) != 1 || s.StartURLs[0] != base+"/p/0.html" {
		t.Errorf("name/start_urls: %q %v", s.Name, s.StartURLs)
	}
	if len(s.AllowedDomains) != 1 || s.AllowedDomains[0] != "127.0.0.1:9000" {
		t.Errorf("allowed_domains: %v", s.AllowedDomains)
	}
	if len(s.Follow) != 1 || s.Follow[0] != "a.l" || len(s.Items) != 1 || s.Items[0].Selector != "div.item" || len(s.Items[0].Fields) != 2 {
		t.Errorf("follow %v, items %+v", s.Follow, s.Items)
	}
	p := s.Politeness
	if p.DelayOr(time.Hour) != 0 || p.Parallelism != 64 || p.ObeyRobots() {
		t.Errorf("politeness: %+v", p)
	}
	if s, err := spec.Parse([]byte(Spec("", base+"/", Config{Pages: 7}))); err != nil || s.Name != "synth-7" || s.StartURLs[0] != base+"/p/0.html" {
		t.Errorf("defaults: %v %+v", err, s)
	}
}

func BenchmarkHandler(b *testing.B) {
	h := New(Config{Pages: 100000})
	b.ReportAllocs()
	b.SetBytes(DefaultPageBytes)
	i := 0
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/p/"+strconv.Itoa(i%100000)+".html", nil))
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
		i += 7919
	}
}
