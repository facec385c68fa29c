package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/fetch"

	"github.com/crawlmesh/crawlmesh/pkg/nodeconfig"
	"github.com/crawlmesh/crawlmesh/services/internal/boot"
)

type config struct {
	nodeconfig.Node
	Concurrency    int
	MaxBodySize    int
	RequestTimeout time.Duration
	MaxAttempts    int
}

func (c *config) options() boot.WorkerOptions {
	return boot.WorkerOptions{Concurrency: c.Concurrency, MaxAttempts: c.MaxAttempts,
		Fetch: fetch.Config{MaxBodySize: c.MaxBodySize, RequestTimeout: c.RequestTimeout}}
}

func (c *config) flags(out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(out)
	c.Register(fs, boot.DefaultID(), "127.0.0.1:8091")
	fs.IntVar(&c.Concurrency, "concurrency", 32, "tasks in flight")
	fs.IntVar(&c.MaxBodySize, "max-body-size", 10<<20, "largest page body in bytes; larger pages are skipped")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 15*time.Second, "time limit of one HTTP request")
	fs.IntVar(&c.MaxAttempts, "max-attempts", 3, "fetch attempts before a transiently failing task goes to the dead letters")
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
	if c.MaxBodySize < 1024 {
		return fmt.Errorf("--max-body-size %d: must be at least 1024", c.MaxBodySize)
	}
	if c.RequestTimeout <= 0 {
		return fmt.Errorf("--request-timeout %v: must be positive", c.RequestTimeout)
	}
	if c.MaxAttempts < 1 {
		return fmt.Errorf("--max-attempts %d: must be at least 1", c.MaxAttempts)
	}
	return nil
}
