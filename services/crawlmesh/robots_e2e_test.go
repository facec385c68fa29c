package main

import (
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/services/internal/harness"
)

// trickyRobots is host A's robots.txt: every line that made the old
// parser void the whole file (and crawl everything), a "*" group stricter
// than the crawlmesh group, a decoy group whose name starts with the
// product token, and rules for longest match, ties, "*" and "$",
// percent-encoding and UTF-8.
const trickyRobots = `# A rule before the first User-agent line belongs to no group: ignored.
Disallow: /before-any-agent
Crawl-delay: soon
this line means nothing

User-agent: *
Disallow: /

User-agent: crawlmesh-pro
Disallow: /

User-Agent: CrawlMesh
Crawl-delay: soon
Disallow: /private
Allow: /private/open
Allow: /docs
Disallow: /docs/internal
Disallow: /tie
Allow: /tie
Disallow: /*.pdf$
Disallow: /exact$
Disallow: /*?sort=
Allow: /page
Disallow: /*.html
Disallow: /caf%c3%a9/
Disallow: /naïve/
Disallow: /*/secret
Disallow: /comment # a comment after the rule
`

// robotsCases are the links every page of every host carries: href as
// written, seen as the host's handler sees the request (decoded path, raw
// query), and whether host A's robots.txt allows it for crawlmesh.
var robotsCases = []struct {
	href, seen string
	allowA     bool
	why        string
}{
	{"/", "/", true, "no rule matches"},
	{"/before-any-agent", "/before-any-agent", true, "a rule before the first User-agent is in no group"},
	{"/private/x", "/private/x", false, "Disallow: /private"},
	{"/private/open/x", "/private/open/x", true, "the longer Allow: /private/open wins"},
	{"/docs/y", "/docs/y", true, "Allow: /docs"},
	{"/docs/internal/x", "/docs/internal/x", false, "the longer Disallow: /docs/internal wins"},
	{"/tie/x", "/tie/x", true, "Allow wins a tie of equal length"},
	{"/files/a.pdf", "/files/a.pdf", false, "Disallow: /*.pdf$"},
	{"/files/a.pdf.txt", "/files/a.pdf.txt", true, "$ anchors /*.pdf$ at the end"},
	{"/exact", "/exact", false, "Disallow: /exact$"},
	{"/exact/more", "/exact/more", true, "$ anchors /exact$ at the end"},
	{"/list?sort=price", "/list?sort=price", false, "Disallow: /*?sort= (the query is part of the path matched)"},
	{"/list?page=2", "/list?page=2", true, "no rule matches"},
	{"/page", "/page", true, "Allow: /page"},
	{"/page.html", "/page.html", false, "Disallow: /*.html (7 octets) is longer than Allow: /page (5)"},
	{"/café/menu", "/café/menu", false, "Disallow: /caf%c3%a9/ (percent-encoded, lower-case hex)"},
	{"/cafe/menu", "/cafe/menu", true, "no rule matches"},
	{"/na%C3%AFve/x", "/naïve/x", false, "Disallow: /naïve/ (UTF-8 in the rule)"},
	{"/naive/x", "/naive/x", true, "no rule matches"},
	{"/a/secret/1", "/a/secret/1", false, "Disallow: /*/secret"},
	{"/secretary", "/secretary", true, "/*/secret needs a second slash"},
	{"/comment/x", "/comment/x", false, "Disallow: /comment with a trailing # comment"},
	{"/jump", "/jump", true, "302 to /private/jumped, which A disallows"},
	{"/to-c", "/to-c", true, "302 to host C, whose robots.txt answers 503"},
}

// robotsHost is a loopback host serving robots.txt with a fixed status
// and body and the same pages as its peers, recording every request.
type robotsHost struct {
	name   string
	srv    *httptest.Server
	status int
	body   string
	peers  []*robotsHost // every host, for links (set before the crawl)

	mu   sync.Mutex
	reqs []robotsReq
}

type robotsReq struct {
	seen, ua string
	at       time.Time
	status   int
}

func newRobotsHost(t *testing.T, name string, status int, body string) *robotsHost {
	h := &robotsHost{name: name, status: status, body: body}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *robotsHost) host() string { return strings.TrimPrefix(h.srv.URL, "http://") }

func (h *robotsHost) serve(w http.ResponseWriter, r *http.Request) {
	seen := r.URL.Path
	if r.URL.RawQuery != "" {
		seen += "?" + r.URL.RawQuery
	}
	rec := robotsReq{seen: seen, ua: r.UserAgent(), at: time.Now(), status: http.StatusOK}
	defer func() {
		h.mu.Lock()
		h.reqs = append(h.reqs, rec)
		h.mu.Unlock()
	}()
	switch seen {
	case "/robots.txt":
		rec.status = h.status
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(h.status)
		_, _ = w.Write([]byte(h.body))
		return
	case "/jump":
		rec.status = http.StatusFound
		http.Redirect(w, r, "/private/jumped", http.StatusFound)
		return
	case "/to-c":
		rec.status = http.StatusFound
		http.Redirect(w, r, h.peers[2].srv.URL+"/landing", http.StatusFound)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "<html><body><h1>%s %s</h1>\n", h.name, html.EscapeString(seen))
	for _, p := range h.peers {
		for _, c := range robotsCases {
			fmt.Fprintf(&b, "<a href=\"%s%s\">%s</a>\n", p.srv.URL, html.EscapeString(c.href), html.EscapeString(c.href))
		}
	}
	b.WriteString("</body></html>\n")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}

// requests returns how often each path was requested, and the requests.
func (h *robotsHost) requests() (map[string]int, []robotsReq) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := map[string]int{}
	for _, r := range h.reqs {
		n[r.seen]++
	}
	return n, slices.Clone(h.reqs)
}

// TestRobotsMeshWide: three workers crawl three hosts: A with a tricky
// robots.txt, B whose robots.txt is a 404 (everything allowed) and C whose
// robots.txt answers 503 (nothing allowed). Every page links to every
// case on every host. No disallowed URL is ever requested, not even as a
// redirect target; every allowed one is; each host's robots.txt is
// requested once for the whole mesh; C's pages go to dead letters, logged.
func TestRobotsMeshWide(t *testing.T) {
	a := newRobotsHost(t, "A", http.StatusOK, trickyRobots)
	b := newRobotsHost(t, "B", http.StatusNotFound, "not here\n")
	c := newRobotsHost(t, "C", http.StatusServiceUnavailable, "down for maintenance\n")
	hosts := []*robotsHost{a, b, c}
	for _, h := range hosts {
		h.peers = hosts
	}
	// One attempt: a page of C would be retried only after robots.txt's
	// minute of "disallow all" (TestRobotsStatus checks that in pkg/fetch),
	// so here it goes to dead letters at once and the crawl ends.
	m := harness.StartMesh(t, harness.MeshConfig{Workers: 3, AckWait: 5 * time.Second, MaxAttempts: 1})
	var starts, domains []string
	for _, h := range hosts {
		starts = append(starts, strconv.Quote(h.srv.URL+"/"))
		domains = append(domains, strconv.Quote(h.host()))
	}
	m.CLI.Apply(`name: robots
start_urls: [` + strings.Join(starts, ", ") + `]
allowed_domains: [` + strings.Join(domains, ", ") + `]
follow: ["a"]
items:
  - selector: "h1"
    fields: { name: { css: "h1" } }
politeness:
  delay: 0s
  parallelism: 2
  robots_txt: true
`)
	t0 := time.Now()
	id := m.CLI.Start("robots")
	st := waitCrawlEnd(t, m, id, 2*time.Minute)
	el := time.Since(t0)
	t.Logf("crawl %s in %v: %+v", st.State, el.Round(time.Millisecond), st)
	if st.State != mesh.CrawlCompleted {
		t.Errorf("crawl %s, want completed; logs:\n%s", st.State, m.CLI.Must("crawl", "logs", id))
	}

	// Host A: exactly the allowed cases, never a disallowed one.
	allowedA := map[string]string{}
	forbiddenA := map[string]string{"/private/jumped": "the redirect target of /jump: Disallow: /private"}
	for _, c := range robotsCases {
		if c.allowA {
			allowedA[c.seen] = c.why
		} else {
			forbiddenA[c.seen] = c.why
		}
	}
	nA, _ := a.requests()
	for seen, why := range forbiddenA {
		if nA[seen] > 0 {
			t.Errorf("A: disallowed %s requested %d times (%s)", seen, nA[seen], why)
		}
	}
	for seen, why := range allowedA {
		if nA[seen] == 0 {
			t.Errorf("A: allowed %s never requested (%s)", seen, why)
		}
	}
	for seen, n := range nA {
		if _, ok := allowedA[seen]; !ok && forbiddenA[seen] == "" && seen != "/robots.txt" {
			t.Errorf("A: unexpected request %s (%d times)", seen, n)
		}
	}

	// Host B: a 404 robots.txt allows everything, the redirect target too.
	nB, _ := b.requests()
	for _, c := range robotsCases {
		if nB[c.seen] == 0 {
			t.Errorf("B (robots.txt 404: allow all): %s never requested", c.seen)
		}
	}
	if nB["/private/jumped"] == 0 {
		t.Errorf("B (robots.txt 404: allow all): /private/jumped (the target of /jump) never requested")
	}

	// Host C: while robots.txt answers 503, nothing but robots.txt.
	nC, _ := c.requests()
	for seen, n := range nC {
		if seen != "/robots.txt" {
			t.Errorf("C (robots.txt 503: disallow all): %s requested %d times", seen, n)
		}
	}

	for _, h := range hosts {
		n, reqs := h.requests()
		if n["/robots.txt"] != 1 {
			var at []string
			for _, r := range reqs {
				if r.seen == "/robots.txt" {
					at = append(at, r.at.Sub(t0).Round(100*time.Microsecond).String())
				}
			}
			t.Errorf("%s: robots.txt requested %d times (at %v after start), want once for the whole mesh", h.name, n["/robots.txt"], at)
		}
		for _, r := range reqs {
			if !strings.HasPrefix(r.ua, "crawlmesh/") {
				t.Errorf("%s: %s requested with User-Agent %q", h.name, r.seen, r.ua)
			}
		}
		var twice []string
		for seen, k := range n {
			if k > 1 && seen != "/robots.txt" {
				twice = append(twice, fmt.Sprintf("%s x%d", seen, k))
			}
		}
		slices.Sort(twice)
		t.Logf("%s (robots.txt %d): %d requests of %d paths; more than once: %v", h.name, h.status, len(reqs), len(n), twice)
	}
	logs := m.CLI.Must("crawl", "logs", id)
	if !strings.Contains(logs, "robots") {
		t.Errorf("crawl logs never mention robots:\n%s", logs)
	}
	// C's start page went to dead letters, and its logs say why.
	if !regexpLine(logs, "dead", c.srv.URL+"/", "robots-unreachable:") {
		t.Errorf("crawl logs lack C's dead letter (robots-unreachable):\n%s", logs)
	}
}
