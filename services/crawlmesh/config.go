package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/crawlmesh/crawlmesh/pkg/clusterconfig"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// configFlags are config's --node and --role.
type configFlags struct{ node, role string }

func (cf *configFlags) scope() (clusterconfig.Scope, error) {
	s, err := clusterconfig.ScopeFor(cf.node, cf.role)
	if err != nil {
		return s, usageError{err}
	}
	return s, nil
}

func newConfigCmd(c *cli, f *clientFlags) *cobra.Command {
	var cf configFlags
	set := &cobra.Command{
		Use:   "set KEY VALUE [--node ID | --role worker|master]",
		Short: "store a value, cluster-wide or for a role or a node; every node applies it within a second",
		// A VALUE such as -1 must stay a value, not a flag: flags are
		// parsed here, by hand (splitValueArgs).
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			pos, err := parseAroundValue(cmd, args, c.getenv)
			if err != nil || pos == nil {
				return err
			}
			if err := f.check(); err != nil {
				return err
			}
			if len(pos) != 2 {
				return usagef("want: config set KEY VALUE [--node ID | --role worker|master] (got %d argument(s))", len(pos))
			}
			return runConfigSet(cmd.Context(), c, f, &cf, pos[0], pos[1])
		},
	}
	scopeFlags := func(cmd *cobra.Command, role bool) {
		cmd.Flags().StringVar(&cf.node, "node", "", "a node's own value (node id)")
		if role {
			cmd.Flags().StringVar(&cf.role, "role", "", "every node of a role: worker or master")
		}
	}
	scopeFlags(set, true)
	get := &cobra.Command{Use: "get [KEY] [--node ID | --role worker|master]", Short: "the effective value of every key (or KEY) and where it comes from: node, role, cluster, flag or default",
		Args: nArgs(0, 1, "config get [KEY] [--node ID | --role worker|master]"),
		RunE: func(cmd *cobra.Command, pos []string) error { return runConfigGet(cmd.Context(), c, f, &cf, pos) }}
	scopeFlags(get, true)
	ls := &cobra.Command{Use: "ls", Short: "every stored value: cluster, role and node levels", Args: nArgs(0, 0, "config ls"),
		RunE: func(cmd *cobra.Command, _ []string) error { return runConfigLs(cmd.Context(), c, f) }}
	rm := &cobra.Command{Use: "rm KEY [--node ID | --role worker|master]", Short: "remove a stored value: the next level applies again",
		Args: nArgs(1, 1, "config rm KEY [--node ID | --role worker|master]"),
		RunE: func(cmd *cobra.Command, pos []string) error { return runConfigRm(cmd.Context(), c, f, &cf, pos[0]) }}
	scopeFlags(rm, true)
	return group("config", "cluster configuration applied live (KV config): config set KEY VALUE | get [KEY] | ls | rm KEY, with --node ID or --role R",
		set, get, ls, rm)
}

// parseAroundValue parses the flags of a command whose flag parsing is
// disabled, keeping every argument that is not a known flag (or a known
// flag's value) positional: `config set concurrency -1` reads -1 as the
// value, and -o, --node and the global flags still go anywhere. It returns
// nil positional arguments when it printed the help.
func parseAroundValue(cmd *cobra.Command, args []string, getenv func(string) string) ([]string, error) {
	fs := cmd.Flags()
	// Merge the root's persistent flags (cobra does it when it parses).
	fs.AddFlagSet(cmd.InheritedFlags())
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "--") && len(a) > 2:
			flags = append(flags, a)
			name, _, eq := strings.Cut(a[2:], "=")
			if fl := fs.Lookup(name); fl != nil && !eq && fl.NoOptDefVal == "" && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		case strings.HasPrefix(a, "-") && len(a) > 1 && fs.ShorthandLookup(a[1:2]) != nil:
			flags = append(flags, a)
			if fl := fs.ShorthandLookup(a[1:2]); len(a) == 2 && fl.NoOptDefVal == "" && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			pos = append(pos, a) // a word, or a value such as -1
		}
	}
	if err := fs.Parse(flags); err != nil {
		return nil, usageError{flagSuggestion(cmd, err)}
	}
	if h, _ := fs.GetBool("help"); h {
		return nil, cmd.Help()
	}
	// Flags given win over their CRAWLMESH_* variables, which fill the rest.
	if err := applyEnv(fs, getenv); err != nil {
		return nil, usageError{err}
	}
	return pos, nil
}

func runConfigSet(ctx context.Context, c *cli, f *clientFlags, cf *configFlags, key, value string) error {
	s, err := cf.scope()
	if err != nil {
		return err
	}
	// Refuse a bad value before connecting: it names the key and the range.
	if _, err := clusterconfig.Check(s, key, value, 0); err != nil {
		return usageError{err}
	}
	sess, err := f.open(ctx, mesh.ConfigBucket)
	if err != nil {
		return err
	}
	defer sess.Close()
	e, offline, err := clusterconfig.SetLive(ctx, sess.js, sess.kv, s, key, value)
	if errors.Is(err, clusterconfig.ErrBadValue) || errors.Is(err, clusterconfig.ErrUnknownKey) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	if offline {
		fmt.Fprintf(c.stderr, "note: node %s is not online; it applies the value when it starts (crawlmesh doctor reports overrides of nodes that are gone)\n", s.Target)
	}
	if f.output == "json" {
		return writeJSON(c.stdout, e)
	}
	fmt.Fprintf(c.stdout, "%s = %s at %s (revision %d); nodes apply it within a second\n", e.Key, e.Value, s, e.Revision)
	return nil
}

func runConfigRm(ctx context.Context, c *cli, f *clientFlags, cf *configFlags, key string) error {
	s, err := cf.scope()
	if err != nil {
		return err
	}
	if _, err := clusterconfig.Lookup(key); err != nil {
		return usageError{err}
	}
	sess, err := f.open(ctx, mesh.ConfigBucket)
	if err != nil {
		return err
	}
	defer sess.Close()
	if err := clusterconfig.Remove(ctx, sess.kv, s, key); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s removed at %s; the next level applies within a second\n", key, s)
	return nil
}

func runConfigLs(ctx context.Context, c *cli, f *clientFlags) error {
	sess, err := f.open(ctx, mesh.ConfigBucket)
	if err != nil {
		return err
	}
	defer sess.Close()
	es, err := clusterconfig.List(ctx, sess.kv)
	if err != nil {
		return err
	}
	if f.output == "json" {
		if es == nil {
			es = []clusterconfig.Entry{}
		}
		return writeJSON(c.stdout, es)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LEVEL\tKEY\tVALUE\tREVISION\tUPDATED\tPROBLEM")
	for _, e := range es {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", e.Scope, e.Key, e.Value, e.Revision, e.Updated.Format(time.RFC3339), e.Error)
	}
	_ = tw.Flush()
	if len(es) == 0 {
		fmt.Fprintln(c.stderr, "(nothing stored: every node uses its flags or the defaults; crawlmesh config get lists the keys)")
	}
	return nil
}

// configGetOutput is the JSON of `config get`.
type configGetOutput struct {
	Node string `json:"node,omitempty"`
	clusterconfig.NodeView
}

func runConfigGet(ctx context.Context, c *cli, f *clientFlags, cf *configFlags, pos []string) error {
	var only string
	if len(pos) == 1 {
		if _, err := clusterconfig.Lookup(pos[0]); err != nil {
			return usageError{err}
		}
		only = pos[0]
	}
	if cf.node != "" || cf.role != "" {
		if _, err := cf.scope(); err != nil {
			return err
		}
	}
	sess, err := f.open(ctx, mesh.ConfigBucket)
	if err != nil {
		return err
	}
	defer sess.Close()
	es, err := clusterconfig.List(ctx, sess.kv)
	if err != nil {
		return err
	}
	var view clusterconfig.NodeView
	switch {
	case cf.role != "":
		// What a node of the role gets unless it has a value of its own.
		view = clusterconfig.View(es, "", cf.role, nil)
		view.Role = cf.role
	case cf.node == "":
		view = clusterconfig.NodeView{Values: clusterconfig.ClusterView(es)}
		// Values stored for a role or a node win over these on their
		// nodes: say so, rather than let "32 default" pass for the truth.
		var narrower []string
		for _, e := range es {
			if e.Scope.Level != clusterconfig.LevelCluster && (only == "" || e.Key == only) {
				narrower = append(narrower, e.Scope.Key(e.Key))
			}
		}
		if len(narrower) > 0 {
			fmt.Fprintf(c.stderr, "cluster-wide values; also stored for a role or node, which win there: %s (config get --role R or --node ID)\n",
				strings.Join(narrower, ", "))
		}
	default:
		role, reported := mesh.RoleWorker, (*mesh.NodeConfig)(nil)
		if kv, err := nodesKV(ctx, sess.js); err == nil {
			if e, err := kv.Get(ctx, cf.node); err == nil {
				if hb, err := mesh.DecodeHeartbeat(e.Value()); err == nil {
					role, reported = hb.Role, hb.Config
				}
			}
		}
		view = clusterconfig.View(es, cf.node, role, reported)
		switch {
		case role == mesh.RoleAgent:
			fmt.Fprintf(c.stderr, "node %s is a host agent: its workers (%s-1 …) take the configuration, and config get --node %s-1 shows one's\n",
				cf.node, cf.node, cf.node)
		case !view.Online:
			fmt.Fprintf(c.stderr, "node %s is not online (or reports no config): values resolved from the bucket for %s; %q means its flag or the default\n",
				cf.node, mesh.RoleArticle(role), clusterconfig.SourceUnknown)
		}
	}
	if only != "" {
		v, ok := view.Values[only]
		if !ok {
			if cf.node == "" {
				return fmt.Errorf("%s does not apply to the %s role", only, view.Role)
			}
			return fmt.Errorf("%s does not apply to %s %s", only, view.Role, cf.node)
		}
		view.Values = map[string]mesh.ConfigValue{only: v}
	}
	if f.output == "json" {
		return writeJSON(c.stdout, view)
	}
	printConfig(c.stdout, view, f.output == "wide")
	return nil
}

func printConfig(w io.Writer, v clusterconfig.NodeView, wide bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "KEY\tVALUE\tSOURCE"
	if wide {
		head += "\tRANGE\tDOC"
	}
	fmt.Fprintln(tw, head)
	for _, k := range clusterconfig.Keys() {
		cv, ok := v.Values[k.Name]
		if !ok {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s", k.Name, cv.Value, cv.Source)
		if wide {
			fmt.Fprintf(tw, "\t%s\t%s", k.Range, k.Doc)
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
	if v.Online {
		fmt.Fprintf(w, "config revision %d applied by %s\n", v.Rev, v.Node)
	}
	for _, e := range slices.Sorted(slices.Values(v.Errors)) {
		fmt.Fprintf(w, "not applied: %s\n", e)
	}
}
