package fetch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocolly/colly/v2"
	"go.uber.org/goleak"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/crawlmesh/crawlmesh/pkg/extract"
	"github.com/crawlmesh/crawlmesh/pkg/fetch"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// site is an httptest server on 127.0.0.1 that counts requests per path.
type site struct {
	*httptest.Server
	mux  *http.ServeMux
	mu   sync.Mutex
	hits map[string]int
}

func newSite(t *testing.T) *site {
	t.Helper()
	s := &site{mux: http.NewServeMux(), hits: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		s.mu.Unlock()
		s.mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *site) handle(path string, h http.HandlerFunc) { s.mux.HandleFunc(path, h) }

// page serves an HTML body with status 200.
func (s *site) page(path, body string) {
	s.handle(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = write(w, body)
	})
}

func write(w http.ResponseWriter, s string) (int, error) { return w.Write([]byte(s)) }

func (s *site) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// hostport is the site's host:port, for allowed_domains.
func (s *site) hostport() string { return strings.TrimPrefix(s.URL, "http://") }

// parseSpec parses a YAML spec whose start URL and allowed domain are the
// site's; extra is appended (YAML lines).
func (s *site) spec(t *testing.T, extra string) *spec.Spec {
	t.Helper()
	src := fmt.Sprintf("name: t\nstart_urls: [%q]\nallowed_domains: [%q]\n%s", s.URL+"/", s.hostport(), extra)
	sp, err := spec.Parse([]byte(src))
	if err != nil {
		t.Fatalf("spec: %v\n%s", err, src)
	}
	return sp
}

func fetchErr(t *testing.T, err error) *fetch.Error {
	t.Helper()
	var fe *fetch.Error
	if !errors.As(err, &fe) {
		t.Fatalf("err = %T %v, want *fetch.Error", err, err)
	}
	return fe
}

const listPage = `<!doctype html>
<html><head><title>List</title><link rel="next" href="/next"></head>
<body>
<nav>
  <a class="f" href="page2.html">two</a>
  <a class="f" href="../up.html#frag">up</a>
  <a class="f" href="//%[1]s/proto">proto</a>
  <a class="f" href="?page=3">three</a>
  <a class="f" href="HTTP://%[1]s/dir/./page2.html#again">two again</a>
  <a class="f" href="http://other.example/x">off site</a>
  <a class="f" href="mailto:someone@example.com">mail</a>
  <a class="f" href="javascript:void(0)">js</a>
  <a class="f">no href</a>
  <a class="nofollow" href="/not-followed">nope</a>
</nav>
<div class="product"><h2> Tea   pot </h2><span class="price">12 €</span><a href="/p/1">more</a></div>
<div class="product"><h2>Cup</h2><a href="/p/2">more</a></div>
</body></html>`

func TestItemsAndLinks(t *testing.T) {
	s := newSite(t)
	s.page("/dir/list.html", fmt.Sprintf(listPage, s.hostport()))
	sp := s.spec(t, `
follow: ["nav a.f", "link[rel=next]"]
items:
  - selector: div.product
    fields:
      name: {css: h2}
      price: {css: .price}
      link: {css: a, attr: href}
`)
	f := fetch.New(fetch.Config{}, nil)
	p, err := f.Fetch(t.Context(), sp, s.URL+"/dir/list.html?x=1")
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	base := s.URL
	wantLinks := []string{
		base + "/dir/page2.html",
		base + "/up.html",
		base + "/proto",
		base + "/dir/list.html?page=3",
		base + "/next",
	}
	if !reflect.DeepEqual(p.Links, wantLinks) {
		t.Errorf("links:\n got %q\nwant %q", p.Links, wantLinks)
	}
	// href values come back absolute and canonical.
	wantItems := []map[string]any{
		{"name": "Tea pot", "price": "12 €", "link": base + "/p/1"},
		{"name": "Cup", "price": "", "link": base + "/p/2"},
	}
	if !reflect.DeepEqual(p.Items, wantItems) {
		t.Errorf("items:\n got %q\nwant %q", p.Items, wantItems)
	}
	if p.URL != base+"/dir/list.html?x=1" || p.Status != 200 || p.Bytes == 0 {
		t.Errorf("page = %s %d %d bytes", p.URL, p.Status, p.Bytes)
	}
}

func TestBaseHref(t *testing.T) {
	s := newSite(t)
	s.page("/a/page", `<html><head><base href="/docs/v2/"></head><body>
<a href="intro.html">i</a><a href="../v1/old.html">o</a><a href="/abs">a</a><a href="?q=1">q</a></body></html>`)
	sp := s.spec(t, "follow: [a]\n")
	p, err := fetch.New(fetch.Config{}, nil).Fetch(t.Context(), sp, s.URL+"/a/page")
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	want := []string{s.URL + "/docs/v2/intro.html", s.URL + "/docs/v1/old.html", s.URL + "/abs", s.URL + "/docs/v2/?q=1"}
	if !reflect.DeepEqual(p.Links, want) {
		t.Errorf("links:\n got %q\nwant %q", p.Links, want)
	}
}

func TestItemFieldWholeElement(t *testing.T) {
	s := newSite(t)
	s.page("/", `<p class="q">  one <b>two</b>
	three </p>`)
	sp := s.spec(t, "items: [{selector: p.q, fields: {text: {css: ''}, cls: {attr: class}}}]\n")
	p, err := fetch.New(fetch.Config{}, nil).Fetch(t.Context(), sp, s.URL+"/")
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	want := []map[string]any{{"text": "one two three", "cls": "q"}}
	if !reflect.DeepEqual(p.Items, want) {
		t.Errorf("items = %q, want %q", p.Items, want)
	}
}

func TestRobotsDisallow(t *testing.T) {
	s := newSite(t)
	s.handle("/robots.txt", func(w http.ResponseWriter, r *http.Request) {
		_, _ = write(w, "User-agent: *\nDisallow: /private/\n")
	})
	s.page("/private/page", "<p>secret</p>")
	s.page("/public", "<p>hello</p>")
	f := fetch.New(fetch.Config{}, nil)

	_, err := f.Fetch(t.Context(), s.spec(t, ""), s.URL+"/private/page")
	fe := fetchErr(t, err)
	if fe.Reason != "robots" || fe.Transient {
		t.Errorf("err = %+v, want permanent Reason robots", fe)
	}
	if n := s.count("/private/page"); n != 0 {
		t.Errorf("disallowed page requested %d times", n)
	}
	if _, err := f.Fetch(t.Context(), s.spec(t, ""), s.URL+"/public"); err != nil {
		t.Errorf("allowed page: %v", err)
	}
	if n := s.count("/robots.txt"); n != 1 {
		t.Errorf("robots.txt fetched %d times, want once (cached per host)", n)
	}

	p, err := f.Fetch(t.Context(), s.spec(t, "politeness: {robots_txt: false}\n"), s.URL+"/private/page")
	if err != nil {
		t.Fatalf("robots_txt: false: %v", err)
	}
	if p.Status != 200 || s.count("/private/page") != 1 {
		t.Errorf("robots_txt: false: status %d, page requested %d times", p.Status, s.count("/private/page"))
	}
}

// A redirect must not lead the crawler into a path robots.txt disallows.
func TestRobotsAppliesToRedirectTarget(t *testing.T) {
	s := newSite(t)
	s.handle("/robots.txt", func(w http.ResponseWriter, r *http.Request) {
		_, _ = write(w, "User-agent: *\nDisallow: /private/\n")
	})
	s.handle("/open", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/private/page", http.StatusFound)
	})
	s.page("/private/page", "<p>secret</p>")
	_, err := fetch.New(fetch.Config{}, nil).Fetch(t.Context(), s.spec(t, ""), s.URL+"/open")
	if err == nil {
		t.Errorf("redirect into a disallowed path fetched it")
	} else if fe := fetchErr(t, err); fe.Transient {
		t.Errorf("err = %+v, want a permanent error", fe)
	}
	if n := s.count("/private/page"); n != 0 {
		t.Errorf("disallowed redirect target requested %d times", n)
	}
}

func TestHTTPErrors(t *testing.T) {
	s := newSite(t)
	s.handle("/gone", http.NotFound)
	s.handle("/busy", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "2")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})
	s.handle("/slow-down", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "too many", http.StatusTooManyRequests)
	})
	// A Retry-After of years is capped: it pauses the host mesh-wide.
	s.handle("/years", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "100000000")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})
	s.handle("/overflow", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "99999999999999999999")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})
	s.handle("/far-date", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", time.Now().AddDate(5, 0, 0).UTC().Format(http.TimeFormat))
		http.Error(w, "too many", http.StatusTooManyRequests)
	})
	s.handle("/broken", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "oops", http.StatusInternalServerError)
	})
	s.handle("/forbidden", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	})
	f := fetch.New(fetch.Config{}, nil)
	sp := s.spec(t, "")
	for _, c := range []struct {
		path       string
		status     int
		transient  bool
		retryAfter time.Duration
	}{
		{"/gone", 404, false, 0},
		{"/forbidden", 403, false, 0},
		{"/busy", 503, true, 2 * time.Second},
		{"/slow-down", 429, true, 0},
		{"/years", 503, true, 10 * time.Minute},
		{"/overflow", 503, true, 10 * time.Minute},
		{"/far-date", 429, true, 10 * time.Minute},
		{"/broken", 500, true, 0},
	} {
		_, err := f.Fetch(t.Context(), sp, s.URL+c.path)
		fe := fetchErr(t, err)
		if fe.Status != c.status || fe.Transient != c.transient || fe.RetryAfter != c.retryAfter || fe.Reason != fmt.Sprint(c.status) {
			t.Errorf("%s: err = %+v, want status %d transient %v retry after %v", c.path, fe, c.status, c.transient, c.retryAfter)
		}
	}
}

// A 204 will be a 204 again: it must not be retried as a network failure.
func TestNoContentIsPermanent(t *testing.T) {
	s := newSite(t)
	s.handle("/empty", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	_, err := fetch.New(fetch.Config{}, nil).Fetch(t.Context(), s.spec(t, ""), s.URL+"/empty")
	if err == nil {
		return // an empty page is acceptable too
	}
	if fe := fetchErr(t, err); fe.Transient {
		t.Errorf("204: err = %+v (Reason %q), want a permanent outcome", fe, fe.Reason)
	}
}

func TestRedirects(t *testing.T) {
	s := newSite(t)
	s.page("/new", "<p>new</p>")
	s.handle("/old", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/x/../new#frag", http.StatusMovedPermanently)
	})
	s.handle("/loop1", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop2", http.StatusFound) })
	s.handle("/loop2", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop1", http.StatusFound) })
	s.handle("/self", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/self", http.StatusFound) })
	// /chain/N redirects N times before a page.
	s.handle("/chain/{n}", func(w http.ResponseWriter, r *http.Request) {
		var n int
		_, _ = fmt.Sscan(r.PathValue("n"), &n)
		if n == 0 {
			_, _ = write(w, "<p>end</p>")
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/chain/%d", n-1), http.StatusFound)
	})
	s.handle("/away", func(w http.ResponseWriter, r *http.Request) {
		// Same server, another host name: outside allowed_domains.
		http.Redirect(w, r, strings.Replace(s.URL, "127.0.0.1", "localhost", 1)+"/new", http.StatusFound)
	})
	f := fetch.New(fetch.Config{}, nil)
	sp := s.spec(t, "")

	p, err := f.Fetch(t.Context(), sp, s.URL+"/old")
	if err != nil {
		t.Fatalf("redirect: %v", err)
	}
	if p.URL != s.URL+"/new" || p.Status != 200 {
		t.Errorf("redirect: page %s %d, want %s/new 200", p.URL, p.Status, s.URL)
	}

	p, err = f.Fetch(t.Context(), sp, s.URL+"/chain/5")
	if err != nil {
		t.Fatalf("5 redirects: %v", err)
	}
	if p.URL != s.URL+"/chain/0" {
		t.Errorf("5 redirects: page %s", p.URL)
	}

	newHits := s.count("/new")
	for _, path := range []string{"/loop1", "/self", "/chain/6", "/away"} {
		_, err := f.Fetch(t.Context(), sp, s.URL+path)
		fe := fetchErr(t, err)
		if fe.Reason != "redirect" || fe.Transient {
			t.Errorf("%s: err = %+v, want permanent Reason redirect", path, fe)
		}
	}
	if n := s.count("/chain/0"); n != 1 {
		t.Errorf("/chain/0 requested %d times, want 1 (only by the 5-redirect chain)", n)
	}
	if n := s.count("/new"); n != newHits {
		t.Errorf("redirect outside allowed_domains was followed (%d requests)", n-newHits)
	}
}

func TestMaxRedirectsConfig(t *testing.T) {
	s := newSite(t)
	s.handle("/chain/{n}", func(w http.ResponseWriter, r *http.Request) {
		var n int
		_, _ = fmt.Sscan(r.PathValue("n"), &n)
		if n == 0 {
			_, _ = write(w, "<p>end</p>")
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/chain/%d", n-1), http.StatusFound)
	})
	f := fetch.New(fetch.Config{MaxRedirects: 2}, nil)
	if _, err := f.Fetch(t.Context(), s.spec(t, ""), s.URL+"/chain/2"); err != nil {
		t.Errorf("2 redirects with MaxRedirects 2: %v", err)
	}
	_, err := f.Fetch(t.Context(), s.spec(t, ""), s.URL+"/chain/3")
	if fe := fetchErr(t, err); fe.Reason != "redirect" {
		t.Errorf("3 redirects with MaxRedirects 2: %+v", fe)
	}
}

const mib = 1 << 20

func htmlOfSize(n int) []byte {
	b := bytes.Repeat([]byte("a"), n)
	copy(b, "<html><body><p>")
	return b
}

func TestTooLargeContentLength(t *testing.T) {
	s := newSite(t)
	clientGone := make(chan bool, 1)
	s.handle("/big", func(w http.ResponseWriter, r *http.Request) {
		body := htmlOfSize(3 * mib)
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		_, _ = w.Write(body[:64<<10])
		http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
			clientGone <- true
		case <-time.After(5 * time.Second):
			clientGone <- false
		}
	})
	_, err := fetch.New(fetch.Config{MaxBodySize: mib}, nil).Fetch(t.Context(), s.spec(t, ""), s.URL+"/big")
	fe := fetchErr(t, err)
	if fe.Reason != "too-large" || fe.Transient {
		t.Errorf("err = %+v, want permanent Reason too-large", fe)
	}
	select {
	case gone := <-clientGone:
		if !gone {
			t.Error("the client did not go away after the headers announced 3 MiB")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler never finished")
	}
}

func TestTooLargeChunked(t *testing.T) {
	s := newSite(t)
	chunked := func(n int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			rc := http.NewResponseController(w)
			_ = rc.Flush() // headers out without Content-Length: chunked
			body := htmlOfSize(n)
			for len(body) > 0 && r.Context().Err() == nil {
				k := min(len(body), 32<<10)
				if _, err := w.Write(body[:k]); err != nil {
					return
				}
				body = body[k:]
			}
		}
	}
	s.handle("/big", chunked(mib+mib/2))
	s.handle("/limit", chunked(mib))
	s.handle("/limit1", chunked(mib+1))
	f := fetch.New(fetch.Config{MaxBodySize: mib}, nil)
	sp := s.spec(t, "")
	for _, path := range []string{"/big", "/limit1"} {
		_, err := f.Fetch(t.Context(), sp, s.URL+path)
		if fe := fetchErr(t, err); fe.Reason != "too-large" {
			t.Errorf("%s: err = %+v, want Reason too-large", path, fe)
		}
	}
	p, err := f.Fetch(t.Context(), sp, s.URL+"/limit")
	if err != nil {
		t.Fatalf("body of exactly MaxBodySize: %v", err)
	}
	if p.Bytes != mib {
		t.Errorf("Bytes = %d, want %d", p.Bytes, mib)
	}
}

func TestNotHTML(t *testing.T) {
	s := newSite(t)
	s.handle("/bin", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = write(w, "<html><body>looks like html</body></html>")
	})
	s.handle("/png-untyped", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil // no sniffing by net/http
		_, _ = w.Write([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"))
	})
	s.handle("/html-untyped", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil
		_, _ = write(w, "<html><body><a href=/x>x</a></body></html>")
	})
	s.handle("/xhtml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xhtml+xml; charset=utf-8")
		_, _ = write(w, "<html><body><a href=/x>x</a></body></html>")
	})
	f := fetch.New(fetch.Config{}, nil)
	sp := s.spec(t, "follow: [a]\n")
	for _, path := range []string{"/bin", "/png-untyped"} {
		_, err := f.Fetch(t.Context(), sp, s.URL+path)
		if fe := fetchErr(t, err); fe.Reason != "not-html" || fe.Transient {
			t.Errorf("%s: err = %+v, want permanent Reason not-html", path, fe)
		}
	}
	for _, path := range []string{"/html-untyped", "/xhtml"} {
		p, err := f.Fetch(t.Context(), sp, s.URL+path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if len(p.Links) != 1 || p.Links[0] != s.URL+"/x" {
			t.Errorf("%s: links %q", path, p.Links)
		}
	}
}

func TestCharsets(t *testing.T) {
	s := newSite(t)
	serve := func(path, ct, body string) {
		s.handle(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ct)
			_, _ = write(w, body)
		})
	}
	gbk, err := simplifiedchinese.GBK.NewEncoder().String(`<html><body><p class="t">中文标题：爬虫</p></body></html>`)
	if err != nil {
		t.Fatal(err)
	}
	latin, err := charmap.ISO8859_1.NewEncoder().String(`<html><body><p class="t">café crème</p></body></html>`)
	if err != nil {
		t.Fatal(err)
	}
	latinJSON, err := charmap.ISO8859_1.NewEncoder().String(`{"t": "café crème"}`)
	if err != nil {
		t.Fatal(err)
	}
	// Declared past HTML's 1,024-byte prescan, or not at all (review).
	pad := "<style>" + strings.Repeat("/* padding */ ", 150) + "</style>"
	cp1251, err := charmap.Windows1251.NewEncoder().String(`<html><head><title>` + strings.Repeat("t", 2000) +
		`</title><meta charset='windows-1251'></head><body><p class="t">Привет, мир!</p></body></html>`)
	if err != nil {
		t.Fatal(err)
	}
	sjis, err := japanese.ShiftJIS.NewEncoder().String(`<?xml version="1.0" encoding="Shift_JIS"?>` + "\n" +
		`<html xmlns="http://www.w3.org/1999/xhtml"><body><p class="t">日本語のページ</p></body></html>`)
	if err != nil {
		t.Fatal(err)
	}
	serve("/late-meta", "text/html", cp1251)
	serve("/undeclared-utf8", "text/html", `<html><head>`+pad+`</head><body><p class="t">Привет café</p></body></html>`)
	serve("/xhtml-sjis", "application/xhtml+xml", sjis)
	serve("/gbk", "text/html; charset=gbk", gbk)
	serve("/latin", "text/html; charset=iso-8859-1", latin)
	// JSON is UTF-8 by its RFC, but a declared charset is meant.
	serve("/latin.json", "application/json; charset=ISO-8859-1", latinJSON)
	serve("/utf8.json", "application/json; charset=utf-8", `{"t": "café crème"}`)
	sp := s.spec(t, "items: [{selector: p.t, fields: {text: {css: ''}}}, {json: '.', fields: {text: {json: .t}}}]\n")
	f := fetch.New(fetch.Config{}, nil)
	for _, c := range []struct{ path, want string }{
		{"/gbk", "中文标题：爬虫"},
		{"/late-meta", "Привет, мир!"},
		{"/undeclared-utf8", "Привет café"},
		{"/xhtml-sjis", "日本語のページ"},
		{"/latin", "café crème"},
		{"/latin.json", "café crème"},
		{"/utf8.json", "café crème"},
	} {
		p, err := f.Fetch(t.Context(), sp, s.URL+c.path)
		if err != nil {
			t.Errorf("%s: %v", c.path, err)
			continue
		}
		if len(p.Items) != 1 || p.Items[0]["text"] != c.want {
			t.Errorf("%s: items %q, want text %q", c.path, p.Items, c.want)
		}
	}
}

func TestUnclosedTags(t *testing.T) {
	s := newSite(t)
	s.page("/", `<html><body><ul><li>one<li>two<li>three</ul>
<table><tr><td>a<td>b<tr><td>c</table>
<p class=x>first<p class=x>second
<div class=open><span>never closed`)
	sp := s.spec(t, `items:
  - selector: li
    fields: {v: {css: ''}}
  - selector: td
    fields: {v: {css: ''}}
  - selector: p.x
    fields: {v: {css: ''}}
  - selector: div.open
    fields: {v: {css: span}}
`)
	p, err := fetch.New(fetch.Config{}, nil).Fetch(t.Context(), sp, s.URL+"/")
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	var got []string
	for _, it := range p.Items {
		got = append(got, it["v"].(string))
	}
	want := []string{"one", "two", "three", "a", "b", "c", "first", "second", "never closed"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("items %q, want %q", got, want)
	}
}

func TestTimeout(t *testing.T) {
	s := newSite(t)
	s.handle("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	f := fetch.New(fetch.Config{RequestTimeout: 300 * time.Millisecond}, nil)
	t0 := time.Now()
	_, err := f.Fetch(t.Context(), s.spec(t, ""), s.URL+"/slow")
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("took %v with a 300ms request timeout", d)
	}
	fe := fetchErr(t, err)
	if !fe.Transient || (fe.Reason != "timeout" && fe.Reason != "network") {
		t.Errorf("err = %+v, want Transient timeout", fe)
	}
}

func TestCancel(t *testing.T) {
	s := newSite(t)
	started := make(chan struct{}, 1)
	s.handle("/slow", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		select {
		case <-started:
			cancel()
		case <-ctx.Done():
		}
	}()
	t0 := time.Now()
	_, err := fetch.New(fetch.Config{}, nil).Fetch(ctx, s.spec(t, ""), s.URL+"/slow")
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("cancelled fetch took %v", d)
	}
	fe := fetchErr(t, err)
	if !fe.Transient {
		t.Errorf("err = %+v, want Transient", fe)
	}
}

// Cancellation must also cut a fetch that is still waiting for robots.txt.
func TestCancelDuringRobots(t *testing.T) {
	s := newSite(t)
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	s.handle("/robots.txt", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		case <-time.After(10 * time.Second):
		}
		http.NotFound(w, r)
	})
	defer close(release)
	s.page("/", "<p>hi</p>")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		select {
		case <-started:
			cancel()
		case <-ctx.Done():
		}
	}()
	t0 := time.Now()
	_, err := fetch.New(fetch.Config{RequestTimeout: 4 * time.Second}, nil).Fetch(ctx, s.spec(t, ""), s.URL+"/")
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("fetch cancelled while robots.txt hangs returned after %v", d)
	}
	if err == nil {
		t.Fatal("cancelled fetch succeeded")
	}
	if fe := fetchErr(t, err); !fe.Transient {
		t.Errorf("err = %+v, want Transient", fe)
	}
}

func TestGoSpider(t *testing.T) {
	s := newSite(t)
	s.page("/shop/", `<h1>Shop</h1><div class=p data-sku=1>A</div><div class=p data-sku=2>B</div>
<a href="cart">cart</a><a href="http://other.example/">away</a><a href="cart#top">cart again</a>`)
	spiders := map[string]fetch.GoSpider{
		"x": func(c *colly.Collector, out *fetch.Output) {
			c.OnHTML("div.p", func(e *colly.HTMLElement) {
				out.Item(map[string]string{"sku": e.Attr("data-sku"), "name": e.Text})
			})
			c.OnHTML("a[href]", func(e *colly.HTMLElement) { out.Link(e.Attr("href")) })
		},
	}
	f := fetch.New(fetch.Config{}, spiders)
	p, err := f.Fetch(t.Context(), s.spec(t, "go: x\n"), s.URL+"/shop/")
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	wantItems := []map[string]any{{"sku": "1", "name": "A"}, {"sku": "2", "name": "B"}}
	if !reflect.DeepEqual(p.Items, wantItems) {
		t.Errorf("items %q, want %q", p.Items, wantItems)
	}
	if want := []string{s.URL + "/shop/cart"}; !reflect.DeepEqual(p.Links, want) {
		t.Errorf("links %q, want %q", p.Links, want)
	}

	_, err = f.Fetch(t.Context(), s.spec(t, "go: missing\n"), s.URL+"/shop/")
	if err == nil || !strings.Contains(err.Error(), `"missing"`) {
		t.Errorf("unregistered Go spider: err = %v, want one naming it", err)
	}
	if n := s.count("/shop/"); n != 1 {
		t.Errorf("page requested %d times, want 1 (not for the missing spider)", n)
	}
}

func benchPage() []byte {
	var b strings.Builder
	b.WriteString("<!doctype html><html><head><title>Bench</title></head><body><nav>")
	for i := range 10 {
		fmt.Fprintf(&b, `<a class="f" href="/section/%d/page.html">Section %d</a>`, i, i)
	}
	b.WriteString(`</nav><article class="book"><h3><a href="/b/1">A Light in the Attic</a></h3><p class="price">£51.77</p></article>`)
	for b.Len() < 6<<10 {
		b.WriteString("<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt.</p>\n")
	}
	b.WriteString("</body></html>")
	return []byte(b.String())
}

func BenchmarkExtract(b *testing.B) {
	page := benchPage()
	sp, err := spec.Parse([]byte(`{"name":"b","start_urls":["http://example.com/"],"follow":["nav a.f"],
"items":[{"selector":"article.book","fields":{"title":{"css":"h3 a"},"link":{"css":"h3 a","attr":"href"},"price":{"css":".price"}}}]}`))
	if err != nil {
		b.Fatal(err)
	}
	rules, err := extract.Compile(sp)
	if err != nil {
		b.Fatal(err)
	}
	final, _ := url.Parse("http://example.com/page")
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		res, err := rules.Page(final, "text/html", page)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Items) != 1 || len(res.Links) != 10 {
			b.Fatalf("%d items, %d links", len(res.Items), len(res.Links))
		}
	}
}

func BenchmarkFetch(b *testing.B) {
	page := benchPage()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/robots.txt" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	sp, err := spec.Parse([]byte(fmt.Sprintf(`{"name":"b","start_urls":[%q],"allowed_domains":[%q],"follow":["nav a.f"],
"items":[{"selector":"article.book","fields":{"title":{"css":"h3 a"},"price":{"css":".price"}}}]}`, srv.URL+"/", u.Host)))
	if err != nil {
		b.Fatal(err)
	}
	f := fetch.New(fetch.Config{}, nil)
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := f.Fetch(b.Context(), sp, srv.URL+"/page")
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Items) != 1 || len(p.Links) != 10 {
			b.Fatalf("%d items, %d links", len(p.Items), len(p.Links))
		}
	}
}

// A redirect hop is requested as the crawl names it: with strip_query
// applied, as a link would be.
func TestRedirectStripsQuery(t *testing.T) {
	var mu sync.Mutex
	var queries []string
	mux := http.NewServeMux()
	mux.HandleFunc("/r", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/p?utm_source=mail&keep=1", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/p", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<p>p</p>")
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	f := fetch.New(fetch.Config{}, nil)
	p, err := f.Fetch(t.Context(), specFor(t, srv.URL, `links: {strip_query: ["utm_*"]}`), srv.URL+"/r")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if p.URL != srv.URL+"/p?keep=1" || !slices.Equal(queries, []string{"keep=1"}) {
		t.Errorf("page %s, requested with queries %q; want %s/p?keep=1 requested as keep=1", p.URL, queries, srv.URL)
	}
}
