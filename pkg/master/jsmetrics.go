package master

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// jsCollector reports the work queue and the streams around it, read from
// JetStream at scrape time: the server holds the truth, so any master
// (leader or standby) exports the same numbers without caching them.
type jsCollector struct {
	js      jetstream.JetStream
	timeout time.Duration
}

var (
	descStreamMsgs = prometheus.NewDesc("crawlmesh_stream_messages",
		"Messages stored in a crawlmesh stream (TASKS, and TASKS_1 ... with partitions: the crawl frontier; DEADLETTER, RESULTS).", []string{"stream"}, nil)
	descStreamBytes = prometheus.NewDesc("crawlmesh_stream_bytes",
		"Bytes stored in a crawlmesh stream.", []string{"stream"}, nil)
	descPending = prometheus.NewDesc("crawlmesh_consumer_pending",
		"Tasks in the work queue not yet delivered to any worker.", []string{"stream", "consumer"}, nil)
	descAckPending = prometheus.NewDesc("crawlmesh_consumer_ack_pending",
		"Tasks delivered to workers and not yet acknowledged (in flight or waiting for their host).", []string{"stream", "consumer"}, nil)
	descRedelivered = prometheus.NewDesc("crawlmesh_consumer_redelivered",
		"Tasks currently out for a second or later delivery.", []string{"stream", "consumer"}, nil)
	descWaiting = prometheus.NewDesc("crawlmesh_consumer_waiting",
		"Pull requests of workers waiting for tasks (idle capacity).", []string{"stream", "consumer"}, nil)
	descJSUp = prometheus.NewDesc("crawlmesh_jetstream_up",
		"1 when this master could read the stream and consumer state at this scrape.", nil, nil)
)

// observedStreams are the streams reported, with the work queues of the
// mesh's other partitions; a fixed list keeps the label set bounded.
var observedStreams = []string{mesh.TasksStream, mesh.DeadStream, mesh.ResultsStream}

func (c *jsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStreamMsgs, descStreamBytes, descPending, descAckPending, descRedelivered, descWaiting, descJSUp} {
		ch <- d
	}
}

func (c *jsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	up := 1.0
	parts := 1
	stream := func(name string) {
		s, err := c.js.Stream(ctx, name)
		if err != nil {
			up = 0
			return
		}
		info := s.CachedInfo()
		if name == mesh.TasksStream {
			if n, err := crawler.PartitionsOf(info.Config); err == nil {
				parts = n
			}
		}
		ch <- prometheus.MustNewConstMetric(descStreamMsgs, prometheus.GaugeValue, float64(info.State.Msgs), name)
		ch <- prometheus.MustNewConstMetric(descStreamBytes, prometheus.GaugeValue, float64(info.State.Bytes), name)
	}
	for _, name := range observedStreams {
		stream(name)
	}
	// Every partition's work queue (TASKS_1 ...), labelled by its stream:
	// with partitions, TASKS alone is a part of the frontier, and a
	// stalled partition went unseen (found by review).
	for p := 1; p < parts; p++ {
		stream(mesh.TasksStreamOf(p))
	}
	for p := range parts {
		cons, err := c.js.Consumer(ctx, mesh.TasksStreamOf(p), mesh.TasksConsumer)
		if err != nil {
			up = 0
			continue
		}
		ci := cons.CachedInfo()
		labels := []string{mesh.TasksStreamOf(p), mesh.TasksConsumer}
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(ci.NumPending), labels...)
		ch <- prometheus.MustNewConstMetric(descAckPending, prometheus.GaugeValue, float64(ci.NumAckPending), labels...)
		ch <- prometheus.MustNewConstMetric(descRedelivered, prometheus.GaugeValue, float64(ci.NumRedelivered), labels...)
		ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.GaugeValue, float64(ci.NumWaiting), labels...)
	}
	ch <- prometheus.MustNewConstMetric(descJSUp, prometheus.GaugeValue, up)
}

var descTasksPending = prometheus.NewDesc("crawlmesh_tasks_pending",
	"Tasks in the work queue (queued, in flight or waiting for a retry), as the leading master counts them; standbys do not export it.", nil, nil)

// pendingCollector exports the leader's count of pending tasks. A
// standby exports nothing rather than the figure of its last term, which
// would go stale (and double a sum over masters).
type pendingCollector struct{ pending func() (int64, bool) }

func (c pendingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descTasksPending }

func (c pendingCollector) Collect(ch chan<- prometheus.Metric) {
	if n, ok := c.pending(); ok {
		ch <- prometheus.MustNewConstMetric(descTasksPending, prometheus.GaugeValue, float64(n))
	}
}
