package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/natsconn"
	"github.com/crawlmesh/crawlmesh/pkg/nodeconfig"
)

// clientFlags are the flags of every command that talks to a running mesh:
// persistent flags of the root command, so they go anywhere on the line.
type clientFlags struct {
	nats    natsconn.Config
	output  string
	timeout time.Duration
}

func (f *clientFlags) register(pf *pflag.FlagSet) {
	gfs := flag.NewFlagSet("crawlmesh", flag.ContinueOnError)
	nodeconfig.RegisterNATS(gfs, &f.nats)
	pf.AddGoFlagSet(gfs)
	pf.StringVarP(&f.output, "output", "o", "table", "output of listings: table, wide or json")
	pf.DurationVar(&f.timeout, "timeout", 5*time.Second, "how long to wait for NATS and for replies")
}

// check checks the flags once parsed and filled from the environment.
func (f *clientFlags) check() error {
	switch f.output {
	case "table", "wide", "json":
	default:
		return usagef("-o %q: want table, wide or json", f.output)
	}
	if f.timeout <= 0 {
		return usagef("--timeout %v: must be positive", f.timeout)
	}
	return nil
}

func (f *clientFlags) connect(ctx context.Context) (*nats.Conn, jetstream.JetStream, error) {
	f.nats.Name = "crawlmesh-cli"
	f.nats.InboxPrefix = mesh.InboxPrefix(mesh.RoleOperator)
	f.nats.Timeout = f.timeout
	// A command waits for JetStream as long as for any reply (--timeout),
	// not the minutes a node waits at start-up.
	dctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	return natsconn.Dial(dctx, f.nats, nil, natsconn.Hooks{})
}

// nodesKV opens bucket nodes without creating it: the CLI only reads.
func nodesKV(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, mesh.NodesBucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w (no master or worker has started on this NATS yet?)", mesh.NodesBucket, err)
	}
	return kv, nil
}

func newVersionCmd(c *cli) *cobra.Command {
	return &cobra.Command{Use: "version", Short: "print the version", Args: nArgs(0, 0, "version"),
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(c.stdout, "crawlmesh", mesh.Version)
			return nil
		}}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// completeKeys completes a command's first argument from the keys of
// bucket (spider names, crawl ids) on the mesh that the global flags, or
// their variables, point at; nothing when it cannot be read within 2 s.
func completeKeys(c *cli, f *clientFlags, bucket string) cobra.CompletionFunc {
	return completeFrom(c, f, func(ctx context.Context, g *clientFlags) ([]string, error) {
		sess, err := g.open(ctx, bucket)
		if err != nil {
			return nil, err
		}
		defer sess.Close()
		return sess.kv.Keys(ctx)
	})
}

// completeFrom completes the first argument from the names list returns.
func completeFrom(c *cli, f *clientFlags, list func(context.Context, *clientFlags) ([]string, error)) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		_ = applyEnv(cmd.Flags(), c.getenv)
		g := *f
		g.timeout = min(max(f.timeout, time.Second), 2*time.Second)
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		ctx, cancel := context.WithTimeout(ctx, g.timeout)
		defer cancel()
		names, err := list(ctx, &g)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, n := range names {
			if strings.HasPrefix(n, toComplete) {
				out = append(out, n)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
