package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/crawlmesh/crawlmesh/pkg/nodeconfig"
	"github.com/crawlmesh/crawlmesh/services/internal/boot"
)

type config struct {
	nodeconfig.Node
	Concurrency int
}

func (c *config) flags(out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(out)
	c.Register(fs, boot.DefaultID(), "127.0.0.1:8091")
	fs.IntVar(&c.Concurrency, "concurrency", 32, "tasks in flight")
	fs.Usage = func() {
		fmt.Fprintln(out, "usage: worker [flags]\n\nA crawlmesh crawler node. Each flag can also be set with CRAWLMESH_<FLAG> (CRAWLMESH_NATS_URL for --nats).")
		fs.PrintDefaults()
	}
	return fs
}

func (c *config) validate() error {
	if c.Concurrency < 1 {
		return fmt.Errorf("--concurrency %d: must be at least 1", c.Concurrency)
	}
	return nil
}
