package fetch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gocolly/colly/v2"
)

// Go spiders configure a colly collector. Fetching is done by this
// package (request settings, permits, relogin), so their collector is fed
// the fetched response by a transport that replays it: colly then decodes
// the charset and runs the spider's callbacks as it always did.

type replayKey struct{}

// replayed is the response a Go spider's collector gets.
type replayed struct {
	header http.Header
	body   []byte
}

type replayTransport struct{}

func (replayTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r, ok := req.Context().Value(replayKey{}).(*replayed)
	if !ok {
		return nil, errors.New("fetch: a Go spider's collector cannot make requests of its own")
	}
	return &http.Response{
		Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: r.header, Body: io.NopCloser(bytes.NewReader(r.body)), ContentLength: int64(len(r.body)), Request: req,
	}, nil
}

func newReplayCollector(cfg Config) *colly.Collector {
	c := colly.NewCollector(colly.UserAgent(cfg.UserAgent), colly.AllowURLRevisit())
	c.MaxBodySize = cfg.MaxBodySize + 1
	c.IgnoreRobotsTxt = true // checked by this package, for redirect targets too
	c.DetectCharset = true
	c.ParseHTTPErrorResponse = false
	c.DisableCookies()
	c.WithTransport(replayTransport{})
	return c
}

// runGoSpider runs spider on a fetched page (final URL, headers, raw body).
func (f *Fetcher) runGoSpider(ctx context.Context, spider GoSpider, final *url.URL, h http.Header, body []byte) (*Output, error) {
	hdr := h.Clone()
	// Already decoded by net/http, and not the collector's to keep.
	for _, k := range []string{"Content-Encoding", "Content-Length", "Set-Cookie", "Transfer-Encoding"} {
		hdr.Del(k)
	}
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	c := f.tmpl.Clone()
	live := f.live.Load()
	c.UserAgent, c.MaxBodySize = live.UserAgent, live.MaxBodySize+1
	c.Context = context.WithValue(ctx, replayKey{}, &replayed{header: hdr, body: body})
	out := &Output{}
	spider(c, out)
	if err := c.Visit(final.String()); err != nil {
		return nil, err
	}
	return out, nil
}
