package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

func runResults(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 || args[0] != "export" {
		return usagef("want: results export ID [--format jsonl|csv] [--out FILE]")
	}
	var f clientFlags
	fs := flag.NewFlagSet("results export", flag.ContinueOnError)
	f.register(fs)
	format := fs.String("format", "jsonl", "jsonl or csv")
	out := fs.String("out", "", "write to FILE instead of standard output")
	pos, err := f.parse(fs, c, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want: results export ID")
	}
	if *format != "jsonl" && *format != "csv" {
		return usagef("--format %q: want jsonl or csv", *format)
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
	var w io.Writer = c.stdout
	var file *os.File
	if *out != "" {
		if file, err = os.Create(*out); err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	n := 0
	if *format == "jsonl" {
		err = readStream(ctx, js, mesh.ResultsStream, mesh.ResultSubject(cr.ID), false, func(b []byte) error {
			n++
			_, err := fmt.Fprintf(bw, "%s\n", b)
			return err
		})
	} else {
		err = exportCSV(ctx, bw, cr, func(fn func([]byte) error) error {
			return readStream(ctx, js, mesh.ResultsStream, mesh.ResultSubject(cr.ID), false, func(b []byte) error {
				n++
				return fn(b)
			})
		})
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil && file != nil {
		err = file.Close()
	}
	if err != nil {
		return fmt.Errorf("export %s: %w", cr.ID, err)
	}
	if *out != "" {
		fmt.Fprintf(c.stderr, "%d items of %s written to %s\n", n, cr.ID, *out)
	}
	return nil
}

// exportCSV writes the fixed columns, then one column per item field of
// the crawl's spec (the header must come before the first row, and the
// spec says every field there can be).
func exportCSV(_ context.Context, w io.Writer, cr *mesh.Crawl, each func(func([]byte) error) error) error {
	var fields []string
	if s, err := spec.Parse(cr.Spec); err == nil {
		set := map[string]bool{}
		for _, it := range s.Items {
			for name := range it.Fields {
				set[name] = true
			}
		}
		for name := range set {
			fields = append(fields, name)
		}
		sort.Strings(fields)
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(append([]string{"url", "spider", "crawl", "depth", "fetched_at"}, fields...)); err != nil {
		return err
	}
	err := each(func(b []byte) error {
		var it mesh.Item
		if err := json.Unmarshal(b, &it); err != nil {
			return nil
		}
		row := []string{it.URL, it.Spider, it.Crawl, fmt.Sprint(it.Depth), it.FetchedAt.Format(time.RFC3339Nano)}
		for _, name := range fields {
			row = append(row, it.Text(name))
		}
		return cw.Write(row)
	})
	cw.Flush()
	if err != nil {
		return err
	}
	return cw.Error()
}
