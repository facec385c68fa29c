package crawler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/fetch"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// FailRequest is the body of a mesh.APICrawlFail request; it is
// crawlctl.APIRequest on the wire (this package cannot import crawlctl,
// which imports it).
type FailRequest struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// crawlFailed handles an error that stops the whole crawl on this worker
// (a failed login, an unset variable): the task is not the problem, so it
// is neither retried to death nor dead-lettered. The worker logs it, asks
// the masters to fail the crawl, and puts the task back for a moment; by
// then the crawl is failed and its tasks are dropped.
func (c *Crawler) crawlFailed(ctx context.Context, msg jetstream.Msg, t mesh.Task, attempt int, fe *fetch.Error, t0 time.Time) {
	reason := fe.Error() // fetch never puts a secret in an error
	c.log.Error("crawl cannot run: asking the masters to fail it", "crawl", t.Crawl, "reason", reason)
	c.logEntry(t, mesh.LogEntry{URL: t.URL, Attempt: attempt, Status: fe.Status, Outcome: "crawl-failed", Error: reason}, t0)
	if err := c.requestFail(ctx, t.Crawl, reason); err != nil {
		if ctx.Err() == nil {
			c.log.Warn("masters not told of the crawl failure, task retried", "crawl", t.Crawl, "err", err)
		}
		_ = msg.NakWithDelay(c.backoff(attempt, 0))
		return
	}
	c.failing.Store(t.Crawl, reason)
	c.m.outcome(t.Spider, outcomeRetried)
	_ = msg.NakWithDelay(time.Second)
}

// requestFail asks the leading master to fail crawl. The master answers
// without an error when the crawl is failed or had already ended.
func (c *Crawler) requestFail(ctx context.Context, crawl, reason string) error {
	nc := c.js.Conn()
	if nc == nil {
		return errors.New("no NATS connection")
	}
	b, _ := json.Marshal(FailRequest{ID: crawl, Reason: reason})
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := nc.RequestWithContext(rctx, mesh.APICrawlFail, b)
	if err != nil {
		return fmt.Errorf("request %s: %w", mesh.APICrawlFail, err)
	}
	var rep struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return fmt.Errorf("unreadable reply from master: %w", err)
	}
	if rep.Error != "" {
		return errors.New(rep.Error)
	}
	return nil
}

// ended is called when a crawl stops running: its login session and
// failure mark are no longer needed.
func (c *Crawler) ended(crawl string) {
	c.fetch.EndCrawl(crawl)
	c.failing.Delete(crawl)
	c.oks.Forget(crawl)
	c.warned.Forget(crawl)
	c.endScope(crawl)
}
