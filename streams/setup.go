package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/natsconn"
)

// RequestTimeout bounds one JetStream API request made while applying the
// definitions. A clustered server answers a healthy request in
// milliseconds, but drops (answers nothing to) a request it cannot serve
// yet — before the meta leader is elected, or about a stream whose new
// Raft group is still electing its leader — so the only sign is silence:
// waiting longer than this only delays the retry.
const RequestTimeout = 3 * time.Second

// SetupKey is the key of bucket election that a master holds while it
// applies streams/: the assets are created by one master at a time.
const SetupKey = "setup"

// electionBucket is the bucket the setup lease lives in: the one asset
// masters need before any other, and whose TTL is already the masters'
// lease.
const electionBucket = "election"

// request gives one API request its own deadline, within ctx's: the one
// natsconn.UntilReady chose for this attempt, else RequestTimeout.
func request(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, natsconn.RequestTimeout(ctx, RequestTimeout))
}

// ErrSetupBusy means another master holds the setup lease.
var ErrSetupBusy = errors.New("another master is applying streams/")

// Setup applies the definitions as [Ensure] does, one master at a time.
//
// Why: masters started together on a cluster used to run Ensure side by
// side. Each asset's create proposal from the first master gives the
// stream a new Raft group; the second master's info, update or create of
// that stream, arriving while the group elects its leader, is dropped by
// the servers (only a stream leader answers for a stream), so it sat out
// its whole request deadline — 30 s per asset, minutes in all. Here the
// first master creates the assets while holding key [SetupKey] in bucket
// election (a Create: only one can hold it; its TTL is the lease, renewed
// while the work goes on, so a master that dies frees it within a lease);
// the others wait for the key to go, then run Ensure themselves, which now
// finds every asset with a leader and only verifies it.
//
// owner names the master in the key, so doctor can say who sets up.
func Setup(ctx context.Context, js jetstream.JetStream, d Definitions, o Options, owner string) error {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kv, err := OpenKV(ctx, js, d, electionBucket, o)
	if err != nil {
		return err
	}
	for {
		rctx, cancel := request(ctx)
		rev, err := kv.Create(rctx, SetupKey, []byte(owner))
		cancel()
		if err == nil {
			return holdWhile(ctx, kv, rev, owner, func(ctx context.Context) error {
				return Ensure(ctx, js, d, o)
			})
		}
		if !natsconn.KeyExists(err) {
			return fmt.Errorf("take setup lease %s/%s: %w", electionBucket, SetupKey, err)
		}
		holder := "another master"
		rctx, cancel = request(ctx)
		e, err := kv.Get(rctx, SetupKey)
		cancel()
		if err == nil {
			if string(e.Value()) == owner {
				// Our own earlier Create, whose reply timed out: the lease
				// is ours (masters' ids are unique).
				return holdWhile(ctx, kv, e.Revision(), owner, func(ctx context.Context) error {
					return Ensure(ctx, js, d, o)
				})
			}
			holder = "master " + string(e.Value())
		}
		log.Info("waiting for the mesh's assets", "component", "streams", "creating", holder)
		if err := waitGone(ctx, kv, SetupKey); err != nil {
			return err
		}
	}
}

// SetupHolder returns the master that holds the setup lease, "" when none
// does (or bucket election does not exist yet).
func SetupHolder(ctx context.Context, js jetstream.JetStream) (string, error) {
	rctx, cancel := request(ctx)
	defer cancel()
	kv, err := js.KeyValue(rctx, electionBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	e, err := kv.Get(rctx, SetupKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(e.Value()), nil
}

// holdWhile runs work while renewing the lease at rev every third of the
// bucket's TTL, then removes the key. A renewal that fails ends the work:
// another master may take over, and two Ensure runs must not overlap.
func holdWhile(ctx context.Context, kv jetstream.KeyValue, rev uint64, owner string, work func(context.Context) error) error {
	ttl := 3 * time.Second
	rctx, cancel := request(ctx)
	if st, err := kv.Status(rctx); err == nil && st.TTL() > 0 {
		ttl = st.TTL()
	}
	cancel()
	wctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
			rctx, cancel := request(wctx)
			r, err := kv.Update(rctx, SetupKey, []byte(owner), rev)
			cancel()
			if err != nil && wctx.Err() == nil {
				stop(fmt.Errorf("setup lease lost: %w", err))
				return
			}
			rev = r
		}
	}()
	err := work(wctx)
	stop(nil)
	<-renewed
	if cause := context.Cause(wctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = fmt.Errorf("%w (%v)", err, cause)
	}
	// Give the lease back at once so waiting masters need not sit out the
	// TTL; if this fails the TTL frees it anyway.
	rctx, cancel = request(context.WithoutCancel(ctx))
	_ = kv.Delete(rctx, SetupKey, jetstream.LastRevision(rev))
	cancel()
	return err
}

// waitGone returns once key is absent: deleted, purged or expired (the
// bucket's limit markers report expiry to watchers).
func waitGone(ctx context.Context, kv jetstream.KeyValue, key string) error {
	w, err := kv.Watch(ctx, key)
	if err != nil {
		return fmt.Errorf("watch %s: %w", key, err)
	}
	defer func() { _ = w.Stop() }()
	present := false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return errors.New("watch of the setup lease ended")
			case e == nil: // the initial value, if any, has been delivered
				if !present {
					return nil
				}
			case e.Operation() == jetstream.KeyValuePut:
				present = true
			default: // deleted, purged, or expired (a limit marker)
				return nil
			}
		}
	}
}

// SetupEnded reports whether the last setup lease has ended (its key
// deleted, or expired) and how long ago, by the server's stamp of the
// marker: a master that has just created the assets is still joining the
// mesh, and doctor says so rather than that no master runs.
func SetupEnded(ctx context.Context, js jetstream.JetStream) (ago time.Duration, ended bool, err error) {
	s, err := js.Stream(ctx, "KV_"+electionBucket)
	if err != nil {
		return 0, false, err
	}
	m, err := s.GetLastMsgForSubject(ctx, "$KV."+electionBucket+"."+SetupKey)
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, false, nil
		}
		return 0, false, err
	}
	switch m.Header.Get("KV-Operation") {
	case "DEL", "PURGE":
		return time.Since(m.Time), true, nil
	}
	if m.Header.Get("Nats-Marker-Reason") != "" { // the lease's TTL ran out
		return time.Since(m.Time), true, nil
	}
	return 0, false, nil
}
