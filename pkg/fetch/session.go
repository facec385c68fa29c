package fetch

import (
	"container/list"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/net/publicsuffix"

	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/pkg/urlnorm"
)

// Bounds of a crawl's cookie jar, as browsers bound theirs (review: a
// site setting 50 cookies of 4 KB per page, each page on a path of its
// own, grew a worker by 1 GB). New cookies past them are dropped; a cookie
// already kept is always updated (unless over the size bounds).
const (
	maxHostCookies = 180  // per cookie domain
	maxJarCookies  = 3000 // per crawl
	// A larger cookie is dropped, as browsers drop it: the counts alone
	// would let a response's 10 MB of headers be one cookie.
	maxCookieSize = 4096 // name and value
	maxCookieAttr = 1024 // path, domain
)

// cookieJar is a crawl's cookiejar.Jar with its cookies counted by the key
// the jar keeps them by (domain, path, name), so that it stays bounded.
type cookieJar struct {
	mu      sync.Mutex
	jar     *cookiejar.Jar
	kept    map[cookieKey]keptCookie
	perHost map[string]int // kept cookies per domain
}

type cookieKey struct{ domain, path, name string }

type keptCookie struct {
	expires time.Time // zero: with the session
	host    string    // the URL host that set it, to delete it by
}

func newCookieJar() *cookieJar {
	jar, _ := cookiejar.New(&cookiejar.Options{PublicSuffixList: publicsuffix.List}) // never fails
	return &cookieJar{jar: jar, kept: map[cookieKey]keptCookie{}, perHost: map[string]int{}}
}

func (j *cookieJar) Cookies(u *url.URL) []*http.Cookie { return j.jar.Cookies(u) }

// len is how many cookies the jar keeps (some may have expired).
func (j *cookieJar) len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.kept)
}

// SetCookies stores cs as the jar would, but a cookie it does not keep yet
// only while its domain and the jar are under their bounds, and none over
// the size bounds.
func (j *cookieJar) SetCookies(u *url.URL, cs []*http.Cookie) {
	host, ok := cookieHost(u)
	if !ok {
		return
	}
	now := time.Now()
	j.mu.Lock()
	defer j.mu.Unlock()
	full := func(k cookieKey) bool {
		return len(j.kept) >= maxJarCookies || j.perHost[k.domain] >= maxHostCookies
	}
	swept := false
	take := make([]*http.Cookie, 0, len(cs))
	for _, c := range cs {
		if len(c.Name)+len(c.Value) > maxCookieSize || len(c.Path) > maxCookieAttr || len(c.Domain) > maxCookieAttr {
			continue
		}
		k, ok := cookieKeyOf(host, u.Path, c)
		if !ok {
			continue // the jar refuses it too
		}
		expires, remove := cookieExpiry(c, now)
		if remove {
			j.forget(k)
			take = append(take, c)
			continue
		}
		if _, kept := j.kept[k]; !kept {
			if full(k) && !swept {
				j.sweep(now)
				swept = true
			}
			if full(k) {
				continue
			}
			j.perHost[k.domain]++
		}
		j.kept[k] = keptCookie{expires: expires, host: u.Host}
		take = append(take, c)
	}
	j.jar.SetCookies(u, take)
}

func (j *cookieJar) forget(k cookieKey) {
	if _, ok := j.kept[k]; !ok {
		return
	}
	delete(j.kept, k)
	if j.perHost[k.domain]--; j.perHost[k.domain] <= 0 {
		delete(j.perHost, k.domain)
	}
}

// sweep forgets expired cookies, and deletes them from the jar (which
// drops them only when their host's cookies are next read).
func (j *cookieJar) sweep(now time.Time) {
	for k, kc := range j.kept {
		if kc.expires.IsZero() || kc.expires.After(now) {
			continue
		}
		j.forget(k)
		j.jar.SetCookies(&url.URL{Scheme: "http", Host: kc.host, Path: "/"},
			[]*http.Cookie{{Name: k.name, Path: k.path, Domain: k.domain, MaxAge: -1}})
	}
}

// cookieHost is u's host as net/http/cookiejar canonicalises it.
func cookieHost(u *url.URL) (string, bool) {
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", false
	}
	host := u.Host
	if n := strings.Count(host, ":"); n == 1 || (n > 1 && strings.HasPrefix(host, "[") && strings.Contains(host, "]:")) {
		h, _, err := net.SplitHostPort(host)
		if err != nil {
			return "", false
		}
		host = h
	}
	host = strings.TrimSuffix(host, ".")
	return strings.ToLower(urlnorm.ASCIIHost(host)), true
}

// cookieKeyOf is the key net/http/cookiejar keeps c by when host (as
// cookieHost gives it) at path sets it; false when the jar refuses it.
func cookieKeyOf(host, path string, c *http.Cookie) (cookieKey, bool) {
	k := cookieKey{domain: host, path: c.Path, name: c.Name}
	if c.Path == "" || c.Path[0] != '/' {
		k.path = "/" // the jar's default path: the request path's directory
		if i := strings.LastIndex(path, "/"); i > 0 && path[0] == '/' {
			k.path = path[:i]
		}
	}
	if c.Domain == "" {
		return k, true
	}
	if strings.ContainsAny(host, ":%") || net.ParseIP(host) != nil {
		return k, c.Domain == host
	}
	d := strings.TrimPrefix(c.Domain, ".")
	if d == "" || d[0] == '.' || d[len(d)-1] == '.' {
		return k, false
	}
	for i := 0; i < len(d); i++ {
		if d[i] >= utf8.RuneSelf {
			return k, false
		}
	}
	d = strings.ToLower(d)
	if ps, _ := publicsuffix.PublicSuffix(d); ps != "" && !strings.HasSuffix(d, "."+ps) {
		return k, host == d // a public suffix: only as a host cookie of itself
	}
	if host != d && !strings.HasSuffix(host, "."+d) {
		return k, false
	}
	k.domain = d
	return k, true
}

// cookieExpiry is when c expires as the jar reads it (zero: with the
// session); remove when it deletes the cookie.
func cookieExpiry(c *http.Cookie, now time.Time) (expires time.Time, remove bool) {
	switch {
	case c.MaxAge < 0:
		return time.Time{}, true
	case c.MaxAge > 0:
		return now.Add(time.Duration(c.MaxAge) * time.Second), false
	case c.Expires.IsZero():
		return time.Time{}, false
	case !c.Expires.After(now):
		return time.Time{}, true
	}
	return c.Expires, false
}

// session is what one crawl keeps on this worker: its cookie jar (the
// login's cookies and any the site sets; two crawls never share one) and
// how many logins it has done.
type session struct {
	crawl string
	jar   *cookieJar
	sem   chan struct{} // held while logging in: one login at a time per crawl
	mu    sync.Mutex
	n     int // successful logins
	elem  *list.Element
}

func (s *session) logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// sessions keeps the sessions of recent crawls, least recently used first
// out.
type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	lru *list.List // front: most recently used
	max int
}

func newSessions(max int) *sessions {
	return &sessions{m: map[string]*session{}, lru: list.New(), max: max}
}

func (ss *sessions) get(crawl string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s := ss.m[crawl]; s != nil {
		ss.lru.MoveToFront(s.elem)
		return s
	}
	s := &session{crawl: crawl, jar: newCookieJar(), sem: make(chan struct{}, 1)}
	s.elem = ss.lru.PushFront(s)
	ss.m[crawl] = s
	for ss.lru.Len() > ss.max {
		old := ss.lru.Remove(ss.lru.Back()).(*session)
		delete(ss.m, old.crawl)
	}
	return s
}

func (ss *sessions) drop(crawl string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s := ss.m[crawl]; s != nil {
		ss.lru.Remove(s.elem)
		delete(ss.m, crawl)
	}
}

// relogin logs in unless a login was done since the caller saw seen
// logins (then that one counts). Concurrent callers of one crawl log in
// once. The permit held is released first: the login may be another
// goroutine's, and it needs a permit of its own.
func (c *call) relogin(ctx context.Context, seen int) error {
	c.ch.release(ctx)
	select {
	case c.sess.sem <- struct{}{}:
	case <-ctx.Done():
		return &Error{Transient: true, Reason: "cancelled", Err: ctx.Err()}
	}
	defer func() { <-c.sess.sem }()
	if c.sess.logins() != seen {
		return nil
	}
	if err := c.postLogin(ctx); err != nil {
		return err
	}
	c.sess.mu.Lock()
	c.sess.n++
	c.sess.mu.Unlock()
	return nil
}

// maxLoginHops bounds the redirects followed after the login POST.
const maxLoginHops = 5

// postLogin logs in as a browser does: it reads the form from the login
// page (see loginForm), so that a CSRF token it carries goes along and
// the form's action is where it posts; the spec's fields override what
// the page fills in. It then follows the redirects the POST answers (a
// callback that sets the session cookie, the account page), up to
// maxLoginHops; every hop's cookies go to the crawl's jar (by send). The
// login is refused when the POST answers an error or a relogin_on status,
// or any hop leads back to the login URL or lands on a relogin_on status;
// it is never posted to a host outside allowed_domains (when set). Errors
// name the login URL as the spec writes it, never a form value.
func (c *call) postLogin(ctx context.Context) error {
	shown := c.s.Login.URL // the spec's text: ${env:…} references, not values
	u, err := url.Parse(c.login.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &Error{Reason: "login", CrawlLevel: true, Err: fmt.Errorf("login to %s failed: not an http(s) URL", shown)}
	}
	form, action, err := c.loginForm(ctx, u, shown)
	if err != nil {
		return err
	}
	if form == nil {
		form = url.Values{}
	}
	for k, v := range c.login.Form {
		form.Set(k, v)
	}
	target, method, body := u, http.MethodPost, form.Encode()
	if action != nil {
		target = action
	}
	if !spec.DomainAllowed(c.s.AllowedDomains, target) {
		// The password must not go where the site's form points (review:
		// an action on another host got it). The host only: the spec's
		// login.url may hold ${env:…} references.
		where := "login.url " + shown
		if action != nil && action.Host != u.Host {
			where = action.Host
		}
		return &Error{Reason: "login", CrawlLevel: true,
			Err: fmt.Errorf("login to %s refused: the form posts to %s, outside allowed_domains", shown, where)}
	}
	refused := func(status int) error {
		return &Error{Status: status, Reason: "login", CrawlLevel: true, Err: fmt.Errorf("login to %s failed: status %d", shown, status)}
	}
	for hop := 0; ; hop++ {
		resp, done, err := c.send(ctx, method, target, body)
		if err != nil {
			fe := err.(*Error)
			return &Error{Transient: fe.Transient, Reason: fe.Reason, Err: fmt.Errorf("login to %s: %w", shown, fe.Err)}
		}
		status, loc := resp.StatusCode, resp.Header.Get("Location")
		drain(resp)
		done()
		c.ch.end(transientStatus(status), retryAfter(resp.Header))
		switch {
		case transientStatus(status):
			// The site is overloaded or failing, not refusing us: try again later.
			return &Error{Transient: true, Status: status, Reason: "login", RetryAfter: retryAfter(resp.Header),
				Err: fmt.Errorf("login to %s: status %d", shown, status)}
		case slices.Contains(c.login.ReloginStatuses(), status):
			return refused(status)
		case isRedirect(status) && c.isLoginURL(target, loc):
			// Sent back to the login form: say so, with the path only (a
			// query may carry a token), rather than a bare status (found
			// by review).
			back := loc
			if u, err := target.Parse(strings.TrimSpace(loc)); err == nil {
				back = u.Path
			}
			return &Error{Status: status, Reason: "login", CrawlLevel: true,
				Err: fmt.Errorf("login to %s failed: status %d sent the crawler back to the login form (%s): check login.form's fields and values", shown, status, back)}
		case !isRedirect(status):
			if hop == 0 && (status < 200 || status > 399) {
				return refused(status)
			}
			return nil // landed: a later page's own status is not the login's
		case hop == maxLoginHops:
			return nil // the cookies set so far are the session's
		}
		next, err := target.Parse(strings.TrimSpace(loc))
		if err != nil || (next.Scheme != "http" && next.Scheme != "https") {
			return nil
		}
		target, method, body = next, http.MethodGet, ""
	}
}

// expired reports whether a page's first answer says the session expired:
// a status in relogin_on, or a redirect to the login URL.
func (c *call) expired(base *url.URL, resp *http.Response) bool {
	if c.login == nil {
		return false
	}
	if slices.Contains(c.login.ReloginStatuses(), resp.StatusCode) {
		return true
	}
	return isRedirect(resp.StatusCode) && c.isLoginURL(base, resp.Header.Get("Location"))
}

// isLoginURL reports whether loc, resolved against base, is the login URL:
// same host and path once canonical, and every query parameter of the
// login URL (index.php?page=login) with its value; other parameters, such
// as where to return after the login (/login?next=/p/1), do not matter.
func (c *call) isLoginURL(base *url.URL, loc string) bool {
	if loc == "" {
		return false
	}
	ref, err := base.Parse(strings.TrimSpace(loc))
	if err != nil {
		return false
	}
	a, err1 := urlnorm.Canonical(ref.String())
	b, err2 := urlnorm.Canonical(c.login.URL)
	if err1 != nil || err2 != nil {
		return false
	}
	ua, _ := url.Parse(a)
	ub, _ := url.Parse(b)
	if ua.Host != ub.Host || ua.Path != ub.Path {
		return false
	}
	got := ua.Query()
	for k, vs := range ub.Query() {
		for _, v := range vs {
			if !slices.Contains(got[k], v) {
				return false
			}
		}
	}
	return true
}
