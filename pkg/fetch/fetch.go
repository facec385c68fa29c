// Package fetch fetches one page with colly and extracts what a spider
// asks for: items by CSS selectors and links to follow. It never talks to
// NATS; the crawler package decides what to do with a [Page] or an error.
//
// colly does the HTTP work: charset decoding to UTF-8, robots.txt (cached
// per host and shared across tasks through Collector.Clone), the body size
// limit and redirects. Every task gets its own clone, so cancellation is per
// task and no visited set grows without bound (AllowURLRevisit: the mesh
// de-duplicates, not colly). Hostile pages are bounded: body size, request
// timeout, redirect count, non-HTML skipped before the body is read.
package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/gocolly/colly/v2"

	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/pkg/urlnorm"
)

// Config bounds what one fetch may cost.
type Config struct {
	MaxBodySize    int           // default 10 MiB
	RequestTimeout time.Duration // default 15s
	MaxRedirects   int           // default 5
	UserAgent      string
	// Transport, when set, replaces the default transport (tests, proxies).
	Transport http.RoundTripper
}

// GoSpider is a spider written in Go: it configures the collector of one
// page (OnHTML callbacks and the like) and reports items and links to out.
type GoSpider func(c *colly.Collector, out *Output)

// Output collects what a Go spider found on a page.
type Output struct {
	items []map[string]any
	links []string
}

// Item records one item.
func (o *Output) Item(data map[string]string) {
	m := make(map[string]any, len(data))
	for k, v := range data {
		m[k] = v
	}
	o.items = append(o.items, m)
}

// Link records a link to follow (resolved against the page by the caller).
func (o *Output) Link(href string) { o.links = append(o.links, href) }

// Fetcher fetches pages; it is safe for concurrent use.
type Fetcher struct {
	cfg    Config
	tmpl   *colly.Collector
	go_    map[string]GoSpider
	robots *robots
}

// New returns a Fetcher; goSpiders maps spec `go:` names to Go spiders.
func New(cfg Config, goSpiders map[string]GoSpider) *Fetcher {
	if cfg.MaxBodySize <= 0 {
		cfg.MaxBodySize = 10 << 20
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 15 * time.Second
	}
	if cfg.MaxRedirects <= 0 {
		cfg.MaxRedirects = 5
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "crawlmesh/1 (+https://github.com/crawlmesh/crawlmesh)"
	}
	c := colly.NewCollector(colly.UserAgent(cfg.UserAgent), colly.AllowURLRevisit())
	// One more byte than the limit: a body that reaches it was cut.
	c.MaxBodySize = cfg.MaxBodySize + 1
	// robots.txt is checked by Fetcher.robots, for redirect targets too.
	c.IgnoreRobotsTxt = true
	c.DetectCharset = true
	c.ParseHTTPErrorResponse = false
	tr := cfg.Transport
	if tr == nil {
		tr = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: cfg.RequestTimeout,
		}
	}
	c.WithTransport(tr)
	c.SetRequestTimeout(cfg.RequestTimeout)
	maxRedirects := cfg.MaxRedirects
	f := &Fetcher{cfg: cfg, tmpl: c, go_: goSpiders,
		robots: newRobots(&http.Client{Transport: tr, Timeout: cfg.RequestTimeout}, cfg.UserAgent)}
	if f.go_ == nil {
		f.go_ = map[string]GoSpider{}
	}
	c.SetRedirectHandler(func(req *http.Request, via []*http.Request) error {
		if len(via) > maxRedirects {
			return fmt.Errorf("%w: more than %d redirects", errRedirect, maxRedirects)
		}
		for _, v := range via {
			if v.URL.String() == req.URL.String() {
				return fmt.Errorf("%w: redirect loop at %s", errRedirect, req.URL)
			}
		}
		if allowed, ok := req.Context().Value(allowedKey{}).([]string); ok && !spec.DomainAllowed(allowed, req.URL) {
			return fmt.Errorf("%w: redirect to %s, outside allowed_domains", errRedirect, req.URL.Host)
		}
		if obey, _ := req.Context().Value(robotsKey{}).(bool); obey {
			return f.robots.check(req.Context(), req.URL)
		}
		return nil
	})
	return f
}

type robotsKey struct{}

type allowedKey struct{}

var errRedirect = errors.New("redirect refused")

// Page is what one fetch found.
type Page struct {
	URL    string // final URL after redirects, canonical
	Status int
	Bytes  int
	Items  []map[string]any // values: string or []string
	Links  []string         // canonical, allowed, unique, in page order
}

// Error is a failed fetch; Transient ones are worth retrying.
type Error struct {
	Transient  bool
	Status     int           // HTTP status, 0 if none
	RetryAfter time.Duration // from a 429/503 Retry-After
	Reason     string        // short and stable: "404", "robots", "timeout", "too-large" ...
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

func (e *Error) Unwrap() error { return e.Err }

// CrawlDelay returns the Crawl-delay of rawURL's host for spider s (0 when
// robots.txt is not obeyed, sets none, or cannot be read now).
func (f *Fetcher) CrawlDelay(ctx context.Context, s *spec.Spec, rawURL string) time.Duration {
	if !s.Politeness.ObeyRobots() {
		return 0
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0
	}
	return f.robots.crawlDelay(ctx, u)
}

// Fetch fetches rawURL for spider s and extracts items and links.
func (f *Fetcher) Fetch(ctx context.Context, s *spec.Spec, rawURL string) (*Page, error) {
	return f.FetchWith(ctx, s, rawURL, nil)
}

// FetchWith is Fetch calling onRequest when the first byte of the response
// arrives: by then the site has certainly started handling the request,
// which is what a politeness delay must be counted from (the request
// leaving is earlier, and the site may pick it up later). It may be called
// again for redirects.
func (f *Fetcher) FetchWith(ctx context.Context, s *spec.Spec, rawURL string, onRequest func()) (*Page, error) {
	var goSpider GoSpider
	if s.Go != "" {
		var ok bool
		if goSpider, ok = f.go_[s.Go]; !ok {
			return nil, &Error{Reason: "no-go-spider", Err: fmt.Errorf("no Go spider %q is registered on this worker", s.Go)}
		}
	}
	if s.Politeness.ObeyRobots() {
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, &Error{Reason: "bad-url", Err: err}
		}
		if err := f.robots.check(ctx, u); err != nil {
			return nil, classify(ctx, err, 0, nil)
		}
	}
	c := f.tmpl.Clone()
	rctx := context.WithValue(context.WithValue(ctx, allowedKey{}, s.AllowedDomains), robotsKey{}, s.Politeness.ObeyRobots())
	if onRequest != nil {
		rctx = httptrace.WithClientTrace(rctx, &httptrace.ClientTrace{
			GotFirstResponseByte: onRequest,
		})
	}
	c.Context = rctx

	var (
		page   = &Page{}
		skip   *Error
		status int
		header http.Header
		body   []byte
		final  *url.URL
	)
	c.OnResponseHeaders(func(r *colly.Response) {
		status, header = r.StatusCode, r.Headers.Clone()
		if r.StatusCode < 200 || r.StatusCode > 299 {
			return
		}
		if n, err := strconv.ParseInt(r.Headers.Get("Content-Length"), 10, 64); err == nil && n > int64(f.cfg.MaxBodySize) {
			skip = &Error{Status: r.StatusCode, Reason: "too-large", Err: fmt.Errorf("Content-Length %d over the %d byte limit", n, f.cfg.MaxBodySize)}
			r.Request.Abort()
			return
		}
		if ct := r.Headers.Get("Content-Type"); ct != "" && !isHTML(ct) {
			skip = &Error{Status: r.StatusCode, Reason: "not-html", Err: fmt.Errorf("content type %q", ct)}
			r.Request.Abort()
		}
	})
	out := &Output{}
	c.OnResponse(func(r *colly.Response) {
		body, final = r.Body, r.Request.URL
	})
	if goSpider != nil {
		goSpider(c, out)
	}
	err := c.Visit(rawURL)
	if skip != nil {
		return nil, skip
	}
	if err != nil {
		return nil, classify(ctx, err, status, header)
	}
	if final == nil {
		return nil, &Error{Transient: true, Reason: "no-response", Err: errors.New("no response")}
	}
	if len(body) > f.cfg.MaxBodySize {
		return nil, &Error{Status: status, Reason: "too-large", Err: fmt.Errorf("body over the %d byte limit", f.cfg.MaxBodySize)}
	}
	if ct := header.Get("Content-Type"); ct == "" && !looksHTML(body) {
		return nil, &Error{Status: status, Reason: "not-html", Err: errors.New("no content type and the body is not HTML")}
	}
	canon, err := urlnorm.Canonical(final.String())
	if err != nil {
		return nil, &Error{Status: status, Reason: "bad-url", Err: err}
	}
	page.URL, page.Status, page.Bytes = canon, status, len(body)
	if goSpider != nil {
		page.Items = out.items
		page.Links = resolveLinks(final, out.links, s)
		return page, nil
	}
	if page.Items, page.Links, err = extract(body, final, s); err != nil {
		return nil, &Error{Status: status, Reason: "parse", Err: err}
	}
	return page, nil
}

// extract parses body, fetched from final, and returns the items and the
// links to follow that s asks for. It is all of a fetch that depends on the
// page's content, kept apart from the HTTP work so it can be fuzzed.
func extract(body []byte, final *url.URL, s *spec.Spec) ([]map[string]any, []string, error) {
	doc, err := goquery.NewDocumentFromReader(bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	items := Extract(doc, s.Items)
	base := final
	if href, ok := doc.Find("base[href]").First().Attr("href"); ok {
		if b, err := final.Parse(strings.TrimSpace(href)); err == nil {
			base = b
		}
	}
	var hrefs []string
	for _, sel := range s.Follow {
		doc.Find(sel).Each(func(_ int, e *goquery.Selection) {
			if h, ok := e.Attr("href"); ok {
				hrefs = append(hrefs, h)
			}
		})
	}
	return items, resolveLinks(base, hrefs, s), nil
}

// Extract applies item rules to a parsed page.
func Extract(doc *goquery.Document, rules []spec.ItemRule) []map[string]any {
	var items []map[string]any
	for _, rule := range rules {
		doc.Find(rule.Selector).Each(func(_ int, e *goquery.Selection) {
			item := make(map[string]any, len(rule.Fields))
			for name, fld := range rule.Fields {
				sel := e
				if fld.CSS != "" {
					sel = e.Find(fld.CSS).First()
				}
				if fld.Attr != "" {
					v, _ := sel.Attr(fld.Attr)
					item[name] = strings.TrimSpace(v)
				} else {
					item[name] = strings.Join(strings.Fields(sel.Text()), " ")
				}
			}
			items = append(items, item)
		})
	}
	return items
}

func resolveLinks(base *url.URL, hrefs []string, s *spec.Spec) []string {
	seen := map[string]bool{}
	var out []string
	for _, h := range hrefs {
		c, err := urlnorm.Resolve(base, h)
		if err != nil || seen[c] {
			continue
		}
		u, err := url.Parse(c)
		if err != nil || !spec.DomainAllowed(s.AllowedDomains, u) {
			continue
		}
		seen[c] = true
		out = append(out, c)
	}
	return out
}

func isHTML(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "text/html" || mt == "application/xhtml+xml"
}

func looksHTML(b []byte) bool {
	return strings.HasPrefix(http.DetectContentType(b), "text/html")
}

// classify turns a colly error into an Error: transport failures, 429 and
// 5xx are transient; robots blocks, other 4xx and refused redirects are not.
func classify(ctx context.Context, err error, status int, h http.Header) *Error {
	switch {
	case errors.Is(err, errRobots), errors.Is(err, colly.ErrRobotsTxtBlocked):
		return &Error{Reason: "robots", Err: err}
	case errors.Is(err, errRedirect):
		return &Error{Status: status, Reason: "redirect", Err: err}
	case ctx.Err() != nil:
		return &Error{Transient: true, Reason: "cancelled", Err: ctx.Err()}
	case status == http.StatusTooManyRequests || status >= 500:
		return &Error{Transient: true, Status: status, Reason: strconv.Itoa(status), RetryAfter: retryAfter(h), Err: err}
	case status >= 200:
		// colly reports 203-299 as errors; they are answers, just not pages.
		return &Error{Status: status, Reason: strconv.Itoa(status), Err: err}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &Error{Transient: true, Reason: "timeout", Err: err}
	}
	return &Error{Transient: true, Reason: "network", Err: err}
}

func retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
