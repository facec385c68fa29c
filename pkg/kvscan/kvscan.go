// Package kvscan reads the current entries of a KV bucket in one pass: a
// watch of every key, up to the marker that says the initial values are
// all delivered. Listing nodes, cluster configuration and the like read a
// bucket this way (keys then a Get each would be a request per key).
package kvscan

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Entries returns every live entry of kv (deleted keys skipped) in the
// order the watch delivers them. bucket names kv in errors.
func Entries(ctx context.Context, kv jetstream.KeyValue, bucket string) ([]jetstream.KeyValueEntry, error) {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("read bucket %s: %w", bucket, err)
	}
	defer func() { _ = w.Stop() }()
	var out []jetstream.KeyValueEntry
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("read bucket %s: %w", bucket, ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("read bucket %s: watch closed", bucket)
			}
			if e == nil {
				return out, nil
			}
			out = append(out, e)
		}
	}
}
