package boot

import (
	"context"
	"strconv"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/clusterconfig"
	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/fetch"
	"github.com/crawlmesh/crawlmesh/pkg/nodeconfig"
)

// nodeBase is what every node has of the cluster configuration's keys
// before the bucket: its own flags (or their CRAWLMESH_* variables).
func nodeBase(n *nodeconfig.Node) clusterconfig.Base {
	b := clusterconfig.Base{}
	b.Flag(clusterconfig.HeartbeatInterval, n.HeartbeatInterval.String(), n.Set["heartbeat-interval"])
	b.Flag(clusterconfig.LogLevel, n.LogLevel, n.Set["log-level"])
	return b
}

// workerBase adds a worker's crawling flags to nodeBase.
func workerBase(n *nodeconfig.Node, o WorkerOptions) clusterconfig.Base {
	b := nodeBase(n)
	b.Flag(clusterconfig.Concurrency, strconv.Itoa(o.Concurrency), n.Set["concurrency"])
	if o.Fetch.RequestTimeout > 0 {
		b.Flag(clusterconfig.RequestTimeout, o.Fetch.RequestTimeout.String(), n.Set["request-timeout"])
	}
	if o.Fetch.MaxBodySize > 0 {
		b.Flag(clusterconfig.MaxBody, strconv.Itoa(o.Fetch.MaxBodySize), n.Set["max-body-size"])
	}
	if o.MaxAttempts > 0 {
		b.Flag(clusterconfig.MaxAttempts, strconv.Itoa(o.MaxAttempts), n.Set["max-attempts"])
	}
	if o.Backoff > 0 {
		b.Flag(clusterconfig.RetryBackoff, o.Backoff.String(), false)
	}
	return b
}

// loadConfig reads the node's stored configuration, so it starts with it,
// and returns the watcher that applies later changes.
func loadConfig(ctx context.Context, env *Env, n *nodeconfig.Node, role string, base clusterconfig.Base) (*clusterconfig.Watcher, clusterconfig.Effective, error) {
	w := clusterconfig.NewWatcher(env.Config, n.ID, role, base, env.Log)
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	eff, err := w.Load(lctx)
	if err != nil {
		return nil, nil, err
	}
	return w, eff, nil
}

// setLevel applies log_level to the node's logger.
func setLevel(n *nodeconfig.Node, e clusterconfig.Effective) {
	if n.Level != nil {
		n.Level.Set(e.Level(clusterconfig.LogLevel))
	}
}

// fetchLive is the fetcher's share of the effective configuration.
func fetchLive(e clusterconfig.Effective) fetch.Live {
	return fetch.Live{UserAgent: e.String(clusterconfig.UserAgent), RequestTimeout: e.Duration(clusterconfig.RequestTimeout),
		MaxBodySize: e.Int(clusterconfig.MaxBody), RobotsTTL: e.Duration(clusterconfig.RobotsTTL), Proxies: e.List(clusterconfig.Proxies)}
}

// applyCrawling applies the crawling keys to a fetcher and crawler (either
// may be nil before a master has created the task stream).
func applyCrawling(e clusterconfig.Effective, f *fetch.Fetcher, cr *crawler.Crawler) {
	if f != nil {
		f.SetLive(fetchLive(e))
	}
	if cr != nil {
		cr.SetRetry(e.Int(clusterconfig.MaxAttempts), e.Duration(clusterconfig.RetryBackoff))
	}
}
