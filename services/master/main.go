// Command master runs a crawlmesh control-plane node: it heartbeats in KV
// bucket nodes, applies the JetStream assets of streams/, watches the mesh
// and exports its view as metrics. Every flag has a CRAWLMESH_* environment
// variable (see -h).
package main

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/crawlmesh/crawlmesh/services/internal/boot"
)

func main() { boot.Main("master", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	var cfg config
	fs := cfg.flags(stderr)
	if err := boot.Parse(fs, &cfg.Node, args, getenv); err != nil {
		return err
	}
	loc, err := cfg.location()
	if err != nil {
		return err
	}
	token, err := boot.APIToken(cfg.APITokenFile, getenv)
	if err != nil {
		return err
	}
	env, err := boot.Setup(ctx, &cfg.Node, "master", stderr)
	if err != nil {
		return err
	}
	m, err := boot.NewMaster(ctx, env, &cfg.Node, cfg.OfflineRetention, loc)
	if err != nil {
		env.Drain()
		return err
	}
	env.ServeAPI(m, token)
	return env.Run(ctx, func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			lead := func() bool { l, _ := m.Leading(); return l }
			boot.KeepReplicas(ctx, env.JS, &cfg.Node, env.Log.With("node", cfg.ID), lead, replicaCheck)
		})
		err := m.Run(ctx)
		cancel()
		wg.Wait()
		return err
	})
}

// replicaCheck is how often the leader looks for new NATS servers to
// scale assets up onto.
const replicaCheck = time.Minute
