package crawler

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Task outcomes, the values of label outcome of crawlmesh_tasks_total.
const (
	outcomeOK      = "ok"      // fetched, children and items published
	outcomeFailed  = "failed"  // permanent failure (4xx, robots, not HTML ...), counted in the crawl
	outcomeRetried = "retried" // transient failure, back in the queue with a delay
	outcomeDropped = "dropped" // the crawl was cancelled or the page was a duplicate redirect
	outcomeDead    = "dead"    // sent to the dead-letter stream
)

var outcomes = []string{outcomeOK, outcomeFailed, outcomeRetried, outcomeDropped, outcomeDead}

type metrics struct {
	pages    *prometheus.CounterVec
	items    *prometheus.CounterVec
	tasks    *prometheus.CounterVec
	retries  *prometheus.CounterVec
	dead     *prometheus.CounterVec
	robots   *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	fetchDur *prometheus.HistogramVec

	spiders sync.Map // spider names whose series exist
}

// newMetrics registers the crawl metrics on r; a nil r gives metrics that
// count into nothing registered. Labels are bounded: spider names and
// fixed classes, never URLs, hosts or crawl ids.
func newMetrics(r prometheus.Registerer) *metrics {
	if r == nil {
		r = prometheus.NewRegistry()
	}
	f := promauto.With(r)
	return &metrics{
		pages: f.NewCounterVec(prometheus.CounterOpts{Name: "crawlmesh_pages_total",
			Help: "Pages finished, by spider and status: HTTP class (2xx, 4xx ...) or robots, too-large, not-html, redirect, timeout, network."},
			[]string{"spider", "status"}),
		items: f.NewCounterVec(prometheus.CounterOpts{Name: "crawlmesh_items_total",
			Help: "Items extracted and published."}, []string{"spider"}),
		tasks: f.NewCounterVec(prometheus.CounterOpts{Name: "crawlmesh_tasks_total",
			Help: "Task deliveries handled, by spider and outcome: ok, failed, retried, dropped, dead."},
			[]string{"spider", "outcome"}),
		retries: f.NewCounterVec(prometheus.CounterOpts{Name: "crawlmesh_task_retries_total",
			Help: "Fetches that failed transiently and were scheduled again."}, []string{"spider"}),
		dead: f.NewCounterVec(prometheus.CounterOpts{Name: "crawlmesh_dead_letters_total",
			Help: "Tasks sent to the dead-letter stream."}, []string{"spider"}),
		robots: f.NewCounterVec(prometheus.CounterOpts{Name: "crawlmesh_robots_blocked_total",
			Help: "Pages not fetched because robots.txt disallows them."}, []string{"spider"}),
		bytes: f.NewCounterVec(prometheus.CounterOpts{Name: "crawlmesh_fetched_bytes_total",
			Help: "Body bytes of pages fetched."}, []string{"spider"}),
		fetchDur: f.NewHistogramVec(prometheus.HistogramOpts{Name: "crawlmesh_fetch_duration_seconds",
			Help:    "Time to fetch a page, robots check and redirects included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"spider"}),
	}
}

// spider creates a spider's series at zero the first time a task of it
// arrives, so rate() and increase() see a counter start at 0 rather than
// missing its first increments, and alerts on dead letters work from the
// first one.
func (m *metrics) spider(name string) {
	if _, loaded := m.spiders.LoadOrStore(name, true); loaded {
		return
	}
	m.items.WithLabelValues(name)
	m.retries.WithLabelValues(name)
	m.dead.WithLabelValues(name)
	m.robots.WithLabelValues(name)
	m.bytes.WithLabelValues(name)
	for _, o := range outcomes {
		m.tasks.WithLabelValues(name, o)
	}
}

// outcome counts one task delivery's end.
func (m *metrics) outcome(spider, outcome string) { m.tasks.WithLabelValues(spider, outcome).Inc() }
