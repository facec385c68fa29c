package fetch

import (
	"container/list"
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"sync"

	"golang.org/x/net/publicsuffix"

	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/pkg/urlnorm"
)

// session is what one crawl keeps on this worker: its cookie jar (the
// login's cookies and any the site sets; two crawls never share one) and
// how many logins it has done.
type session struct {
	crawl string
	jar   *cookiejar.Jar
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
	jar, _ := cookiejar.New(&cookiejar.Options{PublicSuffixList: publicsuffix.List}) // never fails
	s := &session{crawl: crawl, jar: jar, sem: make(chan struct{}, 1)}
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
