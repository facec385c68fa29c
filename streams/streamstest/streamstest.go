// Package streamstest starts a real in-process JetStream server with every
// asset of streams/ applied, so tests run against the production
// definitions. Import it only from _test.go files.
package streamstest

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/natstest"
	"github.com/crawlmesh/crawlmesh/streams"
)

// Start runs a server, applies streams/ with o, and connects to it.
func Start(t testing.TB, o streams.Options) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	s := natstest.RunServer(t)
	nc, js := natstest.Connect(t, s)
	d, err := streams.Load()
	if err != nil {
		t.Fatalf("streams.Load: %v", err)
	}
	if err := streams.Ensure(t.Context(), js, d, o); err != nil {
		t.Fatalf("streams.Ensure: %v", err)
	}
	return nc, js
}

// Bucket opens a bucket that Start created.
func Bucket(t testing.TB, js jetstream.JetStream, name string) jetstream.KeyValue {
	t.Helper()
	kv, err := js.KeyValue(t.Context(), name)
	if err != nil {
		t.Fatalf("open bucket %s: %v", name, err)
	}
	return kv
}

// Replicas maps every asset of d to its replica count, keyed by stream
// name (KV_<bucket> for buckets, OBJ_<bucket> for Object Stores).
func Replicas(t testing.TB, js jetstream.JetStream, d streams.Definitions) map[string]int {
	t.Helper()
	out := map[string]int{}
	var names []string
	for _, c := range d.KV {
		names = append(names, "KV_"+c.Bucket)
	}
	for _, c := range d.Streams {
		names = append(names, c.Name)
	}
	for _, c := range d.ObjectStores {
		names = append(names, "OBJ_"+c.Bucket)
	}
	for _, n := range names {
		s, err := js.Stream(t.Context(), n)
		if err != nil {
			t.Fatalf("stream %s: %v", n, err)
		}
		out[n] = s.CachedInfo().Config.Replicas
	}
	return out
}
