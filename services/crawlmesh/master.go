package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/crawlmesh/crawlmesh/pkg/command"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

func newMasterCmd(c *cli, f *clientFlags) *cobra.Command {
	stepDown := &cobra.Command{
		Use: "step-down", Short: "the leading master hands leadership to another", Args: nArgs(0, 0, "master step-down"),
		RunE: func(cmd *cobra.Command, _ []string) error { return masterStepDown(cmd.Context(), c, f) },
	}
	return group("master", "master step-down: the leading master hands leadership to another", stepDown)
}

func masterStepDown(ctx context.Context, c *cli, f *clientFlags) error {
	nc, js, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	view, err := fetchNodes(ctx, nc, js, f.timeout)
	if err != nil {
		return err
	}
	masters := 0
	for _, n := range view.Nodes {
		if n.Role == mesh.RoleMaster && n.Online {
			masters++
		}
	}
	for _, n := range view.Nodes {
		if n.Role == mesh.RoleMaster && n.Online && n.Leader {
			cctx, cancel := context.WithTimeout(ctx, f.timeout)
			defer cancel()
			if _, err := command.Send(cctx, nc, n.ID, mesh.Command{Name: mesh.CmdStepDown}); err != nil {
				return err
			}
			if masters < 2 {
				fmt.Fprintf(c.stderr, "master %s (term %d) stepped down, but no other master is online: it leads again after the lease, with a new term\n", n.ID, n.Heartbeat.Term)
				return nil
			}
			fmt.Fprintf(c.stderr, "master %s (term %d) stepped down; another master takes over within the lease\n", n.ID, n.Heartbeat.Term)
			return nil
		}
	}
	return fmt.Errorf("no master leads now (crawlmesh nodes shows the masters)")
}
