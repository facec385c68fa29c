package crawler

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	pages    *prometheus.CounterVec
	items    *prometheus.CounterVec
	retries  *prometheus.CounterVec
	dead     *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	fetchDur *prometheus.HistogramVec
}

// newMetrics registers the crawl metrics on r; a nil r gives metrics that
// count into nothing registered.
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
		retries: f.NewCounterVec(prometheus.CounterOpts{Name: "crawlmesh_task_retries_total",
			Help: "Fetches that failed transiently and were scheduled again."}, []string{"spider"}),
		dead: f.NewCounterVec(prometheus.CounterOpts{Name: "crawlmesh_dead_letters_total",
			Help: "Tasks sent to the dead-letter stream."}, []string{"spider"}),
		bytes: f.NewCounterVec(prometheus.CounterOpts{Name: "crawlmesh_fetched_bytes_total",
			Help: "Body bytes of pages fetched."}, []string{"spider"}),
		fetchDur: f.NewHistogramVec(prometheus.HistogramOpts{Name: "crawlmesh_fetch_duration_seconds",
			Help:    "Time to fetch a page, robots check and redirects included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"spider"}),
	}
}
