// Package fetch fetches what a spider asks for — pages, sitemaps, robots.txt
// and the login form — and extracts items and links from pages. It never
// talks to NATS itself; the crawler decides what to do with a [Page] or an
// [*Error], and hands in the mesh-wide pieces: a [Gate] for politeness and
// a [RobotsStore] that shares robots.txt between workers.
//
// The HTTP side is net/http driven by hand, so that every request of a
// crawl — page, redirect hop, robots.txt, sitemap, login POST, the refetch
// after a relogin — carries the spider's request settings (user agent,
// headers, cookies, proxy, timeout; ${env:NAME} expanded at request time)
// and goes through the host's gate (permits.go). Redirects are followed
// here rather than by the client: each hop is checked against the spider's
// rules and robots.txt before it is requested, and takes its own permit.
// colly is still what Go spiders see: their collector is fed the fetched
// response (gospider.go).
//
// Files, by idea: robots.go (robots.txt through the local cache and the
// store), session.go (per-crawl cookie jars, login and relogin),
// transport.go (one HTTP request with the request settings), page.go
// (FetchWith: redirects, body limits, extraction), sitemap.go, permits.go,
// errors.go.
//
// Hostile pages are bounded: body size, request timeout, redirect count,
// non-HTML and non-JSON types skipped before the body is read, the
// cookies a crawl's jar keeps (session.go).
//
// Secrets never leave: no header, cookie or form value, and no proxy
// password, is logged or put in an error; errors about ${env:NAME} name the
// variable only, and errors about the login name the URL as the spec
// writes it (with its ${env:…} references, not their values).
package fetch

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocolly/colly/v2"

	"github.com/crawlmesh/crawlmesh/pkg/extract"
	"github.com/crawlmesh/crawlmesh/pkg/politeness"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/pkg/spiderproto"
)

// Config bounds what one fetch may cost.
type Config struct {
	MaxBodySize    int           // default 10 MiB
	RequestTimeout time.Duration // per HTTP request; default 15s; spec request.timeout overrides
	MaxRedirects   int           // default 5
	UserAgent      string        // default "crawlmesh/1 (+https://github.com/crawlmesh/crawlmesh)"
	// Transport, when set, replaces the default transport (tests). Spider
	// proxies need an *http.Transport (it is cloned, not changed).
	Transport http.RoundTripper
	// Getenv looks up ${env:NAME} at request time; nil: os.LookupEnv.
	Getenv func(string) (string, bool)
	// Robots shares robots.txt mesh-wide; nil: this Fetcher's own cache only.
	Robots RobotsStore
	// RobotsTTL is how long a robots.txt answer (2xx, 4xx) is kept; default
	// 1h. A 5xx or no answer is kept for a minute.
	RobotsTTL time.Duration
	// MaxSessions bounds the crawls whose login sessions (cookie jars) are
	// kept; the least recently used goes first. Default 256.
	MaxSessions int
}

// Live are the settings of a running Fetcher that change without a
// restart (the worker applies the cluster configuration with
// [Fetcher.SetLive]). A request uses the values current when it starts.
type Live struct {
	UserAgent      string
	RequestTimeout time.Duration
	MaxBodySize    int
	RobotsTTL      time.Duration
	// Proxies are used round-robin by spiders that set no
	// request.proxies; ${env:NAME} in them is expanded per request.
	Proxies []string
}

// SetLive replaces the live settings; a zero field keeps the Config's.
func (f *Fetcher) SetLive(l Live) {
	c := f.cfg
	if l.UserAgent == "" {
		l.UserAgent = c.UserAgent
	}
	if l.RequestTimeout <= 0 {
		l.RequestTimeout = c.RequestTimeout
	}
	if l.MaxBodySize <= 0 {
		l.MaxBodySize = c.MaxBodySize
	}
	if l.RobotsTTL <= 0 {
		l.RobotsTTL = c.RobotsTTL
	}
	f.live.Store(&l)
}

// Live returns the settings in effect.
func (f *Fetcher) Live() Live { return *f.live.Load() }

// Gate gives a permit to start one request to host (mesh-wide politeness,
// pkg/politeness). nil: no gate.
type Gate func(ctx context.Context, host string) (*politeness.Permit, error)

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

// Page is what one fetch found.
type Page struct {
	URL        string // final URL after redirects, canonical, strip_query applied
	Status     int
	Bytes      int
	Items      []map[string]any // values: string or []string
	Links      []string         // canonical, allowed, unique, in page order
	Incomplete int              // elements dropped for lacking a required field
	Warnings   []string         // the spec's expressions that failed on this page's data
	// Raw is the page for a programmable spider (script, command), which
	// the caller runs; Items and Links are then empty.
	Raw *spiderproto.Page
}

// Fetcher fetches pages; it is safe for concurrent use.
type Fetcher struct {
	cfg      Config
	client   *http.Client
	proxied  *http.Client // nil when Config.Transport cannot take a proxy
	tmpl     *colly.Collector
	go_      map[string]GoSpider
	robots   *robotsCache
	sessions *sessions

	specMu sync.Mutex
	specs  map[*spec.Spec]*specState

	live    atomic.Pointer[Live] // the settings SetLive changes
	proxyRR atomic.Uint64        // round-robin position in Live.Proxies

	// onRelease, when set (tests), hears of every permit released.
	onRelease func(host string, o politeness.Outcome)
}

// specState is what is kept per parsed spec: its compiled rules and the
// round-robin position in its proxies.
type specState struct {
	once  sync.Once
	rules *extract.Rules
	err   error
	proxy atomic.Uint64
}

// maxSpecs bounds the spec cache: specs are parsed again for each crawl
// version, so old pointers must not pile up.
const maxSpecs = 1024

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
	if cfg.RobotsTTL <= 0 {
		cfg.RobotsTTL = time.Hour
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 256
	}
	var tr *http.Transport
	switch t := cfg.Transport.(type) {
	case nil:
		tr = &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 5 * time.Second,
		}
	case *http.Transport:
		tr = t.Clone()
	}
	// Redirects are followed by hand (page.go), each hop checked and gated.
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	f := &Fetcher{cfg: cfg, go_: goSpiders, robots: newRobotsCache(), sessions: newSessions(cfg.MaxSessions),
		specs: map[*spec.Spec]*specState{}}
	if tr != nil {
		// The spider's proxy for a request rides in its context.
		def := tr.Proxy
		tr.Proxy = func(r *http.Request) (*url.URL, error) {
			if p, ok := r.Context().Value(proxyKey{}).(*url.URL); ok {
				return p, nil
			}
			if def != nil {
				return def(r)
			}
			return nil, nil
		}
		f.proxied = &http.Client{Transport: tr, CheckRedirect: noRedirect}
		f.client = f.proxied
	} else {
		f.client = &http.Client{Transport: cfg.Transport, CheckRedirect: noRedirect}
	}
	if f.go_ == nil {
		f.go_ = map[string]GoSpider{}
	}
	f.tmpl = newReplayCollector(cfg)
	f.SetLive(Live{})
	return f
}

// state returns the cached state of spec s.
func (f *Fetcher) state(s *spec.Spec) *specState {
	f.specMu.Lock()
	st := f.specs[s]
	if st == nil {
		if len(f.specs) >= maxSpecs {
			clear(f.specs) // rare: costs a recompile of the live specs
		}
		st = &specState{}
		f.specs[s] = st
	}
	f.specMu.Unlock()
	return st
}

// Rules returns the compiled extraction rules of s, compiled once per spec
// pointer: the crawler may use them for seeds and sitemap entries.
func (f *Fetcher) Rules(s *spec.Spec) (*extract.Rules, error) {
	st := f.state(s)
	st.once.Do(func() { st.rules, st.err = extract.Compile(s) })
	return st.rules, st.err
}

// Fetch is Prepare then FetchWith for crawl "" without politeness: for
// tests and tools.
func (f *Fetcher) Fetch(ctx context.Context, s *spec.Spec, rawURL string) (*Page, error) {
	if _, err := f.Prepare(ctx, s, "", rawURL, nil); err != nil {
		return nil, err
	}
	return f.FetchWith(ctx, s, "", rawURL, nil, nil)
}

// CrawlDelay returns the Crawl-delay of rawURL's host for spider s (0 when
// robots.txt is not obeyed, sets none, or cannot be read now). Prepare
// replaces it in the crawler.
func (f *Fetcher) CrawlDelay(ctx context.Context, s *spec.Spec, rawURL string) time.Duration {
	if !s.Politeness.ObeyRobots() {
		return 0
	}
	c, err := f.newCall(s, "", nil, "", nil)
	if err != nil {
		return 0
	}
	defer c.ch.release(ctx)
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return 0
	}
	r, err := c.robotsFor(ctx, u)
	if err != nil {
		return 0
	}
	return r.CrawlDelay(c.token)
}

// EndCrawl forgets crawl's login session and cookies (called when a crawl
// is no longer running). Sessions are also bounded (least recently used).
func (f *Fetcher) EndCrawl(crawl string) { f.sessions.drop(crawl) }

// Prepare runs before the caller takes the page's permit: it loads
// robots.txt for rawURL's origin (through gate and the store) and, when the
// spec has a login and this worker has no session for crawl yet, logs in
// (through gate; concurrent callers log in once). It returns the host's
// Crawl-delay for the spider's product token (0 if none or robots.txt is
// not obeyed). A URL robots.txt disallows is the error FetchWith would
// return ("robots", or a transient "robots-unreachable"). A refused login is an *Error with Reason "login", an unset
// ${env:NAME} (or one whose value a header cannot carry) one with Reason
// "env", both CrawlLevel.
func (f *Fetcher) Prepare(ctx context.Context, s *spec.Spec, crawl, rawURL string, gate Gate) (time.Duration, error) {
	c, err := f.newCall(s, crawl, nil, "", gate)
	if err != nil {
		return 0, err
	}
	defer c.ch.release(ctx)
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return 0, &Error{Reason: "bad-url", Err: errBadURL(rawURL)}
	}
	var delay time.Duration
	if s.Politeness.ObeyRobots() {
		r, err := c.robotsFor(ctx, u)
		if err != nil {
			return 0, err
		}
		delay = r.CrawlDelay(c.token)
		// A page robots.txt disallows fails here, before it waits for its
		// host's turn: it makes no request, so it must not spend the
		// host's Crawl-delay. (robots.txt itself, a sitemap task's URL, is
		// never disallowed.)
		if u.Path != "/robots.txt" {
			if err := c.verdict(r, u); err != nil {
				return delay, err
			}
		}
	}
	if c.login != nil && c.sess.logins() == 0 {
		if err := c.relogin(ctx, 0); err != nil {
			return delay, err
		}
	}
	return delay, nil
}
