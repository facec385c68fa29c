package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/net/html/charset"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/text/encoding"

	"github.com/crawlmesh/crawlmesh/pkg/envsubst"
	"github.com/crawlmesh/crawlmesh/pkg/politeness"
	"github.com/crawlmesh/crawlmesh/pkg/robots"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

type proxyKey struct{}

// call is one FetchWith, Sitemap or Prepare: the spec's request settings
// with ${env:NAME} expanded (at request time, on this worker), the crawl's
// session and the chain of permits.
type call struct {
	f       *Fetcher
	s       *spec.Spec
	st      *specState
	headers map[string]string
	cookies map[string]string
	proxies []*url.URL
	rr      *atomic.Uint64 // round-robin position in proxies
	live    *Live
	login   *spec.Login // expanded; nil without a login
	ua      string
	token   string // robots.txt product token of ua
	timeout time.Duration
	sess    *session
	ch      *chain
}

// newCall prepares a call; permit (may be nil) is the caller's, for host.
// On error the returned call is still usable for releasing permit.
func (f *Fetcher) newCall(s *spec.Spec, crawl string, permit *politeness.Permit, host string, gate Gate) (*call, error) {
	live := f.live.Load()
	c := &call{f: f, s: s, st: f.state(s), ua: live.UserAgent, timeout: s.Request.TimeoutOr(live.RequestTimeout), live: live}
	c.rr = &c.st.proxy
	c.ch = newChain(f, permit, host, gate)
	c.sess = f.sessions.get(crawl)
	req, err := s.Request.Expand(f.cfg.Getenv)
	if err != nil {
		return c, &Error{Reason: "env", CrawlLevel: true, Err: err}
	}
	if c.login, err = s.Login.Expand(f.cfg.Getenv); err != nil {
		return c, &Error{Reason: "env", CrawlLevel: true, Err: err}
	}
	if err := checkHeaderEnv(s.Request, req, f.cfg.Getenv); err != nil {
		return c, err
	}
	if req != nil {
		if req.UserAgent != "" {
			c.ua = req.UserAgent
		}
		c.headers, c.cookies = req.Headers, req.Cookies
		for i, p := range req.Proxies {
			u, err := url.Parse(p)
			if err != nil || u.Host == "" {
				// url's message would quote the URL, password and all.
				return c, &Error{Reason: "proxy", CrawlLevel: true, Err: fmt.Errorf("request.proxies[%d]: not a proxy URL", i)}
			}
			c.proxies = append(c.proxies, u)
		}
		if len(c.proxies) > 0 && f.proxied == nil {
			return c, &Error{Reason: "proxy", CrawlLevel: true, Err: errors.New("request.proxies: this worker's transport cannot use a proxy")}
		}
	}
	if len(c.proxies) == 0 && len(live.Proxies) > 0 && f.proxied != nil {
		// The cluster's proxies (config key proxies), for spiders that set none.
		for i, p := range live.Proxies {
			p, err := envsubst.Expand(p, f.cfg.Getenv)
			if err != nil {
				return c, &Error{Reason: "env", CrawlLevel: true, Err: fmt.Errorf("config proxies[%d]: %w", i, err)}
			}
			u, err := url.Parse(p)
			if err != nil || u.Host == "" {
				return c, &Error{Reason: "proxy", CrawlLevel: true, Err: fmt.Errorf("config proxies[%d]: not a proxy URL", i)}
			}
			c.proxies = append(c.proxies, u)
		}
		c.rr = &f.proxyRR
	}
	c.token = robots.ProductToken(c.ua)
	return c, nil
}

// checkHeaderEnv refuses a header (or the user agent) that a ${env:NAME}
// value made unsendable, such as a line break in a token: net/http would
// refuse every request, and that counted as a network error, retried and
// dead-lettered page by page (review). raw is the spec's request, x its
// expansion. The error names the header and its variables, never a value.
func checkHeaderEnv(raw, x *spec.Request, getenv func(string) (string, bool)) *Error {
	if x == nil {
		return nil
	}
	bad := func(field, rawText string) *Error {
		return &Error{Reason: "env", CrawlLevel: true, Err: fmt.Errorf("%s: environment variable %s holds a character a header cannot carry (a line break or control character)",
			field, strings.Join(envsubst.Refs(rawText), ", "))}
	}
	if !httpguts.ValidHeaderFieldValue(x.UserAgent) {
		return bad("request.user_agent", raw.UserAgent)
	}
	keys := make([]string, 0, len(raw.Headers))
	for k := range raw.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := k
		if strings.Contains(k, "${env:") { // rare: expanded again to find its value
			name, _ = envsubst.Expand(k, getenv)
		}
		if spec.TransportHeader(name) {
			continue // not sent
		}
		if !httpguts.ValidHeaderFieldName(name) {
			return bad("request.headers."+k, k)
		}
		if !httpguts.ValidHeaderFieldValue(x.Headers[name]) {
			return bad("request.headers."+k, raw.Headers[k])
		}
	}
	return nil
}

// send makes one request (no redirects followed) under a permit for u's
// host, with the spider's settings and the crawl's cookies (to a host in
// allowed_domains only); cookies the answer sets go to the crawl's jar. On success the caller must close the
// body and call done; the permit is held until the next request or the
// end of the call.
func (c *call) send(ctx context.Context, method string, u *url.URL, form string) (resp *http.Response, done func(), err error) {
	if err := c.ch.acquire(ctx, u.Host); err != nil {
		return nil, nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	if p := c.ch.cur; p != nil {
		rctx = httptrace.WithClientTrace(rctx, &httptrace.ClientTrace{
			// By the first response byte the site has certainly started
			// handling the request: the politeness delay counts from there.
			GotFirstResponseByte: func() { p.Started(time.Now()) },
		})
	}
	if n := len(c.proxies); n > 0 {
		i := (c.rr.Add(1) - 1) % uint64(n)
		rctx = context.WithValue(rctx, proxyKey{}, c.proxies[i])
	}
	var body io.Reader
	if form != "" {
		body = strings.NewReader(form)
	}
	req, err := http.NewRequestWithContext(rctx, method, u.String(), body)
	if err != nil {
		cancel()
		e := &Error{Reason: "bad-url", Err: errBadURL(u.String())}
		c.ch.endErr(e)
		return nil, nil, e
	}
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	// A host outside allowed_domains (a robots.txt redirect, a sitemap the
	// spec lists elsewhere) gets none of the spider's headers or cookies,
	// nor the jar's: they may be credentials (review: an API key went to
	// the host a robots.txt redirect named).
	inside := spec.DomainAllowed(c.s.AllowedDomains, u)
	ua := c.ua
	if !inside && c.s.Request != nil && len(envsubst.Refs(c.s.Request.UserAgent)) > 0 {
		ua = c.live.UserAgent
	}
	req.Header.Set("User-Agent", ua)
	if inside {
		for k, v := range c.headers {
			if spec.TransportHeader(k) {
				continue // refused at apply; one stored before must not stop decompression
			}
			req.Header.Set(k, v)
		}
		c.addCookies(req)
	}
	resp, err = c.f.client.Do(req)
	if err != nil {
		cancel()
		e := transportError(ctx, c.scrub(err))
		c.ch.endErr(e)
		return nil, nil, e
	}
	if cs := resp.Cookies(); len(cs) > 0 && inside {
		c.sess.jar.SetCookies(u, cs)
	}
	return resp, cancel, nil
}

// scrub removes proxy passwords from an error's text (a proxy URL may be
// quoted by a transport error).
func (c *call) scrub(err error) error {
	msg := err.Error()
	changed := false
	for _, p := range c.proxies {
		if pw, ok := p.User.Password(); ok && pw != "" && strings.Contains(msg, pw) {
			msg, changed = strings.ReplaceAll(msg, pw, "xxxxx"), true
		}
	}
	if !changed {
		return err
	}
	return errors.New(msg)
}

// addCookies sends the spider's cookies, then the crawl's jar's for names
// the spider does not set (the spider's own cookies win).
func (c *call) addCookies(req *http.Request) {
	names := make([]string, 0, len(c.cookies))
	for k := range c.cookies {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		req.AddCookie(&http.Cookie{Name: k, Value: c.cookies[k]})
	}
	for _, ck := range c.sess.jar.Cookies(req.URL) {
		if _, set := c.cookies[ck.Name]; !set {
			req.AddCookie(ck)
		}
	}
}

// drain reads a little of a body we do not want, so the connection can be
// reused, and closes it.
func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	resp.Body.Close()
}

// readLimited reads at most limit bytes of r; more is a too-large error.
func readLimited(ctx context.Context, r io.Reader, limit int, status int) ([]byte, *Error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, transportError(ctx, err)
	}
	if len(b) > limit {
		return nil, &Error{Status: status, Reason: "too-large", Err: fmt.Errorf("body over the %d byte limit", limit)}
	}
	return b, nil
}

// toUTF8 decodes an HTML body to UTF-8 by its Content-Type charset, BOM or
// <meta> in its first 1,024 bytes (HTML's prescan, as colly's
// DetectCharset did). When none of them says, as browsers go on to do:
// an XML declaration's encoding (XHTML), a <meta> further down (a long
// <title> or <style> first), and UTF-8 when the body is valid UTF-8,
// before the windows-1252 default; each of these garbled pages (found by
// review).
func toUTF8(body []byte, contentType string) []byte {
	enc, name, certain := charset.DetermineEncoding(body, contentType)
	// windows-1252 is also DetermineEncoding's answer when nothing said
	// (the search below runs only then: it reads up to 64 KiB a page).
	if !certain && name == "windows-1252" && !declaresCharset(contentType) {
		if e, n := laterCharset(body); e != nil {
			enc, name = e, n
		} else if utf8.Valid(body) {
			return body
		}
	}
	return decode(body, enc, name)
}

// declaresCharset says the Content-Type names a charset (DetermineEncoding
// is "uncertain" of a header's charset only when it does not know it).
func declaresCharset(contentType string) bool {
	_, params, err := mime.ParseMediaType(contentType)
	return err == nil && params["charset"] != ""
}

var (
	xmlDeclRe  = regexp.MustCompile(`^\s*<\?xml[^>]*\sencoding\s*=\s*["']([A-Za-z0-9._:-]+)["']`)
	metaCharRe = regexp.MustCompile(`(?i)<meta\s[^>]*charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)`)
)

// laterCharset is the encoding an XML declaration or a <meta> within the
// first 64 KiB names (nil if none, or one not known).
func laterCharset(body []byte) (encoding.Encoding, string) {
	head := body[:min(len(body), 64<<10)]
	for _, re := range []*regexp.Regexp{xmlDeclRe, metaCharRe} {
		if m := re.FindSubmatch(head); m != nil {
			if e, n := charset.Lookup(string(m[1])); e != nil {
				return e, n
			}
		}
	}
	return nil, ""
}

// decode is body decoded from enc (named name) to UTF-8; as it is when it
// is UTF-8 already, or does not decode.
func decode(body []byte, enc encoding.Encoding, name string) []byte {
	if enc == nil || name == "utf-8" {
		return body
	}
	out, err := enc.NewDecoder().Bytes(body)
	if err != nil {
		return body
	}
	return out
}

// jsonToUTF8 decodes a JSON body whose Content-Type declares a charset
// other than UTF-8 (application/json; charset=iso-8859-1): JSON is UTF-8
// by RFC 8259, but servers that say otherwise mean it. No charset, or one
// not known, leaves the body as it is.
func jsonToUTF8(body []byte, contentType string) []byte {
	_, params, err := mime.ParseMediaType(contentType)
	name := strings.TrimSpace(params["charset"])
	if err != nil || name == "" {
		return body
	}
	enc, canonical := charset.Lookup(name)
	return decode(body, enc, canonical)
}

func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}
