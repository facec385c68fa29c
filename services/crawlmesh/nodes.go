package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/crawlmesh/crawlmesh/pkg/clusterview"
	"github.com/crawlmesh/crawlmesh/pkg/kvscan"
	"github.com/crawlmesh/crawlmesh/pkg/master"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// nodesOutput is the JSON of `crawlmesh nodes -o json`.
type nodesOutput struct {
	// Source is the master whose view this is, or "kv" when no master
	// answered and the live keys were read directly (no offline nodes then).
	Source string             `json:"source"`
	Nodes  []clusterview.Node `json:"nodes"`
}

func newNodesCmd(c *cli, f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "nodes",
		Short: "list every node: role, online, state, tasks, heartbeat age, clock skew",
		Args:  nArgs(0, 0, "nodes"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			nc, js, err := f.connect(ctx)
			if err != nil {
				return err
			}
			defer nc.Close()
			out, err := fetchNodes(ctx, nc, js, f.timeout)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return writeJSON(c.stdout, out)
			}
			printNodes(c.stdout, out, f.output == "wide")
			return nil
		},
	}
}

// fetchNodes asks a master for its view and falls back to reading the
// bucket when none answers.
func fetchNodes(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, timeout time.Duration) (nodesOutput, error) {
	rctx, cancel := context.WithTimeout(ctx, min(timeout, 2*time.Second))
	defer cancel()
	m, err := nc.RequestWithContext(rctx, mesh.ViewSubject, nil)
	if err == nil {
		var v master.ViewReply
		if err := json.Unmarshal(m.Data, &v); err != nil {
			return nodesOutput{}, fmt.Errorf("master sent an unreadable view: %w", err)
		}
		if v.Ready {
			return nodesOutput{Source: v.Master, Nodes: v.Nodes}, nil
		}
	} else if !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, context.DeadlineExceeded) {
		return nodesOutput{}, fmt.Errorf("ask masters for the view: %w", err)
	}
	kctx, kcancel := context.WithTimeout(ctx, timeout)
	defer kcancel()
	kv, err := nodesKV(kctx, js)
	if err != nil {
		return nodesOutput{}, err
	}
	nodes, err := readNodes(kctx, kv)
	return nodesOutput{Source: "kv", Nodes: nodes}, err
}

// readNodes reads the live heartbeat keys. Age here is this machine's clock
// minus the server's timestamp, so it includes this machine's own skew.
func readNodes(ctx context.Context, kv jetstream.KeyValue) ([]clusterview.Node, error) {
	es, err := kvscan.Entries(ctx, kv, mesh.NodesBucket)
	if err != nil {
		return nil, err
	}
	var out []clusterview.Node
	for _, e := range es {
		// The master's view skips what it cannot read; so does this.
		hb, err := mesh.DecodeHeartbeat(e.Value())
		if err != nil {
			continue
		}
		out = append(out, clusterview.Node{ID: e.Key(), Role: hb.Role, Online: true, Leader: hb.Leader,
			State: hb.State, ActiveTasks: hb.ActiveTasks, Capacity: hb.Capacity,
			AgeSeconds:  time.Since(e.Created()).Seconds(),
			SkewSeconds: hb.UpdateTS.Sub(e.Created()).Seconds(), Revision: e.Revision(), Heartbeat: hb})
	}
	return out, nil
}

// printNodes prints the nodes as a table; wide adds the heartbeat's
// revision in bucket nodes and the node's effective config version (the
// revision of bucket config it applied; "!" marks values it could not
// apply, which doctor and config get --node list).
func printNodes(w io.Writer, out nodesOutput, wide bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "ID\tROLE\tONLINE\tLEADER\tSTATE\tACTIVE\tCAPACITY\tAGE\tSKEW\tVERSION\tHOST"
	if wide {
		head += "\tREVISION\tCONFIG"
	}
	fmt.Fprintln(tw, head)
	for _, n := range out.Nodes {
		online, leader, state, active := "yes", "", n.State, strconv.Itoa(n.ActiveTasks)
		if !n.Online {
			// Its last heartbeat's task count is not what it runs now.
			online, state, active = "no", "offline", "-"
		}
		if n.Leader && n.Online {
			leader = fmt.Sprintf("* term %d", n.Heartbeat.Term)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%.1fs\t%+.2fs\t%s\t%s", n.ID, n.Role, online, leader, state,
			active, n.Capacity, n.AgeSeconds, n.SkewSeconds, n.Heartbeat.Version, n.Heartbeat.Hostname)
		if wide {
			cfg := "-"
			if c := n.Heartbeat.Config; c != nil && n.Online {
				cfg = fmt.Sprintf("rev %d", c.Rev)
				if len(c.Errors) > 0 {
					cfg += fmt.Sprintf(" (%d not applied!)", len(c.Errors))
				}
			}
			fmt.Fprintf(tw, "\t%d\t%s", n.Revision, cfg)
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
	printAgents(w, out.Nodes)
	if out.Source == "kv" {
		fmt.Fprintln(w, "(no master answered: live heartbeat keys only)")
	}
}

// printAgents lists the worker processes of each host agent, under the
// nodes table (the workers are rows of the table too).
func printAgents(w io.Writer, nodes []clusterview.Node) {
	var tw *tabwriter.Writer
	for _, n := range nodes {
		if n.Role != mesh.RoleAgent || !n.Online {
			continue
		}
		if tw == nil {
			fmt.Fprintln(w)
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "AGENT\tCHILD\tPID\tSTATE\tRESTARTS\tLAST EXIT\tHTTP")
		}
		if len(n.Heartbeat.Children) == 0 {
			fmt.Fprintf(tw, "%s\t(no workers)\t\t\t\t\t\n", n.ID)
		}
		for _, ch := range n.Heartbeat.Children {
			pid := "-"
			if ch.PID > 0 {
				pid = fmt.Sprint(ch.PID)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", n.ID, ch.ID, pid, ch.State, ch.Restarts, ch.LastExit, ch.HTTP)
		}
	}
	if tw != nil {
		_ = tw.Flush()
	}
}
