package sink

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	delivered *prometheus.CounterVec
	failures  *prometheus.CounterVec
	dead      *prometheus.CounterVec
	lag       *prometheus.GaugeVec
	batch     *prometheus.HistogramVec
}

// newMetrics registers the sink metrics on reg (nil: not exported).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crawlmesh_sink_delivered_total",
			Help: "Items a sink's target took (a repeat after a crash counts again)."}, []string{"sink"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crawlmesh_sink_failures_total",
			Help: "Failed delivery attempts of a sink's batches."}, []string{"sink"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crawlmesh_sink_dead_letters_total",
			Help: "Items a webhook sink gave up on, into its dead letters."}, []string{"sink"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "crawlmesh_sink_lag_items",
			Help: "Items of RESULTS a sink has not delivered yet (its consumer's pending and unacked messages)."}, []string{"sink"}),
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "crawlmesh_sink_batch_seconds",
			Help:    "Time to deliver one batch, retries included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}}, []string{"sink"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.delivered, m.failures, m.dead, m.lag, m.batch} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
