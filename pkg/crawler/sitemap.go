package crawler

import (
	"context"
	"errors"
	"net/url"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/fetch"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/politeness"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/pkg/urlnorm"
)

// MaxSitemapDepth is how deep sitemap indexes are followed: a seeded
// sitemap is depth 0, a sitemap its index lists depth 1, and so on.
const MaxSitemapDepth = 3

// admitBatch bounds the candidates offered to the seen-set at once, so a
// sitemap of 50,000 URLs, or a page of 300,000 links, does not stall the
// async publisher.
const admitBatch = 1000

// SitemapTask is the task of a sitemap file (or, for a robots.txt URL, of
// that host's Sitemap: lines). Its id is hashed from "sitemap " and the
// URL, so a sitemap and a page of the same URL are different tasks.
func SitemapTask(crawl, spider, canonicalURL string, depth int, referrer string) mesh.Task {
	return mesh.Task{ID: mesh.TaskID(mesh.TaskSitemap, canonicalURL), Crawl: crawl, Spider: spider, URL: canonicalURL,
		Depth: depth, Referrer: referrer, Kind: mesh.TaskSitemap}
}

// sitemap runs a sitemap task, its permit taken: child sitemaps become
// sitemap tasks, page URLs that pass the crawl's link rules become page
// tasks at depth 0. Neither counts as a page; only page tasks count
// toward max_pages.
func (c *Crawler) sitemap(ctx context.Context, msg jetstream.Msg, t mesh.Task, cr *CrawlInfo, permit *politeness.Permit,
	gate fetch.Gate, attempt int, t0 time.Time, stop func()) {
	s := cr.Parsed
	rules, err := c.fetch.Rules(s) // compiled once per spec, shared with the fetcher
	if err != nil {
		permit.Release(ctx, politeness.Outcome{})
		c.releaseSlot()
		stop()
		c.failed(ctx, msg, t, attempt, &fetch.Error{Reason: "spec", Err: err}, t0)
		return
	}
	if c.budgetSpent(ctx, t.Crawl, s.MaxPages) {
		// Every URL it lists would be refused: reading it (an index may
		// list thousands) only costs the site requests.
		permit.Release(ctx, politeness.Outcome{})
		c.releaseSlot()
		stop()
		c.drop(ctx, msg, t, attempt, "max_pages reached: sitemap not read", t0)
		return
	}
	base, _ := url.Parse(t.URL)
	// A robots.txt is not a level of sitemaps: the sitemaps it lists are
	// as deep as it is, so `sitemaps: [robots]` reaches as deep as a
	// sitemap given by URL.
	depth := t.Depth + 1
	if base != nil && base.Path == "/robots.txt" {
		depth = t.Depth
	}
	var pages, maps []mesh.Task
	dup := map[string]bool{}
	tf := time.Now()
	ferr := c.fetch.Sitemap(ctx, s, t.Crawl, t.URL, permit, gate, func(loc string, isSitemap bool) error {
		if isSitemap {
			cu, err := urlnorm.Resolve(base, loc)
			if err != nil || depth > MaxSitemapDepth {
				return nil
			}
			// The crawl requests no host outside allowed_domains, whoever
			// names it: an index or a robots.txt may list another host's
			// sitemaps, as a redirect may lead there.
			if u, err := url.Parse(cu); err != nil || !spec.DomainAllowed(s.AllowedDomains, u) {
				return nil
			}
			ct := SitemapTask(t.Crawl, t.Spider, cu, depth, t.URL)
			if !dup[ct.ID] {
				dup[ct.ID] = true
				maps = append(maps, ct)
			}
			return nil
		}
		cu, ok := rules.Link(base, loc)
		if !ok {
			return nil
		}
		id := mesh.URLHash(cu)
		if !dup[id] {
			dup[id] = true
			pages = append(pages, mesh.Task{ID: id, Crawl: t.Crawl, Spider: t.Spider, URL: cu, Referrer: t.URL})
		}
		return nil
	})
	c.m.fetchDur.WithLabelValues(t.Spider).Observe(time.Since(tf).Seconds())
	c.releaseSlot()
	stop()
	var fe *fetch.Error
	if ferr != nil && (!errors.As(ferr, &fe) || fe.Transient || fe.CrawlLevel) {
		// Retried (or the crawl failed): what it emitted comes again.
		c.failed(ctx, msg, t, attempt, ferr, t0)
		return
	}
	// A permanent error (a limit, a 404) keeps what was read before it.
	redelivered := attempt > 1 || t.Returned()
	err = c.admitAll(ctx, layoutOf(cr), t, 0, redelivered, maps)
	if err == nil {
		err = c.admitAll(ctx, layoutOf(cr), t, s.MaxPages, redelivered, pages)
	}
	if err != nil {
		if c.stopping(ctx, msg, t, attempt) {
			return
		}
		c.log.Warn("publish of sitemap entries failed, task retried", "crawl", t.Crawl, "err", err)
		_ = msg.NakWithDelay(c.backoff(attempt, 0))
		return
	}
	if ferr != nil {
		c.failed(ctx, msg, t, attempt, ferr, t0)
		return
	}
	f, err := c.incr(msg, t.Crawl, mesh.StatSitemaps, 1, t.Crawl+"."+t.ID+"."+mesh.StatSitemaps)
	if err == nil {
		err = Wait(ctx, []jetstream.PubAckFuture{f})
	}
	if err != nil {
		_ = msg.NakWithDelay(c.backoff(attempt, 0))
		return
	}
	c.logEntry(t, mesh.LogEntry{URL: t.URL, Attempt: attempt, Outcome: "ok", Links: len(pages), Sitemaps: len(maps)}, t0)
	c.m.outcome(t.Spider, outcomeOK)
	_ = msg.Ack()
}

// budgetSpent reports whether a crawl with a page budget has admitted
// maxPages pages. A counter that cannot be read says no: the sitemap is
// then read and its URLs refused one by one, as before.
func (c *Crawler) budgetSpent(ctx context.Context, crawl string, maxPages int) bool {
	if maxPages <= 0 {
		return false
	}
	n, err := ReadCounter(ctx, c.js, crawl, mesh.StatAdmitted, 1)
	return err == nil && n >= int64(maxPages)
}

// admitAll admits and publishes cands in batches, waiting for every ack.
func (c *Crawler) admitAll(ctx context.Context, lay mesh.Layout, t mesh.Task, maxPages int, redelivered bool, cands []mesh.Task) error {
	for len(cands) > 0 {
		n := min(len(cands), admitBatch)
		batch := cands[:n]
		cands = cands[n:]
		var offer []mesh.Task
		for _, ct := range batch {
			if !redelivered && c.filter.seen(t.Crawl, ct.ID) {
				continue
			}
			offer = append(offer, ct)
		}
		pub := c.pub.With(lay)
		adm, err := pub.Admit(ctx, t.Crawl, maxPages, t.ID, redelivered, offer)
		if err != nil {
			return err
		}
		for _, ct := range offer {
			c.filter.add(t.Crawl, ct.ID)
		}
		var futs []jetstream.PubAckFuture
		for _, ct := range adm.Tasks {
			f, err := pub.PublishTask(ct)
			if err != nil {
				return err
			}
			futs = append(futs, f)
		}
		if err := Wait(ctx, futs); err != nil {
			return err
		}
	}
	return nil
}

func (c *Crawler) releaseSlot() {
	if c.cfg.Slots != nil {
		c.cfg.Slots.Release()
	}
}
