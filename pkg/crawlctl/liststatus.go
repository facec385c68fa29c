package crawlctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// listStatusReaders is how many statuses a listing reads at once: a status
// is a dozen requests, and hundreds of crawls one after another took
// seconds of the master's time per console poll.
const listStatusReaders = 8

// ListStatus reads the status of every crawl in bucket crawls, in key
// order. A crawl deleted meanwhile, or whose record cannot be decoded, is
// left out; any other failure to read one is an error: a list cut short
// and served as whole (found by review: 170 of 257 crawls, with 200, while
// NATS stalled) says crawls are gone that are not.
func ListStatus(ctx context.Context, js jetstream.JetStream, crawls jetstream.KeyValue) ([]Status, error) {
	return (*StatusCache)(nil).List(ctx, js, crawls)
}

// StatusCache keeps the statuses of crawls that ended a while ago, for a
// listing read again and again (the console polls it every few seconds,
// and schedules leave thousands of ended crawls): each is then one read
// of its record instead of a dozen requests. An entry serves while the
// record keeps its revision. The zero value is ready; a nil cache keeps
// nothing.
type StatusCache struct {
	mu sync.Mutex
	m  map[string]cachedStatus
}

type cachedStatus struct {
	rev uint64
	st  Status
}

// statusSettled is how long after its end a crawl's counters are taken
// as final: tasks a cancel caught in flight finish and count within
// seconds of it.
const statusSettled = 2 * time.Minute

// List is [ListStatus] through the cache.
func (c *StatusCache) List(ctx context.Context, js jetstream.JetStream, crawls jetstream.KeyValue) ([]Status, error) {
	keys, err := crawls.Keys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, err
	}
	sts := make([]Status, len(keys))
	found := make([]bool, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(listStatusReaders)
	for i, k := range keys {
		g.Go(func() error {
			st, err := c.read(gctx, js, crawls, k)
			var syntax *json.SyntaxError
			var typ *json.UnmarshalTypeError
			if errors.Is(err, crawler.ErrUnknownCrawl) || errors.As(err, &syntax) || errors.As(err, &typ) {
				// Deleted meanwhile, or a record no version wrote (written
				// by hand): it would fail every listing for good.
				return nil
			}
			if err != nil {
				return fmt.Errorf("status of crawl %s: %w", k, err)
			}
			sts[i], found[i] = st, true
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	c.keepOnly(keys)
	out := sts[:0]
	for i, st := range sts {
		if found[i] {
			out = append(out, st)
		}
	}
	return out, nil
}

// read is crawl id's status: the cached one while its record is
// unchanged, else read, and kept when the crawl has settled.
func (c *StatusCache) read(ctx context.Context, js jetstream.JetStream, crawls jetstream.KeyValue, id string) (Status, error) {
	cr, rev, err := crawler.ReadCrawl(ctx, crawls, id)
	if err != nil {
		return Status{}, err
	}
	if c == nil {
		return statusOf(ctx, js, id, cr)
	}
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if ok && e.rev == rev {
		return e.st, nil
	}
	st, err := statusOf(ctx, js, id, cr)
	if err != nil {
		return Status{}, err
	}
	if cr.State != mesh.CrawlRunning && cr.FinishedAt != nil && time.Since(*cr.FinishedAt) > statusSettled {
		c.mu.Lock()
		if c.m == nil {
			c.m = make(map[string]cachedStatus)
		}
		c.m[id] = cachedStatus{rev: rev, st: st}
		c.mu.Unlock()
	}
	return st, nil
}

// keepOnly forgets the crawls not in keys (deleted).
func (c *StatusCache) keepOnly(keys []string) {
	if c == nil {
		return
	}
	listed := make(map[string]bool, len(keys))
	for _, k := range keys {
		listed[k] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.m {
		if !listed[id] {
			delete(c.m, id)
		}
	}
}
