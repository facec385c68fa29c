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
}

func (c *config) flags(out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("master", flag.ContinueOnError)
	fs.SetOutput(out)
	c.Register(fs, boot.DefaultID()+"-master", "127.0.0.1:8090")
	fs.DurationVar(&c.OfflineRetention, "offline-retention", 10*time.Minute, "how long offline nodes stay listed (online 0) in the view and metrics")
	fs.Usage = func() {
		fmt.Fprintln(out, "usage: master [flags]\n\nA crawlmesh control-plane node. Each flag can also be set with CRAWLMESH_<FLAG> (CRAWLMESH_NATS_URL for --nats).")
		fs.PrintDefaults()
	}
	return fs
}
