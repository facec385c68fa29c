package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/crawlmesh/crawlmesh/pkg/agent"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/metrics"
	"github.com/crawlmesh/crawlmesh/pkg/nodeconfig"
	"github.com/crawlmesh/crawlmesh/services/internal/boot"
)

type agentConfig struct {
	workers      int
	workerBin    string
	drainTimeout time.Duration
	node         nodeconfig.Node // id, heartbeat interval, logging
	// given are the flags the operator gave the agent: only those reach
	// the workers' command lines, so a worker's config get says "flag"
	// only for a flag someone gave (found by review: the agent's defaults
	// read as flags and hid the cluster-wide defaults).
	given map[string]bool
}

// newAgentCmd is `crawlmesh agent`: a host agent supervising N workers.
func newAgentCmd(c *cli, f *clientFlags) *cobra.Command {
	var a agentConfig
	cmd := &cobra.Command{
		Use:   "agent [--workers N] [--id ID] [--worker-bin PATH] [-- WORKER FLAGS]",
		Short: "a host agent: run N worker processes on this host, restart any that dies, node scale changes N",
		Long: "agent runs --workers worker processes with ids ID-1..ID-N (this binary's worker mode, or --worker-bin),\n" +
			"each on a free loopback port for /metrics and /healthz, and restarts one that exits, with exponential back-off.\n" +
			"It heartbeats in bucket nodes with role agent and its children listed (crawlmesh nodes), and crawls nothing itself.\n" +
			"`crawlmesh node scale ID N` changes N live; the workers it stops are drained first. SIGTERM drains every\n" +
			"worker, then stops it, and exits 0; a second signal exits at once (the workers then stop by themselves).\n" +
			"The NATS flags (--nats, credentials) reach the workers through their CRAWLMESH_* variables, never their\n" +
			"command line; flags after -- are given to every worker (crawlmesh agent --workers 4 -- --concurrency 16).",
		Args: func(cmd *cobra.Command, args []string) error {
			if d := cmd.ArgsLenAtDash(); (d < 0 && len(args) > 0) || d > 0 {
				return usagef("unexpected argument %q: worker flags go after --", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			a.given = map[string]bool{}
			cmd.Flags().Visit(func(fl *pflag.Flag) { a.given[fl.Name] = true })
			return runAgent(cmd.Context(), c, f, a, args)
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&a.workers, "workers", 1, "worker processes to run")
	fs.StringVar(&a.node.ID, "id", boot.DefaultID(), "the agent's node id; its workers are ID-1..ID-N")
	fs.StringVar(&a.workerBin, "worker-bin", "", "the worker binary to run (default: this binary's worker mode)")
	fs.DurationVar(&a.drainTimeout, "drain-timeout", time.Minute, "how long a stopping worker may take to finish its tasks before SIGTERM")
	fs.DurationVar(&a.node.HeartbeatInterval, "heartbeat-interval", time.Second, "time between heartbeats (the agent's and its workers')")
	fs.Var(nodeconfig.LevelVar(&a.node.LogLevel, "info"), "log-level", "debug, info, warn or error (the agent's and its workers')")
	fs.StringVar(&a.node.LogFormat, "log-format", "text", "text or json (the agent's and its workers')")
	return cmd
}

func runAgent(ctx context.Context, c *cli, f *clientFlags, a agentConfig, workerArgs []string) error {
	if a.workers < 0 || a.workers > mesh.MaxAgentWorkers {
		return usagef("--workers %d: want 0-%d", a.workers, mesh.MaxAgentWorkers)
	}
	if a.drainTimeout <= 0 {
		return usagef("--drain-timeout %v: must be positive", a.drainTimeout)
	}
	a.node.HeartbeatTTL = 3 * time.Second // replaced by the bucket's own TTL on joining
	if err := a.node.Validate(); err != nil {
		return usageError{err}
	}
	if err := mesh.ValidateNodeID(a.node.ID + "-" + "256"); err != nil {
		return usagef("--id %q: too long for its workers' ids (%s-N)", a.node.ID, a.node.ID)
	}
	bin, prefix := a.workerBin, []string{}
	if bin == "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		bin, prefix = self, []string{"worker"}
	} else if _, err := exec.LookPath(bin); err != nil {
		return usagef("--worker-bin %q: %v", bin, err)
	}
	a.node.NATS = f.nats
	a.node.NATS.Timeout = f.timeout
	log := a.node.Logger(c.stderr).With("role", mesh.RoleAgent)
	env, err := boot.Join(ctx, &a.node, mesh.RoleAgent, log, metrics.NewRegistry())
	if err != nil {
		return err
	}
	defer env.Drain()
	childEnv := workerEnv(os.Environ(), f)
	ag, err := agent.New(env.NC, env.Nodes, agent.Config{
		ID: a.node.ID, Workers: a.workers, Output: c.stderr, JSON: a.node.LogFormat == "json",
		HeartbeatInterval: a.node.HeartbeatInterval, HeartbeatTTL: a.node.HeartbeatTTL, Log: log,
		DrainTimeout: a.drainTimeout,
		Command: func(id, httpAddr string) *exec.Cmd {
			args := append(append([]string{}, prefix...), "--id", id, "--agent", a.node.ID, "--http", httpAddr,
				"--log-format", a.node.LogFormat)
			if a.given["heartbeat-interval"] {
				args = append(args, "--heartbeat-interval", a.node.HeartbeatInterval.String())
			}
			if a.given["log-level"] {
				args = append(args, "--log-level", a.node.LogLevel)
			}
			cmd := exec.Command(bin, append(args, workerArgs...)...)
			cmd.Env = childEnv
			return cmd
		},
	})
	if err != nil {
		return err
	}
	return ag.Run(ctx)
}

// workerEnv is the workers' environment: the agent's own, with the NATS
// settings it resolved from flags and variables (a flag given to the agent
// wins, as it did for the agent), so secrets never show in a command line.
func workerEnv(environ []string, f *clientFlags) []string {
	set := map[string]string{
		"nats": f.nats.URL, "creds": f.nats.Creds, "nkey": f.nats.NKey, "user": f.nats.User, "password": f.nats.Password,
		"tls-ca": f.nats.TLSCA, "tls-cert": f.nats.TLSCert, "tls-key": f.nats.TLSKey,
	}
	drop := map[string]bool{}
	var out []string
	for flagName, v := range set {
		name := nodeconfig.EnvName(flagName)
		drop[name] = true
		if v != "" {
			out = append(out, name+"="+v)
		}
	}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !drop[name] {
			out = append(out, kv)
		}
	}
	return out
}

// newWorkerCmd is the hidden `crawlmesh worker`: the worker binary's node,
// which a host agent runs from this same binary. Its flags are the worker
// binary's (see crawlmesh worker -h).
func newWorkerCmd(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:                "worker [worker flags]",
		Short:              "run a worker node (what crawlmesh agent starts; the same as the worker binary)",
		Hidden:             true,
		DisableFlagParsing: true,
		Annotations:        map[string]string{noEnv: "yes"},
		RunE: func(cmd *cobra.Command, args []string) error {
			err := boot.RunWorker(cmd.Context(), args, c.getenv, c.stderr)
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		},
	}
}
