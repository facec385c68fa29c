package crawlctl

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// DeadLetter is one task of a crawl that went to the dead letters.
type DeadLetter struct {
	// Seq is the letter's sequence in stream DEADLETTER: what `crawl
	// requeue --seq` and the API's re-queue take.
	Seq      uint64    `json:"seq"`
	URL      string    `json:"url"` // the task's URL, or the raw message if it was undecodable
	Reason   string    `json:"reason"`
	Attempts int       `json:"attempts"`
	Node     string    `json:"node"`
	Time     time.Time `json:"time"`
}

// ReadDeadLetters reads every dead letter of crawl, oldest first, from
// stream DEADLETTER (subject crawlmesh.dlq.<crawl>, the reason, attempts
// and node in its headers). It reads up to the subject's count at the
// start, with an ordered consumer, so memory stays flat per letter.
func ReadDeadLetters(ctx context.Context, js jetstream.JetStream, crawl string) ([]DeadLetter, error) {
	dl, _, err := ReadDeadLettersUpTo(ctx, js, crawl, 0)
	return dl, err
}

// ReadDeadLettersUpTo reads the first limit dead letters of a crawl (0:
// all) and says how many it has: a page showing thousands read them all
// at every poll, megabytes and seconds of the master's time (review).
func ReadDeadLettersUpTo(ctx context.Context, js jetstream.JetStream, crawl string, limit int) ([]DeadLetter, uint64, error) {
	subj := mesh.DeadSubject(crawl)
	s, err := js.Stream(ctx, mesh.DeadStream)
	if err != nil {
		return nil, 0, fmt.Errorf("stream %s: %w", mesh.DeadStream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return nil, 0, fmt.Errorf("stream %s: %w", mesh.DeadStream, err)
	}
	total := info.State.Subjects[subj]
	if total == 0 {
		return nil, 0, nil
	}
	want := total
	if limit > 0 && uint64(limit) < want {
		want = uint64(limit)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}})
	if err != nil {
		return nil, total, fmt.Errorf("read %s: %w", subj, err)
	}
	var out []DeadLetter
	for uint64(len(out)) < want {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return out, total, fmt.Errorf("read dead letter %d of %d: %w", len(out)+1, total, err)
		}
		d := DeadLetter{Reason: msg.Headers().Get("Crawlmesh-Reason"), Node: msg.Headers().Get("Crawlmesh-Node")}
		d.Attempts, _ = strconv.Atoi(msg.Headers().Get("Crawlmesh-Attempts"))
		if md, err := msg.Metadata(); err == nil {
			d.Time, d.Seq = md.Timestamp, md.Sequence.Stream
		}
		if t, err := mesh.DecodeTask(msg.Data()); err == nil {
			d.URL = t.URL
		} else {
			d.URL = "undecodable: " + string(msg.Data())
		}
		out = append(out, d)
	}
	return out, total, nil
}
