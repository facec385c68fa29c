package crawlctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

// Re-queueing dead letters, and why the crawl's accounting stays right:
//
//   - Completion is "no task of the crawl in the work queue" (check). A
//     re-queue of a completed crawl first puts its record back to running,
//     then publishes the tasks; both happen under finishMu, which check
//     holds while it decides a crawl is complete, so no check can see the
//     record running and the queue still empty in between. The crawl then
//     completes again through the same check.
//   - The seen-set de-duplicates the pages the re-queued task links to. A
//     crawl that completes with dead letters keeps its seen-set (finish),
//     so a re-queue later admits only URLs the crawl never had; a crawl
//     whose seen-set is gone (it ended with none, or was cancelled or
//     failed) is refused, because its re-queued page would crawl the whole
//     site again.
//   - The task itself never goes through the seen-set (its URL is in it):
//     it is published with a new de-duplication id, "<crawl>.requeue.<dead
//     letter sequence>" (the work queue's window would drop a repeat of its
//     first id), marked Requeued so the worker treats it as redelivered
//     (claims it made before it died are its own), and items keep their
//     ids, so a page that had published some before it died adds none twice.
//   - The dead counter goes down by one per letter (an increment of -1 with
//     the same de-duplication id), and the letter is deleted from
//     DEADLETTER last: a re-queue cut short is repeated without publishing
//     a task or counting twice.

// RequeueResult says what a re-queue did.
type RequeueResult struct {
	ID       string `json:"id"`
	Requeued int    `json:"requeued"`
	// Reopened: the crawl had ended (completed, or failed with no page
	// fetched) and is running again.
	Reopened bool `json:"reopened,omitempty"`
	// Skipped are dead letters that hold no task (an undecodable message):
	// they stay, to be read.
	Skipped int `json:"skipped,omitempty"`
}

// ErrNoDeadLetter means the dead letter asked for is not one of the crawl's.
var ErrNoDeadLetter = errors.New("no such dead letter")

type deadTask struct {
	seq  uint64
	task mesh.Task
}

// Requeue puts dead letters of crawl id back on the work queue for another
// try: the one at stream sequence seq, or every one when seq is 0. Only the
// leading master runs it (through Serve), beside check.
func (c *Control) Requeue(ctx context.Context, id string, seq uint64) (RequeueResult, error) {
	res := RequeueResult{ID: id}
	c.finishMu.Lock()
	defer c.finishMu.Unlock()
	cr, rev, err := crawler.ReadCrawl(ctx, c.crawls, id)
	if err != nil {
		return res, err
	}
	reopen := cr.State == mesh.CrawlCompleted || cr.State == mesh.CrawlFailed && cr.NothingFetched
	switch {
	case cr.State == mesh.CrawlRunning:
	case reopen:
		kept, err := c.seenKept(ctx, id, cr.Partitions)
		if err != nil {
			return res, err
		}
		if !kept {
			return res, fmt.Errorf("crawl %s completed and no longer keeps the URLs it has seen, so a re-queued page would crawl its links again; start a new crawl of %s", id, cr.Spider)
		}
	default:
		return res, fmt.Errorf("crawl %s was %s, so its tasks are dropped: a re-queued one would be too; start a new crawl of %s", id, cr.State, cr.Spider)
	}
	dlq, err := c.js.Stream(ctx, mesh.DeadStream)
	if err != nil {
		return res, fmt.Errorf("stream %s: %w", mesh.DeadStream, err)
	}
	todo, skipped, err := deadTasks(ctx, dlq, id, seq)
	if err != nil {
		return res, err
	}
	res.Skipped = skipped
	if len(todo) == 0 {
		if skipped > 0 {
			return res, fmt.Errorf("crawl %s: its %d dead letter(s) hold no task that can run (undecodable messages); they stay to be read", id, skipped)
		}
		return res, fmt.Errorf("crawl %s has no dead letters to re-queue", id)
	}
	s, err := spec.Parse(cr.Spec)
	if err != nil {
		return res, fmt.Errorf("crawl %s: its spec: %w", id, err)
	}
	lay := layoutOf(cr, s) // before reopening: a crawl reopened must get its tasks
	if reopen {
		cr.State, cr.FinishedAt, cr.Error, cr.NothingFetched = mesh.CrawlRunning, nil, "", false
		b, _ := json.Marshal(cr)
		if _, err := c.crawls.Update(ctx, id, b, rev); err != nil {
			return res, fmt.Errorf("reopen crawl %s: %w", id, err)
		}
		res.Reopened = true
	}
	var futs []jetstream.PubAckFuture
	for _, d := range todo {
		d.task.Requeued++
		b, _ := json.Marshal(d.task)
		subj := mesh.TaskSubjectOf(lay.Of(d.task.URL), id) // the partition it came from
		f, err := c.js.PublishAsync(subj, b, jetstream.WithMsgID(requeueID(id, d.seq)))
		if err != nil {
			return res, fmt.Errorf("re-queue %s: %w", d.task.URL, err)
		}
		futs = append(futs, f)
	}
	if err := crawler.Wait(ctx, futs); err != nil {
		return res, fmt.Errorf("re-queue tasks of %s: %w", id, err)
	}
	futs = futs[:0]
	for _, d := range todo {
		f, err := c.pub.Incr(lay.Of(d.task.URL), id, mesh.StatDead, -1, requeueID(id, d.seq)) // where it was counted
		if err != nil {
			return res, fmt.Errorf("count re-queue of %s: %w", d.task.URL, err)
		}
		futs = append(futs, f)
	}
	if err := crawler.Wait(ctx, futs); err != nil {
		return res, fmt.Errorf("count re-queued tasks of %s: %w", id, err)
	}
	for _, d := range todo {
		if err := dlq.DeleteMsg(ctx, d.seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return res, fmt.Errorf("remove dead letter %d of %s: %w", d.seq, id, err)
		}
		res.Requeued++
	}
	c.log.Info("dead letters re-queued", "crawl", id, "tasks", res.Requeued, "reopened", res.Reopened)
	return res, nil
}

func requeueID(crawl string, seq uint64) string {
	return crawl + ".requeue." + strconv.FormatUint(seq, 10)
}

// deadTasks reads the dead letter at seq of crawl, or every one (seq 0),
// by stream sequence: no consumer is created, so a master needs only the
// message-get permission. Undecodable letters are counted as skipped.
func deadTasks(ctx context.Context, dlq jetstream.Stream, crawl string, seq uint64) ([]deadTask, int, error) {
	subj := mesh.DeadSubject(crawl)
	decode := func(m *jetstream.RawStreamMsg) (deadTask, bool) {
		t, err := mesh.DecodeTask(m.Data)
		if err != nil || t.Crawl != crawl {
			return deadTask{}, false
		}
		return deadTask{seq: m.Sequence, task: t}, true
	}
	if seq != 0 {
		m, err := dlq.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) || (err == nil && m.Subject != subj) {
			return nil, 0, fmt.Errorf("%w: crawl %s has no dead letter %d (crawlmesh crawl deadletters %s lists them)", ErrNoDeadLetter, crawl, seq, crawl)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read dead letter %d: %w", seq, err)
		}
		d, ok := decode(m)
		if !ok {
			return nil, 1, nil
		}
		return []deadTask{d}, 0, nil
	}
	var out []deadTask
	skipped := 0
	// Bounded: a stream's messages are finite and each step moves past one.
	for next, n := uint64(1), 0; n < 10_000_000; n++ {
		m, err := dlq.GetMsg(ctx, next, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read dead letters of %s: %w", crawl, err)
		}
		next = m.Sequence + 1
		if d, ok := decode(m); ok {
			out = append(out, d)
		} else {
			skipped++
		}
	}
	return out, skipped, nil
}

// seenKept reports whether crawl still has its seen-set (a key of it in
// bucket seen, or in any of its partitions' buckets), reading at most one
// message a bucket.
func (c *Control) seenKept(ctx context.Context, crawl string, parts int) (bool, error) {
	for p := range max(parts, 1) {
		b := mesh.SeenBucketOf(p)
		s, err := c.js.Stream(ctx, "KV_"+b)
		if err != nil {
			return false, fmt.Errorf("bucket %s: %w", b, err)
		}
		_, err = s.GetMsg(ctx, 1, jetstream.WithGetMsgSubject("$KV."+b+"."+mesh.SeenKey(crawl, ">")))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("bucket %s: %w", b, err)
		}
		return true, nil
	}
	return false, nil
}

// hasDeadLetters reports whether DEADLETTER holds a letter of crawl.
func (c *Control) hasDeadLetters(ctx context.Context, crawl string) (bool, error) {
	s, err := c.js.Stream(ctx, mesh.DeadStream)
	if err != nil {
		return false, err
	}
	_, err = s.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(mesh.DeadSubject(crawl)))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	return err == nil, err
}

// RequeueCall asks the leading master to re-queue dead letters of crawl
// id (seq 0: every one), as `crawlmesh crawl requeue` and the HTTP API do.
func RequeueCall(ctx context.Context, nc *nats.Conn, id string, seq uint64, timeout time.Duration) (RequeueResult, error) {
	rep, err := call(ctx, nc, mesh.APICrawlRequeue, APIRequest{ID: id, Seq: seq, All: seq == 0}, timeout)
	res := RequeueResult{ID: id}
	if rep.Requeue != nil {
		res = *rep.Requeue
	}
	return res, err
}
