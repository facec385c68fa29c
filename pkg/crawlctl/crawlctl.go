// Package crawlctl is the master's crawl control: it starts crawls (record
// in KV bucket crawls, seeds start URLs and `sitemaps` through the
// seen-set onto the work queue), cancels them and fails them when a worker
// reports the crawl cannot run (record, then purge of the crawl's queued
// tasks), and detects completion exactly: a crawl is complete when, after seeding, the
// work queue holds no task of it (see crawler.Pending for why that is exact).
// It also puts dead-lettered tasks back on the work queue ([Control.Requeue]),
// reopening a completed crawl, for `crawl requeue` and the console.
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
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/extract"
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

	pending atomic.Int64 // tasks in the work queue, for metrics; -1: not known (not leading)

	// finishMu is held while check decides a crawl is complete and while
	// Requeue reopens one and publishes its tasks (see requeue.go).
	finishMu sync.Mutex

	// Seedings from seeds files running in the background.
	wg      sync.WaitGroup
	seedMu  sync.Mutex
	seeding map[string]bool
}

// New returns a Control over the crawler's buckets.
func New(js jetstream.JetStream, spiders, crawls, seen jetstream.KeyValue, log *slog.Logger) *Control {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "crawlctl")
	c := &Control{js: js, spiders: spiders, crawls: crawls, pub: crawler.NewPublisher(js, seen),
		log: log, now: time.Now, seeding: map[string]bool{}}
	c.pending.Store(-1)
	return c
}

// PendingTasks is the work queue's size at the last check, and false
// while Run is not running (a standby master): its last figure would go
// stale.
func (c *Control) PendingTasks() (int64, bool) {
	n := c.pending.Load()
	return n, n >= 0
}

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
	return c.start(ctx, spider, id, "")
}

// start creates the crawl record and seeds it: from the spec's start URLs
// now, or from seedsFile in the background (see StartSeeds).
func (c *Control) start(ctx context.Context, spider, id, seedsFile string) (string, error) {
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
	parts, err := crawler.Partitions(ctx, c.js)
	if err != nil {
		return "", err
	}
	// What cannot seed (a start URL the crawl cannot name) is refused
	// before there is a record, which would otherwise stay running.
	plan, err := planSeeds(id, s)
	if err != nil {
		return "", err
	}
	cr := mesh.Crawl{ID: id, Spider: s.Name, State: mesh.CrawlRunning, Spec: raw, CreatedAt: c.now().UTC(), ShortIDs: true}
	if parts > 1 {
		cr.Partitions = parts // a record of one partition reads as before
	}
	b, _ := json.Marshal(record{Crawl: cr, SeedsFile: seedsFile})
	rev, err := c.crawls.Create(ctx, cr.ID, b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return "", fmt.Errorf("%w: %s", ErrExists, cr.ID)
	}
	if err != nil {
		return "", fmt.Errorf("create crawl %s: %w", cr.ID, err)
	}
	if seedsFile != "" {
		c.seedFileAsync(ctx, &cr, s, rev, seedsFile, false)
		c.log.Info("crawl started", "crawl", cr.ID, "spider", s.Name, "seeds_file", seedsFile)
		return cr.ID, nil
	}
	if err := c.seed(ctx, &cr, s, rev, plan); err != nil {
		return "", err
	}
	for i, why := range plan.skipped {
		c.log.Warn("start URL skipped", "crawl", cr.ID, "reason", why)
		c.logEntry(cr.ID, mesh.LogEntry{Outcome: OutcomeBadSeed, Error: why}, fmt.Sprintf("%s.start.%d", cr.ID, i))
	}
	c.log.Info("crawl started", "crawl", cr.ID, "spider", s.Name)
	return cr.ID, nil
}

// seedPlan is a crawl's first tasks: its start URLs and sitemaps, and
// why start URLs were skipped.
type seedPlan struct {
	pages, maps []mesh.Task
	skipped     []string
}

// planSeeds names crawl's first tasks; its error is the spec's, the same
// on every try.
func planSeeds(crawl string, s *spec.Spec) (seedPlan, error) {
	rules, err := extract.Compile(s)
	if err != nil {
		return seedPlan{}, fmt.Errorf("spider %s: %w", s.Name, err)
	}
	var p seedPlan
	for _, u := range s.StartURLs {
		cu, err := rules.StartURL(u)
		if err != nil {
			return seedPlan{}, fmt.Errorf("start URL %q: %w", u, err)
		}
		if why := rules.SeedRefused(cu); why != "" {
			// Refused at apply; a spec stored before that crawls from
			// its other starts (DESIGN: a denied URL is never requested).
			p.skipped = append(p.skipped, fmt.Sprintf("start URL %s skipped: %s", u, why))
			continue
		}
		p.pages = append(p.pages, mesh.Task{ID: mesh.URLHash(cu), Crawl: crawl, Spider: s.Name, URL: cu})
	}
	if p.maps, err = sitemapSeeds(crawl, s); err != nil {
		return seedPlan{}, err
	}
	if len(p.pages) == 0 && len(p.maps) == 0 && len(p.skipped) > 0 {
		return seedPlan{}, fmt.Errorf("spider %s: nothing to crawl: %s", s.Name, strings.Join(p.skipped, "; "))
	}
	return p, nil
}

// seed admits plan's tasks and marks the record seeded. It is
// idempotent: a crawl left unseeded by a crashed master is seeded again.
func (c *Control) seed(ctx context.Context, cr *mesh.Crawl, s *spec.Spec, rev uint64, plan seedPlan) error {
	cands, maps := plan.pages, plan.maps
	pub := c.pub.With(layoutOf(cr, s))
	adm, err := pub.Admit(ctx, cr.ID, s.MaxPages, "", true, cands)
	if err != nil {
		return fmt.Errorf("seed %s: %w", cr.ID, err)
	}
	// Sitemap tasks never count toward max_pages: the pages they list do.
	admMaps, err := pub.Admit(ctx, cr.ID, 0, "", true, maps)
	if err != nil {
		return fmt.Errorf("seed %s: %w", cr.ID, err)
	}
	var futs []jetstream.PubAckFuture
	for _, t := range append(adm.Tasks, admMaps.Tasks...) {
		f, err := pub.PublishTask(t)
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

// sitemapSeeds are the sitemap tasks of a spec's `sitemaps`: "robots" is
// origin/robots.txt of each distinct start origin (the worker reads its
// Sitemap: lines), a URL is that sitemap.
func sitemapSeeds(crawl string, s *spec.Spec) ([]mesh.Task, error) {
	var out []mesh.Task
	seen := map[string]bool{}
	add := func(u string) error {
		cu, err := urlnorm.Canonical(u)
		if err != nil {
			return fmt.Errorf("sitemap %q: %w", u, err)
		}
		if !seen[cu] {
			seen[cu] = true
			out = append(out, crawler.SitemapTask(crawl, s.Name, cu, 0, ""))
		}
		return nil
	}
	for _, sm := range s.Sitemaps {
		if sm != "robots" {
			if err := add(sm); err != nil {
				return nil, err
			}
			continue
		}
		for _, su := range s.StartURLs {
			u, err := url.Parse(su)
			if err != nil || u.Host == "" {
				return nil, fmt.Errorf("start URL %q: no origin for sitemaps: robots", su)
			}
			if err := add(u.Scheme + "://" + u.Host + "/robots.txt"); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// Cancel stops a running crawl: its record says cancelled (workers drop
// its tasks as they see it) and its queued tasks are purged.
func (c *Control) Cancel(ctx context.Context, id string) error {
	ended, err := c.stop(ctx, id, mesh.CrawlCancelled, "")
	if err != nil {
		return err
	}
	if ended != "" {
		return fmt.Errorf("crawl %s is already %s", id, ended)
	}
	c.log.Info("crawl cancelled", "crawl", id)
	return nil
}

// Fail ends a running crawl as failed with reason (a worker cannot run it:
// a failed login, an unset variable); its queued tasks are purged, so they
// never pile up as dead letters. It is idempotent: a crawl that has
// already ended (failed by another worker's report) is left as it is.
func (c *Control) Fail(ctx context.Context, id, reason string) error {
	if reason == "" {
		reason = "a worker reported the crawl cannot run"
	}
	ended, err := c.stop(ctx, id, mesh.CrawlFailed, reason)
	if err != nil {
		return err
	}
	if ended == "" {
		c.log.Error("crawl failed", "crawl", id, "reason", reason)
	}
	return nil
}

// stop moves a running crawl to state (with reason as its error) and
// purges its queued tasks. ended is the state of a crawl that was not
// running (nothing done).
func (c *Control) stop(ctx context.Context, id, state, reason string) (ended string, err error) {
	for range 5 {
		cr, rev, err := crawler.ReadCrawl(ctx, c.crawls, id)
		if err != nil {
			return "", err
		}
		if cr.State != mesh.CrawlRunning {
			return cr.State, nil
		}
		now := c.now().UTC()
		cr.State, cr.FinishedAt, cr.Error = state, &now, reason
		b, _ := json.Marshal(cr)
		if _, err := c.crawls.Update(ctx, id, b, rev); errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // changed under us (completed?): read again
		} else if err != nil {
			return "", fmt.Errorf("%s %s: %w", verb(state), id, err)
		}
		for p := range max(cr.Partitions, 1) {
			s, err := c.js.Stream(ctx, mesh.TasksStreamOf(p))
			if err != nil {
				return "", fmt.Errorf("%s %s: %w", verb(state), id, err)
			}
			if err := s.Purge(ctx, jetstream.WithPurgeSubject(mesh.TaskSubjectOf(p, id))); err != nil {
				return "", fmt.Errorf("purge tasks of %s: %w", id, err)
			}
		}
		c.forget(ctx, id, cr.Partitions)
		return "", nil
	}
	return "", fmt.Errorf("%s %s: the record kept changing", verb(state), id)
}

func verb(state string) string {
	if state == mesh.CrawlFailed {
		return "fail"
	}
	return "cancel"
}

// countPending stores the number of tasks in every partition's work
// queue; a figure it cannot read whole leaves the last one.
func (c *Control) countPending(ctx context.Context) {
	parts, err := crawler.Partitions(ctx, c.js)
	if err != nil {
		return
	}
	var n int64
	for p := range parts {
		s, err := c.js.Stream(ctx, mesh.TasksStreamOf(p))
		if err != nil {
			return
		}
		n += int64(s.CachedInfo().State.Msgs)
	}
	c.pending.Store(n)
}

// layoutOf is the partition layout of a crawl.
func layoutOf(cr *mesh.Crawl, s *spec.Spec) mesh.Layout {
	return cr.Layout(s.PartitionBy)
}

// Run checks running crawls every interval until ctx is done.
func (c *Control) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	c.countPending(ctx)
	defer c.pending.Store(-1)
	for {
		select {
		case <-ctx.Done():
			c.wg.Wait() // background seedings end with ctx
			return nil
		case <-t.C:
			c.check(ctx)
		}
	}
}

func (c *Control) check(ctx context.Context) {
	c.countPending(ctx)
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
			if c.isSeeding(id) {
				continue
			}
			if c.now().Sub(cr.CreatedAt) > 10*time.Second {
				s, err := spec.Parse(cr.Spec)
				var plan seedPlan
				if err == nil {
					plan, err = planSeeds(id, s)
				}
				if err != nil {
					// Recorded by an older version that let its mistake
					// through: trying every tick cannot mend it.
					if ferr := c.Fail(ctx, id, "cannot seed: "+err.Error()); ferr != nil {
						c.log.Warn("crawl that cannot seed not marked failed", "crawl", id, "err", ferr)
					}
					continue
				}
				if name := c.seedsFileOf(ctx, id); name != "" {
					// Left unseeded by a master that stopped: read the
					// file again; claims made then are recognised.
					c.seedFileAsync(ctx, cr, s, rev, name, true)
					continue
				}
				if err := c.seed(ctx, cr, s, rev, plan); err != nil {
					c.log.Warn("re-seed failed", "crawl", id, "err", err)
				}
			}
			continue
		}
		if n, err := crawler.Pending(ctx, c.js, id, cr.Partitions); err != nil || n > 0 {
			continue
		}
		c.complete(ctx, id)
	}
}

// complete marks a running, seeded crawl completed when the work queue
// holds no task of it. It reads the record again under finishMu, so a
// re-queue (which publishes tasks under it) is never missed.
func (c *Control) complete(ctx context.Context, id string) {
	c.finishMu.Lock()
	defer c.finishMu.Unlock()
	cr, rev, err := crawler.ReadCrawl(ctx, c.crawls, id)
	if err != nil || cr.State != mesh.CrawlRunning || cr.SeededAt == nil {
		return
	}
	n, err := crawler.Pending(ctx, c.js, id, cr.Partitions)
	if err != nil || n > 0 {
		return
	}
	// Every page is settled, its counters stored before its ack.
	st, err := crawler.ReadCounters(ctx, c.js, id, cr.Partitions, mesh.StatOK, mesh.StatFailed, mesh.StatDead)
	if err != nil {
		return
	}
	now := c.now().UTC()
	cr.State, cr.FinishedAt = mesh.CrawlCompleted, &now
	if st[mesh.StatOK] == 0 && st[mesh.StatFailed]+st[mesh.StatDead] > 0 {
		// A crawl that fetched nothing (its site down, every page refused)
		// has failed, so `crawl wait` and scripts say so; its dead letters
		// can still be re-queued.
		cr.State, cr.NothingFetched = mesh.CrawlFailed, true
		// "Processed", not "fetched": a page fetched whose spider then
		// failed (a script's timeout) counts here too (review).
		cr.Error = fmt.Sprintf("no page was processed: %d failed, %d dead letters (see crawlmesh crawl logs %s and crawl deadletters %s for why)",
			st[mesh.StatFailed], st[mesh.StatDead], id, id)
	}
	b, _ := json.Marshal(cr)
	if _, err := c.crawls.Update(ctx, id, b, rev); err != nil {
		return
	}
	// A crawl with dead letters keeps its seen-set: a re-queue of them
	// reopens it and must not crawl the pages it had again.
	dead, err := c.hasDeadLetters(ctx, id)
	c.forgetKeeping(ctx, id, cr.Partitions, dead || err != nil)
	if cr.NothingFetched {
		c.log.Warn("crawl failed", "crawl", id, "reason", cr.Error)
		return
	}
	c.log.Info("crawl completed", "crawl", id)
}

// forget drops what a finished crawl no longer needs: with no task of it
// left there is nothing more to de-duplicate. Its seen-set is the biggest
// state the mesh keeps (one key per URL); its counters keep their recent
// increments only as de-duplication ids, and the last one holds the total.
// A failure only leaves the data behind.
func (c *Control) forget(ctx context.Context, id string, parts int) {
	c.forgetKeeping(ctx, id, parts, false)
}

// forgetKeeping is forget, keeping the seen-set when keepSeen.
func (c *Control) forgetKeeping(ctx context.Context, id string, parts int, keepSeen bool) {
	if !keepSeen { // kept, a re-queue of its dead letters does not crawl its pages again
		c.purgeSeen(ctx, id, parts)
	}
	c.recordItems(ctx, id)
	for p := range max(parts, 1) {
		name := mesh.StatsStreamOf(p)
		stats, err := c.js.Stream(ctx, name)
		if p > 0 && errors.Is(err, jetstream.ErrStreamNotFound) {
			continue // counted before counters were partitioned
		}
		if err != nil {
			c.log.Warn("counters of a finished crawl not trimmed", "crawl", id, "stream", name, "err", err)
			continue
		}
		for _, n := range mesh.Stats {
			if err := stats.Purge(ctx, jetstream.WithPurgeSubject(mesh.StatSubjectOf(p, id, n)), jetstream.WithPurgeKeep(1)); err != nil {
				c.log.Warn("counter of a finished crawl not trimmed", "crawl", id, "counter", n, "stream", name, "err", err)
			}
		}
	}
}

// StoredItems is the number of items of crawl id in RESULTS (exact: they
// are de-duplicated by item id).
func StoredItems(ctx context.Context, js jetstream.JetStream, id string) (int64, error) {
	n, err := crawler.SubjectCount(ctx, js, mesh.ResultsStream, mesh.ResultSubject(id))
	return int64(n), err
}

// recordItems tops the items counter of a finished crawl up to the items
// RESULTS holds, so its total outlives them. The id names the total, so
// two masters recording it count it once.
func (c *Control) recordItems(ctx context.Context, id string) {
	n, err := StoredItems(ctx, c.js, id)
	var cur int64
	if err == nil {
		cur, err = crawler.ReadCounter(ctx, c.js, id, mesh.StatItems, 1)
	}
	if err == nil && n > cur {
		var f jetstream.PubAckFuture
		if f, err = c.pub.Incr(0, id, mesh.StatItems, int(n-cur), id+".items."+strconv.FormatInt(n, 10)); err == nil {
			err = crawler.Wait(ctx, []jetstream.PubAckFuture{f})
		}
	}
	if err != nil {
		c.log.Warn("items total of a finished crawl not recorded", "crawl", id, "err", err)
	}
}

// purgeSeen drops crawl id's keys from every partition's seen bucket.
func (c *Control) purgeSeen(ctx context.Context, id string, parts int) {
	for p := range max(parts, 1) {
		b := mesh.SeenBucketOf(p)
		s, err := c.js.Stream(ctx, "KV_"+b)
		if err == nil {
			err = s.Purge(ctx, jetstream.WithPurgeSubject("$KV."+b+"."+mesh.SeenKey(id, ">")))
		}
		if err != nil {
			c.log.Warn("seen-set of a finished crawl not purged", "crawl", id, "bucket", b, "err", err)
		}
	}
}

// APIReply is the answer to a crawl start or cancel request.
type APIReply struct {
	ID      string         `json:"id,omitempty"`
	Error   string         `json:"error,omitempty"`
	Requeue *RequeueResult `json:"requeue,omitempty"` // what a re-queue did
}

// APIRequest is the body of a crawl start, cancel or fail request
// (crawler.FailRequest is the fail request as a worker sends it).
type APIRequest struct {
	Spider string `json:"spider,omitempty"`
	ID     string `json:"id,omitempty"`
	// SeedsFile (start): seed from this file of the Object Store files,
	// one URL a line, instead of the spec's start_urls.
	SeedsFile string `json:"seeds_file,omitempty"`
	Reason    string `json:"reason,omitempty"` // fail: why the crawl cannot run
	// Requeue: the dead letter's stream sequence, or All of the crawl's.
	Seq uint64 `json:"seq,omitempty"`
	All bool   `json:"all,omitempty"`
}

// Serve answers crawl start, cancel, fail and re-queue requests until ctx is done.
// Only the leading master runs it (its ctx ends with the term), and masters
// share the subjects through a queue group, so one master handles each.
func (c *Control) Serve(ctx context.Context, nc *nats.Conn) error {
	handle := func(op string) nats.MsgHandler {
		return func(m *nats.Msg) {
			var req APIRequest
			var rep APIReply
			if err := json.Unmarshal(m.Data, &req); err != nil {
				rep.Error = "malformed request: " + err.Error()
			} else {
				var err error
				switch op {
				case mesh.APICrawlStart:
					if req.SeedsFile != "" {
						rep.ID, err = c.StartSeeds(ctx, req.Spider, req.SeedsFile)
					} else {
						rep.ID, err = c.Start(ctx, req.Spider)
					}
				case mesh.APICrawlCancel:
					rep.ID, err = req.ID, c.Cancel(ctx, req.ID)
				case mesh.APICrawlFail:
					rep.ID, err = req.ID, c.Fail(ctx, req.ID, req.Reason)
				case mesh.APICrawlRequeue:
					rep.ID = req.ID
					if req.Seq == 0 && !req.All {
						err = errors.New("re-queue: give a dead letter's seq, or all")
						break
					}
					var res RequeueResult
					res, err = c.Requeue(ctx, req.ID, req.Seq)
					rep.Requeue = &res
				}
				if err != nil {
					rep.Error = err.Error()
				}
			}
			b, _ := json.Marshal(rep)
			_ = m.Respond(b)
		}
	}
	for _, subj := range []string{mesh.APICrawlStart, mesh.APICrawlCancel, mesh.APICrawlFail, mesh.APICrawlRequeue} {
		sub, err := nc.QueueSubscribe(subj, "masters", handle(subj))
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", subj, err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	<-ctx.Done()
	c.wg.Wait() // background seedings end with ctx
	return nil
}

// Status is what `crawl status` shows.
type Status struct {
	ID          string     `json:"id"`
	Spider      string     `json:"spider"`
	State       string     `json:"state"`
	Error       string     `json:"error,omitempty"` // why a failed crawl failed
	PagesOK     int64      `json:"pages_ok"`
	PagesFailed int64      `json:"pages_failed"`
	Dead        int64      `json:"dead_letters"`
	Dropped     int64      `json:"dropped"`
	Queued      uint64     `json:"queued"` // in the work queue: waiting, in flight or retrying
	Admitted    int64      `json:"admitted"`
	Items       int64      `json:"items"`
	Incomplete  int64      `json:"incomplete,omitempty"` // elements lacking a required field
	Sitemaps    int64      `json:"sitemaps,omitempty"`   // sitemap files read
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
	return statusOf(ctx, js, id, cr)
}

// statusOf reads the counters and queue of crawl id, whose record is cr.
func statusOf(ctx context.Context, js jetstream.JetStream, id string, cr *mesh.Crawl) (Status, error) {
	st := Status{ID: cr.ID, Spider: cr.Spider, State: cr.State, Error: cr.Error, CreatedAt: cr.CreatedAt, FinishedAt: cr.FinishedAt}
	v, err := crawler.ReadCounters(ctx, js, id, cr.Partitions, mesh.Stats...)
	if err != nil {
		return Status{}, err
	}
	st.PagesOK, st.PagesFailed, st.Dead, st.Dropped = v[mesh.StatOK], v[mesh.StatFailed], v[mesh.StatDead], v[mesh.StatDropped]
	st.Admitted, st.Incomplete, st.Sitemaps = v[mesh.StatAdmitted], v[mesh.StatIncomplete], v[mesh.StatSitemaps]
	// Items are counted by RESULTS itself; the counter holds the total a
	// finished crawl had (it outlives RESULTS' 30 days), or, for a crawl
	// counted before that, its per-page increments.
	stored, err := StoredItems(ctx, js, id)
	if err != nil {
		return Status{}, err
	}
	st.Items = max(v[mesh.StatItems], stored)
	if cr.State == mesh.CrawlRunning {
		if st.Queued, err = crawler.Pending(ctx, js, id, cr.Partitions); err != nil {
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
