package shopsite

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// statusWriter remembers the status for the log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// call is one request being served.
type call struct {
	s   *Site
	r   *http.Request
	w   *statusWriter
	rec *Request
}

// violate records a violation, prefixed with the request.
func (c *call) violate(format string, args ...any) {
	msg := c.s.redact(c.r.Method + " " + c.r.URL.RequestURI() + ": " + fmt.Sprintf(format, args...))
	c.s.mu.Lock()
	c.s.viol = append(c.s.viol, msg)
	c.s.mu.Unlock()
}

func (c *call) note(n string) {
	if c.rec.Note == "" {
		c.rec.Note = n
	}
}

func (c *call) fail(code int, note string) {
	c.note(note)
	http.Error(c.w, note, code)
}

func (s *Site) serve(w http.ResponseWriter, r *http.Request) {
	rec := &Request{
		Time:      time.Now(),
		Method:    r.Method,
		URI:       s.redact(r.URL.RequestURI()),
		Host:      r.Host,
		UserAgent: s.redact(r.UserAgent()),
	}
	switch k := r.Header.Get("X-Api-Key"); {
	case k == s.opts.APIKey:
		rec.APIKey = "ok"
	case k != "":
		rec.APIKey = "wrong"
	}
	for _, ck := range r.Cookies() {
		rec.Cookies = append(rec.Cookies, s.redact(ck.Name))
	}
	slices.Sort(rec.Cookies)
	rec.Cookies = slices.Compact(rec.Cookies)
	sw := &statusWriter{ResponseWriter: w}
	c := &call{s: s, r: r, w: sw, rec: rec}
	defer func() {
		rec.Status = sw.status
		s.mu.Lock()
		s.reqs = append(s.reqs, *rec)
		s.mu.Unlock()
	}()

	if base := s.URL(); base != "" && "http://"+r.Host != base {
		c.violate("Host %q is not the site's (allowed_domains)", r.Host)
	}
	if !strings.HasPrefix(r.UserAgent(), ProductToken+"/") {
		c.violate("User-Agent %q does not start with %q", s.redact(r.UserAgent()), ProductToken+"/")
		c.fail(http.StatusForbidden, "wrong User-Agent")
		return
	}
	var tracking []string
	for name := range r.URL.Query() {
		if isTracking(name) {
			tracking = append(tracking, s.redact(name))
		}
	}
	if len(tracking) > 0 {
		slices.Sort(tracking)
		c.violate("tracking parameters not stripped (strip_query): %s", strings.Join(tracking, ", "))
	}
	if r.Method == http.MethodPost && r.URL.Path == "/login" {
		s.login(c)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		c.violate("method %s", r.Method)
		c.fail(http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	s.route(c)
}

func (s *Site) login(c *call) {
	r := c.r
	r.Body = http.MaxBytesReader(c.w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		c.violate("login form unreadable")
		c.fail(http.StatusBadRequest, "bad login form")
		return
	}
	for name := range r.PostForm {
		c.rec.FormFields = append(c.rec.FormFields, s.redact(name))
	}
	slices.Sort(c.rec.FormFields)
	if r.PostForm.Get("user") != s.opts.User || r.PostForm.Get("password") != s.opts.Password {
		c.violate("login with wrong credentials (fields %s)", strings.Join(c.rec.FormFields, ","))
		c.fail(http.StatusForbidden, "wrong credentials")
		return
	}
	var raw [8]byte
	_, _ = rand.Read(raw[:])
	token := hex.EncodeToString(raw[:])
	s.mu.Lock()
	s.sessions[token] = 0
	s.logins++
	s.mu.Unlock()
	http.SetCookie(c.w, &http.Cookie{Name: SessionCookie, Value: token, Path: "/", HttpOnly: true})
	c.note("logged in")
	// Like most shops: 303 to the account page. The cookie is on the
	// redirect, so a client following it must store it first.
	http.Redirect(c.w, r, "/account", http.StatusSeeOther)
}

// takeSession reports whether the request's session may fetch one more
// page, and counts the page when use is set (check and count under one
// lock, so concurrent requests cannot both take the last page).
func (s *Site) takeSession(r *http.Request, use bool) bool {
	ck, err := r.Cookie(SessionCookie)
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.sessions[ck.Value]
	if !ok || n >= s.opts.SessionPages {
		return false
	}
	if use {
		s.sessions[ck.Value] = n + 1
	}
	return true
}

// session is the check of each section behind the login; when the
// session is missing or expired it writes the section's answer: /c/ and
// /p/ say 401, the members' section redirects to /login, so both relogin
// triggers of the spec are needed.
func (s *Site) session(c *call, members, use bool) bool {
	if s.takeSession(c.r, use) {
		return true
	}
	if members {
		c.note("session expired: redirect to login")
		// Exactly the login URL, no ?next=, so "a redirect to the login
		// URL" cannot be read two ways.
		http.Redirect(c.w, c.r, "/login", http.StatusFound)
		return false
	}
	c.fail(http.StatusUnauthorized, "session expired")
	return false
}

// page serves a crawlable page: it checks the in-flight limit and the
// currency cookie, and counts 200 answers to catch a page fetched twice.
// The body is built before the in-flight slot is released, and written
// after, so a client can never see the answer while the slot is held.
func (s *Site) page(c *call, contentType string, body func(usd bool) []byte) {
	s.mu.Lock()
	s.inFlight++
	over := s.inFlight > s.opts.Parallelism
	s.mu.Unlock()
	if over {
		c.violate("more than %d page requests at once (politeness.parallelism)", s.opts.Parallelism)
	}
	ck, err := c.r.Cookie("currency")
	usd := err != nil || ck.Value != "EUR"
	if usd {
		c.violate("no currency=EUR cookie (request.cookies): prices shown in USD")
	}
	b := body(usd)
	s.mu.Lock()
	s.inFlight--
	twice := false
	if c.r.Method == http.MethodGet {
		s.pages[c.r.URL.RequestURI()]++
		twice = s.pages[c.r.URL.RequestURI()] > 1
	}
	s.mu.Unlock()
	if twice {
		c.violate("page fetched twice")
	}
	c.w.Header().Set("Content-Type", contentType)
	c.w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if c.r.Method != http.MethodHead {
		_, _ = c.w.Write(b)
	}
}

const htmlType = "text/html; charset=utf-8"

func (s *Site) route(c *call) {
	r, w := c.r, c.w
	base := "http://" + r.Host
	if r.TLS != nil {
		base = "https://" + r.Host
	}
	// Tracking parameters were reported as a violation already; the page
	// is served regardless, as shops do.
	p, uri := r.URL.Path, withoutTracking(r.URL)
	// Exact URIs: a query the site does not use is another, unknown page.
	switch uri {
	case "/robots.txt":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(robotsTxt(base))
		return
	case "/sitemap_index.xml":
		w.Header().Set("Content-Type", "application/xml")
		_, _ = w.Write(sitemapIndex(base))
		return
	case "/sitemaps/products.xml.gz":
		// A gzip file, not a gzip Content-Encoding: the reader must
		// recognise it by its bytes.
		w.Header().Set("Content-Type", "application/gzip")
		_, _ = w.Write(productsSitemap(base, r.Host))
		return
	case "/sitemaps/pages.xml":
		w.Header().Set("Content-Type", "application/xml")
		_, _ = w.Write(pagesSitemap(base))
		return
	case "/login":
		c.note("login form")
		writeBytes(w, htmlType, loginForm())
		return
	case "/account":
		// Where the login redirects: always 200, so a client that follows
		// the 303 (with or without the new cookie) never sees the login
		// fail here.
		msg := "<h2>Not signed in</h2>"
		if s.takeSession(r, false) {
			msg = "<h2>Signed in</h2>"
		}
		writeBytes(w, htmlType, simplePage("Account", msg))
		return
	case "/":
		s.page(c, htmlType, homePage)
		return
	case "/blog/welcome":
		c.violate("outside links.allow")
		s.page(c, htmlType, func(bool) []byte { return simplePage("Blog", "<h2>Welcome to our blog</h2>") })
		return
	}
	if p == "/cart" {
		c.violate("cart URL (links.deny)")
		s.page(c, htmlType, func(bool) []byte { return simplePage("Cart", "<h2>Added to cart</h2>") })
		return
	}
	if p == "/api/products" {
		s.api(c)
		return
	}
	if rd, ok := redirects[uri]; ok {
		// Checked, not counted: the hop must not be where a session
		// expires, since only the first answer triggers a relogin.
		if s.session(c, false, false) {
			c.note("moved")
			http.Redirect(w, r, rd.to, rd.code)
		}
		return
	}
	if l, ok := lists[uri]; ok {
		if uri == "/c/archive" {
			c.violate("reached only from the footer, which links.follow does not name")
		}
		if s.session(c, strings.HasPrefix(p, "/members/"), true) {
			s.page(c, htmlType, func(usd bool) []byte { return listPage(l, usd) })
		}
		return
	}
	if id, back, ok := productAt(p); ok {
		// Product pages ignore queries, as shops do; the crawl must not
		// send any.
		switch {
		case r.URL.Query().Has("add"):
			c.violate("add-to-cart link (links.deny)")
		case uri != p:
			c.violate("unexpected query on a product page")
		}
		switch p {
		case "/p/50":
			c.violate("reached only through /c/archive (footer)")
		case "/p/clearance", "/p/clearance-2":
			c.violate("rel=nofollow target")
		case "/p/secret-1", "/p/secret-2":
			c.violate("disallowed by robots.txt for %s", ProductToken)
		}
		if s.session(c, strings.HasPrefix(p, "/members/"), true) {
			s.page(c, htmlType, func(usd bool) []byte { return productPage(products[id], back, usd) })
		}
		return
	}
	c.violate("unknown URL (404)")
	http.NotFound(w, r)
}

// productAt maps a product path to its id and its page's back link.
func productAt(path string) (int, string, bool) {
	if id, ok := trapProducts[path]; ok {
		return id, "/", true
	}
	rest, members := strings.CutPrefix(path, "/members/p/")
	if !members {
		var ok bool
		if rest, ok = strings.CutPrefix(path, "/p/"); !ok {
			return 0, "", false
		}
	}
	id, err := strconv.Atoi(rest)
	if err != nil || strconv.Itoa(id) != rest {
		return 0, "", false
	}
	isMember := slices.Contains(memberIDs, id)
	if _, ok := products[id]; !ok || isMember != members || id >= archiveID {
		return 0, "", false
	}
	if members {
		return id, "/members/", true
	}
	return id, "/", true
}

func (s *Site) api(c *call) {
	switch k := c.r.Header.Get("X-Api-Key"); {
	case k == "":
		c.violate("API request without X-Api-Key")
		c.fail(http.StatusUnauthorized, "API key required")
		return
	case k != s.opts.APIKey:
		c.violate("API request with a wrong X-Api-Key")
		c.fail(http.StatusUnauthorized, "API key required")
		return
	}
	q := c.r.URL.Query()
	n, err := strconv.Atoi(q.Get("page"))
	if len(q) != 1 || err != nil || n < 1 || n > apiPages || strconv.Itoa(n) != q.Get("page") {
		c.violate("unknown API page")
		http.NotFound(c.w, c.r)
		return
	}
	ct := "application/json; charset=utf-8"
	if n == apiPages {
		// A vendor type: "+json" must be parsed as JSON too.
		ct = "application/vnd.shop+json"
	}
	s.page(c, ct, func(usd bool) []byte { return apiPage(n, usd) })
}

func isTracking(name string) bool { return strings.HasPrefix(name, "utm_") || name == "sid" }

// withoutTracking is u's path and query without tracking parameters,
// the rest of the query kept in order and spelling.
func withoutTracking(u *url.URL) string {
	var keep []string
	for _, kv := range strings.Split(u.RawQuery, "&") {
		name, _, _ := strings.Cut(kv, "=")
		if n, err := url.QueryUnescape(name); kv != "" && (err != nil || !isTracking(n)) {
			keep = append(keep, kv)
		}
	}
	if len(keep) == 0 {
		return u.EscapedPath()
	}
	return u.EscapedPath() + "?" + strings.Join(keep, "&")
}

func writeBytes(w http.ResponseWriter, contentType string, b []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}
