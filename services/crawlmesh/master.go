package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/crawlmesh/crawlmesh/pkg/command"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

func runMaster(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 || args[0] != "step-down" {
		return usagef("want: master step-down")
	}
	var f clientFlags
	fs := flag.NewFlagSet("master step-down", flag.ContinueOnError)
	f.register(fs)
	pos, err := f.parse(fs, c, args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	nc, js, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	view, err := fetchNodes(ctx, nc, js, f.timeout)
	if err != nil {
		return err
	}
	for _, n := range view.Nodes {
		if n.Role == mesh.RoleMaster && n.Online && n.Leader {
			cctx, cancel := context.WithTimeout(ctx, f.timeout)
			defer cancel()
			if _, err := command.Send(cctx, nc, n.ID, mesh.Command{Name: mesh.CmdStepDown}); err != nil {
				return err
			}
			fmt.Fprintf(c.stderr, "master %s (term %d) stepped down; another master takes over within the lease\n", n.ID, n.Heartbeat.Term)
			return nil
		}
	}
	return fmt.Errorf("no master leads now (crawlmesh nodes shows the masters)")
}
