package fetch

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/crawlmesh/crawlmesh/pkg/extract"
	"github.com/crawlmesh/crawlmesh/pkg/politeness"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/pkg/spiderproto"
	"github.com/crawlmesh/crawlmesh/pkg/urlnorm"
)

// FetchWith fetches rawURL for spider s in crawl and extracts items and
// links. permit (may be nil) is held for rawURL's host, taken by the
// caller after Prepare; FetchWith calls its Started at the first response
// byte and releases it, with the outcome, before its next request or
// before returning. Every further request — each redirect hop, robots.txt
// of a redirect target's host, a relogin POST, the refetch after it —
// takes its own permit from gate (nil: none). Every permit is released
// before FetchWith returns.
//
// When the page's first answer (before redirects) says the session
// expired (a status in login.relogin_on, or a redirect to the login URL),
// FetchWith logs in again (once per crawl however many tasks see it) and
// fetches the page once more; a second such answer is a transient error.
func (f *Fetcher) FetchWith(ctx context.Context, s *spec.Spec, crawl, rawURL string, permit *politeness.Permit, gate Gate) (*Page, error) {
	u, perr := url.Parse(rawURL)
	host := ""
	if perr == nil {
		host = u.Host
	}
	c, err := f.newCall(s, crawl, permit, host, gate)
	defer c.ch.release(ctx)
	if err != nil {
		return nil, err
	}
	if perr != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, &Error{Reason: "bad-url", Err: errBadURL(rawURL)}
	}
	var goSpider GoSpider
	if s.Go != "" {
		var ok bool
		if goSpider, ok = f.go_[s.Go]; !ok {
			return nil, &Error{Reason: "no-go-spider", Err: fmt.Errorf("no Go spider %q is registered on this worker", s.Go)}
		}
	}
	rules, err := f.Rules(s)
	if err != nil {
		return nil, &Error{Reason: "spec", Err: err}
	}
	for try := 0; ; try++ {
		seen := c.sess.logins()
		resp, final, expired, err := c.get(ctx, u, true, false)
		if err != nil {
			return nil, err
		}
		if expired {
			if try > 0 {
				return nil, &Error{Transient: true, Reason: "session-expired",
					Err: errors.New("the session expired again right after a new login")}
			}
			if err := c.relogin(ctx, seen); err != nil {
				return nil, err
			}
			continue
		}
		return c.page(ctx, resp, final, rules, goSpider)
	}
}

// response is a final answer whose body is not read yet.
type response struct {
	*http.Response
	done func()
}

func (r *response) close() {
	r.Body.Close()
	r.done()
}

// get requests u and follows redirects, checking each target against the
// spider's rules (allowed_domains, allow/deny) and robots.txt before it is
// requested, each hop under its own permit. With relogin, an answer saying
// the session expired is reported (expired true, no response) — the first
// answer as DESIGN settles, and also a later hop's: a redirect target
// answering 401 after the session ran out between hops is the same expiry,
// and taken as a page's answer it would lose the page for good.
// Sitemaps (configuration, not links) skip links.allow/deny for their hops.
func (c *call) get(ctx context.Context, u *url.URL, relogin, sitemap bool) (*response, *url.URL, bool, error) {
	rules, err := c.f.Rules(c.s)
	if err != nil {
		return nil, nil, false, &Error{Reason: "spec", Err: err}
	}
	visited := map[string]bool{}
	for hop := 0; ; hop++ {
		if err := c.checkRobots(ctx, u); err != nil {
			return nil, nil, false, err
		}
		visited[u.String()] = true
		resp, done, err := c.send(ctx, http.MethodGet, u, "")
		if err != nil {
			return nil, nil, false, err
		}
		if relogin && c.expired(u, resp) {
			drain(resp)
			done()
			c.ch.end(false, 0)
			return nil, nil, true, nil
		}
		if !isRedirect(resp.StatusCode) {
			return &response{resp, done}, u, false, nil
		}
		status, loc := resp.StatusCode, strings.TrimSpace(resp.Header.Get("Location"))
		drain(resp)
		done()
		c.ch.end(false, 0)
		refuse := func(format string, a ...any) (*response, *url.URL, bool, error) {
			return nil, nil, false, &Error{Status: status, Reason: "redirect",
				Err: fmt.Errorf("%w: "+format, append([]any{errRedirect}, a...)...)}
		}
		if loc == "" {
			return refuse("status %d without a Location", status)
		}
		next, err := u.Parse(loc)
		if err != nil || (next.Scheme != "http" && next.Scheme != "https") || next.Host == "" {
			return refuse("to a URL that cannot be fetched")
		}
		next.Fragment, next.RawFragment = "", ""
		if hop+1 > c.f.cfg.MaxRedirects {
			return refuse("more than %d redirects", c.f.cfg.MaxRedirects)
		}
		if sitemap && !spec.DomainAllowed(c.s.AllowedDomains, next) {
			return refuse("redirect to %s, outside allowed_domains", next.Redacted())
		}
		if !sitemap {
			canon, ok := rules.Link(nil, next.String())
			if !ok {
				return refuse("redirect to %s, outside allowed_domains or refused by links.allow/deny", next.Redacted())
			}
			// Requested as the crawl names it, as a link would be: canonical,
			// with strip_query applied (DESIGN: the stripped URL is what
			// is requested).
			if cu, err := url.Parse(canon); err == nil {
				next = cu
			}
		}
		if visited[next.String()] {
			return refuse("redirect loop at %s", next.Redacted())
		}
		u = next
	}
}

// page reads a final answer and extracts what the spider wants from it.
func (c *call) page(ctx context.Context, resp *response, final *url.URL, rules *extract.Rules, goSpider GoSpider) (*Page, error) {
	status := resp.StatusCode
	if status < 200 || status > 299 {
		resp.close()
		e := statusError(status, resp.Header)
		c.ch.endErr(e)
		return nil, e
	}
	maxBody := c.live.MaxBodySize
	ct := resp.Header.Get("Content-Type")
	if n, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64); err == nil && n > int64(maxBody) {
		resp.close() // unread: the connection is dropped, the site stops sending
		c.ch.end(false, 0)
		return nil, &Error{Status: status, Reason: "too-large", Err: fmt.Errorf("Content-Length %d over the %d byte limit", n, maxBody)}
	}
	json := extract.IsJSON(ct)
	if ct != "" && !json && !isHTML(ct) {
		resp.close()
		c.ch.end(false, 0)
		return nil, &Error{Status: status, Reason: "not-html", Err: fmt.Errorf("content type %q", ct)}
	}
	body, rerr := readLimited(ctx, resp.Body, maxBody, status)
	resp.close()
	if rerr != nil {
		c.ch.endErr(rerr)
		return nil, rerr
	}
	c.ch.end(false, 0)
	if ct == "" {
		if !looksHTML(body) {
			return nil, &Error{Status: status, Reason: "not-html", Err: errors.New("no content type and the body is not HTML")}
		}
		ct = "text/html"
	}
	canon, ok := rules.Link(nil, final.String())
	if !ok {
		var err error
		if canon, err = urlnorm.Canonical(final.String()); err != nil {
			return nil, &Error{Status: status, Reason: "bad-url", Err: errBadURL(final.String())}
		}
	}
	page := &Page{URL: canon, Status: status, Bytes: len(body)}
	if goSpider != nil {
		out, err := c.f.runGoSpider(ctx, goSpider, final, resp.Header, body)
		if err != nil {
			return nil, &Error{Status: status, Reason: "parse", Err: err}
		}
		page.Items = out.items
		seen := map[string]bool{}
		for _, h := range out.links {
			if l, ok := rules.Link(final, h); ok && !seen[l] {
				seen[l] = true
				page.Links = append(page.Links, l)
			}
		}
		return page, nil
	}
	if json {
		body = jsonToUTF8(body, ct)
	} else {
		body = toUTF8(body, ct)
	}
	if c.s.Programmable() {
		// The spider's code reads the page; the caller runs it, knowing
		// the task (depth, crawl) and the spider's runtime.
		page.Raw = &spiderproto.Page{URL: canon, Status: status, Headers: spiderproto.Headers(resp.Header), Body: string(body), Spider: c.s.Name}
		return page, nil
	}
	res, err := rules.Page(final, ct, body)
	if err != nil {
		return nil, &Error{Status: status, Reason: "parse", Err: err}
	}
	page.Items, page.Links, page.Incomplete, page.Warnings = res.Items, res.Links, res.Incomplete, res.Warnings
	return page, nil
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
