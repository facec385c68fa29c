// Command crawlmesh is the operator CLI of a crawlmesh mesh, and
// `crawlmesh up`: the whole mesh in one process on an embedded nats-server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/crawlmesh/crawlmesh/pkg/signals"
)

// cli carries what every command needs from the process.
type cli struct {
	getenv         func(string) string
	stdout, stderr io.Writer
}

type cmd struct {
	summary string
	run     func(ctx context.Context, c *cli, args []string) error
}

var commands = map[string]cmd{
	"up":       {"run the whole mesh in this process on an embedded nats-server", runUp},
	"nodes":    {"list every node: role, online, state, tasks, heartbeat age, clock skew", runNodes},
	"node":     {"send a command to a node: node pause|resume|drain|shutdown|ping NODE|all, node set-concurrency NODE|all N", runNode},
	"version":  {"print the version", runVersion},
	"spider":   {"manage spiders: spider apply -f FILE | ls | get NAME | rm NAME", runSpider},
	"crawl":    {"crawls: crawl start SPIDER [--wait] | status ID | wait ID | cancel ID | ls | logs ID [--follow]", runCrawl},
	"bench":    {"crawl a synthetic loopback site with plain colly and with the mesh, side by side", runBench},
	"doctor":   {"check and explain: NATS, JetStream, assets, masters and leader, node ids, clock skew, dead letters, paused workers", runDoctor},
	"master":   {"master step-down: the leading master hands leadership to another", runMaster},
	"throttle": {"live per-host limits, mesh-wide: throttle set HOST [--delay D] [--parallelism N] | ls | rm HOST", runThrottle},
	"results":  {"results export ID [--format jsonl|csv] [--out FILE | --to-files NAME]", runResults},
	"files":    {"shared files in the Object Store: files put LOCAL [NAME] | get NAME [--out FILE] | ls | rm NAME", runFiles},

	"demo-site":   {"serve the demo bookshop for a mesh elsewhere (docker compose); --print-spec prints its spider", runDemoSite},
	"healthcheck": {"GET a URL, exit 0 on 2xx: the healthcheck of the distroless image", runHealthcheck},
}

func main() {
	ctx, stop := signals.Context(context.Background())
	code := run(ctx, os.Args[1:], &cli{getenv: os.Getenv, stdout: os.Stdout, stderr: os.Stderr})
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, c *cli) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(c.stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	k, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(c.stderr, "crawlmesh: unknown command %q\n", args[0])
		usage(c.stderr)
		return 2
	}
	if err := k.run(ctx, c, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(c.stderr, "crawlmesh %s: %v\n", args[0], err)
			return 2
		}
		fmt.Fprintf(c.stderr, "crawlmesh %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// usageError marks a mistake in the command line (exit status 2).
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: crawlmesh COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-11s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun crawlmesh COMMAND -h for its flags. --nats defaults to $CRAWLMESH_NATS_URL or nats://127.0.0.1:4222.")
}
