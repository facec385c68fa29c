package streams

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// Partitioned returns d with the frontier and seen-set split into n
// partitions (see mesh.PartitionsMeta): TASKS records n in its metadata,
// and partitions 1..n-1 get stream TASKS_<p> (subjects
// crawlmesh.task_<p>.>) with a copy of TASKS's consumers, stream STATS_<p>
// (crawlmesh.stat_<p>.>, the counters of that partition's tasks) and
// bucket seen_<p>, each defined as its partition-0 original. With n = 1 only the
// record is added: the names and settings of one partition are as ever.
func (d Definitions) Partitioned(n int) Definitions {
	n = max(n, 1)
	out := Definitions{KV: append([]jetstream.KeyValueConfig(nil), d.KV...), ObjectStores: d.ObjectStores,
		Consumers: append([]ConsumerDef(nil), d.Consumers...)}
	for _, c := range d.Streams {
		if c.Name == mesh.TasksStream {
			md := map[string]string{}
			for k, v := range c.Metadata {
				md[k] = v
			}
			md[mesh.PartitionsMeta] = strconv.Itoa(n)
			c.Metadata = md
		}
		out.Streams = append(out.Streams, c)
	}
	for p := 1; p < n; p++ {
		for _, c := range d.Streams {
			switch c.Name {
			case mesh.TasksStream:
				c.Name = mesh.TasksStreamOf(p)
				c.Subjects = []string{mesh.TaskSubjectsOf(p)}
			case mesh.StatsStream:
				c.Name = mesh.StatsStreamOf(p)
				c.Subjects = []string{mesh.StatSubjectsOf(p)}
			default:
				continue
			}
			c.Description = fmt.Sprintf("%s (partition %d)", c.Description, p)
			c.Metadata = nil
			out.Streams = append(out.Streams, c)
		}
		for _, cd := range d.Consumers {
			if cd.Stream == mesh.TasksStream {
				cd.Stream = mesh.TasksStreamOf(p)
				out.Consumers = append(out.Consumers, cd)
			}
		}
		for _, c := range d.KV {
			if c.Bucket == mesh.SeenBucket {
				c.Bucket = mesh.SeenBucketOf(p)
				c.Description = fmt.Sprintf("%s (partition %d)", c.Description, p)
				out.KV = append(out.KV, c)
			}
		}
	}
	return out
}

// Placed returns d with partition p's work queue, counter stream and
// seen bucket placed on servers tagged tags[p mod len(tags)] (JetStream
// placement tags, a server's server_tags). JetStream alone places a new
// R1 stream on the server with the most free storage, and that is any
// server whose store holds a few bytes less: on a 3-server cluster one
// server got two partitions' seen buckets and the items, another almost
// nothing (deploy/OPERATIONS.md, "Placement"). With no tags d is returned
// as it is. A changed tag on an existing partition is a JetStream stream
// move.
func (d Definitions) Placed(parts int, tags []string) Definitions {
	if len(tags) == 0 {
		return d
	}
	tagOf := map[string]string{}
	for p := range max(parts, 1) {
		t := tags[p%len(tags)]
		tagOf[mesh.TasksStreamOf(p)], tagOf[mesh.StatsStreamOf(p)], tagOf["kv "+mesh.SeenBucketOf(p)] = t, t, t
	}
	out := d
	out.Streams = append([]jetstream.StreamConfig(nil), d.Streams...)
	for i, c := range out.Streams {
		if t, ok := tagOf[c.Name]; ok {
			out.Streams[i].Placement = &jetstream.Placement{Tags: []string{t}}
		}
	}
	out.KV = append([]jetstream.KeyValueConfig(nil), d.KV...)
	for i, c := range out.KV {
		if t, ok := tagOf["kv "+c.Bucket]; ok {
			out.KV[i].Placement = &jetstream.Placement{Tags: []string{t}}
		}
	}
	return out
}

// RecordedPartitions is the partition count recorded in stream TASKS, 0
// when TASKS does not exist yet, 1 when it records none (a mesh created
// before partitions existed).
func RecordedPartitions(ctx context.Context, js jetstream.JetStream) (int, error) {
	rctx, cancel := request(ctx)
	defer cancel()
	s, err := js.Stream(rctx, mesh.TasksStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("stream %s info: %w", mesh.TasksStream, err)
	}
	v, ok := s.CachedInfo().Config.Metadata[mesh.PartitionsMeta]
	if !ok {
		return 1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > mesh.MaxPartitions {
		return 0, fmt.Errorf("stream %s: metadata %s=%q is not a partition count 1-%d", mesh.TasksStream, mesh.PartitionsMeta, v, mesh.MaxPartitions)
	}
	return n, nil
}

// ErrShrink is returned when --partitions asks for fewer partitions than
// the mesh has: a running crawl's URLs hash over the partitions it
// started with, so partitions are never removed.
var ErrShrink = errors.New("partitions cannot be reduced")

// partitionsFor decides the partition count Ensure applies: the requested
// count (growing the recorded one), or with 0 the recorded one (1 for a
// new mesh).
func partitionsFor(ctx context.Context, js jetstream.JetStream, want int) (int, error) {
	have, err := RecordedPartitions(ctx, js)
	if err != nil {
		return 0, err
	}
	switch {
	case want == 0:
		return max(have, 1), nil
	case want < have:
		return 0, fmt.Errorf("--partitions %d: the mesh has %d (recorded in stream %s): %w; start the master with --partitions %d or more",
			want, have, mesh.TasksStream, ErrShrink, have)
	}
	return want, nil
}
