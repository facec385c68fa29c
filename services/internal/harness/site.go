package harness

import (
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/synthsite"
)

// FaultKind is how a page misbehaves.
type FaultKind int

const (
	// Hang accepts the request and never answers: only the crawler's
	// request timeout ends it.
	Hang FaultKind = iota + 1
	// Reset closes the connection with a TCP RST (SO_LINGER 0) instead of
	// answering.
	Reset
	// Garbage answers with bytes that are not HTTP, then closes.
	Garbage
)

func (k FaultKind) String() string {
	switch k {
	case Hang:
		return "hang"
	case Reset:
		return "reset"
	case Garbage:
		return "garbage"
	}
	return "fault(" + strconv.Itoa(int(k)) + ")"
}

// Fault is a page's misbehaviour.
type Fault struct {
	Kind FaultKind
	// Times is how many requests for the page fail before it is served
	// normally; 0 means every request fails.
	Times int
}

// SiteConfig shapes a [Site].
type SiteConfig struct {
	// Pages, Links and Latency are synthsite's: pages /p/0.html ..
	// /p/{Pages-1}.html, one item each, linked so that all are reachable.
	Pages   int
	Links   int
	Latency time.Duration
	// Faults maps page numbers to their misbehaviour.
	Faults map[int]Fault
}

// Site is a loopback HTTP site (pkg/synthsite, plus faulty pages) that
// knows its ground truth and counts every request.
type Site struct {
	URL     string
	cfg     SiteConfig
	pages   http.Handler
	srv     *httptest.Server
	closing chan struct{}

	mu     sync.Mutex
	hits   map[string]int
	faults map[int]int // fault answers given, per page
}

// NewSite starts the site; it stops when the test ends.
func NewSite(t testing.TB, cfg SiteConfig) *Site {
	t.Helper()
	s := &Site{cfg: cfg, pages: synthsite.New(synthsite.Config{Pages: cfg.Pages, Links: cfg.Links, Latency: cfg.Latency}),
		closing: make(chan struct{}), hits: map[string]int{}, faults: map[int]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(func() {
		close(s.closing) // release hanging handlers so Close can return
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
	return s
}

func (s *Site) page(path string) (int, bool) {
	v, ok := strings.CutPrefix(path, "/p/")
	if !ok {
		return 0, false
	}
	v, ok = strings.CutSuffix(v, ".html")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	return n, err == nil && n >= 0 && n < s.cfg.Pages && strconv.Itoa(n) == v
}

func (s *Site) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.hits[r.URL.Path]++
	var fault FaultKind
	if i, ok := s.page(r.URL.Path); ok {
		if f, ok := s.cfg.Faults[i]; ok && (f.Times == 0 || s.faults[i] < f.Times) {
			s.faults[i]++
			fault = f.Kind
		}
	}
	s.mu.Unlock()
	switch fault {
	case Hang:
		select {
		case <-r.Context().Done(): // the client gave up
		case <-s.closing:
		}
		return
	case Reset, Garbage:
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(fmt.Sprintf("harness site: hijack: %v", err)) // the test server always supports it
		}
		if fault == Garbage {
			_, _ = buf.WriteString("\x00\x17\xfe\xffGARBAGE \x89PNG\r\n\x1a\n not http at all\r\n\r\n")
			_ = buf.Flush()
		} else if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // Close sends RST, not FIN
		}
		_ = conn.Close()
		return
	}
	s.pages.ServeHTTP(w, r)
}

// Spec is a spider for the site: every link, one item per page, no
// robots.txt, no politeness delay.
func (s *Site) Spec(name string) string {
	return synthsite.Spec(name, s.URL, synthsite.Config{Pages: s.cfg.Pages, Links: s.cfg.Links})
}

// PageURL is page i's canonical URL.
func (s *Site) PageURL(i int) string { return s.URL + "/p/" + strconv.Itoa(i) + ".html" }

// Truth is what a correct crawl of the site yields.
type Truth struct {
	// Items are the expected items as [ItemKey] spells them.
	Items map[string]bool
	// Dead are the URLs that must end in the dead letters, once each:
	// pages that fail on every attempt the workers make.
	Dead map[string]bool
	// Retried are pages that fail at first and then succeed.
	Retried map[string]bool
}

// Truth computes the ground truth for workers that try a page maxAttempts
// times: a page failing that often is a dead letter whose links are never
// seen, so pages reachable only through it are not crawled.
func (s *Site) Truth(maxAttempts int) Truth {
	cfg := synthsite.Config{Pages: s.cfg.Pages, Links: s.cfg.Links}
	tr := Truth{Items: map[string]bool{}, Dead: map[string]bool{}, Retried: map[string]bool{}}
	if s.cfg.Pages == 0 {
		return tr
	}
	seen := map[int]bool{0: true}
	queue := []int{0}
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		if f, ok := s.cfg.Faults[i]; ok {
			if f.Times == 0 || f.Times >= maxAttempts {
				tr.Dead[s.PageURL(i)] = true
				continue
			}
			tr.Retried[s.PageURL(i)] = true
		}
		tr.Items[itemKey("Item "+strconv.Itoa(i), synthsite.Price(i), "/p/"+strconv.Itoa(i)+".html")] = true
		for _, j := range cfg.LinksOf(i) {
			if !seen[j] {
				seen[j] = true
				queue = append(queue, j)
			}
		}
	}
	return tr
}

// Hits returns every path requested and how often.
func (s *Site) Hits() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.hits)
}

// Requests is the number of requests served so far.
func (s *Site) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.hits {
		n += v
	}
	return n
}
