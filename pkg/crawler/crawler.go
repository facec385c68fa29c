package crawler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crawlmesh/crawlmesh/pkg/fetch"
	"github.com/crawlmesh/crawlmesh/pkg/logsample"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/politeness"
)

// Config tunes task handling.
type Config struct {
	Node        string
	MaxAttempts int           // fetch attempts before a transient failure goes dead (default 3)
	Backoff     time.Duration // first retry delay, doubled each attempt (default 1s)
	// KeepAlive is how often a running task tells the server it is still
	// being worked on (InProgress); below the consumer's AckWait.
	KeepAlive time.Duration
	Log       *slog.Logger
	Reg       prometheus.Registerer // nil: no metrics
	// Gate enforces per-host limits mesh-wide; nil fetches without it.
	Gate *politeness.Gate
	// Programs runs script and command spiders; nil: specs with script or
	// command fail their crawl on this worker.
	Programs Programs
	// Slots are the worker's fetch slots, held only while fetching; nil
	// means no limit here.
	Slots FetchSlots
	// Taking, when set, returns a context done while the worker takes no
	// new tasks (paused): a task still waiting for its host's turn then
	// goes back to the queue, costing no attempt.
	Taking func() context.Context
}

// FetchSlots is a semaphore of concurrent fetches.
type FetchSlots interface {
	Acquire(ctx context.Context) error
	Release()
}

// Crawler handles tasks.
type Crawler struct {
	cfg    Config
	js     jetstream.JetStream
	pub    *Publisher
	crawls *Crawls
	fetch  *fetch.Fetcher
	filter *filter
	m      *metrics
	log    *slog.Logger

	failing sync.Map // crawl id -> reason: crawls this worker had the masters fail

	maxAttempts atomic.Int64      // live (SetRetry); cfg.MaxAttempts is the start's
	backoffD    atomic.Int64      // time.Duration
	oks         logsample.Sampler // per crawl: pages this worker finished ok
	warned      logsample.Sampler // per crawl: pages with warnings this worker finished
	running     sync.Map          // crawl id -> *runScope: ends when the crawl stops running
}

// runScope is done once its crawl stops running on this worker (the
// crawls cache saw it end): its tasks waiting for a host's turn stop
// waiting at once.
type runScope struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// whileRunning returns ctx, cut short should crawl stop running. Found by
// review: after a cancel, a crawl's tasks still waited their host's turn,
// one delay each (long after 503s had slowed the host), holding every
// task the workers could pull, and other crawls fetched nothing for
// minutes.
// The returned context's cause says which ended it: errCrawlEnded or
// errPaused (the worker stopped taking tasks); a resume or a reopened
// crawl since does not change what the task saw.
func (c *Crawler) whileRunning(ctx context.Context, crawl string) (context.Context, context.CancelFunc) {
	v, ok := c.running.Load(crawl)
	if !ok {
		sctx, cancel := context.WithCancel(context.Background())
		v, _ = c.running.LoadOrStore(crawl, &runScope{ctx: sctx, cancel: cancel})
	}
	tctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(v.(*runScope).ctx, func() { cancel(errCrawlEnded) })
	stopTaking := func() bool { return true }
	if c.cfg.Taking != nil {
		stopTaking = context.AfterFunc(c.cfg.Taking(), func() { cancel(errPaused) })
	}
	return tctx, func() { stop(); stopTaking(); cancel(nil) }
}

// endedSince says whether the crawls cache has a record of crawl, newer
// than cached (the one the task began with), that is not running, and
// its state. Only a record the watch delivered since the task began
// counts: a re-queued task read a fresher one than a cache that still
// says completed.
func (c *Crawler) endedSince(ctx context.Context, crawl string, cached *CrawlInfo) (string, bool) {
	now, err := c.crawls.Get(ctx, crawl)
	if err != nil || now == cached || now.State == mesh.CrawlRunning {
		return "", false
	}
	return now.State, true
}

// endScope ends crawl's run scope, cutting its tasks' waits short.
func (c *Crawler) endScope(crawl string) {
	if v, ok := c.running.LoadAndDelete(crawl); ok {
		v.(*runScope).cancel()
	}
}

var (
	errCrawlEnded = errors.New("the crawl stopped running")
	errPaused     = errors.New("the worker was paused")
)

// waitCut handles a task whose wait for its host's turn was cut short by
// whileRunning, and says whether it did: one whose crawl ended is
// dropped (but handed back if the crawl runs again, reopened by a
// requeue); one whose worker was paused is handed back, no attempt
// spent. Found by review: reading the state now instead of the cause, a
// pause with a quick resume read as a NATS failure and spent attempts.
func (c *Crawler) waitCut(ctx, wctx context.Context, msg jetstream.Msg, t mesh.Task, attempt int, t0 time.Time) bool {
	if ctx.Err() != nil || wctx.Err() == nil {
		return false
	}
	switch context.Cause(wctx) {
	case errCrawlEnded:
		if now, err := c.crawls.Get(ctx, t.Crawl); err == nil && now.State != mesh.CrawlRunning {
			c.drop(ctx, msg, t, attempt, "crawl "+now.State+" while its task waited for the host", t0)
			return true
		}
		c.handBack(msg, t, attempt) // running again: take it afresh
		return true
	case errPaused:
		c.handBack(msg, t, attempt)
		return true
	}
	return false
}

// Success lines are sampled: the first logAllOK pages a worker finishes
// in a crawl are logged one by one, then one in logEveryOK, carrying
// Sampled = logEveryOK (the pages it stands for). Every other outcome
// (retry, failed, dead, dropped) is always logged. A log line is a stored
// message on the server per page; on a big crawl the success lines were a
// sixth of the server's writes and said nothing the counters do not.
const (
	logAllOK   = 1000
	logEveryOK = 10
	// A success with warnings (a jq error) is logged whatever the
	// sampling, for the first logAllWarned such pages a worker finishes
	// in a crawl: a spec author sees why a field is missing even past
	// the first 1,000 pages, and a spec broken on every page does not
	// write a line a page.
	logAllWarned = 100
)

// okLine says whether this success of crawl is logged, and how many
// pages its line stands for (0: itself alone).
func (c *Crawler) okLine(crawl string) (bool, int) {
	n, keep := c.oks.Next(crawl)
	if keep && c.oks.Sampled(n) {
		return true, logEveryOK
	}
	return keep, 0
}

// SetRetry changes the attempts and first retry delay of a running
// Crawler (the cluster configuration's max_attempts and retry_backoff);
// zero keeps the value. A task's next failure uses the new values.
func (c *Crawler) SetRetry(maxAttempts int, backoff time.Duration) {
	if maxAttempts > 0 {
		c.maxAttempts.Store(int64(maxAttempts))
	}
	if backoff > 0 {
		c.backoffD.Store(int64(backoff))
	}
}

func (c *Crawler) attempts() int { return int(c.maxAttempts.Load()) }

// New returns a Crawler.
func New(js jetstream.JetStream, seen jetstream.KeyValue, crawls *Crawls, f *fetch.Fetcher, cfg Config) *Crawler {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	c := &Crawler{cfg: cfg, js: js, pub: NewPublisher(js, seen), crawls: crawls, fetch: f,
		filter: newFilter(200_000), m: newMetrics(cfg.Reg), log: cfg.Log.With("component", "crawler")}
	c.oks.All, c.oks.Every = logAllOK, logEveryOK
	c.warned.All = logAllWarned
	c.SetRetry(cfg.MaxAttempts, cfg.Backoff)
	crawls.OnEnd(c.ended)
	return c
}

// Handle runs one task message to its end: ack, nak for a retry, or a
// dead letter. It never panics on bad input and never returns an error:
// the outcome is the message's acknowledgement.
func (c *Crawler) Handle(ctx context.Context, msg jetstream.Msg) {
	t0 := time.Now()
	attempt := 1
	if md, err := msg.Metadata(); err == nil {
		attempt = int(md.NumDelivered)
	}
	t, err := mesh.DecodeTask(msg.Data())
	if err != nil {
		c.dead(ctx, msg, mesh.Task{Crawl: crawlOfSubject(msg.Subject())}, "undecodable task: "+err.Error(), attempt, t0)
		return
	}
	attempt += t.Tried
	c.m.spider(t.Spider)
	log := c.log.With("task", t.ID, "crawl", t.Crawl)
	cr, err := c.crawls.Get(ctx, t.Crawl)
	if errors.Is(err, ErrUnknownCrawl) {
		c.dead(ctx, msg, t, err.Error(), attempt, t0)
		return
	}
	if err != nil {
		if c.stopping(ctx, msg, t, attempt) {
			return
		}
		log.Warn("crawl record unavailable, task retried", "err", err)
		c.retryLater(ctx, msg, t, attempt, time.Second)
		return
	}
	cached := cr
	if cr.State != mesh.CrawlRunning && t.Requeued > 0 {
		// A re-queued task reopens a completed crawl: the record was
		// updated just before it was published, so this worker's watch
		// may not have delivered that yet.
		if fresh, err := c.crawls.Fresh(ctx, t.Crawl); err == nil {
			cr = fresh
		}
	}
	if cr.State != mesh.CrawlRunning {
		c.drop(ctx, msg, t, attempt, "crawl "+cr.State, t0)
		return
	}
	if attempt > c.attempts()+2 {
		c.dead(ctx, msg, t, fmt.Sprintf("delivered %d times without finishing (workers died or timed out on it)", attempt), attempt, t0)
		return
	}
	if reason, ok := c.failing.Load(t.Crawl); ok {
		// This worker told the masters the crawl cannot run; until the
		// record says so, its tasks go as they would once it does.
		c.drop(ctx, msg, t, attempt, "crawl failed: "+reason.(string), t0)
		return
	}
	_ = msg.InProgress()
	stop := c.keepAlive(msg)
	lim := c.limits(cr)
	gate := c.gate(lim)
	// The waits for the host's turn (Prepare's requests and the page's
	// permit) last only while the crawl runs and the worker takes tasks.
	wctx, endWait := c.whileRunning(ctx, t.Crawl)
	defer endWait()
	if state, ended := c.endedSince(ctx, t.Crawl, cached); ended {
		// It ended before its scope was made, which nothing will end now.
		c.endScope(t.Crawl)
		stop()
		c.drop(ctx, msg, t, attempt, "crawl "+state, t0)
		return
	}
	// Prepare (robots.txt, login) goes before the page's permit: its own
	// requests take their permits from gate, so parallelism 1 never waits
	// on itself.
	delay, perr := c.fetch.Prepare(wctx, cr.Parsed, t.Crawl, t.URL, gate)
	if perr != nil {
		stop()
		if c.waitCut(ctx, wctx, msg, t, attempt, t0) {
			return
		}
		c.failed(ctx, msg, t, attempt, perr, t0)
		return
	}
	if delay > lim.Delay {
		lim.Delay = delay
	}
	permit, err := c.take(wctx, t, *lim)
	if err != nil {
		stop()
		if c.waitCut(ctx, wctx, msg, t, attempt, t0) {
			return
		}
		if c.stopping(ctx, msg, t, attempt) { // someone else takes it at once
			return
		}
		// The host state is unreadable: NATS is restarting or its
		// JetStream is not ready. At once, every worker would take the
		// task back and fail the same way, and a few such rounds make
		// "delivered 6 times without finishing": the task and what it
		// leads to were lost to a NATS restart. Each round now waits
		// longer (1 s, 2 s, 4 s ... by default), and costs no attempt.
		log.Warn("host state unreadable, task retried", "url", t.URL, "attempt", attempt, "err", err)
		c.retryLater(ctx, msg, t, attempt, c.backoff(t.HandedBack+1, 0))
		return
	}
	// The wait for the host's turn can be long (a slow host, parallelism
	// 1): a crawl cancelled meanwhile must not fetch. The cache follows the
	// bucket's watch, so this costs no request; only a record the watch
	// delivered since the task began counts (a re-queued task read a
	// fresher one than a cache that still says completed).
	if state, ended := c.endedSince(ctx, t.Crawl, cached); ended {
		permit.Release(ctx, politeness.Outcome{})
		c.releaseSlot()
		stop()
		c.drop(ctx, msg, t, attempt, "crawl "+state, t0)
		return
	}
	if t.Kind == mesh.TaskSitemap {
		c.sitemap(ctx, msg, t, cr, permit, gate, attempt, t0, stop)
		return
	}
	tf := time.Now()
	// FetchWith releases the permit (and any it takes from gate).
	page, ferr := c.fetch.FetchWith(ctx, cr.Parsed, t.Crawl, t.URL, permit, gate)
	lat := time.Since(tf)
	c.m.fetchDur.WithLabelValues(t.Spider).Observe(lat.Seconds())
	if ferr == nil && page.Raw != nil {
		// The spider's code runs within the task's slot and keep-alive: a
		// page that takes its whole time limit must not be handed to
		// another worker meanwhile.
		ferr = c.runProgram(ctx, t, cr, page)
	}
	c.releaseSlot()
	stop()
	if ferr != nil {
		c.failed(ctx, msg, t, attempt, ferr, t0)
		return
	}
	c.m.bytes.WithLabelValues(t.Spider).Add(float64(page.Bytes))
	redelivered := attempt > 1 || t.Returned()
	if page.URL != t.URL {
		mine, err := c.pub.With(layoutOf(cr)).Claim(ctx, t.Crawl, page.URL, t.ID, redelivered)
		if err != nil {
			log.Warn("claim of redirect target failed, task retried", "err", err)
			c.retryLater(ctx, msg, t, attempt, time.Second)
			return
		}
		if !mine {
			c.drop(ctx, msg, t, attempt, "redirected to "+page.URL+", which the crawl already has", t0)
			return
		}
	}
	if err := c.publishPage(ctx, msg, t, cr, page, redelivered); err != nil {
		var fe *fetch.Error
		var api *jetstream.APIError
		if errors.As(err, &api) && api.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum {
			// JetStream refused what this page made as too large: no
			// retry heals that, and taken for a NATS outage it was
			// retried for ever at no cost (found by review). Other 400s
			// (an account's resource limits) may pass, and are waited out.
			fe = &fetch.Error{Reason: "publish-refused", Err: fmt.Errorf("NATS refused what the page made: %w", err)}
		}
		if fe != nil || errors.As(err, &fe) {
			c.failed(ctx, msg, t, attempt, fe, t0)
			return
		}
		if c.stopping(ctx, msg, t, attempt) {
			return
		}
		log.Warn("publish failed, task retried", "err", err)
		c.retryLater(ctx, msg, t, attempt, c.backoff(t.HandedBack+1, 0))
		return
	}
	c.m.pages.WithLabelValues(t.Spider, statusClass(page.Status)).Inc()
	c.m.items.WithLabelValues(t.Spider).Add(float64(len(page.Items)))
	keep, n := false, 0
	if len(page.Warnings) > 0 {
		var first bool
		var k int64
		k, keep = c.warned.Next(t.Crawl)
		if first = k == 1; first {
			log.Warn("a page has warnings: expressions that failed (their values are missing) or links left out; crawl logs shows each such page",
				"url", t.URL, "warnings", page.Warnings)
		}
	}
	if !keep { // a line outside the sampling stands for its page alone
		keep, n = c.okLine(t.Crawl)
	}
	if keep {
		c.logEntry(t, mesh.LogEntry{URL: t.URL, Attempt: attempt, Status: page.Status, Outcome: "ok",
			Items: len(page.Items), Links: len(page.Links), Incomplete: page.Incomplete, Warnings: page.Warnings, Sampled: n}, t0)
	}
	c.m.outcome(t.Spider, outcomeOK)
	_ = msg.Ack()
	if c.log.Enabled(ctx, slog.LevelDebug) { // every page, sampled or not
		log.Debug("page ok", "url", t.URL, "final_url", page.URL, "status", page.Status, "attempt", attempt,
			"items", len(page.Items), "links", len(page.Links), "seconds", time.Since(t0).Seconds())
	}
}

// limits are the crawl's politeness limits; Prepare may raise Delay to
// the host's Crawl-delay, which gate then applies to later requests too.
func (c *Crawler) limits(cr *CrawlInfo) *politeness.Limits {
	p := cr.Parsed.Politeness
	return &politeness.Limits{Parallelism: p.Parallelism, Delay: p.DelayOr(politeness.DefaultDelay)}
}

// gate gives the fetcher a permit per request it makes beyond the page
// itself (robots.txt, login, redirect hops). No slot callbacks: the
// task's fetch slot is already held, or not needed (Prepare).
func (c *Crawler) gate(lim *politeness.Limits) fetch.Gate {
	if c.cfg.Gate == nil {
		return nil
	}
	return func(ctx context.Context, host string) (*politeness.Permit, error) {
		return c.cfg.Gate.Acquire(ctx, host, *lim, nil, nil)
	}
}

// take waits for a fetch slot and the host's permit. A task waiting for
// its host gives its slot back between tries, so it does not hold up tasks
// of other hosts; its message stays alive (keepAlive) meanwhile.
func (c *Crawler) take(ctx context.Context, t mesh.Task, lim politeness.Limits) (*politeness.Permit, error) {
	var before func(context.Context) error
	var after func()
	if c.cfg.Slots != nil {
		before, after = c.cfg.Slots.Acquire, c.cfg.Slots.Release
	}
	if c.cfg.Gate == nil {
		if before != nil {
			return nil, before(ctx)
		}
		return nil, nil
	}
	u, err := url.Parse(t.URL)
	if err != nil {
		return nil, err
	}
	return c.cfg.Gate.Acquire(ctx, u.Host, lim, before, after)
}

// Bounds on the links taken from one page. A URL longer than
// maxLinkBytes is no page anyone links to (browsers and sitemaps stop
// far below), and its task would pass the work queue's message limit; a
// page of 300,000 links kept a crawl refetching it for minutes (found by
// review). Both are said on the page's log line.
const (
	maxLinkBytes = 8 << 10
	maxPageLinks = 20_000
)

// boundLinks is page's links within those bounds, noting on the page what
// it left out.
func boundLinks(page *fetch.Page) []string {
	links, long := page.Links, 0
	for _, l := range page.Links {
		if len(l) > maxLinkBytes {
			long++
		}
	}
	if long > 0 {
		links = make([]string, 0, len(page.Links)-long)
		for _, l := range page.Links {
			if len(l) <= maxLinkBytes {
				links = append(links, l)
			}
		}
		page.Warnings = append(page.Warnings, fmt.Sprintf("%d links longer than %d bytes left out", long, maxLinkBytes))
	}
	if len(links) > maxPageLinks {
		page.Warnings = append(page.Warnings, fmt.Sprintf("%d links: the first %d followed", len(links), maxPageLinks))
		links = links[:maxPageLinks]
	}
	return links
}

// publishPage publishes children, items and counters and waits for every
// acknowledgement. An item too large for a NATS message fails the page
// (a *fetch.Error, not to be retried) before anything is published.
func (c *Crawler) publishPage(ctx context.Context, msg jetstream.Msg, t mesh.Task, cr *CrawlInfo, page *fetch.Page, redelivered bool) error {
	s, lay := cr.Parsed, layoutOf(cr)
	now := time.Now().UTC()
	items := make([][]byte, len(page.Items))
	for i, data := range page.Items {
		items[i], _ = json.Marshal(mesh.Item{URL: page.URL, Spider: t.Spider, Crawl: t.Crawl, Depth: t.Depth, FetchedAt: now, Data: data})
		// The server's max_payload counts headers too (the item's id).
		if limit := c.js.Conn().MaxPayload() - 1024; int64(len(items[i])) > limit {
			return &fetch.Error{Reason: "item-too-large",
				Err: fmt.Errorf("item %d is %d bytes; the NATS server takes messages up to %d (its max_payload, less headers)", i, len(items[i]), limit)}
		}
	}
	var futs []jetstream.PubAckFuture
	if s.MaxDepth == 0 || t.Depth+1 <= s.MaxDepth {
		var cands []mesh.Task
		for _, link := range boundLinks(page) {
			id := mesh.URLHash(link)
			if !redelivered && c.filter.seen(t.Crawl, id) {
				continue
			}
			cands = append(cands, mesh.Task{ID: id, Crawl: t.Crawl, Spider: t.Spider, URL: link, Depth: t.Depth + 1, Referrer: page.URL})
		}
		pub := c.pub.With(lay)
		adm, err := pub.Admit(ctx, t.Crawl, s.MaxPages, t.ID, redelivered, cands)
		if err != nil {
			return err
		}
		for _, ct := range cands {
			c.filter.add(t.Crawl, ct.ID)
		}
		for _, ct := range adm.Tasks {
			f, err := pub.PublishTask(ct)
			if err != nil {
				return err
			}
			futs = append(futs, f)
		}
	}
	for i, b := range items {
		f, err := c.js.PublishAsync(mesh.ResultSubject(t.Crawl), b, jetstream.WithMsgID(mesh.ItemID(t.Crawl, page.URL, i)))
		if err != nil {
			return err
		}
		futs = append(futs, f)
	}
	// No items counter: RESULTS, de-duplicated by item id, counts them
	// exactly (crawlctl.ReadStatus), and one stored message and one
	// de-duplication id fewer per page is a tenth of the server's memory
	// and CPU for a page.
	for _, inc := range []struct {
		name string
		n    int
	}{{mesh.StatOK, 1}, {mesh.StatIncomplete, page.Incomplete}} {
		if inc.n == 0 {
			continue
		}
		f, err := c.incr(msg, t.Crawl, inc.name, inc.n, lay.PubID(t.Crawl, t.ID, inc.name))
		if err != nil {
			return err
		}
		futs = append(futs, f)
	}
	return Wait(ctx, futs)
}

func (c *Crawler) failed(ctx context.Context, msg jetstream.Msg, t mesh.Task, attempt int, err error, t0 time.Time) {
	var fe *fetch.Error
	if !errors.As(err, &fe) {
		fe = &fetch.Error{Transient: true, Reason: "error", Err: err}
	}
	if fe.CrawlLevel {
		c.crawlFailed(ctx, msg, t, attempt, fe, t0)
		return
	}
	entry := mesh.LogEntry{URL: t.URL, Attempt: attempt, Status: fe.Status, Error: fe.Error()}
	if fe.Transient && c.stopping(ctx, msg, t, attempt) {
		return // someone else takes it at once
	}
	if fe.Transient && attempt < c.attempts() {
		d := c.backoff(attempt, fe.RetryAfter)
		entry.Outcome = "retry"
		c.logEntry(t, entry, t0)
		c.m.retries.WithLabelValues(t.Spider).Inc()
		c.m.outcome(t.Spider, outcomeRetried)
		_ = msg.NakWithDelay(d)
		return
	}
	if fe.Transient {
		reason := fmt.Sprintf("%d attempts failed, last: %s", attempt, fe.Error())
		if attempt == 1 {
			reason = "its only attempt failed: " + fe.Error()
		}
		c.dead(ctx, msg, t, reason, attempt, t0)
		return
	}
	entry.Outcome = "failed"
	c.m.pages.WithLabelValues(t.Spider, reasonClass(fe)).Inc()
	f, perr := c.incr(msg, t.Crawl, mesh.StatFailed, 1, t.Crawl+"."+t.ID+".failed")
	if perr == nil {
		perr = Wait(ctx, []jetstream.PubAckFuture{f})
	}
	if perr != nil {
		_ = msg.NakWithDelay(time.Second)
		return
	}
	c.logEntry(t, entry, t0)
	if fe.Reason == "robots" {
		c.m.robots.WithLabelValues(t.Spider).Inc()
	}
	c.m.outcome(t.Spider, outcomeFailed)
	_ = msg.Ack()
}

func (c *Crawler) drop(ctx context.Context, msg jetstream.Msg, t mesh.Task, attempt int, why string, t0 time.Time) {
	f, err := c.incr(msg, t.Crawl, mesh.StatDropped, 1, t.Crawl+"."+t.ID+".dropped")
	if err == nil {
		err = Wait(ctx, []jetstream.PubAckFuture{f})
	}
	if err != nil {
		// Counted exactly: the increment's id makes the next try's a no-op
		// if this one was stored after all.
		c.log.Warn("dropped task not counted, task retried", "crawl", t.Crawl, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	c.logEntry(t, mesh.LogEntry{URL: t.URL, Attempt: attempt, Outcome: "dropped", Error: why}, t0)
	c.m.outcome(t.Spider, outcomeDropped)
	_ = msg.Ack()
}

// stopping hands the task back (see handBack) when this worker is
// stopping (ctx done), and reports whether it did: a task it cannot
// finish now goes to another worker at once, at no cost in attempts.
func (c *Crawler) stopping(ctx context.Context, msg jetstream.Msg, t mesh.Task, attempt int) bool {
	if ctx.Err() == nil {
		return false
	}
	c.handBack(msg, t, attempt)
	return true
}

// retryLater gives a task back after d without spending one of its
// attempts: what failed was the mesh (NATS stalled, its JetStream
// restarting, its disk full), not the page. Found by review: a NATS
// stall of 15 s spent an attempt of each task it caught, and pages that
// answered 503 twice, then 200, were dead-lettered after two fetches.
// The task is held meanwhile (kept alive), so no other worker takes it
// at once and fails the same way. After maxFreeRetries hand-backs a
// retry is counted again, so a task the mesh can never take still ends
// in the dead letters.
func (c *Crawler) retryLater(ctx context.Context, msg jetstream.Msg, t mesh.Task, attempt int, d time.Duration) {
	if t.HandedBack >= maxFreeRetries {
		_ = msg.NakWithDelay(d)
		return
	}
	// The hand-back itself needs JetStream: while it cannot be stored
	// (NATS still stalled), the task is held and the hand-back tried again,
	// each wait longer; a Nak would spend the attempt after all (found by
	// review). Bounded: past maxFreeHold, or when the worker stops, the
	// task goes back as it can.
	stop := c.keepAlive(msg)
	defer stop()
	deadline := time.Now().Add(maxFreeHold)
	for tries := 1; ; tries++ {
		w := time.NewTimer(min(d, maxFreeWait))
		select {
		case <-ctx.Done():
		case <-w.C:
		}
		w.Stop()
		err := c.tryHandBack(msg, t, attempt)
		if err == nil {
			return
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			c.log.Warn("task given back as a retry: its hand-back could not be stored", "crawl", t.Crawl, "url", t.URL, "tries", tries, "err", err)
			_ = msg.Nak()
			return
		}
		if tries == 1 {
			c.log.Warn("task held: its hand-back could not be stored, trying again", "crawl", t.Crawl, "url", t.URL, "err", err)
		}
		d *= 2
	}
}

const (
	maxFreeRetries = 50
	maxFreeWait    = 30 * time.Second
	maxFreeHold    = 5 * time.Minute
)

// handBack gives back a task this stopping worker will not finish,
// without spending one of its attempts: it is published anew (its
// deliveries start again at one, Tried carrying what earlier deliveries
// spent) and this delivery is acked. Should either fail, it is Nak'd as
// before. Should the ack be lost, both messages run: as redelivered ones,
// whose children, items and counters carry the same de-duplication ids.
func (c *Crawler) handBack(msg jetstream.Msg, t mesh.Task, attempt int) {
	if c.tryHandBack(msg, t, attempt) != nil {
		_ = msg.Nak()
	}
}

// tryHandBack is handBack without the Nak: an error when the new
// message could not be stored (the task is still this delivery's).
func (c *Crawler) tryHandBack(msg jetstream.Msg, t mesh.Task, attempt int) error {
	md, err := msg.Metadata()
	if err != nil {
		return err
	}
	t.Tried = attempt - 1 // this delivery was no attempt; those before were
	t.HandedBack++
	b, _ := json.Marshal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id := "handback." + md.Stream + "." + strconv.FormatUint(md.Sequence.Stream, 10)
	if _, err := c.js.Publish(ctx, msg.Subject(), b, jetstream.WithMsgID(id)); err != nil {
		return err
	}
	_ = msg.DoubleAck(ctx)
	return nil
}

// dead copies the task to the dead-letter stream with the reason, then
// terminates it (Term removes it from the work queue, so the copy comes first).
func (c *Crawler) dead(ctx context.Context, msg jetstream.Msg, t mesh.Task, reason string, attempt int, t0 time.Time) {
	crawl, spider := t.Crawl, t.Spider
	if crawl == "" {
		crawl = "unknown"
	}
	m := nats.NewMsg(mesh.DeadSubject(crawl))
	m.Data = msg.Data()
	m.Header.Set("Crawlmesh-Reason", reason)
	m.Header.Set("Crawlmesh-Attempts", strconv.Itoa(attempt))
	m.Header.Set("Crawlmesh-Node", c.cfg.Node)
	m.Header.Set("Crawlmesh-Subject", msg.Subject())
	// The task's stream and sequence name this dead letter, so a task
	// delivered again after its dead letter was stored (the worker or NATS
	// died before the Term) is neither stored nor counted twice. Partition
	// 0 keeps the sequence alone, as before partitions; another
	// partition's sequences overlap partition 0's, so its stream is named.
	var opts []jetstream.PublishOpt
	id := ""
	if md, err := msg.Metadata(); err == nil {
		id = "dead." + strconv.FormatUint(md.Sequence.Stream, 10)
		if md.Stream != mesh.TasksStream {
			id = "dead." + md.Stream + "." + strconv.FormatUint(md.Sequence.Stream, 10)
		}
		opts = append(opts, jetstream.WithMsgID(id))
	}
	if _, err := c.js.PublishMsg(ctx, m, opts...); err != nil {
		c.log.Warn("dead letter not stored, task retried", "crawl", crawl, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if id != "" {
		id = crawl + "." + id
	}
	f, err := c.incr(msg, crawl, mesh.StatDead, 1, id)
	if err == nil {
		err = Wait(ctx, []jetstream.PubAckFuture{f})
	}
	if err != nil && id != "" {
		// Counted exactly: the next delivery stores neither the dead
		// letter nor the increment twice (both carry the task's id). A
		// Term now would leave the letter uncounted for good, and a
		// requeue of it would take the count below zero.
		c.log.Warn("dead letter not counted, task retried", "crawl", crawl, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	c.m.dead.WithLabelValues(spider).Inc()
	c.m.outcome(spider, outcomeDead)
	c.log.Warn("task sent to dead letters", "crawl", crawl, "attempt", attempt, "err", reason)
	t.Crawl = crawl
	c.logEntry(t, mesh.LogEntry{URL: t.URL, Attempt: attempt, Outcome: "dead", Error: reason}, t0)
	_ = msg.TermWithReason(reason)
}

func (c *Crawler) backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := time.Duration(c.backoffD.Load()) << min(attempt-1, 6)
	return max(d, retryAfter)
}

// keepAlive marks the message in progress periodically until stop is called.
func (c *Crawler) keepAlive(msg jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(c.cfg.KeepAlive)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func (c *Crawler) logEntry(t mesh.Task, e mesh.LogEntry, t0 time.Time) {
	e.Time, e.Node, e.Duration = time.Now().UTC(), c.cfg.Node, time.Since(t0).Seconds()
	// log_level debug shows each task's outcome on the node too (an "ok"
	// has its own line, for every page).
	if e.Outcome != "ok" && c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("task "+e.Outcome, "crawl", t.Crawl, "task", t.ID, "url", e.URL, "attempt", e.Attempt,
			"status", e.Status, "error", e.Error)
	}
	b, _ := json.Marshal(e)
	// Logs are best effort: a lost line must not hold up the crawl.
	_, _ = c.js.PublishAsync(mesh.LogSubject(t.Crawl), b)
}

// layoutOf is the partition layout of a crawl.
func layoutOf(cr *CrawlInfo) mesh.Layout {
	return cr.Layout(cr.Parsed.PartitionBy)
}

func crawlOfSubject(subj string) string { return mesh.CrawlOfTaskSubject(subj) }

// incr adds n to a counter of the crawl of task message msg, in the
// partition msg came from.
func (c *Crawler) incr(msg jetstream.Msg, crawl, name string, n int, id string) (jetstream.PubAckFuture, error) {
	return c.pub.Incr(mesh.PartitionOfTaskSubject(msg.Subject()), crawl, name, n, id)
}

func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "error"
	}
	return strconv.Itoa(code/100) + "xx"
}

func reasonClass(fe *fetch.Error) string {
	switch fe.Reason {
	case "robots", "too-large", "not-html", "redirect", "timeout", "network":
		return fe.Reason
	}
	if fe.Status > 0 {
		return statusClass(fe.Status)
	}
	return "error"
}
