// Command crawlmesh is the operator CLI of a crawlmesh mesh, and
// `crawlmesh up`: the whole mesh in one process on an embedded nats-server.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/crawlmesh/crawlmesh/pkg/nodeconfig"
	"github.com/crawlmesh/crawlmesh/pkg/signals"
	"github.com/crawlmesh/crawlmesh/services/internal/boot"
)

// cli carries what every command needs from the process.
type cli struct {
	getenv         func(string) string
	stdout, stderr io.Writer
}

func main() {
	boot.ProtectEnv("crawlmesh")
	ctx, stop := signals.Context(context.Background())
	code := run(ctx, os.Args[1:], &cli{getenv: os.Getenv, stdout: os.Stdout, stderr: os.Stderr})
	stop()
	os.Exit(code)
}

// run runs the command line args and returns the exit status: 0, 1 for a
// runtime error, 2 for a usage error (unknown command or flag, wrong
// number of arguments, a bad flag value).
func run(ctx context.Context, args []string, c *cli) int {
	root := newRoot(c)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	name := "crawlmesh"
	if cmd != nil {
		name = cmd.CommandPath()
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		// Ctrl-C or SIGTERM: what was cut short is not an error to explain
		// ("read counter admitted of ...: context canceled").
		fmt.Fprintf(c.stderr, "%s: interrupted\n", name)
		return 130
	}
	fmt.Fprintf(c.stderr, "%s: %v\n", name, err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(c.stderr, "Run '%s --help' for usage.\n", name)
		return 2
	}
	return 1
}

// annotation keys of commands.
const (
	// noEnv: the command's flags take no CRAWLMESH_* variables (the
	// healthcheck of the image, the benchmark).
	noEnv = "crawlmesh/no-env"
)

// newRoot builds the command tree. The client flags (--nats, the
// credentials options, --timeout, -o) are persistent flags of the root, so
// they go anywhere on the line: before, between or after the command words.
func newRoot(c *cli) *cobra.Command {
	f := &clientFlags{}
	root := &cobra.Command{
		Use:   "crawlmesh",
		Short: "operate a crawlmesh mesh, or run one in this process (crawlmesh up)",
		Long: "crawlmesh operates a crawlmesh mesh over NATS, and `crawlmesh up` runs a whole mesh in this process.\n\n" +
			"Global flags (--nats, --creds, --user, --password, --tls-*, --timeout, -o) go anywhere on the line;\n" +
			"each falls back to its CRAWLMESH_* variable (--nats: CRAWLMESH_NATS_URL) and a flag given wins.",
		Args:                       cobra.ArbitraryArgs,
		RunE:                       unknownSubcommand,
		SilenceErrors:              true,
		SilenceUsage:               true,
		SuggestionsMinimumDistance: 2,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Annotations[noEnv] == "" {
				if err := applyEnv(cmd.Flags(), c.getenv); err != nil {
					return usageError{err}
				}
			}
			return f.check()
		},
	}
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetFlagErrorFunc(flagError)
	f.register(root.PersistentFlags())
	root.AddCommand(
		newUpCmd(c),
		newNodesCmd(c, f),
		newNodeCmd(c, f),
		newVersionCmd(c),
		newSpiderCmd(c, f),
		newCrawlCmd(c, f),
		newBenchCmd(c, f),
		newBenchNodeCmd(c),
		newDoctorCmd(c, f),
		newMasterCmd(c, f),
		newThrottleCmd(c, f),
		newConfigCmd(c, f),
		newSinkCmd(c, f),
		newResultsCmd(c, f),
		newFilesCmd(c, f),
		newDemoSiteCmd(c),
		newHealthcheckCmd(c),
		newAgentCmd(c, f),
		newWorkerCmd(c),
	)
	// cobra's completion bash|zsh|fish|powershell, made now so that an
	// unknown shell is a usage error like any unknown command.
	root.InitDefaultCompletionCmd()
	for _, s := range root.Commands() {
		if s.Name() == "completion" {
			s.Args, s.RunE = cobra.ArbitraryArgs, unknownSubcommand
		}
	}
	return root
}

// usageError marks a mistake in the command line (exit status 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// unknownSubcommand is the RunE of the root and of every command group:
// without arguments it asks for a command; with one it says it is unknown
// and suggests the closest (did you mean).
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	var names []string
	for _, s := range cmd.Commands() {
		if s.IsAvailableCommand() && s.Name() != "help" {
			names = append(names, s.Name())
		}
	}
	if len(args) == 0 {
		if !cmd.HasParent() {
			cmd.SetOut(cmd.ErrOrStderr()) // the usage of a mistake goes to stderr
			_ = cmd.Usage()
		}
		return usagef("want a command: %s", strings.Join(names, ", "))
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t") + "\n"
	}
	return usageError{errors.New(msg)}
}

// group is a command made of subcommands (crawl start|status|…).
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	g := &cobra.Command{Use: use, Short: short, Args: cobra.ArbitraryArgs, RunE: unknownSubcommand}
	g.AddCommand(subs...)
	return g
}

// nArgs accepts between lo and hi positional arguments (hi < 0: any).
func nArgs(lo, hi int, want string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || (hi >= 0 && len(args) > hi) {
			if len(args) > hi && hi >= 0 && lo == hi && hi == 0 {
				return usagef("unexpected argument %q; want: %s", args[0], want)
			}
			return usagef("want: %s (got %d argument(s))", want, len(args))
		}
		return nil
	}
}

// applyEnv sets every flag of fs not given on the command line from its
// CRAWLMESH_* variable (nodeconfig.EnvName), if that is set: a flag given
// wins over its variable.
func applyEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(fl *pflag.Flag) {
		if err != nil || fl.Changed || fl.Name == "help" {
			return
		}
		names := []string{nodeconfig.EnvName(fl.Name)}
		if fl.Name == "output" {
			names = append(names, "CRAWLMESH_O") // the name of -o's variable before --output
		}
		for _, env := range names {
			if v := getenv(env); v != "" {
				if e := fs.Set(fl.Name, v); e != nil {
					err = fmt.Errorf("%s=%q: %v", env, v, e)
				}
				return
			}
		}
	})
	return err
}

// flagError is every command's flag error. On a command group, cobra
// parses the flags of a mistyped subcommand ("spider aply -f x") as the
// group's: the first argument, not a subcommand, is what is wrong, so the
// error is the unknown command with its did you mean.
func flagError(cmd *cobra.Command, err error) error {
	if args := cmd.Flags().Args(); cmd.HasSubCommands() && len(args) > 0 {
		if sub, _, ferr := cmd.Find(args[:1]); ferr != nil || sub == cmd {
			return unknownSubcommand(cmd, args)
		}
	}
	return usageError{flagSuggestion(cmd, err)}
}

// flagSuggestion adds the closest flags of cmd to an unknown-flag error
// (did you mean), as cobra does for commands.
func flagSuggestion(cmd *cobra.Command, err error) error {
	name, ok := strings.CutPrefix(err.Error(), "unknown flag: --")
	if !ok {
		return err
	}
	var names []string
	cmd.Flags().VisitAll(func(fl *pflag.Flag) {
		if !fl.Hidden {
			names = append(names, fl.Name)
		}
	})
	return didYouMean(err, name, names, "--")
}

// didYouMean adds to err the names close to typed (within 2 edits, or
// starting with it), each written with prefix; err alone if none is.
func didYouMean(err error, typed string, names []string, prefix string) error {
	var near []string
	for _, n := range names {
		if levenshtein(typed, n) <= 2 || strings.HasPrefix(n, typed) {
			near = append(near, prefix+n)
		}
	}
	if len(near) == 0 {
		return err
	}
	return fmt.Errorf("%w\n\nDid you mean this?\n\t%s\n", err, strings.Join(near, "\n\t"))
}

// levenshtein is the edit distance of a and b.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
