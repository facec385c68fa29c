package fetch_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/fetch"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

// seen is one request as a test site saw it.
type seen struct {
	method, path, ua, key, cookie, body string
	viaProxy                            bool
}

// recorder is a loopback site that records every request.
type recorder struct {
	*httptest.Server
	mux  *http.ServeMux
	mu   sync.Mutex
	reqs []seen
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	r := &recorder{mux: http.NewServeMux()}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(b))
		r.mu.Lock()
		r.reqs = append(r.reqs, seen{method: req.Method, path: req.URL.Path, ua: req.UserAgent(), key: req.Header.Get("X-Api-Key"),
			cookie: req.Header.Get("Cookie"), body: string(b), viaProxy: req.Header.Get("X-Via-Proxy") != ""})
		r.mu.Unlock()
		r.mux.ServeHTTP(w, req)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) requests() []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seen(nil), r.reqs...)
}

func (r *recorder) count(path string) int {
	n := 0
	for _, s := range r.requests() {
		if s.path == path {
			n++
		}
	}
	return n
}

func (r *recorder) html(path, body string) {
	r.mux.HandleFunc(path, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, body)
	})
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// Every request of a crawl carries the spider's user agent, headers and
// cookies: robots.txt, the login POST, the page, its redirect hop and a
// sitemap.
func TestRequestSettingsOnEveryRequest(t *testing.T) {
	s := newRecorder(t)
	s.mux.HandleFunc("/robots.txt", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "User-agent: *\nAllow: /\n")
	})
	s.mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "sess", Value: "s1", Path: "/"})
		http.Redirect(w, r, "/account", http.StatusSeeOther)
	})
	s.mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/new", http.StatusMovedPermanently) })
	s.html("/new", "<p>new</p>")
	s.mux.HandleFunc("/sitemap.xml", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>/p/1</loc></url></urlset>`)
	})
	sp := specFor(t, s.URL, `
request:
  user_agent: "shopbot/2.1 (+https://example.com/bot)"
  headers: {X-Api-Key: "${env:SHOP_KEY}"}
  cookies: {currency: EUR}
login:
  url: "`+s.URL+`/login"
  form: {user: demo, password: "${env:SHOP_PASSWORD}"}
`)
	f := fetch.New(fetch.Config{Getenv: env(map[string]string{"SHOP_KEY": "k-123", "SHOP_PASSWORD": "pw-456"})}, nil)
	p, err := f.Fetch(t.Context(), sp, s.URL+"/old")
	if err != nil {
		t.Fatal(err)
	}
	if p.URL != s.URL+"/new" {
		t.Errorf("page %s", p.URL)
	}
	var locs []string
	if err := f.Sitemap(t.Context(), sp, "", s.URL+"/sitemap.xml", nil, nil, func(loc string, _ bool) error {
		locs = append(locs, loc)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(locs) != 1 || locs[0] != s.URL+"/p/1" {
		t.Errorf("sitemap entries %q", locs)
	}
	want := []string{"GET /robots.txt", "GET /login", "POST /login", "GET /account", "GET /old", "GET /new", "GET /sitemap.xml"}
	reqs := s.requests()
	if len(reqs) != len(want) {
		t.Fatalf("requests %+v, want %q", reqs, want)
	}
	for i, r := range reqs {
		if got := r.method + " " + r.path; got != want[i] {
			t.Errorf("request %d: %s, want %s", i, got, want[i])
		}
		if r.ua != "shopbot/2.1 (+https://example.com/bot)" || r.key != "k-123" || !strings.Contains(r.cookie, "currency=EUR") {
			t.Errorf("%s %s: UA %q, key %q, cookie %q", r.method, r.path, r.ua, r.key, r.cookie)
		}
		if r.path != "/robots.txt" && r.path != "/login" && !strings.Contains(r.cookie, "sess=s1") {
			t.Errorf("%s %s: cookie %q without the login's session", r.method, r.path, r.cookie)
		}
	}
	if reqs[2].body != "password=pw-456&user=demo" {
		t.Errorf("login body %q", reqs[2].body)
	}
}

// An unset ${env:NAME} fails the crawl with an error naming the variable,
// never a value.
func TestEnvUnset(t *testing.T) {
	s := newRecorder(t)
	s.html("/", "<p>x</p>")
	sp := specFor(t, s.URL, `
request:
  headers: {X-Api-Key: "${env:SHOP_KEY}", X-Other: "${env:NOT_SET}"}
`)
	f := fetch.New(fetch.Config{Getenv: env(map[string]string{"SHOP_KEY": "very-secret-value"})}, nil)
	for name, run := range requestRuns(t, f, sp, s.URL) {
		err := run()
		fe := fetchErr(t, err)
		if fe.Reason != "env" || !fe.CrawlLevel || fe.Transient {
			t.Errorf("%s: err = %+v, want CrawlLevel Reason env", name, fe)
		}
		if !strings.Contains(err.Error(), "NOT_SET") || strings.Contains(err.Error(), "very-secret-value") {
			t.Errorf("%s: err %q must name NOT_SET and hold no value", name, err)
		}
	}
	if n := len(s.requests()); n != 0 {
		t.Errorf("%d requests made with an unset variable", n)
	}
}

// A ${env:NAME} value a header cannot carry (a line break, a control
// character) fails the crawl once as its configuration, naming the header
// and the variable, never the value: it is no network error to retry page
// by page.
func TestEnvHeaderInvalid(t *testing.T) {
	s := newRecorder(t)
	s.html("/", "<p>x</p>")
	for _, c := range []struct{ name, request, field, variable string }{
		{"header", `headers: {Authorization: "Bearer ${env:TOKEN}", X-Api-Key: "${env:SHOP_KEY}"}`, "request.headers.Authorization", "TOKEN"},
		{"control", `headers: {X-Api-Key: "${env:CTRL}"}`, "request.headers.X-Api-Key", "CTRL"},
		{"user agent", `user_agent: "shopbot/1 ${env:TOKEN}"`, "request.user_agent", "TOKEN"},
	} {
		sp := specFor(t, s.URL, "request:\n  "+c.request+"\n")
		f := fetch.New(fetch.Config{Getenv: env(map[string]string{
			"TOKEN": "secret-1\nX-Injected: secret-2", "CTRL": "secret-3\x01", "SHOP_KEY": "k-1"})}, nil)
		for name, run := range requestRuns(t, f, sp, s.URL) {
			err := run()
			fe := fetchErr(t, err)
			if fe.Reason != "env" || !fe.CrawlLevel || fe.Transient {
				t.Errorf("%s, %s: err = %+v, want CrawlLevel Reason env", c.name, name, fe)
			}
			if msg := err.Error(); !strings.Contains(msg, c.field) || !strings.Contains(msg, c.variable) || strings.Contains(msg, "secret") {
				t.Errorf("%s, %s: err %q must name %s and %s and hold no value", c.name, name, msg, c.field, c.variable)
			}
		}
	}
	if n := len(s.requests()); n != 0 {
		t.Errorf("%d requests made with an unsendable header", n)
	}
}

// forwardProxy is a plain HTTP forward proxy (absolute-URI requests) on
// loopback that marks what it forwards.
func forwardProxy(t *testing.T) (*httptest.Server, *int) {
	t.Helper()
	var mu sync.Mutex
	n := new(int)
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		*n++
		mu.Unlock()
		out, err := http.NewRequestWithContext(r.Context(), r.Method, r.URL.String(), r.Body)
		if err != nil || !r.URL.IsAbs() {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		out.Header = r.Header.Clone()
		out.Header.Del("Proxy-Authorization")
		out.Header.Set("X-Via-Proxy", "1")
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(p.Close)
	return p, n
}

// deadAddr is a loopback address nobody listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Proxies rotate per request; a dead one is a transient network error and
// its password never shows.
func TestProxiesRoundRobin(t *testing.T) {
	s := newRecorder(t)
	s.html("/", "<p>x</p>")
	live, hits := forwardProxy(t)
	sp := specFor(t, s.URL, `
politeness: {robots_txt: false}
request:
  proxies: ["`+live.URL+`", "http://u:${env:PROXY_PW}@`+deadAddr(t)+`"]
`)
	f := fetch.New(fetch.Config{Getenv: env(map[string]string{"PROXY_PW": "hunter2"})}, nil)
	var ok, dead int
	for range 4 {
		_, err := f.FetchWith(t.Context(), sp, "c", s.URL+"/", nil, nil)
		if err == nil {
			ok++
			continue
		}
		fe := fetchErr(t, err)
		if !fe.Transient || fe.CrawlLevel || fe.Reason != "network" {
			t.Errorf("dead proxy: err = %+v, want a transient network error", fe)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error %q shows the proxy password", err)
		}
		dead++
	}
	if ok != 2 || dead != 2 || *hits != 2 {
		t.Errorf("%d ok, %d through the dead proxy, %d through the live one; want 2, 2, 2", ok, dead, *hits)
	}
	for _, r := range s.requests() {
		if !r.viaProxy {
			t.Errorf("%s reached the site without the proxy", r.path)
		}
	}
}

// A JSON API is read and extracted by json rules; other non-HTML types
// are still skipped.
func TestJSONAPI(t *testing.T) {
	s := newRecorder(t)
	s.mux.HandleFunc("/api/items", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.api+json")
		if r.URL.Query().Get("page") == "2" {
			_, _ = io.WriteString(w, `{"items":[{"name":"Cup","price":7}],"next":null}`)
			return
		}
		_, _ = io.WriteString(w, `{"items":[{"name":"Tea","price":12.50,"tags":["a","b"]},{"price":1}],"next":"?page=2&utm_source=x"}`)
	})
	sp := specFor(t, s.URL, `
links: {json: [".next"], strip_query: ["utm_*"]}
items:
  - json: ".items[]"
    fields:
      name: {json: .name}
      price: {json: .price}
      tags: {json: ".tags[]", all: true}
    required: [name]
`)
	f := fetch.New(fetch.Config{}, nil)
	p, err := f.Fetch(t.Context(), sp, s.URL+"/api/items")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 1 || p.Items[0]["name"] != "Tea" || p.Items[0]["price"] != "12.50" ||
		fmt.Sprint(p.Items[0]["tags"]) != "[a b]" || p.Incomplete != 1 {
		t.Errorf("items %#v, incomplete %d", p.Items, p.Incomplete)
	}
	if len(p.Links) != 1 || p.Links[0] != s.URL+"/api/items?page=2" {
		t.Errorf("links %q", p.Links)
	}
}

func TestErrorsAreErrors(t *testing.T) {
	e := &fetch.Error{Reason: "login", CrawlLevel: true, Err: errors.New("login to x failed: status 401")}
	if e.Error() != "login: login to x failed: status 401" || !errors.Is(e, e.Err) {
		t.Errorf("Error() = %q", e.Error())
	}
}

// specFor parses a spec for a site at base; extra is YAML.
func specFor(t *testing.T, base, extra string) *specT {
	t.Helper()
	u, _ := url.Parse(base)
	return parseSpec(t, fmt.Sprintf("name: t\nstart_urls: [%q]\nallowed_domains: [%q]\n%s", base+"/", u.Host, extra))
}

type specT = spec.Spec

func parseSpec(t *testing.T, src string) *spec.Spec {
	t.Helper()
	sp, err := spec.Parse([]byte(src))
	if err != nil {
		t.Fatalf("spec: %v\n%s", err, src)
	}
	return sp
}

// request.timeout replaces the worker's timeout per request; rel=nofollow
// links are not followed unless links.nofollow is false.
func TestSpecTimeoutAndNofollow(t *testing.T) {
	s := newRecorder(t)
	s.mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	s.html("/links", `<a href="/a">a</a><a rel="nofollow" href="/b">b</a>`)
	f := fetch.New(fetch.Config{RequestTimeout: time.Minute}, nil)
	t0 := time.Now()
	_, err := f.Fetch(t.Context(), specFor(t, s.URL, "politeness: {robots_txt: false}\nrequest: {timeout: 200ms}\n"), s.URL+"/slow")
	if fe := fetchErr(t, err); !fe.Transient || fe.Reason != "timeout" || time.Since(t0) > 3*time.Second {
		t.Errorf("err = %+v after %v, want a timeout after 200ms", fe, time.Since(t0))
	}
	for _, c := range []struct {
		extra string
		want  int
	}{{"links: {follow: [a]}\n", 1}, {"links: {follow: [a], nofollow: false}\n", 2}} {
		p, err := f.Fetch(t.Context(), specFor(t, s.URL, "politeness: {robots_txt: false}\n"+c.extra), s.URL+"/links")
		if err != nil || len(p.Links) != c.want {
			t.Errorf("%s: links %v, %v; want %d", c.extra, p, err, c.want)
		}
	}
}

// SetLive changes a running Fetcher: the next request carries the new
// user agent, goes through the cluster's proxies (a spider's own
// request.proxies still win) and is held to the new body limit.
func TestSetLive(t *testing.T) {
	s := newRecorder(t)
	s.html("/", "<p>"+strings.Repeat("x", 3000)+"</p>")
	live, hits := forwardProxy(t)
	plain := specFor(t, s.URL, "\npoliteness: {robots_txt: false}\n")
	f := fetch.New(fetch.Config{Getenv: env(map[string]string{"PROXY_HOST": strings.TrimPrefix(live.URL, "http://")})}, nil)
	if _, err := f.FetchWith(t.Context(), plain, "c", s.URL+"/", nil, nil); err != nil {
		t.Fatal(err)
	}
	f.SetLive(fetch.Live{UserAgent: "livebot/2", Proxies: []string{"http://${env:PROXY_HOST}"}})
	if _, err := f.FetchWith(t.Context(), plain, "c", s.URL+"/", nil, nil); err != nil {
		t.Fatal(err)
	}
	f.SetLive(fetch.Live{UserAgent: "livebot/3", MaxBodySize: 1024})
	_, err := f.FetchWith(t.Context(), plain, "c", s.URL+"/", nil, nil)
	if fe := fetchErr(t, err); fe.Reason != "too-large" {
		t.Errorf("3000-byte page with max_body 1024: %+v; want too-large", fe)
	}
	rs := s.requests()
	if len(rs) != 3 || rs[0].viaProxy || rs[0].ua == "livebot/2" || !rs[1].viaProxy || rs[1].ua != "livebot/2" || rs[2].viaProxy || rs[2].ua != "livebot/3" {
		t.Errorf("requests %+v; want the default UA direct, then livebot/2 through the proxy, then livebot/3 direct", rs)
	}
	if *hits != 1 {
		t.Errorf("%d requests through the proxy; want 1", *hits)
	}
}

// A spec stored before Accept-Encoding was refused at apply still gets
// pages and robots.txt decompressed: set by hand, the header turned the
// client's own gzip handling off, so a gzipped robots.txt read as no
// rules and a disallowed page was fetched (found by review).
func TestStoredAcceptEncodingNotSent(t *testing.T) {
	s := newRecorder(t)
	gz := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				_, _ = io.WriteString(w, body)
				return
			}
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			_, _ = io.WriteString(zw, body)
			_ = zw.Close()
		}
	}
	s.mux.HandleFunc("/robots.txt", gz("User-agent: *\nDisallow: /d/\n"))
	s.mux.HandleFunc("/p", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		gz(`<a href="/ok/1">ok</a> <a href="/d/1">d</a>`)(w, r)
	})
	sp := specFor(t, s.URL, "request: {headers: {Accept-Encoding: \"gzip, deflate, br\"}}\nlinks: {follow: [a]}\n")
	f := fetch.New(fetch.Config{}, nil)
	p, err := f.Fetch(t.Context(), sp, s.URL+"/p")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Links) != 2 || p.Links[0] != s.URL+"/ok/1" {
		t.Errorf("links of a gzipped page: %q, want /ok/1 and /d/1", p.Links)
	}
	_, err = f.Fetch(t.Context(), sp, s.URL+"/d/1")
	var fe *fetch.Error
	if !errors.As(err, &fe) || fe.Reason != "robots" {
		t.Errorf("fetch of a page a gzipped robots.txt disallows: %v, want refused by robots.txt", err)
	}
}

// requestRuns are the ways a worker makes requests for a crawl of sp on
// base: each returns its error.
func requestRuns(t *testing.T, f *fetch.Fetcher, sp *spec.Spec, base string) map[string]func() error {
	return map[string]func() error{
		"Prepare":   func() error { _, err := f.Prepare(t.Context(), sp, "c", base+"/", nil); return err },
		"FetchWith": func() error { _, err := f.FetchWith(t.Context(), sp, "c", base+"/", nil, nil); return err },
		"Sitemap": func() error {
			return f.Sitemap(t.Context(), sp, "c", base+"/s.xml", nil, nil, func(string, bool) error { return nil })
		},
	}
}
