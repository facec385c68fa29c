package crawlctl_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// eventually polls cond every 20 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// deadLetter does what a worker does with a task that exhausted its
// attempts: copies it to DEADLETTER with the reason, counts it, and takes
// it off the work queue.
func (e *env) deadLetter(t *testing.T, crawl, url string) {
	t.Helper()
	s, err := e.js.Stream(t.Context(), mesh.TasksStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range e.queued(t, crawl) {
		if tk.URL != url {
			continue
		}
		m, err := s.GetMsg(t.Context(), 1, jetstream.WithGetMsgSubject(mesh.TaskSubject(crawl)))
		for err == nil {
			if got, derr := mesh.DecodeTask(m.Data); derr == nil && got.URL == url {
				break
			}
			m, err = s.GetMsg(t.Context(), m.Sequence+1, jetstream.WithGetMsgSubject(mesh.TaskSubject(crawl)))
		}
		if err != nil {
			t.Fatalf("task %s: %v", url, err)
		}
		dm := nats.NewMsg(mesh.DeadSubject(crawl))
		dm.Data = m.Data
		dm.Header.Set("Crawlmesh-Reason", "3 attempts failed, last: 503 Service Unavailable")
		if _, err := e.js.PublishMsg(t.Context(), dm); err != nil {
			t.Fatal(err)
		}
		if _, err := e.js.PublishMsg(t.Context(), &nats.Msg{Subject: mesh.StatSubject(crawl, mesh.StatDead),
			Header: nats.Header{"Nats-Incr": []string{"1"}}}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteMsg(t.Context(), m.Sequence); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no task %s queued", url)
}

// done takes every task of crawl off the work queue, as workers finishing
// them would, counting them as pages fetched.
func (e *env) done(t *testing.T, crawl string) {
	t.Helper()
	s, err := e.js.Stream(t.Context(), mesh.TasksStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(e.queued(t, crawl)); n > 0 {
		if _, err := e.js.PublishMsg(t.Context(), &nats.Msg{Subject: mesh.StatSubject(crawl, mesh.StatOK),
			Header: nats.Header{"Nats-Incr": []string{strconv.Itoa(n)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Purge(t.Context(), jetstream.WithPurgeSubject(mesh.TaskSubject(crawl))); err != nil {
		t.Fatal(err)
	}
}

func (e *env) seenKeys(t *testing.T, crawl string) uint64 {
	t.Helper()
	s, err := e.js.Stream(t.Context(), "KV_"+mesh.SeenBucket)
	if err != nil {
		t.Fatal(err)
	}
	subj := "$KV." + mesh.SeenBucket + "." + crawl + ".>"
	info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(subj))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// lead runs the leader's checks (every 30ms) and serves its requests
// until the test ends.
func (e *env) lead(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	runDone, serveDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(runDone); _ = e.ctl.Run(ctx, 30*time.Millisecond) }()
	go func() { defer close(serveDone); _ = e.ctl.Serve(ctx, e.nc) }()
	t.Cleanup(func() { cancel(); <-runDone; <-serveDone })
}

func (e *env) status(t *testing.T, id string) crawlctl.Status {
	t.Helper()
	st, err := crawlctl.ReadStatus(t.Context(), e.js, e.crawls, id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestNothingFetchedFails: a crawl none of whose pages was fetched (its
// only page dead-lettered) fails, saying so, so `crawl wait` exits
// non-zero; it keeps its seen-set, and re-queueing the letter reopens it
// (found by review: such a crawl "completed" and crawl wait exited 0).
func TestNothingFetchedFails(t *testing.T) {
	e := newEnv(t, `name: t
start_urls: ["http://127.0.0.1:1/"]
`)
	e.lead(t)
	id, err := e.ctl.Start(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	e.deadLetter(t, id, "http://127.0.0.1:1/")
	status := func() crawlctl.Status { return e.status(t, id) }
	eventually(t, 5*time.Second, "the crawl ends", func() bool { return status().State != mesh.CrawlRunning })
	st := status()
	if st.State != mesh.CrawlFailed || !strings.Contains(st.Error, "no page was processed: 0 failed, 1 dead letters") {
		t.Fatalf("crawl whose only page was dead-lettered: %s %q; want failed, no page fetched", st.State, st.Error)
	}
	if n := e.seenKeys(t, id); n != 1 {
		t.Errorf("seen-set: %d keys, want the one kept for a re-queue", n)
	}
	res, err := crawlctl.RequeueCall(t.Context(), e.nc, id, 0, 5*time.Second)
	if err != nil || res.Requeued != 1 || !res.Reopened {
		t.Fatalf("re-queue: %+v, %v; want 1 re-queued, reopened", res, err)
	}
	if st := status(); st.State != mesh.CrawlRunning || st.Error != "" {
		t.Errorf("after the re-queue: %s %q; want running, no error", st.State, st.Error)
	}
	e.done(t, id)
	eventually(t, 5*time.Second, "the crawl completes once its page is fetched", func() bool { return status().State == mesh.CrawlCompleted })
}

// TestRequeueReopensACompletedCrawl: a crawl whose page was dead-lettered
// completes, keeping its seen-set; re-queueing the letter puts the task
// back (marked Requeued, under a new de-duplication id), reopens the crawl
// with the dead counter down by one and the letter gone, and the crawl
// completes again once the task is done — then releasing its seen-set.
// A cancelled crawl, a letter that is not the crawl's and a crawl without
// letters are refused with the reason.
func TestRequeueReopensACompletedCrawl(t *testing.T) {
	e := newEnv(t, `name: t
start_urls: ["http://127.0.0.1:1/", "http://127.0.0.1:1/b"]
`)
	e.lead(t)

	id, err := e.ctl.Start(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	e.deadLetter(t, id, "http://127.0.0.1:1/b")
	e.done(t, id)
	status := func() crawlctl.Status { return e.status(t, id) }
	eventually(t, 5*time.Second, "the crawl completes", func() bool { return status().State == mesh.CrawlCompleted })
	if n := e.seenKeys(t, id); n != 2 {
		t.Fatalf("seen-set of a crawl completed with a dead letter: %d keys, want both kept", n)
	}
	dl, err := crawlctl.ReadDeadLetters(t.Context(), e.js, id)
	if err != nil || len(dl) != 1 || dl[0].Seq == 0 {
		t.Fatalf("dead letters %+v, %v: want one, with its sequence", dl, err)
	}

	if _, err := crawlctl.RequeueCall(t.Context(), e.nc, id, dl[0].Seq+1000, 5*time.Second); err == nil || !strings.Contains(err.Error(), "no dead letter") {
		t.Errorf("re-queue of a letter that is not there: %v", err)
	}
	res, err := crawlctl.RequeueCall(t.Context(), e.nc, id, dl[0].Seq, 5*time.Second)
	if err != nil || res.Requeued != 1 || !res.Reopened {
		t.Fatalf("re-queue: %+v, %v; want 1 re-queued, reopened", res, err)
	}
	st := status()
	if st.State != mesh.CrawlRunning || st.FinishedAt != nil || st.Dead != 0 || st.Queued != 1 {
		t.Errorf("after the re-queue: %+v; want running, 0 dead, 1 queued", st)
	}
	q := e.queued(t, id)
	if len(q) != 1 || q[0].URL != "http://127.0.0.1:1/b" || q[0].Requeued != 1 {
		t.Errorf("queued after the re-queue: %+v; want /b, requeued once", q)
	}
	if dl, _ := crawlctl.ReadDeadLetters(t.Context(), e.js, id); len(dl) != 0 {
		t.Errorf("dead letters after the re-queue: %+v", dl)
	}
	// The crawl stays open while its task is queued, however often check runs.
	time.Sleep(200 * time.Millisecond)
	if st := status(); st.State != mesh.CrawlRunning {
		t.Fatalf("crawl %s with a re-queued task queued: %s", id, st.State)
	}
	if _, err := crawlctl.RequeueCall(t.Context(), e.nc, id, 0, 5*time.Second); err == nil || !strings.Contains(err.Error(), "no dead letters") {
		t.Errorf("re-queue all with none left: %v", err)
	}
	e.done(t, id)
	eventually(t, 5*time.Second, "the crawl completes again", func() bool { return status().State == mesh.CrawlCompleted })
	// The master releases the seen-set just after it marks the crawl completed.
	eventually(t, 5*time.Second, "the seen-set of a crawl completed without dead letters is released",
		func() bool { return e.seenKeys(t, id) == 0 })

	// Refusals: a cancelled crawl, and a completed one without its seen-set.
	id2, err := e.ctl.Start(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	e.deadLetter(t, id2, "http://127.0.0.1:1/")
	if err := e.ctl.Cancel(t.Context(), id2); err != nil {
		t.Fatal(err)
	}
	if _, err := crawlctl.RequeueCall(t.Context(), e.nc, id2, 0, 5*time.Second); err == nil || !strings.Contains(err.Error(), "was cancelled") {
		t.Errorf("re-queue in a cancelled crawl: %v", err)
	}
	if _, err := e.ctl.Requeue(t.Context(), id, 0); err == nil || !strings.Contains(err.Error(), "no longer keeps the URLs") {
		t.Errorf("re-queue in a crawl that released its seen-set: %v", err)
	}
	if _, err := e.ctl.Requeue(t.Context(), "nope", 0); !errors.Is(err, crawler.ErrUnknownCrawl) {
		t.Errorf("re-queue in an unknown crawl: %v", err)
	}
}

// ReadDeadLettersUpTo reads the first limit letters and says how many
// there are.
func TestReadDeadLettersUpTo(t *testing.T) {
	e := newEnv(t, "name: t\nstart_urls: [\"http://127.0.0.1:1/\"]\n")
	for i := range 5 {
		u := fmt.Sprintf("http://127.0.0.1:1/p/%d", i)
		b, _ := json.Marshal(mesh.Task{ID: mesh.URLHash(u), Crawl: "c1", Spider: "t", URL: u})
		if _, err := e.js.Publish(t.Context(), mesh.DeadSubject("c1"), b); err != nil {
			t.Fatal(err)
		}
	}
	dl, total, err := crawlctl.ReadDeadLettersUpTo(t.Context(), e.js, "c1", 2)
	if err != nil || total != 5 || len(dl) != 2 || dl[0].URL != "http://127.0.0.1:1/p/0" {
		t.Fatalf("limit 2: %+v, total %d, %v; want the first 2 of 5", dl, total, err)
	}
	if dl, total, err := crawlctl.ReadDeadLettersUpTo(t.Context(), e.js, "c1", 0); err != nil || total != 5 || len(dl) != 5 {
		t.Fatalf("limit 0: %d letters, total %d, %v; want all 5", len(dl), total, err)
	}
}
