package natsconn

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ReadyWait bounds how long [UntilReady] waits for JetStream: long enough
// for a cluster restarted together with the mesh to elect its leaders,
// short enough that a server that never answers is reported.
const ReadyWait = 2 * time.Minute

// NotReady reports whether err means JetStream cannot answer yet — a
// cluster without a meta leader after a cold start, a stream whose
// replicas are still electing a leader — rather than that the request is
// wrong or JetStream is off. Such errors pass once the servers have found
// each other.
func NotReady(err error) bool {
	if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case 10008, // JSClusterNotAvailErr: JetStream system temporarily unavailable
			10009, // JSClusterNotLeaderErr: cluster can not handle request
			10118: // JSStreamOfflineErr: stream is offline
			return true
		}
		return apiErr.Code == 503
	}
	return false
}

// UntilReady runs op until it succeeds, fails for a reason other than
// [NotReady], ctx is done or [ReadyWait] has passed. A node started
// together with its NATS cluster (a reboot, a compose up) waits for
// JetStream instead of exiting and relying on a supervisor; each retry is
// logged with what it waits for.
func UntilReady(ctx context.Context, log *slog.Logger, what string, op func(context.Context) error) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	deadline := time.Now().Add(ReadyWait)
	wait := 250 * time.Millisecond
	for {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := op(octx)
		cancel()
		if err == nil || !NotReady(err) || ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return err
		}
		log.Warn("JetStream not ready, retrying", "step", what, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}
