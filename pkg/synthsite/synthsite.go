package synthsite

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultLinks     = 10
	DefaultPageBytes = 6000
)

// Config shapes the site.
type Config struct {
	// Pages is the number of pages, /p/0.html .. /p/{Pages-1}.html.
	Pages int
	// Links is the number of distinct links on each page (default 10);
	// fewer when the site has fewer other pages.
	Links int
	// Latency is added to every request, to stand in for a slow server.
	Latency time.Duration
	// PageBytes is the size each page is padded to (default 6000); a page
	// whose markup alone is bigger is not cut.
	PageBytes int
}

func (cfg Config) withDefaults() Config {
	if cfg.Links <= 0 {
		cfg.Links = DefaultLinks
	}
	if cfg.PageBytes <= 0 {
		cfg.PageBytes = DefaultPageBytes
	}
	return cfg
}

// StartPath is the page every crawl of the site starts from.
const StartPath = "/p/0.html"

// LinksOf returns the pages that page i links to, in the order the page
// lists them: first i+1 (so a walk from page 0 reaches every page), then
// pseudo-random others, all distinct and never i itself. It is nil for a
// page outside the site. (Not named Links: Go forbids a method sharing
// the field's name.)
func (cfg Config) LinksOf(i int) []int {
	cfg = cfg.withDefaults()
	if i < 0 || i >= cfg.Pages || cfg.Pages < 2 {
		return nil
	}
	want := min(cfg.Links, cfg.Pages-1)
	out := make([]int, 0, want)
	has := func(j int) bool {
		for _, v := range out {
			if v == j {
				return true
			}
		}
		return false
	}
	out = append(out, (i+1)%cfg.Pages)
	// A hash rather than an arithmetic step so the graph has no pattern a
	// frontier could accidentally exploit; bounded, then filled linearly,
	// so it always ends even on tiny sites.
	for k := uint64(1); len(out) < want && k <= uint64(4*want+16); k++ {
		j := int(mix(uint64(i)<<20^k) % uint64(cfg.Pages))
		if j != i && !has(j) {
			out = append(out, j)
		}
	}
	for j := (i + 2) % cfg.Pages; len(out) < want; j = (j + 1) % cfg.Pages {
		if j != i && !has(j) {
			out = append(out, j)
		}
	}
	return out
}

// mix is splitmix64's finaliser: cheap and well spread.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// Price is the price shown by the item on page i.
func Price(i int) string {
	return fmt.Sprintf("%d.%02d", 1+i%97, (i*31)%100)
}

const filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur. "

const pageTail = "</body>\n</html>\n"

// New returns a handler serving the site described by cfg. It holds no
// per-crawl state.
func New(cfg Config) http.Handler {
	cfg = cfg.withDefaults()
	s := &site{cfg: cfg}
	s.pool.New = func() any { return bytes.NewBuffer(make([]byte, 0, cfg.PageBytes+1024)) }
	return s
}

type site struct {
	cfg  Config
	pool sync.Pool // of *bytes.Buffer; pages are built per request
}

func (s *site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Latency > 0 {
		t := time.NewTimer(s.cfg.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			// The client gave up: don't hold a goroutine for nothing.
			t.Stop()
			return
		}
	}
	i, ok := s.page(r.URL.Path)
	if !ok {
		// Includes /robots.txt: a 404 there means "allow all".
		http.NotFound(w, r)
		return
	}
	b := s.pool.Get().(*bytes.Buffer)
	b.Reset()
	defer s.pool.Put(b)
	s.render(b, i)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	if r.Method != http.MethodHead {
		_, _ = w.Write(b.Bytes())
	}
}

// page maps /p/N.html to N, accepting only the canonical spelling so each
// page has one URL.
func (s *site) page(path string) (int, bool) {
	v, ok := strings.CutPrefix(path, "/p/")
	if !ok {
		return 0, false
	}
	v, ok = strings.CutSuffix(v, ".html")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n >= s.cfg.Pages || strconv.Itoa(n) != v {
		return 0, false
	}
	return n, true
}

func (s *site) render(b *bytes.Buffer, i int) {
	fmt.Fprintf(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Page %d</title></head>\n<body>\n<h1>Page %d</h1>\n", i, i)
	fmt.Fprintf(b, "<div class=\"item\"><span class=\"name\">Item %d</span><span class=\"price\">%s</span></div>\n<ul>\n", i, Price(i))
	for _, j := range s.cfg.LinksOf(i) {
		fmt.Fprintf(b, "<li><a class=\"l\" href=\"/p/%d.html\">Page %d</a></li>\n", j, j)
	}
	b.WriteString("</ul>\n")
	// Pad with paragraphs of text so the parser does realistic work; the
	// last one is cut short to land on PageBytes exactly.
	const pOpen, pClose = "<p>", "</p>\n"
	for {
		room := s.cfg.PageBytes - b.Len() - len(pageTail) - len(pOpen) - len(pClose)
		if room <= 0 {
			break
		}
		b.WriteString(pOpen)
		b.WriteString(filler[:min(room, len(filler))])
		b.WriteString(pClose)
	}
	// Too little room left for a paragraph: whitespace makes up the rest.
	for b.Len()+len(pageTail) < s.cfg.PageBytes {
		b.WriteByte('\n')
	}
	b.WriteString(pageTail)
}

// Spec returns a spider YAML that crawls the site served at base (e.g.
// "http://127.0.0.1:9000") from page 0, following every link and taking
// the one item of each page. An empty name becomes "synth-PAGES".
func Spec(name, base string, cfg Config) string {
	if name == "" {
		name = fmt.Sprintf("synth-%d", cfg.Pages)
	}
	base = strings.TrimRight(base, "/")
	host := base
	if u, err := url.Parse(base); err == nil && u.Host != "" {
		host = u.Host
	}
	q := strconv.Quote
	return `name: ` + q(name) + `
start_urls:
  - ` + q(base+StartPath) + `
allowed_domains:
  - ` + q(host) + `
max_depth: 0
max_pages: 0
follow:
  - "a.l"
items:
  - selector: "div.item"
    fields:
      name: {css: ".name"}
      price: {css: ".price"}
politeness:
  delay: 0s
  parallelism: 64
  robots_txt: false
`
}
