package spec

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/crawlmesh/crawlmesh/pkg/envsubst"
	"github.com/crawlmesh/crawlmesh/pkg/robots"
)

// Request applies to every request made for a crawl: pages, redirect
// hops, robots.txt, sitemaps and the login POST. Its strings may hold
// ${env:NAME} references, expanded on the worker by [Request.Expand].
type Request struct {
	// UserAgent replaces the worker's; its product token (the text before
	// the first '/', or the bot a "compatible" comment names) is the
	// robots.txt agent (robots.ProductToken).
	UserAgent string            `json:"user_agent,omitempty" yaml:"user_agent"`
	Headers   map[string]string `json:"headers,omitempty" yaml:"headers"`
	Cookies   map[string]string `json:"cookies,omitempty" yaml:"cookies"`
	Proxies   []string          `json:"proxies,omitempty" yaml:"proxies"` // http, https, socks5 or socks5h URLs, round-robin
	Timeout   *Duration         `json:"timeout,omitempty" yaml:"timeout"` // per request attempt; nil: the worker's
}

// TimeoutOr returns the spider's request timeout, or def when it sets none
// (r may be nil).
func (r *Request) TimeoutOr(def time.Duration) time.Duration {
	if r == nil || r.Timeout == nil {
		return def
	}
	return r.Timeout.Std()
}

// Login is a form POSTed once per worker and crawl before its first task,
// and again when a page answers with a status in ReloginOn. Its strings
// may hold ${env:NAME} references, expanded by [Login.Expand].
type Login struct {
	URL       string            `json:"url" yaml:"url"`
	Form      map[string]string `json:"form,omitempty" yaml:"form"`
	ReloginOn []int             `json:"relogin_on,omitempty" yaml:"relogin_on"` // nil or empty: [401, 403]
}

// ReloginStatuses returns ReloginOn, or the default 401 and 403 when it is
// empty.
func (l *Login) ReloginStatuses() []int {
	if len(l.ReloginOn) == 0 {
		return []int{401, 403}
	}
	return slices.Clone(l.ReloginOn)
}

// Expand returns a copy of r with every ${env:NAME} replaced by
// lookup(NAME) (nil: os.LookupEnv). The error names the field and the
// variable, never a value. The spec itself keeps the references.
func (r *Request) Expand(lookup func(string) (string, bool)) (*Request, error) {
	if r == nil {
		return nil, nil
	}
	x := expander{lookup: lookup}
	out := &Request{Timeout: r.Timeout}
	out.UserAgent = x.str("request.user_agent", r.UserAgent)
	out.Headers = x.strMap("request.headers", r.Headers)
	out.Cookies = x.strMap("request.cookies", r.Cookies)
	for i, p := range r.Proxies {
		out.Proxies = append(out.Proxies, x.str(fmt.Sprintf("request.proxies[%d]", i), p))
	}
	return out, x.err
}

// Expand returns a copy of l with every ${env:NAME} replaced by
// lookup(NAME) (nil: os.LookupEnv), like [Request.Expand].
func (l *Login) Expand(lookup func(string) (string, bool)) (*Login, error) {
	if l == nil {
		return nil, nil
	}
	x := expander{lookup: lookup}
	out := &Login{URL: x.str("login.url", l.URL), Form: x.strMap("login.form", l.Form), ReloginOn: slices.Clone(l.ReloginOn)}
	return out, x.err
}

// EnvRefs returns the environment variables the spec's request and login
// read, sorted: what a worker must have set to run it.
func (s *Spec) EnvRefs() []string {
	seen := map[string]bool{}
	s.eachEnvString(func(_, v string) {
		for _, n := range envsubst.Refs(v) {
			seen[n] = true
		}
	})
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// eachEnvString calls fn with the path and text of every string where
// ${env:NAME} is expanded (map names included: they are strings of
// request and login too).
func (s *Spec) eachEnvString(fn func(path, v string)) {
	if r := s.Request; r != nil {
		fn("request.user_agent", r.UserAgent)
		for _, k := range sortedKeys(r.Headers) {
			fn("request.headers."+k, k)
			fn("request.headers."+k, r.Headers[k])
		}
		for _, k := range sortedKeys(r.Cookies) {
			fn("request.cookies."+k, k)
			fn("request.cookies."+k, r.Cookies[k])
		}
		for i, p := range r.Proxies {
			fn(fmt.Sprintf("request.proxies[%d]", i), p)
		}
	}
	if l := s.Login; l != nil {
		fn("login.url", l.URL)
		for _, k := range sortedKeys(l.Form) {
			fn("login.form."+k, k)
			fn("login.form."+k, l.Form[k])
		}
	}
}

type expander struct {
	lookup func(string) (string, bool)
	err    error
}

func (x *expander) str(path, s string) string {
	v, err := envsubst.Expand(s, x.lookup)
	if err != nil && x.err == nil {
		x.err = fmt.Errorf("%s: %w", path, err)
	}
	return v
}

func (x *expander) strMap(path string, m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for _, k := range sortedKeys(m) {
		out[x.str(path+"."+k, k)] = x.str(path+"."+k, m[k])
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// urlShape returns s with each ${env:NAME} replaced by a stand-in, so a
// URL's shape can be checked before its values are known; ok is false when
// a reference starts the URL (its scheme and host come from the worker).
func urlShape(s string) (shape string, ok bool) {
	if strings.HasPrefix(s, "${env:") {
		return "", false
	}
	v, err := envsubst.Expand(s, func(string) (string, bool) { return "1", true })
	if err != nil {
		return s, true
	}
	return v, true
}

func (c *checker) request(s *Spec) {
	s.eachEnvString(func(path, v string) {
		if err := envsubst.Check(v); err != nil {
			c.add("%s: %v", path, err)
		}
	})
	if r := s.Request; r != nil {
		if strings.ContainsAny(r.UserAgent, "\r\n\x00") {
			c.add("request.user_agent: a line break or NUL cannot be sent in a header")
		}
		if ua := r.UserAgent; ua != "" && len(envsubst.Refs(ua)) == 0 && s.Politeness.ObeyRobots() && robots.ProductToken(ua) == "" {
			c.add("request.user_agent %q: robots.txt groups could not name it: its first product must start with letters, '-' or '_' (\"mybot/1.0\", or \"Mozilla/5.0 (compatible; mybot/1.0)\")", ua)
		}
		for _, k := range sortedKeys(r.Headers) {
			switch {
			case len(envsubst.Refs(k)) == 0 && !httpguts.ValidHeaderFieldName(k):
				c.add("request.headers %q: not a valid header name", k)
			case strings.EqualFold(k, "User-Agent"):
				c.add("request.headers.%s: set request.user_agent instead (its product token picks the robots.txt group)", k)
			case strings.ContainsAny(r.Headers[k], "\r\n\x00"):
				c.add("request.headers.%s: a line break or NUL cannot be sent in a header", k)
			}
		}
		for _, k := range sortedKeys(r.Cookies) {
			if k == "" || strings.ContainsAny(k, "=;, \t\r\n\x00") {
				c.add("request.cookies %q: not a valid cookie name", k)
			}
			if strings.ContainsAny(r.Cookies[k], ";\r\n\x00") {
				c.add("request.cookies.%s: a cookie value cannot hold ';', a line break or NUL", k)
			}
		}
		for i, p := range r.Proxies {
			if shape, ok := urlShape(p); ok {
				if err := checkProxy(shape); err != nil {
					c.add("request.proxies[%d]: %v", i, err)
				}
			}
		}
		if r.Timeout != nil && *r.Timeout <= 0 {
			c.add("request.timeout %v: must be more than 0", r.Timeout.Std())
		}
	}
	if l := s.Login; l != nil {
		if l.URL == "" {
			c.add("login.url: the URL of the login page (or of what its form posts to) is needed")
		} else if shape, ok := urlShape(l.URL); ok {
			if err := checkHTTPURL(shape); err != nil {
				c.add("login.url: %v", err)
			}
		}
		for i, st := range l.ReloginOn {
			if st < 100 || st > 599 {
				c.add("login.relogin_on[%d] %d: not an HTTP status (100-599)", i, st)
			}
		}
	}
}

// secretWords name what a credential is called in a header, a cookie or
// a form field, as a word of its name (found by review: a literal
// Authorization, Cookie or password was stored, and served by the open
// spiders API).
var secretWords = map[string]bool{"auth": true, "authorization": true, "token": true, "secret": true, "password": true,
	"passwd": true, "pwd": true, "pass": true, "apikey": true, "key": true, "session": true, "sessionid": true, "sessid": true,
	"phpsessid": true, "jsessionid": true, "sid": true, "jwt": true, "cookie": true, "credential": true, "credentials": true}

// credentialName says a header, cookie or form field named k carries a
// credential by a word of its name (X-Api-Key, access_token, PHPSESSID).
func credentialName(k string) bool {
	for _, w := range strings.FieldsFunc(strings.ToLower(k), func(r rune) bool { return !('a' <= r && r <= 'z' || '0' <= r && r <= '9') }) {
		if secretWords[w] {
			return true
		}
	}
	return false
}

// literalUserinfo says URL raw's user info holds a credential written
// out: a password besides references, or, with no password, a user name
// besides references (a proxy's user name is often its token). A literal
// user name with a referenced password is fine.
func literalUserinfo(raw string) bool {
	user, pass, hasPass, ok := envsubst.UserInfo(raw)
	if hasPass {
		return envsubst.Literal(pass)
	}
	return ok && envsubst.Literal(user)
}

func checkProxy(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url's message quotes the URL, which may hold a password.
		return errors.New("not a URL")
	}
	switch u.Scheme {
	case "http", "https", "socks5", "socks5h":
	default:
		return fmt.Errorf("scheme %q: want an http, https or socks5 proxy URL, e.g. http://127.0.0.1:3128", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	return nil
}

// TransportHeader says header k belongs to the HTTP client, not to the
// spec: set by hand, Accept-Encoding turns off the client's own
// decompression, so pages and robots.txt would be read compressed
// (found by review: a pasted browser header made robots.txt unreadable,
// and so not obeyed); the others frame or route the request. A spec
// being applied may not set them; a stored one's are not sent.
func TransportHeader(k string) bool {
	switch http.CanonicalHeaderKey(k) {
	case "Accept-Encoding", "Host", "Content-Length", "Transfer-Encoding", "Te", "Trailer",
		"Upgrade", "Keep-Alive", "Proxy-Connection":
		return true
	}
	return false
}

// literalSecret says a credential's value v is written out: it has no
// ${env:} reference ("Bearer ${env:T}" has one: the scheme word is no
// secret).
func literalSecret(v string) bool { return v != "" && len(envsubst.Refs(v)) == 0 }
