package streams_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/natstest"
	"github.com/crawlmesh/crawlmesh/streams"
)

// TestPartitionedOne: one partition keeps every name of the mesh as it
// was; three add TASKS_1, TASKS_2 with their consumers, STATS_1, STATS_2
// and seen_1, seen_2.
func TestPartitionedOne(t *testing.T) {
	d := streams.MustLoad()
	if got, want := d.Partitioned(1).Names(), d.Names(); !slices.Equal(got, want) {
		t.Fatalf("one partition changed the assets:\n%v\n%v", got, want)
	}
	got := d.Partitioned(3).Names()
	for _, n := range []string{"stream TASKS_1", "stream TASKS_2", "consumer TASKS_1/workers", "consumer TASKS_2/workers", "stream STATS_1", "stream STATS_2", "kv seen_1", "kv seen_2"} {
		if !slices.Contains(got, n) {
			t.Errorf("3 partitions: %s missing from %v", n, got)
		}
	}
	if len(got) != len(d.Names())+8 {
		t.Errorf("3 partitions: %d assets, want %d", len(got), len(d.Names())+8)
	}
}

// TestEnsurePartitions: the count is recorded in TASKS, grown on request,
// kept by a master that asks for none, and never lowered.
func TestEnsurePartitions(t *testing.T) {
	s := natstest.RunServer(t)
	_, js := natstest.Connect(t, s)
	d := streams.MustLoad()
	ctx := t.Context()
	ensure := func(n int) error { return streams.Ensure(ctx, js, d, streams.Options{Partitions: n}) }
	if err := ensure(0); err != nil {
		t.Fatal(err)
	}
	if n, err := streams.RecordedPartitions(ctx, js); err != nil || n != 1 {
		t.Fatalf("new mesh: %d partitions, %v; want 1", n, err)
	}
	if err := ensure(3); err != nil {
		t.Fatal(err)
	}
	if err := ensure(0); err != nil {
		t.Fatal(err)
	}
	if n, _ := streams.RecordedPartitions(ctx, js); n != 3 {
		t.Fatalf("after growing to 3 and a master asking for none: %d partitions", n)
	}
	for _, name := range []string{"TASKS_2", "STATS_2", "KV_seen_2"} {
		if _, err := js.Stream(ctx, name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := js.Consumer(ctx, mesh.TasksStreamOf(2), mesh.TasksConsumer); err != nil {
		t.Error(err)
	}
	if err := ensure(2); !errors.Is(err, streams.ErrShrink) {
		t.Errorf("shrinking to 2: %v, want ErrShrink", err)
	}
}

// TestPlaced: with tags, each partition's work queue, counter stream and
// seen bucket get the tag of their partition (wrapping around the tags);
// nothing else is placed, and without tags nothing changes.
func TestPlaced(t *testing.T) {
	d := streams.MustLoad().Partitioned(3)
	if got := d.Placed(3, nil); !slices.Equal(got.Names(), d.Names()) {
		t.Fatal("no tags changed the definitions")
	}
	p := d.Placed(3, []string{"a", "b"})
	want := map[string]string{"TASKS": "a", "STATS": "a", "TASKS_1": "b", "STATS_1": "b", "TASKS_2": "a", "STATS_2": "a"}
	for _, c := range p.Streams {
		if tag := tagsOf(c.Placement); tag != want[c.Name] {
			t.Errorf("stream %s placed on %q, want %q", c.Name, tag, want[c.Name])
		}
	}
	wantKV := map[string]string{"seen": "a", "seen_1": "b", "seen_2": "a"}
	for _, c := range p.KV {
		if tag := tagsOf(c.Placement); tag != wantKV[c.Bucket] {
			t.Errorf("bucket %s placed on %q, want %q", c.Bucket, tag, wantKV[c.Bucket])
		}
	}
	for _, c := range d.Streams {
		if c.Placement != nil {
			t.Errorf("Placed changed its receiver: stream %s placed", c.Name)
		}
	}
}

func tagsOf(p *jetstream.Placement) string {
	if p == nil {
		return ""
	}
	return strings.Join(p.Tags, ",")
}
