package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/nodeconfig"
	"github.com/crawlmesh/crawlmesh/services/internal/boot"
)

type config struct {
	nodeconfig.Node
	OfflineRetention time.Duration
	ScheduleTZ       string
	APITokenFile     string
}

// location is the time zone schedules are evaluated in.
func (c *config) location() (*time.Location, error) {
	loc, err := time.LoadLocation(c.ScheduleTZ)
	if err != nil {
		return nil, fmt.Errorf("--schedule-tz %q: %v (use an IANA name such as Europe/Paris, or UTC)", c.ScheduleTZ, err)
	}
	return loc, nil
}

func (c *config) flags(out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("master", flag.ContinueOnError)
	fs.SetOutput(out)
	c.Register(fs, boot.DefaultID()+"-master", "127.0.0.1:8090")
	c.RegisterTTL(fs)
	fs.Lookup("http").Usage = "listen address for the web console (/), the HTTP API (/api/v1/), /metrics and /healthz"
	fs.DurationVar(&c.TaskAckWait, "task-ack-wait", 0, "how long a task may run without a sign of life before it is redelivered (0: streams/ file, 30s)")
	fs.DurationVar(&c.Lease, "lease", 0, "leader lease: the election bucket's TTL (0: streams/ file, 3s; use 15s on a 3-node NATS cluster)")
	fs.IntVar(&c.Partitions, "partitions", 0, "partitions of the frontier (TASKS) and seen-set (seen), each its own stream that JetStream places: 0 keeps the mesh's count (1 for a new mesh); a higher count adds partitions, used by crawls started afterwards (deploy/OPERATIONS.md)")
	fs.StringVar(&c.PartitionTags, "partition-tags", "", "NATS server tags, comma-separated: partition p's streams and bucket are placed on servers tagged with the (p mod count)-th (server_tags in their config); empty: JetStream places them (deploy/OPERATIONS.md)")
	fs.IntVar(&c.Replicas, "replicas", 0, "replicas of every stream and bucket: 0 chooses 3 on a cluster of 3 or more JetStream servers (scaling existing assets up), else 1")
	fs.IntVar(&c.Priority, "priority", 0, "0-100: on a leader vacancy, higher priority masters win")
	fs.StringVar(&c.ScheduleTZ, "schedule-tz", "UTC", "time zone of spiders' cron schedules")
	fs.DurationVar(&c.OfflineRetention, "offline-retention", 10*time.Minute, "how long offline nodes stay listed (online 0) in the view and metrics")
	fs.StringVar(&c.APITokenFile, "api-token-file", "", "file holding the bearer token that state-changing HTTP API requests must carry (or env "+boot.APITokenEnv+"); none: the API is read-only")
	fs.Usage = func() {
		fmt.Fprintln(out, "usage: master [flags]\n\nA crawlmesh control-plane node. Each flag can also be set with CRAWLMESH_<FLAG> (CRAWLMESH_NATS_URL for --nats).")
		fs.PrintDefaults()
	}
	return fs
}
