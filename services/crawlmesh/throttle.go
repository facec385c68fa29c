package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/politeness"
)

func newThrottleCmd(c *cli, f *clientFlags) *cobra.Command {
	var delay time.Duration
	var par int
	sub := func(use, short, want string, n int) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: nArgs(n, n, want),
			RunE: func(cmd *cobra.Command, pos []string) error {
				// -1 stands for "not given" (not the flag's default, which
				// help would show): a negative one given is a mistake.
				if fl := cmd.Flags().Lookup("delay"); fl != nil && !fl.Changed {
					delay = -1
				} else if fl != nil && delay < 0 {
					return usagef("--delay %v: want zero or more, e.g. 500ms or 2s", delay)
				}
				// 0 stands for "not given" too: one given is out of range.
				if fl := cmd.Flags().Lookup("parallelism"); fl != nil && fl.Changed && par == 0 {
					return usagef("--parallelism 0: want 1-1000")
				}
				return runThrottle(cmd.Context(), c, f, cmd.Name(), pos, &delay, &par)
			}}
	}
	set := sub("set HOST", "set a host's limits, mesh-wide", "throttle set HOST [--delay D] [--parallelism N]", 1)
	set.Flags().DurationVar(&delay, "delay", 0, "time between request starts to the host, mesh-wide (not given: the override sets none)")
	set.Flags().IntVar(&par, "parallelism", 0, "requests in flight to the host, mesh-wide")
	return group("throttle", "live per-host limits, mesh-wide: throttle set HOST [--delay D] [--parallelism N] | ls | rm HOST",
		set, sub("ls", "every override", "throttle ls", 0), sub("rm HOST", "remove a host's override", "throttle rm HOST", 1))
}

func runThrottle(ctx context.Context, c *cli, f *clientFlags, sub string, pos []string, delay *time.Duration, par *int) error {
	switch sub {
	case "set":
		if len(pos) != 1 {
			return usagef("want: throttle set HOST [--delay D] [--parallelism N]")
		}
		if _, err := newOverride(pos[0], *delay, *par); err != nil {
			return usageError{fmt.Errorf("throttle set: %w", err)}
		}
	case "rm":
		if len(pos) != 1 {
			return usagef("want: throttle rm HOST")
		}
	case "ls":
		if len(pos) != 0 {
			return usagef("unexpected argument %q", pos[0])
		}
	default:
		return usagef("unknown throttle command %q: want set, ls or rm", sub)
	}
	sess, err := f.open(ctx, mesh.ThrottleBucket)
	if err != nil {
		return err
	}
	defer sess.Close()
	kv := sess.kv
	switch sub {
	case "set":
		o, _ := newOverride(pos[0], *delay, *par) // checked above
		b, _ := json.Marshal(o)
		if _, err := kv.Put(ctx, politeness.Key(pos[0]), b); err != nil {
			return fmt.Errorf("store override: %w", err)
		}
		fmt.Fprintf(c.stderr, "throttle for %s set; every worker applies it within a second\n", pos[0])
		return nil
	case "rm":
		if _, err := kv.Get(ctx, politeness.Key(pos[0])); errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("no throttle for %s", pos[0])
		}
		if err := kv.Purge(ctx, politeness.Key(pos[0])); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "throttle for %s removed\n", pos[0])
		return nil
	}
	keys, err := kv.Keys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return err
	}
	list := []politeness.Override{} // -o json: [] when there are none
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue
		}
		var o politeness.Override
		if json.Unmarshal(e.Value(), &o) == nil {
			list = append(list, o)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Host < list[j].Host })
	if f.output == "json" {
		return writeJSON(c.stdout, list)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tDELAY\tPARALLELISM\tUPDATED")
	for _, o := range list {
		d, p := o.Delay, "-"
		if d == "" {
			d = "-"
		}
		if o.Parallelism > 0 {
			p = fmt.Sprint(o.Parallelism)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", o.Host, d, p, o.UpdatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

// newOverride is the override throttle set stores; delay < 0 is "not
// given".
func newOverride(host string, delay time.Duration, par int) (politeness.Override, error) {
	d := ""
	if delay >= 0 {
		d = delay.String()
	}
	return politeness.NewOverride(host, d, par, time.Now())
}
