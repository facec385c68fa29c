package crawler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

// ErrUnknownCrawl means a task names a crawl that does not exist.
var ErrUnknownCrawl = errors.New("crawler: unknown crawl")

// CrawlInfo is a crawl with its parsed spec.
type CrawlInfo struct {
	mesh.Crawl
	Parsed *spec.Spec
}

// Crawls is a watch-fed cache of bucket crawls: a cancel reaches every
// worker as soon as the bucket changes, without a read per task.
type Crawls struct {
	kv  jetstream.KeyValue
	log *slog.Logger

	mu    sync.RWMutex
	m     map[string]*CrawlInfo
	onEnd []func(id string)
}

// OnEnd registers f to be called (from the watch) when a crawl this cache
// knew as running stops running or goes away.
func (c *Crawls) OnEnd(f func(id string)) {
	c.mu.Lock()
	c.onEnd = append(c.onEnd, f)
	c.mu.Unlock()
}

// set stores ci (nil: deletes id) and calls the OnEnd callbacks when a
// running crawl ended.
func (c *Crawls) set(id string, ci *CrawlInfo) {
	c.mu.Lock()
	prev := c.m[id]
	if ci == nil {
		delete(c.m, id)
	} else {
		c.m[id] = ci
	}
	var cbs []func(string)
	if prev != nil && prev.State == mesh.CrawlRunning && (ci == nil || ci.State != mesh.CrawlRunning) {
		cbs = c.onEnd
	}
	c.mu.Unlock()
	for _, f := range cbs {
		f(id)
	}
}

// NewCrawls returns a cache over bucket crawls.
func NewCrawls(kv jetstream.KeyValue, log *slog.Logger) *Crawls {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Crawls{kv: kv, log: log, m: map[string]*CrawlInfo{}}
}

// Run keeps the cache current until ctx is done.
func (c *Crawls) Run(ctx context.Context) error {
	for {
		w, err := c.kv.WatchAll(ctx)
		if err == nil {
			err = c.consume(ctx, w)
			_ = w.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
		c.log.Warn("crawls watch ended, watching again", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (c *Crawls) consume(ctx context.Context, w jetstream.KeyWatcher) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watcher closed")
			}
			if e == nil {
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				c.set(e.Key(), nil)
				continue
			}
			ci, err := decodeCrawl(e.Value())
			if err != nil {
				c.log.Warn("unreadable crawl record ignored", "crawl", e.Key(), "err", err)
				continue
			}
			c.set(e.Key(), ci)
		}
	}
}

func decodeCrawl(b []byte) (*CrawlInfo, error) {
	var ci CrawlInfo
	if err := json.Unmarshal(b, &ci.Crawl); err != nil {
		return nil, err
	}
	s, err := spec.Parse(ci.Spec)
	if err != nil {
		return nil, fmt.Errorf("spec of crawl %s: %w", ci.ID, err)
	}
	ci.Parsed = s
	return &ci, nil
}

// Get returns a crawl, reading the bucket when the watch has not delivered
// it yet (a task can arrive before the record's update does).
func (c *Crawls) Get(ctx context.Context, id string) (*CrawlInfo, error) {
	c.mu.RLock()
	ci := c.m[id]
	c.mu.RUnlock()
	if ci != nil {
		return ci, nil
	}
	e, err := c.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, fmt.Errorf("%w %q", ErrUnknownCrawl, id)
	}
	if err != nil {
		return nil, fmt.Errorf("read crawl %s: %w", id, err)
	}
	ci, err = decodeCrawl(e.Value())
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m[id] == nil {
		c.m[id] = ci
	}
	c.mu.Unlock()
	return ci, nil
}

// Fresh reads a crawl from the bucket, not the cache (the watch brings
// the cache up to date on its own).
func (c *Crawls) Fresh(ctx context.Context, id string) (*CrawlInfo, error) {
	e, err := c.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, fmt.Errorf("%w %q", ErrUnknownCrawl, id)
	}
	if err != nil {
		return nil, fmt.Errorf("read crawl %s: %w", id, err)
	}
	return decodeCrawl(e.Value())
}

// ReadCrawl reads one crawl record with its revision.
func ReadCrawl(ctx context.Context, kv jetstream.KeyValue, id string) (*mesh.Crawl, uint64, error) {
	e, err := kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, 0, fmt.Errorf("%w %q (crawlmesh crawl ls lists them)", ErrUnknownCrawl, id)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read crawl %s: %w", id, err)
	}
	var cr mesh.Crawl
	if err := json.Unmarshal(e.Value(), &cr); err != nil {
		return nil, 0, fmt.Errorf("crawl record %s: %w", id, err)
	}
	return &cr, e.Revision(), nil
}

// Pending is the number of tasks of a crawl still in the work queue (all
// of its parts partitions): queued, in flight, or waiting for a retry. A
// task leaves only when its children are stored, so 0 after seeding means
// the crawl is done.
func Pending(ctx context.Context, js jetstream.JetStream, crawl string, parts int) (uint64, error) {
	var n uint64
	for p := range max(parts, 1) {
		c, err := SubjectCount(ctx, js, mesh.TasksStreamOf(p), mesh.TaskSubjectOf(p, crawl))
		if err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
}

// SubjectCount is the number of messages stream holds on the literal
// subject subj (the server answers from its subject index).
func SubjectCount(ctx context.Context, js jetstream.JetStream, stream, subj string) (uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("open stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return 0, fmt.Errorf("stream %s info: %w", stream, err)
	}
	return info.State.Subjects[subj], nil
}

// Partitions is the number of partitions of the mesh's frontier and
// seen-set, as the master that created them recorded it in stream TASKS
// (1 when none is recorded).
func Partitions(ctx context.Context, js jetstream.JetStream) (int, error) {
	s, err := js.Stream(ctx, mesh.TasksStream)
	if err != nil {
		return 0, fmt.Errorf("open stream %s: %w", mesh.TasksStream, err)
	}
	return PartitionsOf(s.CachedInfo().Config)
}

// PartitionsOf reads the partition count recorded in TASKS's config.
func PartitionsOf(c jetstream.StreamConfig) (int, error) {
	v, ok := c.Metadata[mesh.PartitionsMeta]
	if !ok {
		return 1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > mesh.MaxPartitions {
		return 0, fmt.Errorf("stream %s: metadata %s=%q is not a partition count 1-%d", mesh.TasksStream, mesh.PartitionsMeta, v, mesh.MaxPartitions)
	}
	return n, nil
}
