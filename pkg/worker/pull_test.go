package worker

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/natstest"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

// Commands that change nothing do not restart the task pull. Each restart
// drains the old pull while its tasks run on, so a worker pinged ten times
// held hundreds of tasks beside a capacity of 16, tasks a joining worker
// could not get and that sat past their ack wait (found by review).
func TestCommandsDoNotPileUpPulls(t *testing.T) {
	nc, js := streamstest.Start(t, streams.Options{NodesTTL: hbTTL})
	kv := streamstest.Bucket(t, js, mesh.NodesBucket)
	publishN(t, js, mesh.TaskSubject("c-1"), 300)
	release := make(chan struct{})
	defer close(release)
	cons, err := js.Consumer(t.Context(), mesh.TasksStream, mesh.TasksConsumer)
	if err != nil {
		t.Fatal(err)
	}
	tasks := func(context.Context) ([]jetstream.Consumer, func(context.Context, jetstream.Msg), error) {
		return []jetstream.Consumer{cons}, func(ctx context.Context, m jetstream.Msg) {
			select { // a task waiting for its host's turn: held, not done
			case <-release:
			case <-ctx.Done():
			}
			_ = m.Nak()
		}, nil
	}
	const concurrency = 4
	startWorkerWith(t, nc, kv, concurrency, tasks)
	held := concurrency * overcommit
	ackPending := func() int {
		ci, err := cons.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return ci.NumAckPending
	}
	natstest.Eventually(t, 10*time.Second, "the worker holding its tasks", func() bool { return ackPending() == held })
	for range 10 {
		send(t, nc, "w1", mesh.Command{Name: mesh.CmdPing})
	}
	send(t, nc, "w1", mesh.Command{Name: mesh.CmdSetConcurrency, N: concurrency}) // the same value
	send(t, nc, "w1", mesh.Command{Name: mesh.CmdResume})                         // already running
	// A restarted pull asks for held more at once; watch for it a while.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if n := ackPending(); n > held {
			t.Fatalf("%d tasks held after commands that changed nothing, want %d", n, held)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// With several partitions, one whose tasks all wait (a polite host's
// turn) holds at most its share of the worker's tasks: before, it took
// every one as other tasks finished, and a crawl in another partition
// got none until the polite crawl's backlog was done.
func TestSlowPartitionLeavesRoom(t *testing.T) {
	nc, js := streamstest.Start(t, streams.Options{NodesTTL: hbTTL, Partitions: 2})
	kv := streamstest.Bucket(t, js, mesh.NodesBucket)
	var cons []jetstream.Consumer
	for p := range 2 {
		c, err := js.Consumer(t.Context(), mesh.TasksStreamOf(p), mesh.TasksConsumer)
		if err != nil {
			t.Fatal(err)
		}
		cons = append(cons, c)
	}
	publishN(t, js, mesh.TaskSubjectOf(0, "slow"), 100)
	release := make(chan struct{})
	defer close(release)
	tasks := func(context.Context) ([]jetstream.Consumer, func(context.Context, jetstream.Msg), error) {
		return cons, func(ctx context.Context, m jetstream.Msg) {
			if mesh.PartitionOfTaskSubject(m.Subject()) == 0 {
				select { // waiting for its host's turn
				case <-release:
				case <-ctx.Done():
				}
				_ = m.Nak()
				return
			}
			_ = m.Ack()
		}, nil
	}
	const concurrency = 4
	startWorkerWith(t, nc, kv, concurrency, tasks)
	limit := partCap(concurrency*overcommit, concurrency, 2)
	if limit >= concurrency*overcommit {
		t.Fatalf("partCap %d: no bound on a partition of two", limit)
	}
	info := func(c jetstream.Consumer) *jetstream.ConsumerInfo {
		ci, err := c.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return ci
	}
	natstest.Eventually(t, 10*time.Second, "the slow partition's share held", func() bool { return info(cons[0]).NumAckPending >= limit })
	publishN(t, js, mesh.TaskSubjectOf(1, "fast"), 20)
	natstest.Eventually(t, 10*time.Second, "the other partition's 20 tasks done", func() bool {
		ci := info(cons[1])
		return ci.NumPending == 0 && ci.NumAckPending == 0 && ci.AckFloor.Stream == 20
	})
	if n := info(cons[0]).NumAckPending; n > limit {
		t.Errorf("the slow partition holds %d tasks, want at most %d", n, limit)
	}
}

// publishN stores n tasks ("0", "1" ...) on subject.
func publishN(t *testing.T, js jetstream.JetStream, subject string, n int) {
	t.Helper()
	for i := range n {
		if _, err := js.Publish(t.Context(), subject, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
}

// startWorkerWith runs worker w1 of concurrency on tasks until the test ends.
func startWorkerWith(t *testing.T, nc *nats.Conn, kv jetstream.KeyValue, concurrency int, tasks TaskSource) {
	t.Helper()
	w, err := New(nc, kv, Config{ID: "w1", Concurrency: concurrency, HeartbeatInterval: hbInterval, HeartbeatTTL: hbTTL, Tasks: tasks})
	if err != nil {
		t.Fatal(err)
	}
	start(t, w.Run)
}
