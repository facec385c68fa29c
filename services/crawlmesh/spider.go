package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/natsconn"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/streams"
)

func newSpiderCmd(c *cli, f *clientFlags) *cobra.Command {
	withSpiders := func(cmd *cobra.Command, fn func(ctx context.Context, kv jetstream.KeyValue) error) error {
		ctx := cmd.Context()
		sess, err := f.open(ctx, mesh.SpidersBucket)
		if err != nil {
			return err
		}
		defer sess.Close()
		return fn(ctx, sess.kv)
	}
	var file string
	apply := &cobra.Command{
		Use: "apply -f FILE", Short: "store a spider spec (YAML or JSON); refused with the field and why when it is wrong",
		Args: nArgs(0, 0, "spider apply -f FILE"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usagef("want: spider apply -f FILE")
			}
			return spiderApply(cmd.Context(), c, f, file)
		},
	}
	apply.Flags().StringVarP(&file, "file", "f", "", "spec file (YAML or JSON); - reads standard input")
	_ = apply.MarkFlagFilename("file", "yaml", "yml", "json")
	ls := &cobra.Command{
		Use: "ls", Short: "every spider", Args: nArgs(0, 0, "spider ls"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withSpiders(cmd, func(ctx context.Context, kv jetstream.KeyValue) error { return spiderList(ctx, c, f, kv) })
		},
	}
	get := &cobra.Command{
		Use: "get NAME", Short: "a spider's spec as JSON", Args: nArgs(1, 1, "spider get NAME"),
		RunE: func(cmd *cobra.Command, pos []string) error {
			return withSpiders(cmd, func(ctx context.Context, kv jetstream.KeyValue) error {
				e, err := kv.Get(ctx, pos[0])
				if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
					return fmt.Errorf("no spider %q", pos[0])
				}
				if err != nil {
					return err
				}
				// As stored, keys in the spec's order: decoded into a map
				// they came sorted, and a re-apply of that output moved the
				// CSV columns, which follow the order the fields are written
				// in (found by review).
				if !json.Valid(e.Value()) {
					return fmt.Errorf("spider %q: the stored spec is not JSON", pos[0])
				}
				return writeJSON(c.stdout, json.RawMessage(e.Value()))
			})
		},
	}
	rm := &cobra.Command{
		Use: "rm NAME", Short: "remove a spider", Args: nArgs(1, 1, "spider rm NAME"),
		RunE: func(cmd *cobra.Command, pos []string) error {
			return withSpiders(cmd, func(ctx context.Context, kv jetstream.KeyValue) error {
				if _, err := kv.Get(ctx, pos[0]); err != nil {
					return fmt.Errorf("no spider %q", pos[0])
				}
				if err := kv.Purge(ctx, pos[0]); err != nil {
					return fmt.Errorf("remove spider %s: %w", pos[0], err)
				}
				fmt.Fprintf(c.stderr, "spider %s removed\n", pos[0])
				return nil
			})
		},
	}
	get.ValidArgsFunction = completeKeys(c, f, mesh.SpidersBucket)
	rm.ValidArgsFunction = completeKeys(c, f, mesh.SpidersBucket)
	return group("spider", "manage spiders: spider apply -f FILE | ls | get NAME | rm NAME", apply, ls, get, rm)
}

func spiderApply(ctx context.Context, c *cli, f *clientFlags, file string) error {
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return fmt.Errorf("read spec: %w", err)
	}
	s, err := spec.ParseNew(data)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	sess, err := f.open(ctx, mesh.SpidersBucket)
	if err != nil {
		return err
	}
	defer sess.Close()
	rev, changed, err := crawlctl.ApplySpider(ctx, sess.kv, s)
	if err != nil {
		return err
	}
	if !changed {
		fmt.Fprintf(c.stderr, "spider %s unchanged (revision %d)\n", s.Name, rev)
	} else {
		fmt.Fprintf(c.stderr, "spider %s applied (revision %d)\n", s.Name, rev)
	}
	if s.Go != "" {
		if view, err := fetchNodes(ctx, sess.nc, sess.js, f.timeout); err == nil {
			if w := crawlctl.GoSpiderWarning(s, view.Nodes); w != "" {
				fmt.Fprintf(c.stderr, "warning: %s\n", w)
			}
		}
	}
	return nil
}

func spiderList(ctx context.Context, c *cli, f *clientFlags, kv jetstream.KeyValue) error {
	specs := []*spec.Spec{} // -o json: [] when there are none
	keys, err := kv.Keys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return err
	}
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue
		}
		s, err := spec.Parse(e.Value())
		if err != nil {
			// Listed on stderr, not dropped: a spider that vanished from
			// the list would be a mystery (its crawls cannot start).
			fmt.Fprintf(c.stderr, "spider %s cannot be read: %v\n", k, err)
			continue
		}
		specs = append(specs, s)
	}
	if f.output == "json" {
		return writeJSON(c.stdout, specs)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTART URLS\tMAX DEPTH\tMAX PAGES\tSCHEDULE")
	for _, s := range specs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", s.Name, startURLs(s.StartURLs, f.output == "wide"), s.MaxDepth, s.MaxPages, s.Schedule)
	}
	return tw.Flush()
}

// startURLs is a spider's start URLs for a listing: the first and how
// many more (a spec may hold thousands), or with wide all of them.
func startURLs(urls []string, wide bool) string {
	switch {
	case len(urls) == 0:
		return "-"
	case wide || len(urls) == 1:
		return strings.Join(urls, " ")
	}
	return fmt.Sprintf("%s (+%d more)", urls[0], len(urls)-1)
}

// session is a connection with one bucket the master created open.
type session struct {
	nc *nats.Conn
	js jetstream.JetStream
	kv jetstream.KeyValue
}

func (s *session) Close() { s.nc.Close() }

// whyNoAssets says why a bucket a master creates is missing: a master is
// creating the assets right now, or none has started.
func whyNoAssets(ctx context.Context, js jetstream.JetStream) string {
	if holder, err := streams.SetupHolder(ctx, js); err == nil && holder != "" {
		return "master " + holder + " is creating the mesh's streams and buckets: try again in a moment"
	}
	return "has a master started on this NATS?"
}

// open connects and opens bucket. The lookup is retried within --timeout
// with a second per try: a clustered server drops (does not answer) a
// request about a stream whose leader is being elected — a bucket a
// master has just created — so one long wait would sit out the election.
func (f *clientFlags) open(ctx context.Context, bucket string) (*session, error) {
	nc, js, err := f.connect(ctx)
	if err != nil {
		return nil, err
	}
	var kv jetstream.KeyValue
	deadline := time.Now().Add(f.timeout)
	for {
		rctx, cancel := context.WithTimeout(ctx, min(time.Second, f.timeout))
		kv, err = js.KeyValue(rctx, bucket)
		cancel()
		if err == nil || !natsconn.NotReady(err) || ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		nc.Close()
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			// A bucket that did not answer exists (or may): its stream's
			// server stalled or is restarting (found by review: "has a
			// master started?" during a server freeze).
			return nil, fmt.Errorf("open bucket %s: %w (JetStream did not answer within --timeout %v: a NATS server may be down, restarting or electing the bucket's leader; try again, or give --timeout more)", bucket, err, f.timeout)
		}
		return nil, fmt.Errorf("open bucket %s: %w (%s)", bucket, err, whyNoAssets(ctx, js))
	}
	return &session{nc: nc, js: js, kv: kv}, nil
}
