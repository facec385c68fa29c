package harness

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Secrets names values that must never be stored or shown by the mesh:
// label (what it is, printed in reports) -> value (never printed).
type Secrets map[string]string

// forms are the spellings of a secret worth searching for: as is, escaped
// for a URL or JSON, and inside base64 (a []byte marshalled to JSON) at
// each of the three alignments.
func forms(secret string) []string {
	out := []string{secret, url.QueryEscape(secret), url.PathEscape(secret)}
	if b, err := json.Marshal(secret); err == nil {
		out = append(out, strings.Trim(string(b), `"`))
	}
	if len(secret) >= 6 {
		for k := range 3 {
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
				s := enc.EncodeToString([]byte(strings.Repeat("\x00", k) + secret))
				// Only whole 4-character groups made of secret bytes alone
				// are the same whatever surrounds the secret.
				from, to := 0, 4*((k+len(secret))/3)
				if k > 0 {
					from = 4
				}
				if to-from >= 8 {
					out = append(out, s[from:to])
				}
			}
		}
	}
	return out
}

// Find returns the labels of the secrets that occur in text.
func (s Secrets) Find(text string) []string {
	var found []string
	for label, v := range s {
		if v == "" {
			continue
		}
		for _, f := range forms(v) {
			if strings.Contains(text, f) {
				found = append(found, label)
				break
			}
		}
	}
	sort.Strings(found)
	return found
}

// LeakScan gathers where secrets were found, as "what in where".
type LeakScan struct {
	s     Secrets
	leaks []string
	// Scanned counts what was searched, by place ("kv keys", "stream
	// messages", ...), for the test's log.
	Scanned map[string]int
}

// NewLeakScan starts a search for s.
func NewLeakScan(s Secrets) *LeakScan { return &LeakScan{s: s, Scanned: map[string]int{}} }

// Check searches text, found at where (a place, counted under kind).
func (l *LeakScan) Check(kind, where, text string) {
	l.Scanned[kind]++
	for _, label := range l.s.Find(text) {
		l.leaks = append(l.leaks, label+" in "+where)
	}
}

// Leaks is every place a secret was found (labels, never values).
func (l *LeakScan) Leaks() []string { return l.leaks }

// ScanMesh searches everything the mesh keeps or shows: every KV bucket's
// keys and values, every message of every stream (subject, headers and
// data: TASKS, RESULTS, LOGS, DEADLETTER, STATS, the KV and object store
// streams), every master's and worker's output, and /metrics of every
// node with an --http address. Errors reading JetStream fail the test.
func (m *Mesh) ScanMesh(l *LeakScan) {
	m.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := scanKV(ctx, m.JS, l); err != nil {
		m.T.Fatalf("harness: scan KV: %v", err)
	}
	if err := scanStreams(ctx, m.JS, l); err != nil {
		m.T.Fatalf("harness: scan streams: %v", err)
	}
	for _, p := range append(append([]*Proc{}, m.Masters...), m.Workers...) {
		l.Check("process outputs", "the output of "+p.Name(), p.Output())
	}
	ids := make([]string, 0, len(m.HTTP))
	for id := range m.HTTP {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	c := http.Client{Timeout: 3 * time.Second}
	for _, id := range ids {
		resp, err := c.Get("http://" + m.HTTP[id] + "/metrics")
		if err != nil {
			m.T.Errorf("harness: /metrics of %s: %v", id, err)
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
		resp.Body.Close()
		l.Check("metrics scrapes", "/metrics of "+id, string(b))
	}
}

// scanKV reads every key and current value of every bucket.
func scanKV(ctx context.Context, js jetstream.JetStream, l *LeakScan) error {
	names := js.KeyValueStoreNames(ctx)
	var buckets []string
	for n := range names.Name() {
		buckets = append(buckets, n)
	}
	if err := names.Error(); err != nil {
		return err
	}
	for _, b := range buckets {
		kv, err := js.KeyValue(ctx, b)
		if err != nil {
			return fmt.Errorf("bucket %s: %w", b, err)
		}
		lister, err := kv.ListKeys(ctx)
		if err != nil {
			return fmt.Errorf("bucket %s: list keys: %w", b, err)
		}
		var keys []string
		for k := range lister.Keys() {
			keys = append(keys, k)
		}
		l.Scanned["kv buckets"]++
		for _, k := range keys {
			l.Check("kv keys", "bucket "+b+" key "+k, k)
			e, err := kv.Get(ctx, k)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				continue // expired or deleted since the listing
			}
			if err != nil {
				return fmt.Errorf("bucket %s key %s: %w", b, k, err)
			}
			l.Check("kv values", "bucket "+b+" value of "+k, string(e.Value()))
		}
	}
	return nil
}

// maxStreamMsgs bounds the messages read from one stream.
const maxStreamMsgs = 500_000

// scanStreams reads every message of every stream: through an ordered
// consumer, or by sequence for a work queue (which takes no consumer
// without explicit acks).
func scanStreams(ctx context.Context, js jetstream.JetStream, l *LeakScan) error {
	names := js.StreamNames(ctx)
	var streams []string
	for n := range names.Name() {
		streams = append(streams, n)
	}
	if err := names.Err(); err != nil {
		return err
	}
	for _, name := range streams {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
		info := s.CachedInfo()
		st := info.State
		if st.Msgs == 0 {
			continue
		}
		if st.Msgs > maxStreamMsgs {
			return fmt.Errorf("stream %s holds %d messages, more than the scan reads", name, st.Msgs)
		}
		check := func(seq uint64, subj string, h map[string][]string, data []byte) {
			var b strings.Builder
			b.WriteString(subj + "\n")
			for k, vs := range h {
				b.WriteString(k + ": " + strings.Join(vs, ", ") + "\n")
			}
			b.Write(data)
			l.Check("messages of "+name, fmt.Sprintf("stream %s message %d (%s)", name, seq, subj), b.String())
		}
		if info.Config.Retention == jetstream.WorkQueuePolicy {
			for seq := st.FirstSeq; seq <= st.LastSeq && seq-st.FirstSeq < maxStreamMsgs; seq++ {
				msg, err := s.GetMsg(ctx, seq)
				if errors.Is(err, jetstream.ErrMsgNotFound) {
					continue // acked (removed) since the info
				}
				if err != nil {
					return fmt.Errorf("stream %s message %d: %w", name, seq, err)
				}
				check(seq, msg.Subject, msg.Header, msg.Data)
			}
			continue
		}
		cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		if err != nil {
			return fmt.Errorf("stream %s: ordered consumer: %w", name, err)
		}
		for n := 0; n < maxStreamMsgs; n++ {
			msg, err := cons.Next(jetstream.FetchMaxWait(3 * time.Second))
			if err != nil {
				return fmt.Errorf("stream %s: read after %d messages (up to %d): %w", name, n, st.LastSeq, err)
			}
			md, err := msg.Metadata()
			if err != nil {
				return fmt.Errorf("stream %s: metadata: %w", name, err)
			}
			check(md.Sequence.Stream, msg.Subject(), msg.Headers(), msg.Data())
			// NumPending, not LastSeq: the last messages may have been
			// removed (an expired key) since the info was read.
			if md.Sequence.Stream >= st.LastSeq || md.NumPending == 0 {
				break
			}
		}
	}
	return nil
}
