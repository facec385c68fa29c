package crawler

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/crawlmesh/crawlmesh/pkg/fetch"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/pkg/spiderproto"
)

// Programs runs programmable spiders (script, script_file, command) on a
// fetched page. The mesh has already fetched it (robots, politeness,
// retries, limits); the spider only answers items and links.
type Programs interface {
	Parse(ctx context.Context, s *spec.Spec, page spiderproto.Page) (spiderproto.Answer, error)
}

// CrawlLevel is implemented by errors that stop a whole crawl on this
// worker rather than one page (a command that cannot start).
type CrawlLevel interface{ CrawlLevel() bool }

// runProgram runs the spider's code on page.Raw and fills page's items and
// links. A spider that throws, crashes, times out or answers garbage fails
// this task only: a transient error, retried and then dead-lettered with
// the reason, which names the spider.
func (c *Crawler) runProgram(ctx context.Context, t mesh.Task, cr *CrawlInfo, page *fetch.Page) error {
	s := cr.Parsed
	if c.cfg.Programs == nil {
		return &fetch.Error{Reason: "spider", CrawlLevel: true,
			Err: fmt.Errorf("spider %s: this worker runs no scripts or commands", s.Name)}
	}
	raw := *page.Raw
	raw.Depth, raw.Crawl, raw.Spider = t.Depth, t.Crawl, t.Spider
	ans, err := c.cfg.Programs.Parse(ctx, s, raw)
	if err != nil {
		var cl CrawlLevel
		fe := &fetch.Error{Transient: true, Status: page.Status, Reason: "spider", Err: err}
		if errors.As(err, &cl) && cl.CrawlLevel() {
			fe.Transient, fe.CrawlLevel = false, true
		}
		if ctx.Err() != nil {
			fe.Reason = "cancelled"
		}
		return fe
	}
	rules, err := c.fetch.Rules(s)
	if err != nil {
		return &fetch.Error{Reason: "spec", Err: err}
	}
	base, err := url.Parse(page.URL)
	if err != nil {
		return &fetch.Error{Reason: "bad-url", Err: err}
	}
	seen := map[string]bool{}
	page.Links = nil
	for _, l := range ans.Links {
		if u, ok := rules.Link(base, l); ok && !seen[u] {
			seen[u] = true
			page.Links = append(page.Links, u)
		}
	}
	page.Items, page.Raw = ans.Items, nil
	return nil
}
