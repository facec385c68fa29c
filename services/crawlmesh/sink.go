package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/sink"
)

func newSinkCmd(c *cli, f *clientFlags) *cobra.Command {
	var o struct {
		postgres, table, webhook string
		spiders                  []string
		batchSize                int
		batchWait, giveUp, tmo   time.Duration
	}
	add := &cobra.Command{
		Use:   "add NAME (--postgres URL [--table T] | --webhook URL) [--spider S]...",
		Short: "deliver every item of matching crawls to PostgreSQL or a webhook, while crawls run",
		Long: "sink add delivers every item of matching crawls, once, while they run: from the first item of each\n" +
			"matching crawl that has not ended when the sink is added (a crawl running now is delivered from\n" +
			"its start), and every later crawl. Passwords and tokens go in as ${env:NAME}, read from the\n" +
			"masters' environment at delivery time, never stored:\n\n" +
			"  crawlmesh sink add db --postgres 'postgres://app:${env:PGPASS}@db:5432/items' --table books\n" +
			"  crawlmesh sink add hook --webhook 'https://example.com/hook?token=${env:HOOK_TOKEN}' --spider books",
		Args: nArgs(1, 1, "sink add NAME (--postgres URL [--table T] | --webhook URL) [--spider S]"),
		RunE: func(cmd *cobra.Command, pos []string) error {
			s, err := sink.Build(sink.Spec{Name: pos[0], Postgres: o.postgres, Table: o.table, Webhook: o.webhook,
				Spiders: o.spiders, BatchSize: o.batchSize, BatchWait: o.batchWait, GiveUp: o.giveUp, Timeout: o.tmo}, time.Now())
			if err != nil {
				return usageError{err}
			}
			return sinkAdd(cmd.Context(), c, f, s)
		},
	}
	fl := add.Flags()
	fl.StringVar(&o.postgres, "postgres", "", "PostgreSQL URL, e.g. postgres://app:${env:PGPASS}@db:5432/items (password only as ${env:NAME})")
	fl.StringVar(&o.table, "table", "", "PostgreSQL table, created if missing (default "+sink.DefaultTable+")")
	fl.StringVar(&o.webhook, "webhook", "", "URL that gets each batch as a POSTed JSON array (header "+sink.BatchHeader+")")
	fl.StringArrayVar(&o.spiders, "spider", nil, "take only this spider's crawls (repeat for more; default every spider)")
	fl.IntVar(&o.batchSize, "batch-size", 0, "most items a batch holds (default 500 for postgres, 100 for a webhook); a batch also holds at most 8 MiB of items")
	fl.DurationVar(&o.batchWait, "batch-wait", 0, "how long a batch waits to fill before it goes (default 1s)")
	fl.DurationVar(&o.giveUp, "give-up", 0, "webhook: how long a failing batch is retried before its items go to the dead letters (default 10m)")
	fl.DurationVar(&o.tmo, "request-timeout", 0, "webhook: timeout of one POST (default 10s)")

	ls := &cobra.Command{
		Use: "ls", Short: "every sink with its delivery status: delivered, failures, lag, last error", Args: nArgs(0, 0, "sink ls"),
		RunE: func(cmd *cobra.Command, _ []string) error { return sinkList(cmd.Context(), c, f) },
	}
	rm := &cobra.Command{
		Use: "rm NAME", Short: "remove a sink (its consumer and status go with it)", Args: nArgs(1, 1, "sink rm NAME"),
		RunE: func(cmd *cobra.Command, pos []string) error { return sinkRemove(cmd.Context(), c, f, pos[0]) },
	}
	rm.ValidArgsFunction = completeFrom(c, f, func(ctx context.Context, g *clientFlags) ([]string, error) {
		sess, err := g.open(ctx, mesh.SinksBucket)
		if err != nil {
			return nil, err
		}
		defer sess.Close()
		keys, err := sess.kv.Keys(ctx)
		var names []string
		for _, k := range keys {
			if !strings.HasPrefix(k, sink.StatusPrefix) {
				names = append(names, k)
			}
		}
		return names, err
	})
	return group("sink", "deliver items to PostgreSQL or webhooks while crawls run: sink add NAME --postgres URL|--webhook URL | ls | rm NAME",
		add, ls, rm)
}

func sinkAdd(ctx context.Context, c *cli, f *clientFlags, s sink.Sink) error {
	sess, err := f.open(ctx, mesh.SinksBucket)
	if err != nil {
		return err
	}
	defer sess.Close()
	if err := sink.Add(ctx, sess.kv, s); err != nil {
		return err
	}
	which := "every spider"
	if len(s.Spiders) > 0 {
		which = "spider(s) " + strings.Join(s.Spiders, ", ")
	}
	fmt.Fprintf(c.stderr, "sink %s added (%s, %s): the leading master delivers the items of %s, from the first item of each crawl still running (crawlmesh sink ls shows progress)\n",
		s.Name, s.Type, s.Target(), which)
	return nil
}

func sinkRemove(ctx context.Context, c *cli, f *clientFlags, name string) error {
	sess, err := f.open(ctx, mesh.SinksBucket)
	if err != nil {
		return err
	}
	defer sess.Close()
	if err := sink.Remove(ctx, sess.kv, name); err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "sink %s removed; the leading master stops delivering it and drops its consumer\n", name)
	return nil
}

func sinkList(ctx context.Context, c *cli, f *clientFlags) error {
	sess, err := f.open(ctx, mesh.SinksBucket)
	if err != nil {
		return err
	}
	defer sess.Close()
	rows, err := sink.List(ctx, sess.js, sess.kv)
	if err != nil {
		return err
	}
	if f.output == "json" {
		return writeJSON(c.stdout, rows)
	}
	printSinks(c.stdout, rows, f.output == "wide")
	return nil
}

func printSinks(w io.Writer, rows []sink.Row, wide bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "NAME\tTYPE\tSPIDERS\tSTATE\tDELIVERED\tFAILURES\tLAG\tLAST ERROR"
	if wide {
		head += "\tTARGET\tDEAD\tNODE\tUPDATED"
	}
	fmt.Fprintln(tw, head)
	for _, r := range rows {
		spiders := "*"
		if len(r.Spiders) > 0 {
			spiders = strings.Join(r.Spiders, ",")
		}
		var delivered, failures, dead uint64
		lastErr, node, updated := "-", "-", "-"
		if st := r.Status; st != nil {
			delivered, failures, dead, node = st.Delivered, st.Failures, st.Dead, st.Node
			updated = st.UpdatedAt.Format(time.RFC3339)
			if r.Error != "" {
				lastErr = r.Error
			} else if st.LastError != "" && wide {
				lastErr = "(earlier) " + st.LastError
			}
		}
		lag := "-"
		if r.Lag != nil {
			lag = fmt.Sprint(*r.Lag)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s", r.Name, r.Type, spiders, r.State, delivered, failures, lag, oneLine(lastErr))
		if wide {
			fmt.Fprintf(tw, "\t%s\t%d\t%s\t%s", r.Target, dead, node, updated)
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
