package boot

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/nodeconfig"
	"github.com/crawlmesh/crawlmesh/streams"
)

// StreamOptions are the JetStream asset settings of node n: --replicas 0
// becomes [streams.ReplicasAuto], which picks 3 on a cluster that can
// place three copies and 1 otherwise (a single server, `crawlmesh up`).
func StreamOptions(n *nodeconfig.Node, log *slog.Logger) streams.Options {
	o := streams.Options{NodesTTL: n.HeartbeatTTL, TaskAckWait: n.TaskAckWait, Lease: n.Lease,
		Replicas: n.Replicas, Partitions: n.Partitions, Log: log}
	o.PartitionTags, _ = nodeconfig.ParseTags(n.PartitionTags) // Validate refused a bad value
	if o.Replicas == 0 {
		o.Replicas = streams.ReplicasAuto
	}
	return o
}

// KeepReplicas, in auto mode (--replicas 0), checks every interval while
// leading() says this master leads whether servers have joined, and then
// scales assets up to 3 replicas (never down). Start-up has already done
// the same; this catches a cluster that grows while the mesh runs. It
// returns when ctx is done.
func KeepReplicas(ctx context.Context, js jetstream.JetStream, n *nodeconfig.Node, log *slog.Logger, leading func() bool, every time.Duration) {
	if n.Replicas != 0 {
		return // the operator's count was applied at start-up
	}
	defs, err := streams.Load()
	if err != nil {
		log.Error("replica check disabled", "err", err)
		return
	}
	o := StreamOptions(n, log)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !leading() {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, every)
		if _, err := streams.ScaleUp(cctx, js, defs, o); err != nil && ctx.Err() == nil {
			log.Warn("replica check, retrying later", "err", err)
		}
		cancel()
	}
}
