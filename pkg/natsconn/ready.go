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
	var w waiting
	if errors.As(err, &w) {
		return true
	}
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

// waiting marks an error as something another node will soon put right.
type waiting struct{ error }

func (w waiting) Unwrap() error { return w.error }

// Waiting marks err as [NotReady]: what op needs is not there yet but
// another node will provide it (a bucket a master creates), so
// [UntilReady] retries it.
func Waiting(err error) error {
	if err == nil {
		return nil
	}
	return waiting{err}
}

type requestTimeoutKey struct{}

// RequestTimeout is the deadline for one JetStream API request made under
// ctx: the one [UntilReady] chose for this attempt, else def.
func RequestTimeout(ctx context.Context, def time.Duration) time.Duration {
	if d, ok := ctx.Value(requestTimeoutKey{}).(time.Duration); ok {
		return d
	}
	return def
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
	// A request that JetStream cannot serve yet is dropped, not refused, so
	// a timeout is the only answer: the first attempts give each request a
	// second, later ones up to 5 s, for a cluster that is merely slow.
	perRequest := time.Second
	for {
		octx, cancel := context.WithTimeout(context.WithValue(ctx, requestTimeoutKey{}, perRequest), 30*time.Second)
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
		// Capped low: a cluster that just elected its leaders answers at
		// once, and a node should notice within a second or two.
		wait = min(wait*2, time.Second)
		perRequest = min(perRequest+time.Second, 5*time.Second)
	}
}

// KeyExists reports whether a KV Create failed because the key exists.
// Besides jetstream.ErrKeyExists, servers of 2.12 and later may answer with
// the "wrong last sequence" of a constant expectation, which nats.go does
// not map.
func KeyExists(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
