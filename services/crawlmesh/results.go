package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/files"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

type exportOpts struct {
	format, out, toFiles, maxSize string
	formatGiven                   bool
}

func newResultsCmd(c *cli, f *clientFlags) *cobra.Command {
	var o exportOpts
	export := &cobra.Command{
		Use: "export ID", Short: "a crawl's items as JSON lines or CSV, to stdout, a file or the Object Store files",
		Args: nArgs(1, 1, "results export ID [--format jsonl|csv] [--out FILE | --to-files NAME]"),
		RunE: func(cmd *cobra.Command, pos []string) error {
			o.formatGiven = cmd.Flags().Changed("format")
			return resultsExport(cmd.Context(), c, f, pos, &o)
		},
	}
	fl := export.Flags()
	fl.StringVar(&o.format, "format", "jsonl", "jsonl or csv; not given, a .csv name for --out or --to-files means csv")
	fl.StringVar(&o.out, "out", "", "write to FILE instead of standard output (- is standard output)")
	fl.StringVar(&o.toFiles, "to-files", "", "write into the Object Store files under NAME (crawlmesh files get NAME), streamed")
	fl.StringVar(&o.maxSize, "max-size", "64MiB", "--to-files: the largest export stored (B, KiB, MiB, GiB)")
	_ = export.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"jsonl", "csv"}, cobra.ShellCompDirectiveNoFileComp))
	return group("results", "results export ID [--format jsonl|csv] [--out FILE | --to-files NAME]", export)
}

func resultsExport(ctx context.Context, c *cli, f *clientFlags, pos []string, o *exportOpts) error {
	format, out, toFiles, maxSize := &o.format, &o.out, &o.toFiles, &o.maxSize
	if !o.formatGiven {
		// --out x.csv once wrote JSON lines, the default, under that name.
		// Another extension (books.2026.11.28) keeps the default.
		for _, name := range []string{*out, *toFiles} {
			if strings.EqualFold(filepath.Ext(name), ".csv") {
				*format = "csv"
			}
		}
	}
	if *format != "jsonl" && *format != "csv" {
		return usagef("--format %q: want jsonl or csv", *format)
	}
	if *out != "" && *toFiles != "" {
		return usagef("give --out or --to-files, not both")
	}
	limit, err := parseSize(*maxSize)
	if err != nil {
		return usagef("--max-size %q: %v", *maxSize, err)
	}
	if *toFiles != "" {
		if err := files.ValidName(*toFiles); err != nil {
			return usageError{err}
		}
	}
	sess, err := f.open(ctx, mesh.CrawlsBucket)
	if err != nil {
		return err
	}
	defer sess.Close()
	js := sess.js
	cr, _, err := crawler.ReadCrawl(ctx, sess.kv, pos[0])
	if err != nil {
		return err
	}
	if *toFiles != "" {
		st, err := files.Open(ctx, js, files.WithMaxSize(limit))
		if err != nil {
			return err
		}
		// The export runs into a pipe the Object Store reads in chunks:
		// memory stays flat whatever the crawl's size.
		pr, pw := io.Pipe()
		var n int
		done := make(chan error, 1)
		go func() {
			var err error
			n, err = exportTo(ctx, js, cr, *format, pw)
			_ = pw.CloseWithError(err)
			done <- err
		}()
		info, err := st.Put(ctx, *toFiles, pr)
		_ = pr.CloseWithError(errors.New("export stopped"))
		<-done
		if err != nil {
			// A failed export reaches Put as its reader's error.
			return fmt.Errorf("export %s to files: %w", cr.ID, err)
		}
		fmt.Fprintf(c.stderr, "%d items of %s stored as file %s (%s, %s)\n", n, cr.ID, info.Name, files.HumanSize(info.Size), info.Digest)
		return nil
	}
	var w io.Writer = c.stdout
	var file *os.File
	if *out != "" && *out != "-" { // "-" is standard output, as usual
		if file, err = os.Create(*out); err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	n, err := exportTo(ctx, js, cr, *format, w)
	if err == nil && file != nil {
		err = file.Close()
	}
	if err != nil {
		return fmt.Errorf("export %s: %w", cr.ID, err)
	}
	if file != nil {
		fmt.Fprintf(c.stderr, "%d items of %s written to %s\n", n, cr.ID, *out)
	}
	return nil
}

// exportTo writes the crawl's items to w as format and returns how many.
// No wait of its own bounds it: ctx does (the user's ^C), as it bounds
// reading any other stream here.
func exportTo(ctx context.Context, js jetstream.JetStream, cr *mesh.Crawl, format string, w io.Writer) (int, error) {
	return crawlctl.Export(ctx, js, cr, format, w, 0)
}
