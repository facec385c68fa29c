package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/crawlmesh/crawlmesh/pkg/files"
)

func newFilesCmd(c *cli, f *clientFlags) *cobra.Command {
	var out, maxSize string
	sub := func(use, short, want string, lo, hi int) *cobra.Command {
		cmd := &cobra.Command{Use: use, Short: short, Args: nArgs(lo, hi, want),
			RunE: func(cmd *cobra.Command, pos []string) error {
				return runFiles(cmd.Context(), c, f, cmd.Name(), pos, out, maxSize)
			}}
		return cmd
	}
	put := sub("put LOCAL [NAME]", "store a local file (- : standard input) as NAME", "files put LOCAL [NAME]", 1, 2)
	put.Flags().StringVar(&maxSize, "max-size", "64MiB", "the largest file accepted (B, KiB, MiB, GiB)")
	get := sub("get NAME", "write a file to standard output or --out", "files get NAME [--out FILE]", 1, 1)
	get.Flags().StringVar(&out, "out", "", "write to FILE instead of standard output")
	names := completeFrom(c, f, func(ctx context.Context, g *clientFlags) ([]string, error) {
		nc, st, err := g.openFiles(ctx, 0)
		if err != nil {
			return nil, err
		}
		defer nc.Close()
		list, err := st.List(ctx)
		var out []string
		for _, i := range list {
			out = append(out, i.Name)
		}
		return out, err
	})
	get.ValidArgsFunction = names
	rm := sub("rm NAME", "remove a file", "files rm NAME", 1, 1)
	rm.ValidArgsFunction = names
	return group("files", "shared files in the Object Store: files put LOCAL [NAME] | get NAME [--out FILE] | ls | rm NAME",
		put, get, sub("ls", "every file", "files ls", 0, 0), rm)
}

// runFiles is `crawlmesh files`: the shared files in the Object Store
// files (spider scripts, seed lists, exports).
func runFiles(ctx context.Context, c *cli, f *clientFlags, sub string, pos []string, out, maxSize string) error {
	if maxSize == "" {
		maxSize = "64MiB"
	}
	limit, err := parseSize(maxSize)
	if err != nil {
		return usagef("--max-size %q: %v", maxSize, err)
	}
	switch sub {
	case "put":
		if len(pos) < 1 || len(pos) > 2 {
			return usagef("want: files put LOCAL [NAME]")
		}
	case "get", "rm":
		if len(pos) != 1 {
			return usagef("want: files %s NAME", sub)
		}
	case "ls":
		if len(pos) != 0 {
			return usagef("unexpected argument %q", pos[0])
		}
	default:
		return usagef("unknown files command %q", sub)
	}
	if sub != "ls" {
		name := pos[len(pos)-1]
		if sub == "put" {
			name = filepath.Base(pos[0])
			if len(pos) == 2 {
				name = pos[1]
			} else if pos[0] == "-" {
				return usagef("files put - reads standard input: give a NAME")
			}
		}
		if err := files.ValidName(name); err != nil {
			return usageError{err}
		}
		pos = append(pos, name)
	}
	if sub == "put" {
		return filesPut(ctx, c, f, pos[0], pos[len(pos)-1], limit)
	}
	nc, st, err := f.openFiles(ctx, 0)
	if err != nil {
		return err
	}
	defer nc.Close()
	switch sub {
	case "get":
		return filesGet(ctx, c, st, pos[0], out)
	case "rm":
		if err := st.Delete(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "file %s removed\n", pos[0])
		return nil
	}
	list, err := st.List(ctx)
	if err != nil {
		return err
	}
	if f.output == "json" {
		return writeJSON(c.stdout, list)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tDIGEST\tMODIFIED")
	for _, i := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", i.Name, files.HumanSize(i.Size), i.Digest, i.Modified.Format(time.RFC3339))
	}
	return tw.Flush()
}

// openFiles connects and binds to the Object Store (never creating it).
func (f *clientFlags) openFiles(ctx context.Context, limit int64) (*nats.Conn, *files.Store, error) {
	nc, js, err := f.connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	st, err := files.Open(rctx, js, files.WithMaxSize(limit))
	if err != nil {
		var me *files.MissingError
		if errors.As(err, &me) {
			err = fmt.Errorf("Object Store %s does not exist (%s)", files.Bucket, whyNoAssets(ctx, js))
		}
		nc.Close()
		return nil, nil, err
	}
	return nc, st, nil
}

func filesPut(ctx context.Context, c *cli, f *clientFlags, local, name string, limit int64) error {
	var r io.Reader = os.Stdin
	if local != "-" {
		fh, err := os.Open(local)
		if err != nil {
			return err
		}
		defer fh.Close()
		fi, err := fh.Stat()
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return fmt.Errorf("%s is a directory: put one file at a time", local)
		}
		if fi.Mode().IsRegular() && fi.Size() > limit {
			// Refused before connecting: nothing is uploaded.
			return &files.SizeError{Name: local, Size: fi.Size(), Limit: limit}
		}
		r = fh
	}
	nc, st, err := f.openFiles(ctx, limit)
	if err != nil {
		return err
	}
	defer nc.Close()
	info, err := st.Put(ctx, name, r)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "file %s stored: %s, %s\n", info.Name, files.HumanSize(info.Size), info.Digest)
	return nil
}

// filesGet writes the file to out (through a temporary file renamed into
// place, so a failed get leaves no half file) or to standard output.
func filesGet(ctx context.Context, c *cli, st *files.Store, name, out string) error {
	if out == "" || out == "-" {
		_, err := st.Get(ctx, name, c.stdout)
		return err
	}
	if _, err := st.Stat(ctx, name); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".part-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	info, err := st.Get(ctx, name, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "file %s (%s) written to %s\n", name, files.HumanSize(info.Size), out)
	return nil
}

// parseSize reads "64MiB", "512KiB", "1GiB", "100B" or a plain number of bytes.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}} {
		if v, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("want a positive size such as 64MiB")
	}
	return n * mult, nil
}
