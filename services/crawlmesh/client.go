package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/natsconn"
	"github.com/crawlmesh/crawlmesh/pkg/nodeconfig"
)

// clientFlags are the flags of every command that talks to a running mesh.
type clientFlags struct {
	nats    natsconn.Config
	output  string
	timeout time.Duration
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	nodeconfig.RegisterNATS(fs, &f.nats)
	fs.StringVar(&f.output, "o", "table", "output: table or json")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Second, "how long to wait for NATS and for replies")
}

// parse parses args, applies env and checks -o; it returns the positional
// args, which may come before the flags (crawl status ID -o json) or after.
func (f *clientFlags) parse(fs *flag.FlagSet, c *cli, args []string) ([]string, error) {
	var lead []string
	for len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		lead, args = append(lead, args[0]), args[1:]
	}
	rest, err := f.parseFlags(fs, c, args)
	return append(lead, rest...), err
}

func (f *clientFlags) parseFlags(fs *flag.FlagSet, c *cli, args []string) ([]string, error) {
	fs.SetOutput(c.stderr)
	if err := parseFlagsEnv(fs, c, args); err != nil {
		return nil, err
	}
	if f.output != "table" && f.output != "json" {
		return nil, usagef("-o %q: want table or json", f.output)
	}
	if f.timeout <= 0 {
		return nil, usagef("--timeout %v: must be positive", f.timeout)
	}
	return fs.Args(), nil
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

func runVersion(_ context.Context, c *cli, args []string) error {
	fmt.Fprintln(c.stdout, "crawlmesh", mesh.Version)
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parseFlagsEnv parses args into fs and fills unset flags from CRAWLMESH_*
// variables; errors are usage errors (-h is flag.ErrHelp).
func parseFlagsEnv(fs *flag.FlagSet, c *cli, args []string) error {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	if err := nodeconfig.ApplyEnv(fs, c.getenv); err != nil {
		return usageError{err}
	}
	return nil
}

// parseCommandFlags is parseFlagsEnv for commands that take no positional
// arguments.
func parseCommandFlags(fs *flag.FlagSet, c *cli, args []string) error {
	if err := parseFlagsEnv(fs, c, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}
