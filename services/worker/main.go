// Command worker runs a crawlmesh crawler node: it heartbeats in KV bucket
// nodes, obeys commands and runs crawl tasks. Every flag has a CRAWLMESH_*
// environment variable (see -h).
package main

import (
	"context"
	"io"

	"github.com/crawlmesh/crawlmesh/services/internal/boot"
)

func main() { boot.Main("worker", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	var cfg config
	fs := cfg.flags(stderr)
	if err := boot.Parse(fs, &cfg.Node, args, getenv); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	env, err := boot.Setup(ctx, &cfg.Node, "worker", stderr)
	if err != nil {
		return err
	}
	runWorker, err := boot.NewWorker(ctx, env, &cfg.Node, cfg.options())
	if err != nil {
		env.Drain()
		return err
	}
	return env.Run(ctx, runWorker)
}
