package main

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// trapSite is a loopback site full of what breaks crawlers, with its
// ground truth: the exact items a correct crawl yields, and a log of every
// request so tests can assert what was never fetched.
type trapSite struct {
	srv      *httptest.Server
	products int
	latency  time.Duration

	mu    sync.Mutex
	hits  map[string]int
	uas   map[string]int // requests by User-Agent
	flaky int
}

func newTrapSite(t testing.TB, products int, latency time.Duration) *trapSite {
	s := &trapSite{products: products, latency: latency, hits: map[string]int{}, uas: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *trapSite) host() string { return strings.TrimPrefix(s.srv.URL, "http://") }

func (s *trapSite) hitCount(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// userAgents returns how many requests each User-Agent made.
func (s *trapSite) userAgents() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.uas)
}

// fetched returns every path requested and how often.
func (s *trapSite) fetched() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.hits)
}

func item(name, price string) string {
	return `<div class="item"><span class="name">` + name + `</span><span class="price">` + price + `</span></div>`
}

func page(body string) string {
	return "<!doctype html><html><head><title>t</title></head><body>" + body + "</body></html>"
}

func (s *trapSite) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	s.mu.Lock()
	s.hits[p]++
	s.uas[r.UserAgent()]++
	s.mu.Unlock()
	html := func(body string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page(body))
	}
	if s.latency > 0 && p != "/robots.txt" {
		select {
		case <-time.After(s.latency):
		case <-r.Context().Done():
			return
		}
	}
	host := s.host()
	switch {
	case p == "/robots.txt":
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "User-agent: *\nDisallow: /private/\n")
	case p == "/":
		html(`<a href="/cat/1">cat</a> <a href="/cat/1#top">same</a> <a href="http://` + strings.ToUpper(host) + `/cat/1">same</a>
<a href="//` + host + `/cat/./1">same</a> <a href="./cat/x/../1">same</a> <a href="cat/1?">same</a>
<a href="/private/secret">secret</a> <a href="/flaky">flaky</a> <a href="/missing">missing</a>
<a href="/redir">redir</a> <a href="/loop">loop</a> <a href="/slow">slow</a> <a href="/huge">huge</a>
<a href="/file.bin">bin</a> <a href="/broken">broken</a> <a href="/gbk">gbk</a> <a href="/calendar/0">cal</a>
<a href="mailto:x@example.com">mail</a> <a href="javascript:void(0)">js</a> <a href="http://elsewhere.invalid/">off-site</a>`)
	case p == "/cat/1":
		var b strings.Builder
		for i := 1; i <= s.products; i++ {
			fmt.Fprintf(&b, `<a href="/product/%d">p%d</a> `, i, i)
		}
		html(b.String())
	case strings.HasPrefix(p, "/product/"):
		n, err := strconv.Atoi(strings.TrimPrefix(p, "/product/"))
		if err != nil || n < 1 || n > s.products {
			http.NotFound(w, r)
			return
		}
		html(item("product-"+strconv.Itoa(n), strconv.Itoa(n)+".99") + `<a href="/cat/1">back</a>`)
	case p == "/private/secret":
		html(item("secret", "0"))
	case p == "/flaky":
		s.mu.Lock()
		s.flaky++
		first := s.flaky == 1
		s.mu.Unlock()
		if first {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		html(item("flaky", "5.00"))
	case p == "/redir":
		http.Redirect(w, r, "/product/1", http.StatusFound)
	case p == "/loop":
		http.Redirect(w, r, "/loop2", http.StatusFound)
	case p == "/loop2":
		http.Redirect(w, r, "/loop", http.StatusFound)
	case p == "/slow":
		select {
		case <-time.After(1500 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		html(item("slow", "7.00"))
	case p == "/huge":
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Length", strconv.Itoa(30<<20))
		chunk := []byte(strings.Repeat(item("huge", "1"), 1<<10))
		for sent := 0; sent < 30<<20; sent += len(chunk) {
			n := min(len(chunk), 30<<20-sent)
			if _, err := w.Write(chunk[:n]); err != nil {
				return
			}
		}
	case p == "/file.bin":
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write([]byte{0, 1, 2, 3, 0xff, 0xfe, 0x89, 'P', 'N', 'G'})
	case p == "/broken":
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<html><body><div class="item"><span class="name">broken-1</span><span class="price">1.00</div>
<p>unclosed paragraph<table><tr><td>cell<div class="item"><span class="name">broken-2</span><span class="price">2.00</span>`)
	case p == "/gbk":
		body, err := simplifiedchinese.GBK.NewEncoder().String(page(item("中文商品", "9元")))
		if err != nil {
			panic(err) // a fixture bug, not a crawler one
		}
		w.Header().Set("Content-Type", "text/html; charset=gbk")
		fmt.Fprint(w, body)
	case strings.HasPrefix(p, "/calendar/"):
		n, _ := strconv.Atoi(strings.TrimPrefix(p, "/calendar/"))
		html(item("cal-"+strconv.Itoa(n), "0") + fmt.Sprintf(`<a href="/calendar/%d">next month</a>`, n+1))
	default:
		http.NotFound(w, r)
	}
}

// spec is the spider for the trap site: max_depth 4 bounds the calendar.
func (s *trapSite) spec(name string) string {
	return `name: ` + name + `
start_urls: ["` + s.srv.URL + `/"]
allowed_domains: ["` + s.host() + `"]
max_depth: 4
follow: ["a"]
items:
  - selector: "div.item"
    fields:
      name: { css: ".name" }
      price: { css: ".price" }
politeness:
  robots_txt: true
  delay: 0s
  parallelism: 16
`
}

// expected is the exact item set of a correct crawl, as "name|price|path".
func (s *trapSite) expected() map[string]bool {
	want := map[string]bool{
		"flaky|5.00|/flaky":     true,
		"slow|7.00|/slow":       true,
		"broken-1|1.00|/broken": true,
		"broken-2|2.00|/broken": true,
		"中文商品|9元|/gbk":          true,
	}
	for i := 1; i <= s.products; i++ {
		want[fmt.Sprintf("product-%d|%d.99|/product/%d", i, i, i)] = true
	}
	// Calendar pages sit at depth 1..4 below the start page.
	for i := 0; i <= 3; i++ {
		want[fmt.Sprintf("cal-%d|0|/calendar/%d", i, i)] = true
	}
	return want
}
