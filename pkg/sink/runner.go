package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/envsubst"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// metaCreated in a sink consumer's metadata ties it to one sink: a sink
// removed and added again under its name gets a new consumer.
const metaCreated = "crawlmesh-sink-created"

// attemptTimeout bounds one delivery attempt (a webhook's POST has its
// own, shorter, timeout).
const attemptTimeout = time.Minute

// maxCrawlsKept bounds the per-crawl counts in a status.
const maxCrawlsKept = 50

// runner delivers one sink.
type runner struct {
	mg  *Manager
	s   Sink
	log *slog.Logger
	d   Deliverer
	red *redactor

	// include caches per crawl whether the sink takes its items.
	include map[string]bool

	st        Status
	crawlSeen []string // order the crawls of st.Crawls were first seen
	lastPut   time.Time
	lastLag   time.Time
	cons      jetstream.Consumer // the sink's consumer, for the lag while a batch fails
	dirty     bool               // st changed since the last put
}

func newRunner(mg *Manager, s Sink) *runner {
	return &runner{mg: mg, s: s, log: mg.log.With("sink", s.Name), include: map[string]bool{}}
}

func (r *runner) run(ctx context.Context) {
	defer r.mg.m.lag.DeleteLabelValues(r.s.Name)
	// Every series of the sink exists from its start, at 0.
	r.mg.m.delivered.WithLabelValues(r.s.Name)
	r.mg.m.failures.WithLabelValues(r.s.Name)
	r.mg.m.dead.WithLabelValues(r.s.Name)
	r.mg.m.lag.WithLabelValues(r.s.Name)
	r.loadStatus(ctx)
	defer r.putStatus(ctx, true) // the counts of the last second
	r.st.State = StateStarting
	if err := r.open(); err != nil {
		// An unset variable or a URL that does not parse will not change
		// while this process runs: say so and wait for a new definition.
		r.fail(ctx, err)
		r.log.Error("sink cannot start", "err", err.Error())
		<-ctx.Done()
		return
	}
	defer r.d.Close()
	var cons jetstream.Consumer
	backoff := r.mg.cfg.MinBackoff
	for {
		var err error
		cons, err = r.consumer(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("open sink consumer", "err", err)
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, r.mg.cfg.MaxBackoff)
	}
	r.log.Info("sink delivering", "type", r.s.Type, "target", r.s.Target())
	if r.st.State == StateStarting {
		r.st.State = StateOK
	}
	r.putStatus(ctx, true)
	for ctx.Err() == nil {
		if err := r.cycle(ctx, cons); err != nil && ctx.Err() == nil {
			r.log.Warn("sink fetch", "err", err)
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				if c, err := r.consumer(ctx); err == nil {
					cons = c
				}
			}
			sleep(ctx, time.Second)
		}
	}
}

// open expands the sink's references and builds its deliverer.
func (r *runner) open() error {
	vals := map[string]string{}
	lookup := func(name string) (string, bool) {
		v, ok := r.mg.cfg.Lookup(name)
		if ok {
			vals[name] = v
		}
		return v, ok
	}
	switch r.s.Type {
	case TypePostgres:
		cs, err := envsubst.Expand(r.s.Postgres.URL, lookup)
		if err == nil {
			err = fitsInto(r.s.Postgres.URL, vals)
		}
		if err != nil {
			return Permanent(fmt.Errorf("--postgres: %v on the master", err))
		}
		r.red = newRedactor(vals)
		r.d = newPostgres(cs, r.s.Postgres.Table, r.red)
	case TypeWebhook:
		u, err := envsubst.Expand(r.s.Webhook.URL, lookup)
		if err == nil {
			err = fitsInto(r.s.Webhook.URL, vals)
		}
		if err != nil {
			return Permanent(fmt.Errorf("--webhook: %v on the master", err))
		}
		r.red = newRedactor(vals)
		r.d = newWebhook(u, time.Duration(r.s.Webhook.Timeout), r.red)
	default:
		return Permanent(fmt.Errorf("type %q", r.s.Type))
	}
	return nil
}

// fitsInto refuses a variable's value that would change the shape of
// the destination it is put in: in a URL, a character that ends the part
// it stands in ('@', '/', '?' or '#' in the user info or host, '?' or
// '#' in the path, '#' or '&' in a query value) or a '%' that starts no
// escape; in a keyword connection string, a space or quote that ends the
// value. The driver read the rest of a password holding '@' as the host,
// and its error ("lookup cr3t@127.0.0.1") printed a piece of the secret
// that no redactor knew (found by review). A variable that is the whole
// destination is the operator's to shape. Only the variable and the
// character are named, never the value.
func fitsInto(raw string, vals map[string]string) error {
	isURL := strings.Contains(raw, "://")
	for _, name := range envsubst.Refs(raw) {
		ref := "${env:" + name + "}"
		if strings.TrimSpace(raw) == ref {
			continue
		}
		part := "value"
		if isURL {
			part = urlPart(raw, strings.Index(raw, ref))
		}
		quoted := strings.Contains(raw, "'"+ref+"'")
		v := vals[name]
		what := ""
		for i := 0; i < len(v) && what == ""; i++ {
			c := v[i]
			bad := false
			switch part {
			case "user info", "host":
				bad = strings.IndexByte("@/?# ", c) >= 0
			case "path":
				bad = strings.IndexByte("?# ", c) >= 0
			case "query":
				bad = strings.IndexByte("#& ", c) >= 0
			default: // a keyword string's value
				bad = c == '\'' || c == '\\' || c == ' ' && !quoted
			}
			switch {
			case c < ' ' || c == 0x7f:
				what = "a control character"
			case bad:
				what = fmt.Sprintf("%q", c)
			case isURL && part != "query" && c == '%' && (i+2 >= len(v) || !isHex(v[i+1]) || !isHex(v[i+2])):
				what = "a '%' that starts no %XX escape"
			}
		}
		switch {
		case what == "":
		case isURL:
			return fmt.Errorf("the value of ${env:%s} holds %s, which would change the URL's %s: percent-encode it in the variable (%%40 for '@', %%2F for '/', %%26 for '&', %%25 for '%%'), as in any URL", name, what, part)
		default:
			return fmt.Errorf("the value of ${env:%s} holds %s, which would end the value in the connection string: quote it ('${env:%s}'), or use the URL form with the value percent-encoded", name, what, name)
		}
	}
	return nil
}

// urlPart names the part of URL raw that byte i stands in.
func urlPart(raw string, i int) string {
	start := strings.Index(raw, "://") + 3
	end := len(raw)
	if j := strings.IndexAny(raw[start:], "/?#"); j >= 0 {
		end = start + j
	}
	switch {
	case i < end:
		if at := strings.LastIndex(raw[start:end], "@"); at >= 0 && i < start+at {
			return "user info"
		}
		return "host"
	case strings.Contains(raw[end:i], "?"):
		return "query"
	}
	return "path"
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// consumer opens the sink's durable consumer, creating it at the first
// item of the oldest crawl the sink takes.
func (r *runner) consumer(ctx context.Context) (jetstream.Consumer, error) {
	js := r.mg.cfg.JS
	name := mesh.SinkConsumer(r.s.Name)
	created := r.s.CreatedAt.UTC().Format(time.RFC3339Nano)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := js.Consumer(rctx, mesh.ResultsStream, name)
	if err == nil {
		if c.CachedInfo().Config.Metadata[metaCreated] == created {
			return c, nil
		}
		// A consumer of an earlier sink of this name.
		if err := js.DeleteConsumer(rctx, mesh.ResultsStream, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("delete stale consumer %s: %w", name, err)
		}
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("open consumer %s: %w", name, err)
	}
	start, err := r.startSeq(rctx)
	if err != nil {
		return nil, err
	}
	c, err = js.CreateConsumer(rctx, mesh.ResultsStream, jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "crawlmesh sink " + r.s.Name,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   start,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       r.mg.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: max(2*r.s.BatchSize, 1000),
		Metadata:      map[string]string{metaCreated: created},
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", name, err)
	}
	r.log.Info("sink consumer created", "consumer", name, "start_seq", start)
	return c, nil
}

// startSeq is where a new sink starts: the first item of the oldest crawl
// it takes that had not ended when the sink was added, else the next item.
func (r *runner) startSeq(ctx context.Context) (uint64, error) {
	st, err := r.mg.cfg.JS.Stream(ctx, mesh.ResultsStream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", mesh.ResultsStream, err)
	}
	start := st.CachedInfo().State.LastSeq + 1
	keys, err := r.mg.cfg.Crawls.Keys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return 0, fmt.Errorf("list crawls: %w", err)
	}
	for _, k := range keys {
		if !r.takes(ctx, k) {
			continue
		}
		m, err := st.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(mesh.ResultSubject(k)))
		if err == nil && m.Sequence < start {
			start = m.Sequence
		}
	}
	return start, nil
}

// takes reports whether the sink takes crawl's items: a crawl of a spider
// it takes that had not ended when the sink was added. A crawl whose
// record is gone is taken (nothing is dropped on doubt).
func (r *runner) takes(ctx context.Context, crawl string) bool {
	if v, ok := r.include[crawl]; ok {
		return v
	}
	e, err := r.mg.cfg.Crawls.Get(ctx, crawl)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return true // not cached: asked again next time
	}
	v := true
	if err == nil {
		var cr mesh.Crawl
		if json.Unmarshal(e.Value(), &cr) == nil {
			v = r.s.Takes(cr.Spider) && (cr.FinishedAt == nil || !cr.FinishedAt.Before(r.s.CreatedAt))
		}
	}
	r.include[crawl] = v
	return v
}

// maxBatchBytes bounds a batch's stored size as BatchSize bounds its
// count: a master holds a batch about 15 times over while it encodes it
// (JSON, the driver's jsonb), and 60 items of 900 KB took the leader from
// 32 MB to 886 MB (found by review); 500 such items would take
// gigabytes, on every standby in turn. Above RESULTS' largest message
// (1 MiB), so one item always fits.
const maxBatchBytes = 8 << 20

// cycle fetches one batch and delivers it.
func (r *runner) cycle(ctx context.Context, cons jetstream.Consumer) error {
	// The server ends the pull at BatchWait and the client reads until it
	// says so. (A client-side deadline instead — FetchContext — could stop
	// reading while messages were still on their way: those would sit
	// unacked until AckWait, measured as a 10 s stall per large batch.)
	msgs, err := cons.Fetch(r.s.BatchSize, jetstream.FetchMaxWait(time.Duration(r.s.BatchWait)), jetstream.FetchMaxBytes(maxBatchBytes))
	if err != nil {
		return err
	}
	var batch []jetstream.Msg
	for m := range msgs.Messages() {
		batch = append(batch, m)
	}
	if err := msgs.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) &&
		!errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.Canceled) && len(batch) == 0 {
		return err
	}
	r.cons = cons
	if len(batch) > 0 {
		if err := r.deliver(ctx, batch); err != nil {
			return nil // ctx ended mid-batch: it stays unacked and comes again
		}
	}
	r.lag(ctx, cons)
	// idle: write what the last second's batches changed
	r.putStatus(ctx, len(batch) == 0 && r.dirty)
	return nil
}

// deliver turns messages into a batch, delivers it with retries and acks
// every message once the target holds the items (or, for a webhook that
// gave up, once they are in the dead letters).
func (r *runner) deliver(ctx context.Context, msgs []jetstream.Msg) error {
	var items []Item
	seen := map[string]bool{}
	for _, m := range msgs {
		it, ok := r.item(ctx, m)
		if !ok || seen[it.ID] {
			continue
		}
		seen[it.ID] = true
		items = append(items, it)
	}
	if len(items) > 0 {
		stopKeep := r.keepAlive(ctx, msgs)
		err := r.attempts(ctx, Batch{ID: batchID(r.s.Name, items), Items: items})
		stopKeep()
		if err != nil {
			return err
		}
	}
	for _, m := range msgs[:len(msgs)-1] {
		_ = m.Ack()
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := msgs[len(msgs)-1].DoubleAck(actx); err != nil {
		r.log.Debug("ack", "err", err) // redelivered and upserted again: harmless
	}
	return nil
}

// item decodes one message; false for an item the sink does not take.
func (r *runner) item(ctx context.Context, m jetstream.Msg) (Item, bool) {
	var it Item
	if err := json.Unmarshal(m.Data(), &it); err != nil {
		r.log.Warn("undecodable item skipped", "subject", m.Subject(), "err", err)
		return it, false
	}
	if !r.s.Takes(it.Spider) || !r.takes(ctx, it.Crawl) {
		return it, false
	}
	it.ID = m.Headers().Get(jetstream.MsgIDHeader)
	if it.ID == "" {
		if md, err := m.Metadata(); err == nil {
			it.ID = "seq-" + strconv.FormatUint(md.Sequence.Stream, 10)
		}
	}
	if len(it.Data) == 0 || string(it.Data) == "null" {
		it.Data = json.RawMessage("{}")
	}
	return it, true
}

// keepAlive tells JetStream the batch's messages are being worked on, so
// a batch retried for longer than AckWait is not handed out again.
func (r *runner) keepAlive(ctx context.Context, msgs []jetstream.Msg) func() {
	kctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(r.mg.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-kctx.Done():
				return
			case <-t.C:
				for _, m := range msgs {
					_ = m.InProgress()
				}
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// attempts delivers b until it is taken, ctx ends, or (webhook) the
// give-up time passes and the items go to the dead letters.
func (r *runner) attempts(ctx context.Context, b Batch) error {
	t0 := time.Now()
	backoff := r.mg.cfg.MinBackoff
	for {
		// A database that accepts the connection and then never answers
		// must not hold the sink silently: one attempt has a deadline.
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := r.d.Deliver(actx, b)
		if err != nil && actx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			err = fmt.Errorf("no answer within %v: %w", attemptTimeout, err)
		}
		cancel()
		if err == nil {
			r.ok(ctx, b, t0)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.mg.m.failures.WithLabelValues(r.s.Name).Inc()
		r.fail(ctx, err)
		// The lag grows while a batch fails: an alert on it must see that
		// (found by review: 0 through a 45 s outage, 800 items behind).
		if r.cons != nil {
			r.lag(ctx, r.cons)
		}
		r.log.Warn("sink delivery failed; retrying", "batch", b.ID, "items", len(b.Items), "err", err.Error(),
			"permanent", IsPermanent(err), "retry_in", backoff)
		if r.s.Webhook != nil && time.Since(t0) >= time.Duration(r.s.Webhook.GiveUp) {
			if derr := r.deadLetter(ctx, b, err, time.Since(t0)); derr == nil {
				return nil
			} else if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		if !sleep(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(2*backoff, r.mg.cfg.MaxBackoff)
	}
}

// deadLetter puts a given-up batch's items into DEADLETTER, one message
// each, with the reason.
func (r *runner) deadLetter(ctx context.Context, b Batch, cause error, after time.Duration) error {
	reason := fmt.Sprintf("sink %s gave up after %v: %s", r.s.Name, after.Round(time.Second), cause.Error())
	var futs []jetstream.PubAckFuture
	for _, it := range b.Items {
		body, _ := json.Marshal(it)
		m := nats.NewMsg(mesh.SinkDeadSubject(r.s.Name))
		m.Data = body
		m.Header.Set("Crawlmesh-Reason", reason)
		m.Header.Set("Crawlmesh-Sink", r.s.Name)
		m.Header.Set(BatchHeader, b.ID)
		f, err := r.mg.cfg.JS.PublishMsgAsync(m, jetstream.WithMsgID("sink."+r.s.Name+"."+it.ID))
		if err != nil {
			return err
		}
		futs = append(futs, f)
	}
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			r.log.Warn("dead-letter publish", "err", err)
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Second):
			return errors.New("dead-letter publish: no ack")
		}
	}
	n := uint64(len(b.Items))
	r.st.Dead += n
	r.mg.m.dead.WithLabelValues(r.s.Name).Add(float64(n))
	r.log.Error("sink gave up a batch; its items are in the dead letters", "batch", b.ID, "items", n,
		"subject", mesh.SinkDeadSubject(r.s.Name), "reason", reason)
	r.putStatus(ctx, true)
	return nil
}

func (r *runner) ok(ctx context.Context, b Batch, t0 time.Time) {
	now := time.Now().UTC()
	n := uint64(len(b.Items))
	r.mg.m.delivered.WithLabelValues(r.s.Name).Add(float64(n))
	r.mg.m.batch.WithLabelValues(r.s.Name).Observe(time.Since(t0).Seconds())
	r.st.Delivered += n
	if r.st.Crawls == nil {
		r.st.Crawls = map[string]uint64{}
	}
	for _, it := range b.Items {
		if _, ok := r.st.Crawls[it.Crawl]; !ok {
			r.crawlSeen = append(r.crawlSeen, it.Crawl)
		}
		r.st.Crawls[it.Crawl]++
	}
	for len(r.st.Crawls) > maxCrawlsKept && len(r.crawlSeen) > 0 {
		delete(r.st.Crawls, r.crawlSeen[0])
		r.crawlSeen = r.crawlSeen[1:]
	}
	r.st.LastOKAt = &now
	r.dirty = true
	changed := r.st.State != StateOK
	r.st.State, r.st.FailingSince = StateOK, nil
	if changed {
		r.log.Info("sink delivering again")
	}
	r.putStatus(ctx, changed)
}

// fail records a failure (already redacted by the deliverer).
func (r *runner) fail(ctx context.Context, err error) {
	now := time.Now().UTC()
	r.st.Failures++
	r.st.LastError = r.red.String(err.Error())
	r.st.Permanent = IsPermanent(err)
	r.st.LastErrorAt = &now
	changed := r.st.State != StateFailing
	if r.st.FailingSince == nil {
		r.st.FailingSince = &now
	}
	r.st.State = StateFailing
	r.putStatus(ctx, changed)
}

// lag exports how far the sink is behind, at most twice a second.
func (r *runner) lag(ctx context.Context, cons jetstream.Consumer) {
	if time.Since(r.lastLag) < 500*time.Millisecond {
		return
	}
	r.lastLag = time.Now()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ci, err := cons.Info(rctx)
	if err != nil {
		return
	}
	r.mg.m.lag.WithLabelValues(r.s.Name).Set(float64(ci.NumPending + uint64(ci.NumAckPending)))
}

func (r *runner) loadStatus(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if e, err := r.mg.cfg.Sinks.Get(rctx, StatusPrefix+r.s.Name); err == nil {
		_ = json.Unmarshal(e.Value(), &r.st)
	}
	for c := range maps.Keys(r.st.Crawls) {
		r.crawlSeen = append(r.crawlSeen, c)
	}
	r.st.Name = r.s.Name
}

// putStatus writes the status at most once a second unless now is set.
func (r *runner) putStatus(ctx context.Context, now bool) {
	if !now && time.Since(r.lastPut) < time.Second {
		return
	}
	r.lastPut, r.dirty = time.Now(), false
	r.st.Node = r.mg.cfg.Node
	r.st.UpdatedAt = time.Now().UTC()
	b, _ := json.Marshal(r.st)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	if _, err := r.mg.cfg.Sinks.Put(rctx, StatusPrefix+r.s.Name, b); err != nil {
		r.log.Debug("write sink status", "err", err)
	}
}
