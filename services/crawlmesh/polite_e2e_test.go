package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// politeSite records the start and end of every request it serves, so a
// test can check the limits a host saw, not what the crawler believes.
type politeSite struct {
	srv     *httptest.Server
	pages   int
	latency time.Duration
	// status, when set, answers a path before the page is served
	status func(path string, n int) (code int, header http.Header)
	// redirects: /p/N answers 301 to /p/N+100, which serves page N
	redirects map[int]bool

	mu   sync.Mutex
	reqs []span
	hits map[string]int
}

type span struct {
	path       string
	start, end time.Time
	code       int
}

// newPoliteSite serves pages /p/0 .. /p/N-1; page i links to i+1 .. i+3.
// addr is a loopback address to listen on ("" picks 127.0.0.1).
func newPoliteSite(t *testing.T, addr string, pages int, latency time.Duration) *politeSite {
	s := &politeSite{pages: pages, latency: latency, hits: map[string]int{}}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	if addr != "" {
		ln, err := net.Listen("tcp", addr+":0")
		if err != nil {
			t.Skipf("cannot listen on %s: %v", addr, err)
		}
		s.srv.Listener.Close()
		s.srv.Listener = ln
	}
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *politeSite) host() string { return strings.TrimPrefix(s.srv.URL, "http://") }

func (s *politeSite) serve(w http.ResponseWriter, r *http.Request) {
	sp := span{path: r.URL.Path, start: time.Now(), code: 200}
	defer func() {
		sp.end = time.Now()
		s.mu.Lock()
		s.reqs = append(s.reqs, sp)
		s.mu.Unlock()
	}()
	if r.URL.Path == "/robots.txt" {
		sp.code = 404
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	s.hits[r.URL.Path]++
	n := s.hits[r.URL.Path]
	s.mu.Unlock()
	if s.status != nil {
		if code, h := s.status(r.URL.Path, n); code != 0 {
			for k, v := range h {
				w.Header()[k] = v
			}
			sp.code = code
			w.WriteHeader(code)
			return
		}
	}
	time.Sleep(s.latency)
	i, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/p/"))
	if err == nil && s.redirects[i] {
		sp.code = http.StatusMovedPermanently
		http.Redirect(w, r, "/p/"+strconv.Itoa(i+100), sp.code)
		return
	}
	if err == nil && i >= 100 && s.redirects[i-100] {
		i -= 100
	}
	if err != nil || i < 0 || i >= s.pages {
		sp.code = 404
		http.NotFound(w, r)
		return
	}
	var b strings.Builder
	for j := i + 1; j <= i+3 && j < s.pages; j++ {
		fmt.Fprintf(&b, `<a href="/p/%d">%d</a> `, j, j)
	}
	w.Header().Set("Content-Type", "text/html")
	fmt.Fprintf(w, `<html><body><div class="item"><span class="name">%s p%d</span></div>%s</body></html>`, s.host(), i, b.String())
}

// pageSpans returns the page requests (not robots.txt) in start order.
func (s *politeSite) pageSpans() []span {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []span
	for _, sp := range s.reqs {
		if sp.path != "/robots.txt" {
			out = append(out, sp)
		}
	}
	slices.SortFunc(out, func(a, b span) int { return a.start.Compare(b.start) })
	return out
}

// allSpans returns every request the host saw (robots.txt and redirect
// hops included) in start order.
func (s *politeSite) allSpans() []span {
	s.mu.Lock()
	out := slices.Clone(s.reqs)
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b span) int { return a.start.Compare(b.start) })
	return out
}

// count is how many requests the host saw for path, and how many of them
// it answered with code.
func (s *politeSite) count(path string, code int) (all, withCode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range s.reqs {
		if sp.path == path {
			all++
			if sp.code == code {
				withCode++
			}
		}
	}
	return all, withCode
}

// okPages counts the pages answered 200 (not robots.txt, not redirect
// hops).
func okPages(spans []span) int {
	n := 0
	for _, sp := range spans {
		if sp.code == http.StatusOK && sp.path != "/robots.txt" {
			n++
		}
	}
	return n
}

// logSpans writes every request of spans, relative to the first.
func logSpans(t *testing.T, host string, spans []span) {
	t.Helper()
	for i, sp := range spans {
		gap := time.Duration(0)
		if i > 0 {
			gap = sp.start.Sub(spans[i-1].start)
		}
		t.Logf("  %s %s %d +%v..+%v (gap %v)", host, sp.path, sp.code, sp.start.Sub(spans[0].start).Round(10*time.Microsecond),
			sp.end.Sub(spans[0].start).Round(10*time.Microsecond), gap.Round(10*time.Microsecond))
	}
}

// maxConcurrent is the most requests the host had in flight at once.
func maxConcurrent(spans []span) int {
	type ev struct {
		t time.Time
		d int
	}
	var evs []ev
	for _, sp := range spans {
		evs = append(evs, ev{sp.start, 1}, ev{sp.end, -1})
	}
	slices.SortFunc(evs, func(a, b ev) int {
		if c := a.t.Compare(b.t); c != 0 {
			return c
		}
		return a.d - b.d // an end before a start at the same instant
	})
	cur, most := 0, 0
	for _, e := range evs {
		cur += e.d
		most = max(most, cur)
	}
	return most
}

// minGap is the shortest time between two request starts.
func minGap(spans []span) time.Duration {
	gap := time.Duration(1<<62 - 1)
	for i := 1; i < len(spans); i++ {
		gap = min(gap, spans[i].start.Sub(spans[i-1].start))
	}
	return gap
}

func politeSpec(name string, sites []*politeSite, parallelism int, delay string) string {
	var starts, hosts []string
	for _, s := range sites {
		starts = append(starts, strconv.Quote(s.srv.URL+"/p/0"))
		hosts = append(hosts, strconv.Quote(s.host()))
	}
	return `name: ` + name + `
start_urls: [` + strings.Join(starts, ", ") + `]
allowed_domains: [` + strings.Join(hosts, ", ") + `]
follow: ["a"]
items:
  - selector: "div.item"
    fields: { name: { css: ".name" } }
politeness:
  parallelism: ` + strconv.Itoa(parallelism) + `
  delay: ` + delay + `
`
}

// TestPolitenessHoldsMeshWide: three workers, one host. With parallelism
// 1 and delay 50ms the host never sees two requests at once nor two starts
// closer than 50ms (5ms timer slack), counting every request: robots.txt
// (fetched once for the whole mesh) and each redirect hop (/p/42 → /p/142)
// included, also while a worker is SIGKILLed and a fourth joins
// mid-crawl; with parallelism 3 it never sees four.
func TestPolitenessHoldsMeshWide(t *testing.T) {
	m := startMesh(t, 3)

	site := newPoliteSite(t, "", 60, 20*time.Millisecond)
	site.redirects = map[int]bool{7: true, 23: true, 42: true}
	m.apply(politeSpec("strict", []*politeSite{site}, 1, "50ms"))
	id := strings.TrimSpace(m.mustCLI("crawl", "start", "strict"))
	waitFor(t, 30*time.Second, "15 pages", func() bool { return len(site.pageSpans()) >= 15 })
	m.workers[1].Signal(syscall.SIGKILL)
	m.workers = append(m.workers, m.startWorker("w4"))
	if _, errOut, code := m.cli("crawl", "wait", id); code != 0 {
		t.Fatalf("crawl wait: exit %d\n%s", code, errOut)
	}
	all := site.allSpans()
	pages := okPages(all)
	if pages < 60 {
		t.Fatalf("%d pages answered 200, want all 60", pages)
	}
	// Tasks waited far longer than the 5s AckWait for their turn; kept
	// alive, none was redelivered: only the killed worker's one request in
	// flight may be repeated.
	if extra := pages - 60; extra > 1 {
		t.Errorf("%d pages fetched twice: waiting tasks were redelivered", extra)
	}
	for n := range site.redirects {
		from, hops := site.count("/p/"+strconv.Itoa(n), http.StatusMovedPermanently)
		_, landed := site.count("/p/"+strconv.Itoa(n+100), http.StatusOK)
		if hops == 0 || landed == 0 || from > 2 {
			t.Errorf("/p/%d: %d requests (%d answered 301), /p/%d answered 200 %d times", n, from, hops, n+100, landed)
		}
	}
	if n, _ := site.count("/robots.txt", http.StatusNotFound); n != 1 {
		t.Errorf("robots.txt requested %d times by the mesh, want once (shared)", n)
	}
	if c := maxConcurrent(all); c != 1 {
		t.Errorf("parallelism 1: the host saw %d requests at once (robots.txt and redirect hops included)", c)
	}
	if g := minGap(all); g < 45*time.Millisecond {
		t.Errorf("delay 50ms: two starts %v apart (robots.txt and redirect hops included)", g)
		logSpans(t, site.host(), all)
	}
	hops := 0
	for _, sp := range all {
		if sp.code == http.StatusMovedPermanently {
			hops++
		}
	}
	el := all[len(all)-1].start.Sub(all[0].start)
	t.Logf("parallelism 1, delay 50ms: %d requests (%d pages, %d redirect hops, robots.txt) in %v = %.1f req/s (the delay allows %.1f/s); min gap %v",
		len(all), pages, hops, el.Round(time.Millisecond), float64(len(all)-1)/el.Seconds(), 1/(0.05), minGap(all))

	site3 := newPoliteSite(t, "", 300, 30*time.Millisecond)
	m.apply(politeSpec("three", []*politeSite{site3}, 3, "0s"))
	id = strings.TrimSpace(m.mustCLI("crawl", "start", "three"))
	waitFor(t, 30*time.Second, "40 pages", func() bool { return len(site3.pageSpans()) >= 40 })
	m.workers[2].Signal(syscall.SIGKILL)
	m.workers = append(m.workers, m.startWorker("w5"))
	if _, errOut, code := m.cli("crawl", "wait", id); code != 0 {
		t.Fatalf("crawl wait: exit %d\n%s", code, errOut)
	}
	spans := site3.allSpans()
	c := maxConcurrent(spans)
	if c > 3 {
		t.Errorf("parallelism 3: the host saw %d requests at once", c)
	}
	el = spans[len(spans)-1].end.Sub(spans[0].start)
	t.Logf("parallelism 3: at most %d at once; %d requests of 30ms in %v = %.1f req/s (limit %.1f/s)",
		c, len(spans), el.Round(time.Millisecond), float64(len(spans))/el.Seconds(), 3/0.03)
}

// TestPolitenessManyHosts: 50 hosts, each a chain of pages and a 100ms
// delay, crawl in about the time of one host, not 50 times it; each host
// sees robots.txt once and no two starts (robots.txt included) closer
// than the delay.
func TestPolitenessManyHosts(t *testing.T) {
	m := startMesh(t, 3)
	one := newPoliteSite(t, "", 8, 0)
	m.apply(politeSpec("single", []*politeSite{one}, 1, "100ms"))
	t0 := time.Now()
	m.mustCLI("crawl", "start", "single", "--wait")
	single := time.Since(t0)

	var sites []*politeSite
	for i := range 50 {
		sites = append(sites, newPoliteSite(t, "127.0.0."+strconv.Itoa(i+2), 8, 0))
	}
	m.apply(politeSpec("fifty", sites, 1, "100ms"))
	t0 = time.Now()
	m.mustCLI("crawl", "start", "fifty", "--wait")
	fifty := time.Since(t0)
	logged := false
	for _, s := range sites {
		if spans := s.pageSpans(); len(spans) != 8 {
			t.Errorf("%s: %d requests, want 8", s.host(), len(spans))
		}
		if n, _ := s.count("/robots.txt", http.StatusNotFound); n != 1 {
			t.Errorf("%s: robots.txt requested %d times, want once for the mesh", s.host(), n)
		}
		// robots.txt goes through the host's gate like a page.
		if spans := s.allSpans(); minGap(spans) < 95*time.Millisecond {
			t.Errorf("%s: two starts %v apart, delay is 100ms", s.host(), minGap(spans))
			if !logged { // one host's requests show it; fifty would bury it
				logSpans(t, s.host(), spans)
				logged = true
			}
		}
	}
	t.Logf("one host: %v; 50 hosts: %v (%.2fx; serialised would be ~50x)", single.Round(time.Millisecond),
		fifty.Round(time.Millisecond), fifty.Seconds()/single.Seconds())
	if fifty > 3*single {
		t.Errorf("50 hosts took %v, more than 3x one host (%v): hosts are not independent", fifty, single)
	}
}

// TestRetryAfterAndLiveThrottle: a 429 with Retry-After: 2 pauses its host
// for 2s; `throttle set` changes a running crawl's delay within 1s.
func TestRetryAfterAndLiveThrottle(t *testing.T) {
	m := startMesh(t, 2)
	site := newPoliteSite(t, "", 12, 0)
	site.status = func(path string, n int) (int, http.Header) {
		if path == "/p/1" && n == 1 {
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"2"}}
		}
		return 0, nil
	}
	// Parallelism 1: no other request can be on its way when the 429
	// arrives (with more, those already sent cannot be recalled).
	m.apply(politeSpec("pause", []*politeSite{site}, 1, "0s"))
	m.mustCLI("crawl", "start", "pause", "--wait")
	var t429 time.Time
	for _, sp := range site.pageSpans() {
		if sp.code == http.StatusTooManyRequests {
			t429 = sp.end
		} else if !t429.IsZero() && sp.start.Before(t429.Add(2*time.Second-5*time.Millisecond)) {
			t.Errorf("request to %s %v after the 429 with Retry-After: 2", sp.path, sp.start.Sub(t429))
		}
	}
	if t429.IsZero() {
		t.Fatal("the 429 was never served")
	}

	live := newPoliteSite(t, "", 400, 5*time.Millisecond)
	m.apply(politeSpec("live", []*politeSite{live}, 1, "0s"))
	id := strings.TrimSpace(m.mustCLI("crawl", "start", "live"))
	waitFor(t, 30*time.Second, "20 pages", func() bool { return len(live.pageSpans()) >= 20 })
	m.mustCLI("throttle", "set", live.host(), "--delay", "300ms")
	set := time.Now()
	if ls := m.mustCLI("throttle", "ls"); !strings.Contains(ls, live.host()) || !strings.Contains(ls, "300ms") {
		t.Errorf("throttle ls:\n%s", ls)
	}
	waitFor(t, 10*time.Second, "5 requests after the override", func() bool {
		n := 0
		for _, sp := range live.pageSpans() {
			if sp.start.After(set.Add(time.Second)) {
				n++
			}
		}
		return n >= 5
	})
	var after []span
	for _, sp := range live.pageSpans() {
		if sp.start.After(set.Add(time.Second)) {
			after = append(after, sp)
		}
	}
	t.Logf("after throttle set --delay 300ms: %d requests between +1s and +%v, min gap %v",
		len(after), after[len(after)-1].start.Sub(set).Round(time.Millisecond), minGap(after))
	if g := minGap(after); g < 295*time.Millisecond {
		t.Errorf("more than 1s after throttle set --delay 300ms, two starts %v apart", g)
		for _, sp := range live.pageSpans() {
			t.Logf("  %s +%v", sp.path, sp.start.Sub(set))
		}
	}
	m.mustCLI("crawl", "cancel", id)
	m.mustCLI("throttle", "rm", live.host())
	if ls := m.mustCLI("throttle", "ls"); strings.Contains(ls, live.host()) {
		t.Errorf("throttle rm left it:\n%s", ls)
	}
}
