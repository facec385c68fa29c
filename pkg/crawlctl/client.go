package crawlctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// Errors of [Call] a caller can tell apart with errors.Is.
var (
	ErrNoMaster = errors.New("no master is leading to handle it: none is running (start one: master, or crawlmesh up), or a leader election is under way (try again in a few seconds; crawlmesh nodes shows the masters)")
	ErrNoAnswer = errors.New("no master answered")
)

// Call sends a request to the masters' crawl API (mesh.APICrawlStart or
// mesh.APICrawlCancel) and returns the crawl id of the reply. A master that
// is starting answers within a moment, so no-responders is retried briefly.
func Call(ctx context.Context, nc *nats.Conn, subj string, req APIRequest, timeout time.Duration) (string, error) {
	rep, err := call(ctx, nc, subj, req, timeout)
	return rep.ID, err
}

// call sends a request to the masters' crawl API and returns the reply;
// a reply with an error is returned with it as err.
func call(ctx context.Context, nc *nats.Conn, subj string, req APIRequest, timeout time.Duration) (APIReply, error) {
	b, _ := json.Marshal(req)
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m, err := nc.RequestWithContext(rctx, subj, b)
	for tries := 0; errors.Is(err, nats.ErrNoResponders) && tries < 8; tries++ {
		select {
		case <-rctx.Done():
		case <-time.After(250 * time.Millisecond):
			m, err = nc.RequestWithContext(rctx, subj, b)
		}
	}
	var rep APIReply
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return rep, ErrNoMaster
	case errors.Is(err, context.DeadlineExceeded):
		return rep, fmt.Errorf("%w within %v", ErrNoAnswer, timeout)
	case err != nil:
		return rep, err
	}
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return rep, fmt.Errorf("unreadable reply from master: %w", err)
	}
	if rep.Error != "" {
		return rep, errors.New(rep.Error)
	}
	return rep, nil
}
