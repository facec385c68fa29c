package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/crawlmesh/crawlmesh/pkg/clusterconfig"
	"github.com/crawlmesh/crawlmesh/pkg/command"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// nodeCommands are node's subcommands (parsed by hand, see below).
var nodeCommands = []string{mesh.CmdPause, mesh.CmdResume, mesh.CmdDrain, mesh.CmdShutdown, mesh.CmdPing, mesh.CmdSetConcurrency, mesh.CmdScale}

func newNodeCmd(c *cli, f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:       "node pause|resume|drain|shutdown|ping NODE|all, node set-concurrency NODE|all N, node scale AGENT N",
		Short:     "send a command to a node: node pause|resume|drain|shutdown|ping NODE|all, node set-concurrency NODE|all N, node scale AGENT N",
		ValidArgs: nodeCommands,
		// An N such as -1 must stay a value, refused for its range, not
		// read as an unknown flag: flags are parsed by hand, as config set
		// does (parseAroundValue).
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			pos, err := parseAroundValue(cmd, args, c.getenv)
			if err != nil || pos == nil {
				return err
			}
			if err := f.check(); err != nil {
				return err
			}
			if len(pos) < 2 || len(pos) > 3 {
				return usagef("want: node pause|resume|drain|shutdown|ping NODE|all, node set-concurrency NODE|all N, or node scale AGENT N (got %d argument(s))", len(pos))
			}
			return runNode(cmd.Context(), c, f, pos)
		},
	}
}

func runNode(ctx context.Context, c *cli, f *clientFlags, pos []string) error {
	cm := mesh.Command{Name: pos[0]}
	if !slices.Contains(nodeCommands, cm.Name) {
		return usageError{didYouMean(fmt.Errorf("unknown command %q", cm.Name), cm.Name, nodeCommands, "node ")}
	}
	target := pos[1]
	switch {
	case cm.Name == mesh.CmdSetConcurrency && len(pos) == 3:
		n, err := strconv.Atoi(pos[2])
		if err != nil {
			return usagef("set-concurrency %q: want a whole number", pos[2])
		}
		cm.N = n
	case cm.Name == mesh.CmdSetConcurrency:
		return usagef("want: node set-concurrency NODE|all N")
	case cm.Name == mesh.CmdScale && len(pos) == 3:
		// node scale AGENT N: a host agent runs N workers.
		if target == "all" {
			return usagef("node scale takes one agent's id, not all")
		}
		n, err := strconv.Atoi(pos[2])
		if err != nil {
			return usagef("scale %q: want a whole number of workers", pos[2])
		}
		cm.N = n
	case cm.Name == mesh.CmdScale:
		return usagef("want: node scale AGENT N")
	case len(pos) != 2:
		return usagef("unexpected argument %q", pos[2])
	}
	if err := cm.Validate(); err != nil {
		return usageError{err}
	}
	if cm.Name == mesh.CmdSetConcurrency {
		if _, err := clusterconfig.Validate(clusterconfig.Concurrency, strconv.Itoa(cm.N)); err != nil {
			return usageError{err}
		}
	}
	if target != "all" {
		if err := mesh.ValidateNodeID(target); err != nil {
			return usageError{err}
		}
	}
	nc, js, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	cctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	if target == "all" {
		// Who is online decides how long to wait (until each answered)
		// and who is reported for not answering.
		kv, err := nodesKV(cctx, js)
		if err != nil {
			return err
		}
		online, err := command.Online(cctx, kv)
		if err != nil {
			return fmt.Errorf("%s all not sent: %w", cm, err)
		}
		replies, err := command.BroadcastTo(cctx, nc, cm, online)
		if err != nil {
			return err
		}
		// The broadcast may have taken cctx's whole time (a node that
		// does not answer), so storing gets a time of its own.
		sctx, scancel := context.WithTimeout(ctx, f.timeout)
		defer scancel()
		if err := storeNodeConfig(sctx, js, cm, true, replies); err != nil {
			return err
		}
		if err := printReplies(c, f.output, replies, cm); err != nil {
			return err
		}
		return broadcastFailures(cm, replies, len(online), f.timeout)
	}
	r, err := command.Send(cctx, nc, target, cm)
	if errors.Is(err, command.ErrNoNode) {
		// Say whether the node exists at all, which is what the user asks.
		if kv, kerr := nodesKV(ctx, js); kerr == nil {
			if _, gerr := kv.Get(ctx, target); errors.Is(gerr, jetstream.ErrKeyNotFound) {
				return fmt.Errorf("unknown node %q: it has no heartbeat in bucket %s (crawlmesh nodes lists the live ones)", target, mesh.NodesBucket)
			}
		}
	}
	if err != nil {
		return err
	}
	if err := storeNodeConfig(cctx, js, cm, false, []mesh.Reply{r}); err != nil {
		return err
	}
	return printReplies(c, f.output, []mesh.Reply{r}, cm)
}

// storeNodeConfig stores what pause, resume and set-concurrency changed,
// for the nodes that obeyed or, sent to all, for every worker
// (clusterconfig.StoreCommand), so a restart keeps it.
func storeNodeConfig(ctx context.Context, js jetstream.JetStream, cm mesh.Command, all bool, rs []mesh.Reply) error {
	if !clusterconfig.Persists(cm) {
		return nil
	}
	kv, err := js.KeyValue(ctx, mesh.ConfigBucket)
	if err != nil {
		return fmt.Errorf("open bucket %s (the command was obeyed, but a restart would forget it): %w", mesh.ConfigBucket, err)
	}
	return clusterconfig.StoreCommand(ctx, kv, cm, all, rs)
}
func printReplies(c *cli, output string, rs []mesh.Reply, cm mesh.Command) error {
	if output == "json" {
		return writeJSON(c.stdout, rs)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	if cm.Name == mesh.CmdScale {
		fmt.Fprintln(tw, "NODE\tROLE\tRESULT\tSTATE\tWORKERS")
	} else {
		fmt.Fprintln(tw, "NODE\tROLE\tRESULT\tSTATE\tCONCURRENCY")
	}
	for _, r := range rs {
		res, state, n := "ok", r.State, strconv.Itoa(r.Concurrency)
		if cm.Name == mesh.CmdScale {
			n = strconv.Itoa(r.Workers)
		}
		switch {
		case r.Timeout:
			res, state, n = "no answer: "+r.Error, "?", "?"
		case !r.OK && r.NA:
			res = "n/a: " + r.Error
		case !r.OK:
			res = "refused: " + r.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Node, r.Role, res, state, n)
	}
	_ = tw.Flush()
	if len(rs) == 0 {
		return fmt.Errorf("no node answered %s", cm)
	}
	return nil
}

// broadcastFailures is the error of a command sent to all when an online
// node did not answer or a node refused (a refusal by a node the command
// does not apply to, a master asked to pause, is none); online is how
// many nodes were expected, within timeout.
func broadcastFailures(cm mesh.Command, rs []mesh.Reply, online int, timeout time.Duration) error {
	noAnswer, refused := command.Failures(rs)
	var msgs []string
	if len(noAnswer) > 0 {
		msgs = append(msgs, fmt.Sprintf("%d of %d online node(s) did not answer %s within --timeout %v: %s",
			len(noAnswer), online, cm, timeout, strings.Join(noAnswer, ", ")))
	}
	if len(refused) > 0 {
		msgs = append(msgs, fmt.Sprintf("%d node(s) refused %s: %s", len(refused), cm, strings.Join(refused, ", ")))
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}
