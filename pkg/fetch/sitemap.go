package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"

	"github.com/crawlmesh/crawlmesh/pkg/politeness"
	"github.com/crawlmesh/crawlmesh/pkg/robots"
	"github.com/crawlmesh/crawlmesh/pkg/sitemap"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

// Sitemap fetches a sitemap file and streams its entries to emit:
// isSitemap true for a child sitemap (an index entry), false for a page
// URL, as listed (a relative entry resolved against the sitemap's URL; the
// caller applies extract.Rules.Link). When rawURL's path is /robots.txt it
// reads that host's robots.txt through the cache and the store instead and
// emits its Sitemap: lines as sitemaps. permit and gate are as in
// FetchWith. The limits of pkg/sitemap apply; entries already emitted stay
// emitted. Failures classify like pages: 5xx, 429 and network errors are
// transient, 4xx and malformed files permanent; an error from emit is
// returned as is.
func (f *Fetcher) Sitemap(ctx context.Context, s *spec.Spec, crawl, rawURL string, permit *politeness.Permit, gate Gate,
	emit func(loc string, isSitemap bool) error) error {
	u, perr := url.Parse(rawURL)
	host := ""
	if perr == nil {
		host = u.Host
	}
	c, err := f.newCall(s, crawl, permit, host, gate)
	defer c.ch.release(ctx)
	if err != nil {
		return err
	}
	if perr != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return &Error{Reason: "bad-url", Err: errBadURL(rawURL)}
	}
	if u.Path == "/robots.txt" {
		r, err := c.robotsFor(ctx, u)
		if err != nil {
			return err
		}
		if r.Kind() == robots.KindUnreachable {
			return r.unreachableErr(u)
		}
		for _, sm := range r.Sitemaps() {
			loc, err := u.Parse(strings.TrimSpace(sm))
			if err != nil {
				continue
			}
			if err := emit(loc.String(), true); err != nil {
				return err
			}
		}
		return nil
	}
	resp, final, _, err := c.get(ctx, u, false, true)
	if err != nil {
		return err
	}
	if st := resp.StatusCode; st < 200 || st > 299 {
		resp.close()
		e := statusError(st, resp.Header)
		c.ch.endErr(e)
		return e
	}
	var emitErr error
	_, rerr := sitemap.Read(resp.Body, func(e sitemap.Entry) error {
		loc := e.Loc
		if ref, err := final.Parse(e.Loc); err == nil {
			loc = ref.String()
		}
		if err := emit(loc, e.Kind == sitemap.Index); err != nil {
			emitErr = err
			return err
		}
		return nil
	})
	resp.close()
	switch {
	case emitErr != nil:
		c.ch.end(false, 0)
		return emitErr
	case rerr == nil:
		c.ch.end(false, 0)
		return nil
	case errors.Is(rerr, sitemap.ErrTooManyEntries), errors.Is(rerr, sitemap.ErrTooLarge), errors.Is(rerr, sitemap.ErrTokenTooLarge),
		errors.Is(rerr, sitemap.ErrNotSitemap), errors.Is(rerr, sitemap.ErrMalformed):
		c.ch.end(false, 0)
		return &Error{Status: resp.StatusCode, Reason: "sitemap", Err: fmt.Errorf("sitemap %s: %w", final.Redacted(), rerr)}
	case ctx.Err() != nil, errors.As(rerr, new(net.Error)), errors.Is(rerr, io.ErrUnexpectedEOF),
		errors.Is(rerr, context.DeadlineExceeded):
		e := transportError(ctx, rerr) // the body stopped coming: try again
		c.ch.endErr(e)
		return e
	default:
		c.ch.end(false, 0)
		return &Error{Status: resp.StatusCode, Reason: "sitemap", Err: fmt.Errorf("sitemap %s: %w", final.Redacted(), rerr)}
	}
}
