package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// ReplicasAuto, as Options.Replicas, lets [Ensure] choose the replica count:
// [AutoReplicas] when JetStream can place that many copies of an asset, 1
// otherwise; an asset that already has more replicas keeps them.
const ReplicasAuto = -1

// AutoReplicas is what auto mode asks for: three copies survive the loss
// of one server with a quorum left.
const AutoReplicas = 3

// Placement errors: the server says it cannot hold more copies, which is
// how JetStream itself answers "how many servers do I have" for a client of
// an ordinary account (account info does not say, and the cluster view is
// only for the system account). Codes from nats-server's
// jetstream_errors_generated.go; nats.go does not name them.
const (
	errCodeNoPeers               jetstream.ErrorCode = 10005 // JSClusterNoPeersErrF: no suitable peers for placement
	errCodeInsufficientResources jetstream.ErrorCode = 10023 // JSInsufficientResourcesErr
	errCodeReplicasNotSupported  jetstream.ErrorCode = 10074 // JSStreamReplicasNotSupportedErr: not clustered
)

// cannotPlace reports whether err is the server refusing a replica count
// it cannot place.
func cannotPlace(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case errCodeNoPeers, errCodeInsufficientResources, errCodeReplicasNotSupported:
		return true
	}
	return false
}

// planner decides each asset's replica count in auto mode. The first
// refusal caps the rest of the run at what each asset already has, so a
// single server answers one failed request, not one per asset.
type planner struct {
	mu      sync.Mutex // capped and decided: assets are applied concurrently
	js      jetstream.JetStream
	auto    bool
	fixed   bool // o.Replicas > 0: applied as given, changes logged
	log     *slog.Logger
	capped  error // why AutoReplicas was refused; nil while not seen
	decided bool
}

func newPlanner(js jetstream.JetStream, o Options) *planner {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &planner{js: js, auto: o.Replicas == ReplicasAuto, fixed: o.Replicas > 0, log: log.With("component", "streams")}
}

// apply runs do with *replicas set to the count chosen for the asset whose
// stream is named stream. Outside auto mode it runs do unchanged, logging
// a change of an explicit count.
func (p *planner) apply(ctx context.Context, asset, stream string, replicas *int, do func() error) error {
	if !p.auto && !p.fixed {
		return do()
	}
	cur, err := currentReplicas(ctx, p.js, stream)
	if err != nil {
		return fmt.Errorf("%s: %w", asset, err)
	}
	if p.fixed {
		if err := do(); err != nil {
			return err
		}
		if cur > 0 && *replicas != cur {
			p.log.Info("asset replicas changed", "stream", stream, "asset", asset, "from", cur, "to", *replicas)
		}
		return nil
	}
	want := AutoReplicas
	p.mu.Lock()
	if p.capped != nil {
		want = 1
	}
	p.mu.Unlock()
	*replicas = max(want, cur) // never fewer than it has: no automatic scale-down
	err = do()
	if err != nil && cannotPlace(err) && *replicas > max(cur, 1) {
		p.mu.Lock()
		if p.capped == nil {
			p.capped = err
			p.log.Info("jetstream replicas: 1, the servers cannot place more", "want", AutoReplicas, "err", err)
		}
		p.mu.Unlock()
		*replicas = max(cur, 1)
		err = do()
	}
	if err != nil {
		return err
	}
	p.mu.Lock()
	if !p.decided && p.capped == nil && *replicas >= AutoReplicas {
		p.decided = true
		p.log.Info("jetstream replicas: the cluster places every asset on 3 servers", "replicas", *replicas)
	}
	p.mu.Unlock()
	if cur > 0 && *replicas > cur {
		p.log.Info("asset scaled up", "stream", stream, "asset", asset, "from", cur, "to", *replicas)
	}
	return nil
}

// currentReplicas is the running replica count of stream, 0 if it does not
// exist.
func currentReplicas(ctx context.Context, js jetstream.JetStream, stream string) (int, error) {
	rctx, cancel := request(ctx)
	defer cancel()
	s, err := js.Stream(rctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("stream %s info: %w", stream, err)
	}
	return max(s.CachedInfo().Config.Replicas, 1), nil
}

// kvStream is the stream behind KV bucket b.
func kvStream(b string) string { return "KV_" + b }

// objStream is the stream behind Object Store b.
func objStream(b string) string { return "OBJ_" + b }

// ScaleUp raises every existing asset below the wanted replica count to it
// and changes nothing else: a master runs it now and then so assets created
// on a smaller cluster gain copies once servers join. The wanted count is
// [AutoReplicas] in auto mode and o.Replicas when that is set; with the
// files' counts (0) it does nothing. It never lowers a count. A refusal to
// place (too few servers) ends the pass quietly; it returns the assets it
// scaled.
func ScaleUp(ctx context.Context, js jetstream.JetStream, d Definitions, o Options) ([]string, error) {
	want := o.Replicas
	if want == ReplicasAuto {
		want = AutoReplicas
	}
	if want <= 1 {
		return nil, nil
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if parts, err := RecordedPartitions(ctx, js); err == nil {
		d = d.Partitioned(parts)
	}
	var names []string
	for _, c := range d.KV {
		names = append(names, kvStream(c.Bucket))
	}
	for _, c := range d.Streams {
		names = append(names, c.Name)
	}
	for _, c := range d.ObjectStores {
		names = append(names, objStream(c.Bucket))
	}
	var scaled []string
	for _, name := range names {
		rctx, cancel := request(ctx)
		s, err := js.Stream(rctx, name)
		cancel()
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue // Ensure creates it
		}
		if err != nil {
			return scaled, fmt.Errorf("stream %s info: %w", name, err)
		}
		cfg := s.CachedInfo().Config
		cur := max(cfg.Replicas, 1)
		if cur >= want {
			continue
		}
		cfg.Replicas = want
		rctx, cancel = request(ctx)
		_, err = js.UpdateStream(rctx, cfg)
		cancel()
		if err != nil {
			if cannotPlace(err) {
				log.Debug("assets not scaled up: the servers cannot place more replicas", "want", want, "err", err)
				return scaled, nil
			}
			return scaled, fmt.Errorf("scale stream %s from %d to %d replicas: %w", name, cur, want, err)
		}
		log.Info("asset scaled up", "component", "streams", "stream", name, "from", cur, "to", want)
		scaled = append(scaled, name)
	}
	return scaled, nil
}
