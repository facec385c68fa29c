// Package crawlctl is the master's crawl control: it starts crawls (record
// in KV bucket crawls, seeds through the seen-set onto the work queue),
// cancels them (record, then purge of the crawl's queued tasks), and
// detects completion exactly: a crawl is complete when, after seeding, the
// work queue holds no task of it (see crawler.Pending for why that is exact).
//
// Every operation is a compare-and-swap on the crawl record, so several
// masters can run it side by side without double transitions.
package crawlctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/pkg/urlnorm"
)

// Control starts, cancels and completes crawls.
type Control struct {
	js      jetstream.JetStream
	spiders jetstream.KeyValue
	crawls  jetstream.KeyValue
	pub     *crawler.Publisher
	log     *slog.Logger
	now     func() time.Time

	pending atomic.Int64 // tasks in the work queue, for metrics
}

// New returns a Control over the crawler's buckets.
func New(js jetstream.JetStream, spiders, crawls, seen jetstream.KeyValue, log *slog.Logger) *Control {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "crawlctl")
	return &Control{js: js, spiders: spiders, crawls: crawls, pub: crawler.NewPublisher(js, seen),
		log: log, now: time.Now}
}

// PendingTasks is the work queue's size at the last check.
func (c *Control) PendingTasks() int64 { return c.pending.Load() }

// ErrExists means a crawl with the requested id exists already.
var ErrExists = errors.New("crawlctl: crawl exists")

// Start starts a crawl of the named spider and returns its id once the
// start URLs are on the work queue.
func (c *Control) Start(ctx context.Context, spider string) (string, error) {
	return c.StartID(ctx, spider, "")
}

// StartID is Start with a given crawl id ("" for a new one); a second
// start of the same id fails with ErrExists, so a scheduled tick runs once.
func (c *Control) StartID(ctx context.Context, spider, id string) (string, error) {
	e, err := c.spiders.Get(ctx, spider)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return "", fmt.Errorf("no spider %q (crawlmesh spider ls lists them; crawlmesh spider apply -f FILE adds one)", spider)
	}
	if err != nil {
		return "", fmt.Errorf("read spider %s: %w", spider, err)
	}
	s, err := spec.Parse(e.Value())
	if err != nil {
		return "", fmt.Errorf("stored spider %s: %w", spider, err)
	}
	raw, _ := json.Marshal(s)
	if id == "" {
		id = mesh.NewCrawlID(s.Name, c.now())
	}
	cr := mesh.Crawl{ID: id, Spider: s.Name, State: mesh.CrawlRunning, Spec: raw, CreatedAt: c.now().UTC()}
	b, _ := json.Marshal(cr)
	rev, err := c.crawls.Create(ctx, cr.ID, b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return "", fmt.Errorf("%w: %s", ErrExists, cr.ID)
	}
	if err != nil {
		return "", fmt.Errorf("create crawl %s: %w", cr.ID, err)
	}
	if err := c.seed(ctx, &cr, s, rev); err != nil {
		return "", err
	}
	c.log.Info("crawl started", "crawl", cr.ID, "spider", s.Name)
	return cr.ID, nil
}

// seed admits the start URLs and marks the record seeded. It is
// idempotent: a crawl left unseeded by a crashed master is seeded again.
func (c *Control) seed(ctx context.Context, cr *mesh.Crawl, s *spec.Spec, rev uint64) error {
	var cands []mesh.Task
	for _, u := range s.StartURLs {
		cu, err := urlnorm.Canonical(u)
		if err != nil {
			return fmt.Errorf("start URL %q: %w", u, err)
		}
		cands = append(cands, mesh.Task{ID: mesh.URLHash(cu), Crawl: cr.ID, Spider: s.Name, URL: cu})
	}
	adm, err := c.pub.Admit(ctx, cr.ID, s.MaxPages, "", true, cands)
	if err != nil {
		return fmt.Errorf("seed %s: %w", cr.ID, err)
	}
	var futs []jetstream.PubAckFuture
	for _, t := range adm.Tasks {
		f, err := c.pub.PublishTask(t)
		if err != nil {
			return fmt.Errorf("seed %s: %w", cr.ID, err)
		}
		futs = append(futs, f)
	}
	if err := crawler.Wait(ctx, futs); err != nil {
		return fmt.Errorf("seed %s: %w", cr.ID, err)
	}
	now := c.now().UTC()
	cr.SeededAt = &now
	b, _ := json.Marshal(cr)
	if _, err := c.crawls.Update(ctx, cr.ID, b, rev); err != nil {
		return fmt.Errorf("mark %s seeded: %w", cr.ID, err)
	}
	return nil
}

// Cancel stops a running crawl: its record says cancelled (workers drop
// its tasks as they see it) and its queued tasks are purged.
func (c *Control) Cancel(ctx context.Context, id string) error {
	for range 5 {
		cr, rev, err := crawler.ReadCrawl(ctx, c.crawls, id)
		if err != nil {
			return err
		}
		if cr.State != mesh.CrawlRunning {
			return fmt.Errorf("crawl %s is already %s", id, cr.State)
		}
		now := c.now().UTC()
		cr.State, cr.FinishedAt = mesh.CrawlCancelled, &now
		b, _ := json.Marshal(cr)
		if _, err := c.crawls.Update(ctx, id, b, rev); errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // changed under us (completed?): read again
		} else if err != nil {
			return fmt.Errorf("cancel %s: %w", id, err)
		}
		s, err := c.js.Stream(ctx, mesh.TasksStream)
		if err != nil {
			return fmt.Errorf("cancel %s: %w", id, err)
		}
		if err := s.Purge(ctx, jetstream.WithPurgeSubject(mesh.TaskSubject(id))); err != nil {
			return fmt.Errorf("purge tasks of %s: %w", id, err)
		}
		c.forget(ctx, id)
		c.log.Info("crawl cancelled", "crawl", id)
		return nil
	}
	return fmt.Errorf("cancel %s: the record kept changing", id)
}

// Run checks running crawls every interval until ctx is done.
func (c *Control) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.check(ctx)
		}
	}
}

func (c *Control) check(ctx context.Context) {
	if s, err := c.js.Stream(ctx, mesh.TasksStream); err == nil {
		c.pending.Store(int64(s.CachedInfo().State.Msgs))
	}
	lister, err := c.crawls.ListKeys(ctx)
	if err != nil {
		return
	}
	for id := range lister.Keys() {
		cr, rev, err := crawler.ReadCrawl(ctx, c.crawls, id)
		if err != nil || cr.State != mesh.CrawlRunning {
			continue
		}
		if cr.SeededAt == nil {
			if c.now().Sub(cr.CreatedAt) > 10*time.Second {
				if s, err := spec.Parse(cr.Spec); err == nil {
					if err := c.seed(ctx, cr, s, rev); err != nil {
						c.log.Warn("re-seed failed", "crawl", id, "err", err)
					}
				}
			}
			continue
		}
		n, err := crawler.Pending(ctx, c.js, id)
		if err != nil || n > 0 {
			continue
		}
		now := c.now().UTC()
		cr.State, cr.FinishedAt = mesh.CrawlCompleted, &now
		b, _ := json.Marshal(cr)
		if _, err := c.crawls.Update(ctx, id, b, rev); err == nil {
			c.forget(ctx, id)
			c.log.Info("crawl completed", "crawl", id)
		}
	}
}

// forget drops what a finished crawl no longer needs: with no task of it
// left there is nothing more to de-duplicate. Its seen-set is the biggest
// state the mesh keeps (one key per URL); its counters keep their recent
// increments only as de-duplication ids, and the last one holds the total.
// A failure only leaves the data behind.
func (c *Control) forget(ctx context.Context, id string) {
	s, err := c.js.Stream(ctx, "KV_"+mesh.SeenBucket)
	if err == nil {
		err = s.Purge(ctx, jetstream.WithPurgeSubject("$KV."+mesh.SeenBucket+"."+mesh.SeenKey(id, ">")))
	}
	if err != nil {
		c.log.Warn("seen-set of a finished crawl not purged", "crawl", id, "err", err)
	}
	stats, err := c.js.Stream(ctx, mesh.StatsStream)
	if err != nil {
		c.log.Warn("counters of a finished crawl not trimmed", "crawl", id, "err", err)
		return
	}
	for _, name := range mesh.Stats {
		if err := stats.Purge(ctx, jetstream.WithPurgeSubject(mesh.StatSubject(id, name)), jetstream.WithPurgeKeep(1)); err != nil {
			c.log.Warn("counter of a finished crawl not trimmed", "crawl", id, "counter", name, "err", err)
		}
	}
}

// APIReply is the answer to a crawl start or cancel request.
type APIReply struct {
	ID    string `json:"id,omitempty"`
	Error string `json:"error,omitempty"`
}

// APIRequest is the body of a crawl start or cancel request.
type APIRequest struct {
	Spider string `json:"spider,omitempty"`
	ID     string `json:"id,omitempty"`
}

// Serve answers crawl start and cancel requests until ctx is done. Masters
// share them through a queue group, so one master handles each.
func (c *Control) Serve(ctx context.Context, nc *nats.Conn) error {
	handle := func(start bool) nats.MsgHandler {
		return func(m *nats.Msg) {
			var req APIRequest
			var rep APIReply
			if err := json.Unmarshal(m.Data, &req); err != nil {
				rep.Error = "malformed request: " + err.Error()
			} else if start {
				id, err := c.Start(ctx, req.Spider)
				rep.ID = id
				if err != nil {
					rep.Error = err.Error()
				}
			} else {
				rep.ID = req.ID
				if err := c.Cancel(ctx, req.ID); err != nil {
					rep.Error = err.Error()
				}
			}
			b, _ := json.Marshal(rep)
			_ = m.Respond(b)
		}
	}
	s1, err := nc.QueueSubscribe(mesh.APICrawlStart, "masters", handle(true))
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", mesh.APICrawlStart, err)
	}
	defer func() { _ = s1.Unsubscribe() }()
	s2, err := nc.QueueSubscribe(mesh.APICrawlCancel, "masters", handle(false))
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", mesh.APICrawlCancel, err)
	}
	defer func() { _ = s2.Unsubscribe() }()
	<-ctx.Done()
	return nil
}

// Status is what `crawl status` shows.
type Status struct {
	ID          string     `json:"id"`
	Spider      string     `json:"spider"`
	State       string     `json:"state"`
	PagesOK     int64      `json:"pages_ok"`
	PagesFailed int64      `json:"pages_failed"`
	Dead        int64      `json:"dead_letters"`
	Dropped     int64      `json:"dropped"`
	Queued      uint64     `json:"queued"` // in the work queue: waiting, in flight or retrying
	Admitted    int64      `json:"admitted"`
	Items       int64      `json:"items"`
	CreatedAt   time.Time  `json:"created_at"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	Elapsed     float64    `json:"elapsed_seconds"`
	Rate        float64    `json:"pages_per_second"`
}

// ReadStatus reads a crawl's record, counters and queue.
func ReadStatus(ctx context.Context, js jetstream.JetStream, crawls jetstream.KeyValue, id string) (Status, error) {
	cr, _, err := crawler.ReadCrawl(ctx, crawls, id)
	if err != nil {
		return Status{}, err
	}
	st := Status{ID: cr.ID, Spider: cr.Spider, State: cr.State, CreatedAt: cr.CreatedAt, FinishedAt: cr.FinishedAt}
	for _, c := range []struct {
		name string
		dst  *int64
	}{{mesh.StatOK, &st.PagesOK}, {mesh.StatFailed, &st.PagesFailed}, {mesh.StatDead, &st.Dead},
		{mesh.StatDropped, &st.Dropped}, {mesh.StatItems, &st.Items}, {mesh.StatAdmitted, &st.Admitted}} {
		if *c.dst, err = crawler.ReadCounter(ctx, js, id, c.name); err != nil {
			return Status{}, err
		}
	}
	if cr.State == mesh.CrawlRunning {
		if st.Queued, err = crawler.Pending(ctx, js, id); err != nil {
			return Status{}, err
		}
	}
	end := time.Now()
	if cr.FinishedAt != nil {
		end = *cr.FinishedAt
	}
	st.Elapsed = end.Sub(cr.CreatedAt).Seconds()
	if st.Elapsed > 0 {
		st.Rate = float64(st.PagesOK+st.PagesFailed) / st.Elapsed
	}
	return st, nil
}
