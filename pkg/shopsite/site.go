package shopsite

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// The spider's identity, and the environment variables the spec reads
// its secrets from.
const (
	ProductToken = "shopbot"
	UserAgent    = "shopbot/2.1 (+http://127.0.0.1/bot)"
	EnvKey       = "SHOP_KEY"
	EnvPassword  = "SHOP_PASSWORD"
	// SessionCookie is the cookie the login sets.
	SessionCookie = "shop_session"
)

// Options configures a Site. Zero fields get the defaults.
type Options struct {
	User     string // login form field "user"; default "crawler"
	Password string // login form field "password"; default "open-sesame-42"
	APIKey   string // X-Api-Key required on /api/; default "k-3f9a2c7e"
	// SessionPages is how many pages one session may fetch; the next
	// answer says the session expired (default 5).
	SessionPages int
	// Parallelism is the spec's politeness.parallelism and the most page
	// requests the site accepts at once without logging a violation
	// (default 1, which also keeps relogins free of races).
	Parallelism int
}

func (o Options) withDefaults() Options {
	if o.User == "" {
		o.User = "crawler"
	}
	if o.Password == "" {
		o.Password = "open-sesame-42"
	}
	if o.APIKey == "" {
		o.APIKey = "k-3f9a2c7e"
	}
	if o.SessionPages <= 0 {
		o.SessionPages = 5
	}
	if o.Parallelism <= 0 {
		o.Parallelism = 1
	}
	return o
}

// Request is one request as the site saw it. Secrets are never kept:
// the API key is "ok", "wrong" or "" (none), cookies and form fields are
// names only, and any occurrence of the password or key elsewhere is
// replaced by "[redacted]".
type Request struct {
	Time       time.Time
	Method     string
	URI        string // path and query, as requested
	Host       string
	UserAgent  string
	APIKey     string
	Cookies    []string // names, sorted
	FormFields []string // names of POSTed form fields, sorted
	Status     int
	Note       string // why the site answered so, e.g. "session expired"
}

// Site is the shop. Its handler is safe for concurrent use.
type Site struct {
	opts Options

	mu       sync.Mutex
	reqs     []Request
	viol     []string
	sessions map[string]int // token -> pages fetched with it
	pages    map[string]int // URI -> 200 answers to GET
	inFlight int
	logins   int

	srv  *http.Server
	base string // set by Start
}

// New returns a shop. Serve it with [Site.Start] or [Site.Handler].
func New(opts Options) *Site {
	return &Site{opts: opts.withDefaults(), sessions: map[string]int{}, pages: map[string]int{}}
}

// Options returns the options with defaults applied.
func (s *Site) Options() Options { return s.opts }

// Env returns the worker environment the spec needs, as NAME=value.
func (s *Site) Env() []string {
	return []string{EnvKey + "=" + s.opts.APIKey, EnvPassword + "=" + s.opts.Password}
}

// Handler returns the site's handler. Absolute URLs in robots.txt and the
// sitemaps are built from the request's Host.
func (s *Site) Handler() http.Handler { return http.HandlerFunc(s.serve) }

// Start serves the site on a free loopback port and returns its base URL,
// e.g. "http://127.0.0.1:41234".
func (s *Site) Start() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("shopsite: %w", err)
	}
	s.mu.Lock()
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	s.base = "http://" + ln.Addr().String()
	srv := s.srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	return s.base, nil
}

// URL is the base URL Start returned ("" before Start).
func (s *Site) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.base
}

// Close stops a started site.
func (s *Site) Close() error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Requests returns the request log, oldest first.
func (s *Site) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.reqs)
	for i := range out {
		out[i].Cookies = slices.Clone(out[i].Cookies)
		out[i].FormFields = slices.Clone(out[i].FormFields)
	}
	return out
}

// Violations lists, in order, every forbidden thing the site saw; a
// correct crawl of [Site.SpecYAML] leaves it empty.
func (s *Site) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.viol)
}

// Logins is the number of successful logins.
func (s *Site) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// Reset forgets requests, violations, sessions and fetched pages, for
// another crawl of the same site.
func (s *Site) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs, s.viol, s.logins, s.inFlight = nil, nil, 0, 0
	s.sessions, s.pages = map[string]int{}, map[string]int{}
}

// redact keeps secrets out of the log even when a broken crawler puts
// them somewhere odd (a query, a header, a field name).
func (s *Site) redact(v string) string {
	for _, secret := range []string{s.opts.Password, s.opts.APIKey, url.QueryEscape(s.opts.Password), url.QueryEscape(s.opts.APIKey)} {
		if secret != "" {
			v = strings.ReplaceAll(v, secret, "[redacted]")
		}
	}
	return v
}
