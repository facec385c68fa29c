package kvscan_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/crawlmesh/crawlmesh/pkg/kvscan"
	"github.com/crawlmesh/crawlmesh/pkg/natstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Entries returns the live keys with their latest values, an empty bucket
// as none, and a context's end as an error naming the bucket.
func TestEntries(t *testing.T) {
	_, js := natstest.Connect(t, natstest.RunServer(t))
	ctx := t.Context()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if es, err := kvscan.Entries(ctx, kv, "b"); err != nil || len(es) != 0 {
		t.Fatalf("empty bucket: %d entries, %v", len(es), err)
	}
	for _, kvp := range [][2]string{{"a", "1"}, {"b", "1"}, {"a", "2"}, {"c", "1"}} {
		if _, err := kv.PutString(ctx, kvp[0], kvp[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := kv.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	es, err := kvscan.Entries(ctx, kv, "b")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Key()+"="+string(e.Value()))
	}
	slices.Sort(got)
	if want := []string{"a=2", "c=1"}; !slices.Equal(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}
	done, cancel := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel()
	<-done.Done()
	if _, err := kvscan.Entries(done, kv, "b"); err == nil || !strings.Contains(err.Error(), "read bucket b") {
		t.Errorf("ended context: %v, want an error naming the bucket", err)
	}
}
