package crawler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// Publisher publishes tasks, counters and claims for crawls. A crawl
// whose frontier and seen-set are partitioned is published through
// [Publisher.With] its layout; the zero layout is one partition.
type Publisher struct {
	js    jetstream.JetStream
	lay   mesh.Layout
	seens *sync.Map // bucket name -> jetstream.KeyValue, shared by every With
}

// NewPublisher returns a Publisher over js and the seen bucket (partition 0).
func NewPublisher(js jetstream.JetStream, seen jetstream.KeyValue) *Publisher {
	p := &Publisher{js: js, seens: &sync.Map{}}
	p.seens.Store(mesh.SeenBucket, seen)
	return p
}

// With returns a Publisher for a crawl of layout l.
func (p *Publisher) With(l mesh.Layout) *Publisher {
	q := *p
	q.lay = l
	return &q
}

// seen opens the seen bucket of partition part once.
func (p *Publisher) seen(ctx context.Context, part int) (jetstream.KeyValue, error) {
	name := mesh.SeenBucketOf(part)
	if kv, ok := p.seens.Load(name); ok {
		return kv.(jetstream.KeyValue), nil
	}
	kv, err := p.js.KeyValue(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", name, err)
	}
	p.seens.Store(name, kv)
	return kv, nil
}

// seenSubject is the KV subject of a URL's seen key.
func (p *Publisher) seenSubject(part int, crawl, id string) string {
	return "$KV." + mesh.SeenBucketOf(part) + "." + mesh.SeenKey(crawl, id)
}

// Admission is the outcome of offering URLs to a crawl.
type Admission struct {
	Tasks   []mesh.Task // admitted: publish them
	Skipped int         // already in the crawl, or over max_pages
}

// Admit claims each candidate in the seen-set and, when maxPages > 0,
// counts it against the crawl's page budget. parentID is the task that
// found them ("" for seeds); redelivered says the parent ran before, so
// claims it made then count as its own.
func (p *Publisher) Admit(ctx context.Context, crawl string, maxPages int, parentID string, redelivered bool, cands []mesh.Task) (Admission, error) {
	// In batches: every claim is an async publish, and 300,000 links of
	// one page at once stalled the client ("too many outstanding async
	// published messages") on every try (found by review).
	if len(cands) > admitBatch {
		var adm Admission
		for start := 0; start < len(cands); start += admitBatch {
			part, err := p.admit(ctx, crawl, maxPages, parentID, redelivered, cands[start:min(start+admitBatch, len(cands))])
			adm.Tasks, adm.Skipped = append(adm.Tasks, part.Tasks...), adm.Skipped+part.Skipped
			if err != nil {
				return adm, err
			}
		}
		return adm, nil
	}
	return p.admit(ctx, crawl, maxPages, parentID, redelivered, cands)
}

func (p *Publisher) admit(ctx context.Context, crawl string, maxPages int, parentID string, redelivered bool, cands []mesh.Task) (Admission, error) {
	var adm Admission
	futs := make([]jetstream.PubAckFuture, len(cands))
	for i, t := range cands {
		subj := p.seenSubject(p.lay.Of(t.URL), crawl, t.ID)
		f, err := p.js.PublishAsync(subj, []byte(parentID), jetstream.WithExpectLastSequencePerSubject(0))
		if err != nil {
			return adm, fmt.Errorf("claim %s: %w", t.URL, err)
		}
		futs[i] = f
	}
	var claimed []mesh.Task
	var revs []uint64  // seen-key revision of each claim; 0 if claimed earlier
	var decided []bool // admitted within the budget on an earlier delivery
	for i, f := range futs {
		t := cands[i]
		select {
		case ack := <-f.Ok():
			claimed, revs, decided = append(claimed, t), append(revs, ack.Sequence), append(decided, false)
			continue
		case err := <-f.Err():
			if !isWrongLastSeq(err) {
				return adm, fmt.Errorf("claim %s: %w", t.URL, err)
			}
		case <-ctx.Done():
			return adm, ctx.Err()
		}
		if !redelivered {
			adm.Skipped++
			continue
		}
		st, err := p.claimedBy(ctx, p.lay.Of(t.URL), crawl, t.ID, parentID)
		if err != nil {
			return adm, err
		}
		if st == claimNotMine {
			adm.Skipped++
			continue
		}
		claimed, revs, decided = append(claimed, t), append(revs, 0), append(decided, st == claimAdmitted)
	}
	if maxPages <= 0 {
		adm.Tasks = claimed
		return adm, nil
	}
	// The page budget: each claimed URL increments a counter once (its
	// de-duplication id makes a repeated increment a no-op) and the ack
	// says the total. A URL within max_pages is marked admitted in the
	// seen-set before its task exists; one past it is marked refused and
	// gives its increment back. An increment counted on an earlier delivery
	// whose decision was never recorded (the worker or NATS died in
	// between) is refused: its task was never published, and giving the
	// slot back keeps the crawl at exactly max_pages.
	cfuts := make([]jetstream.PubAckFuture, len(claimed))
	for i, t := range claimed {
		if decided[i] {
			continue
		}
		f, err := p.incrAsync(mesh.StatSubject(crawl, mesh.StatAdmitted), 1, crawl+"."+t.ID+".admit")
		if err != nil {
			return adm, err
		}
		cfuts[i] = f
	}
	var marks []jetstream.PubAckFuture
	for i, f := range cfuts {
		t := claimed[i]
		if decided[i] {
			adm.Tasks = append(adm.Tasks, t)
			continue
		}
		var ack *jetstream.PubAck
		select {
		case ack = <-f.Ok():
		case err := <-f.Err():
			return adm, fmt.Errorf("page budget of %s: %w", crawl, err)
		case <-ctx.Done():
			return adm, ctx.Err()
		}
		n, err := strconv.ParseInt(ack.Value, 10, 64)
		if !ack.Duplicate && err != nil {
			return adm, fmt.Errorf("page budget of %s: counter value %q", crawl, ack.Value)
		}
		if !ack.Duplicate && n <= int64(maxPages) {
			m, err := p.mark(p.lay.Of(t.URL), crawl, t.ID, admittedPrefix+parentID, revs[i])
			if err != nil {
				return adm, err
			}
			marks = append(marks, m)
			adm.Tasks = append(adm.Tasks, t)
			continue
		}
		if err := p.refuse(ctx, p.lay.Of(t.URL), crawl, t.ID, parentID, revs[i]); err != nil {
			return adm, err
		}
		adm.Skipped++
	}
	if err := Wait(ctx, marks); err != nil {
		return adm, fmt.Errorf("page budget of %s: record admission: %w", crawl, err)
	}
	return adm, nil
}

// mark writes a decision into a claimed seen key: with the claim's
// revision as a compare-and-swap, else (claimed on an earlier delivery)
// as a plain put.
func (p *Publisher) mark(part int, crawl, id, value string, rev uint64) (jetstream.PubAckFuture, error) {
	var opts []jetstream.PublishOpt
	if rev > 0 {
		opts = append(opts, jetstream.WithExpectLastSequencePerSubject(rev))
	}
	f, err := p.js.PublishAsync(p.seenSubject(part, crawl, id), []byte(value), opts...)
	if err != nil {
		return nil, fmt.Errorf("mark %s: %w", id, err)
	}
	return f, nil
}

// refuse marks a claimed URL as over the page budget and returns its
// increment. The mark comes first: should the refund then fail, the crawl
// stops short of max_pages rather than running past it.
func (p *Publisher) refuse(ctx context.Context, part int, crawl, id, parentID string, rev uint64) error {
	key := mesh.SeenKey(crawl, id)
	seen, err := p.seen(ctx, part)
	if err != nil {
		return err
	}
	if rev > 0 {
		_, err = seen.Update(ctx, key, []byte(refusedPrefix+parentID), rev)
	} else {
		_, err = seen.Put(ctx, key, []byte(refusedPrefix+parentID))
	}
	if err != nil {
		return fmt.Errorf("mark %s over max_pages: %w", id, err)
	}
	f, err := p.incrAsync(mesh.StatSubject(crawl, mesh.StatAdmitted), -1, crawl+"."+id+".refund")
	if err != nil {
		return err
	}
	return Wait(ctx, []jetstream.PubAckFuture{f})
}

// Seen values: the claiming task's id, with a prefix once a page budget
// has decided on the URL.
const (
	refusedPrefix  = "refused:"  // over max_pages
	admittedPrefix = "admitted:" // within max_pages: its task is published
)

type claimState int

const (
	claimNotMine  claimState = iota // another task's, or refused
	claimMine                       // this task's, no budget decision recorded
	claimAdmitted                   // this task's, admitted within the budget
)

func (p *Publisher) claimedBy(ctx context.Context, part int, crawl, id, parentID string) (claimState, error) {
	seen, err := p.seen(ctx, part)
	if err != nil {
		return claimNotMine, err
	}
	e, err := seen.Get(ctx, mesh.SeenKey(crawl, id))
	if err != nil {
		return claimNotMine, fmt.Errorf("read claim %s: %w", id, err)
	}
	switch string(e.Value()) {
	case parentID:
		return claimMine, nil
	case admittedPrefix + parentID:
		return claimAdmitted, nil
	}
	return claimNotMine, nil
}

// Claim claims one canonical URL for a task (used for the final URL of a
// redirect). It reports whether the URL is this task's to process.
func (p *Publisher) Claim(ctx context.Context, crawl, canonicalURL, taskID string, redelivered bool) (bool, error) {
	id, part := mesh.URLHash(canonicalURL), p.lay.Of(canonicalURL)
	seen, err := p.seen(ctx, part)
	if err != nil {
		return false, err
	}
	_, err = seen.Create(ctx, mesh.SeenKey(crawl, id), []byte(taskID))
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return false, fmt.Errorf("claim %s: %w", id, err)
	}
	if !redelivered {
		return false, nil
	}
	st, err := p.claimedBy(ctx, part, crawl, id, taskID)
	return st != claimNotMine, err
}

// PublishTask publishes a task asynchronously with its de-duplication id.
func (p *Publisher) PublishTask(t mesh.Task) (jetstream.PubAckFuture, error) {
	b, _ := json.Marshal(t)
	return p.js.PublishAsync(mesh.TaskSubjectOf(p.lay.Of(t.URL), t.Crawl), b, jetstream.WithMsgID(p.lay.PubID(t.Crawl, t.ID, "")))
}

// Incr adds n to a crawl counter in partition part asynchronously (a
// task's counters go to its own partition's stream); id makes it
// idempotent.
func (p *Publisher) Incr(part int, crawl, name string, n int, id string) (jetstream.PubAckFuture, error) {
	return p.incrAsync(mesh.StatSubjectOf(part, crawl, name), n, id)
}

func (p *Publisher) incrAsync(subj string, n int, id string) (jetstream.PubAckFuture, error) {
	m := nats.NewMsg(subj)
	m.Header.Set("Nats-Incr", strconv.Itoa(n))
	var opts []jetstream.PublishOpt
	if id != "" {
		opts = append(opts, jetstream.WithMsgID(id))
	}
	return p.js.PublishMsgAsync(m, opts...)
}

// ReadCounter reads a crawl counter (0 if never incremented): its sum
// over the crawl's parts partitions.
func ReadCounter(ctx context.Context, js jetstream.JetStream, crawl, name string, parts int) (int64, error) {
	v, err := ReadCounters(ctx, js, crawl, parts, name)
	return v[name], err
}

// ReadCounters reads several counters of a crawl, each summed over its
// parts partitions, opening each partition's stream once.
func ReadCounters(ctx context.Context, js jetstream.JetStream, crawl string, parts int, names ...string) (map[string]int64, error) {
	out := make(map[string]int64, len(names))
	for part := range max(parts, 1) {
		name := mesh.StatsStreamOf(part)
		s, err := js.Stream(ctx, name)
		if part > 0 && errors.Is(err, jetstream.ErrStreamNotFound) {
			continue // a crawl counted before counters were partitioned
		}
		if err != nil {
			return nil, fmt.Errorf("open stream %s: %w", name, err)
		}
		for _, c := range names {
			n, err := lastCount(ctx, s, mesh.StatSubjectOf(part, crawl, c))
			if err != nil {
				return nil, fmt.Errorf("read counter %s of %s: %w", c, crawl, err)
			}
			out[c] += n
		}
	}
	return out, nil
}

// lastCount is the total a counter subject holds (0 if none).
func lastCount(ctx context.Context, s jetstream.Stream, subj string) (int64, error) {
	m, err := s.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var v struct {
		Val string `json:"val"`
	}
	if err := json.Unmarshal(m.Data, &v); err != nil {
		return 0, err
	}
	return strconv.ParseInt(v.Val, 10, 64)
}

// Wait waits for every future; the first error wins.
func Wait(ctx context.Context, futs []jetstream.PubAckFuture) error {
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}
