package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/files"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/sink"
)

func newCrawlCmd(c *cli, f *clientFlags) *cobra.Command {
	// withCrawls runs fn with a session on bucket crawls.
	withCrawls := func(cmd *cobra.Command, fn func(ctx context.Context, sess *session) error) error {
		ctx := cmd.Context()
		sess, err := f.open(ctx, mesh.CrawlsBucket)
		if err != nil {
			return err
		}
		defer sess.Close()
		return fn(ctx, sess)
	}
	var wait bool
	var seedsFile string
	start := &cobra.Command{
		Use:   "start SPIDER",
		Short: "start a crawl of SPIDER; prints the crawl id alone on stdout (id=$(crawlmesh crawl start books))",
		Args:  nArgs(1, 1, "crawl start SPIDER [--wait] [--seeds-file NAME]"),
		RunE: func(cmd *cobra.Command, pos []string) error {
			if seedsFile != "" {
				if err := files.ValidName(seedsFile); err != nil {
					return usageError{fmt.Errorf("--seeds-file: %w", err)}
				}
			}
			return withCrawls(cmd, func(ctx context.Context, sess *session) error {
				id, err := crawlctl.Call(ctx, sess.nc, mesh.APICrawlStart, crawlctl.APIRequest{Spider: pos[0], SeedsFile: seedsFile}, f.timeout)
				if err != nil {
					return err
				}
				fmt.Fprintln(c.stdout, id)
				if seedsFile != "" {
					fmt.Fprintf(c.stderr, "crawl %s: the masters seed it from file %s; bad lines show in crawlmesh crawl logs %s\n", id, seedsFile, id)
				}
				if wait {
					return waitCrawl(ctx, c, sess.js, sess.kv, id)
				}
				return nil
			})
		},
	}
	start.ValidArgsFunction = completeKeys(c, f, mesh.SpidersBucket)
	start.Flags().BoolVar(&wait, "wait", false, "wait for the crawl to finish, with progress")
	start.Flags().StringVar(&seedsFile, "seeds-file", "", "seed from NAME in the Object Store files (one URL a line; crawlmesh files put) instead of the spider's start_urls")

	cancel := &cobra.Command{
		Use: "cancel ID", Short: "cancel a crawl", Args: nArgs(1, 1, "crawl cancel ID"),
		RunE: func(cmd *cobra.Command, pos []string) error {
			return withCrawls(cmd, func(ctx context.Context, sess *session) error {
				if _, err := crawlctl.Call(ctx, sess.nc, mesh.APICrawlCancel, crawlctl.APIRequest{ID: pos[0]}, f.timeout); err != nil {
					return err
				}
				fmt.Fprintf(c.stderr, "crawl %s cancelled\n", pos[0])
				return nil
			})
		},
	}
	status := &cobra.Command{
		Use: "status ID", Short: "a crawl's state and counters", Args: nArgs(1, 1, "crawl status ID"),
		RunE: func(cmd *cobra.Command, pos []string) error {
			return withCrawls(cmd, func(ctx context.Context, sess *session) error {
				st, err := crawlctl.ReadStatus(ctx, sess.js, sess.kv, pos[0])
				if err != nil {
					return err
				}
				prog := sinkProgress(ctx, sess.js, st)
				if f.output == "json" {
					return writeJSON(c.stdout, struct {
						crawlctl.Status
						Sinks []crawlSink `json:"sinks,omitempty"`
					}{st, prog})
				}
				printStatus(c.stdout, []crawlctl.Status{st}, f.output == "wide")
				for _, p := range prog {
					fmt.Fprintf(c.stdout, "sink %s: %d of %d items delivered (%s)", p.Sink, p.Delivered, st.Items, p.State)
					if p.Error != "" {
						fmt.Fprintf(c.stdout, ": %s", p.Error)
					}
					fmt.Fprintln(c.stdout)
				}
				return nil
			})
		},
	}
	waitCmd := &cobra.Command{
		Use: "wait ID", Short: "show a crawl's progress until it ends; exit 0 when it completed", Args: nArgs(1, 1, "crawl wait ID"),
		RunE: func(cmd *cobra.Command, pos []string) error {
			return withCrawls(cmd, func(ctx context.Context, sess *session) error {
				return waitCrawl(ctx, c, sess.js, sess.kv, pos[0])
			})
		},
	}
	ls := &cobra.Command{
		Use: "ls", Short: "every crawl", Args: nArgs(0, 0, "crawl ls"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withCrawls(cmd, func(ctx context.Context, sess *session) error {
				return listCrawls(ctx, c, f, sess.js, sess.kv)
			})
		},
	}
	var follow bool
	logs := &cobra.Command{
		Use: "logs ID", Short: "a crawl's task log", Args: nArgs(1, 1, "crawl logs ID [--follow]"),
		RunE: func(cmd *cobra.Command, pos []string) error {
			return withCrawls(cmd, func(ctx context.Context, sess *session) error {
				return crawlLogs(ctx, c, f, sess.js, pos[0], follow)
			})
		},
	}
	logs.Flags().BoolVar(&follow, "follow", false, "keep printing new lines until the crawl has ended and its last lines are printed")
	dead := &cobra.Command{
		Use: "deadletters ID", Short: "a crawl's dead letters: URL, reason, attempts, node, time", Args: nArgs(1, 1, "crawl deadletters ID"),
		RunE: func(cmd *cobra.Command, pos []string) error {
			return withCrawls(cmd, func(ctx context.Context, sess *session) error {
				// An unknown crawl is an error, as for crawl status, not
				// an empty list that reads as "no dead letters".
				if _, _, err := crawler.ReadCrawl(ctx, sess.kv, pos[0]); err != nil {
					return err
				}
				return deadLetters(ctx, c, f, sess.js, pos[0])
			})
		},
	}
	var requeueSeq uint64
	var requeueAll bool
	requeue := &cobra.Command{
		Use:   "requeue ID",
		Short: "put dead letters back on the work queue for another try (--seq N from crawl deadletters, or --all); a completed crawl runs again",
		Args:  nArgs(1, 1, "crawl requeue ID --seq N|--all"),
		RunE: func(cmd *cobra.Command, pos []string) error {
			switch {
			case requeueSeq != 0 && requeueAll:
				return usagef("crawl requeue %s: give --seq N or --all, not both", pos[0])
			case requeueSeq == 0 && !requeueAll:
				return usagef("crawl requeue %s: give --seq N (a dead letter's SEQ in crawlmesh crawl deadletters %s) or --all", pos[0], pos[0])
			}
			return withCrawls(cmd, func(ctx context.Context, sess *session) error {
				res, err := crawlctl.RequeueCall(ctx, sess.nc, pos[0], requeueSeq, f.timeout)
				if err != nil {
					return err
				}
				if f.output == "json" {
					return writeJSON(c.stdout, res)
				}
				fmt.Fprintf(c.stderr, "crawl %s: %d dead letter(s) re-queued", res.ID, res.Requeued)
				if res.Reopened {
					fmt.Fprint(c.stderr, "; the crawl had ended and runs again")
				}
				if res.Skipped > 0 {
					fmt.Fprintf(c.stderr, "; %d undecodable letter(s) left to read", res.Skipped)
				}
				fmt.Fprintln(c.stderr)
				return nil
			})
		},
	}
	requeue.Flags().Uint64Var(&requeueSeq, "seq", 0, "the dead letter to re-queue: its SEQ in crawlmesh crawl deadletters")
	requeue.Flags().BoolVar(&requeueAll, "all", false, "re-queue every dead letter of the crawl")
	for _, s := range []*cobra.Command{status, waitCmd, cancel, logs, dead, requeue} {
		s.ValidArgsFunction = completeKeys(c, f, mesh.CrawlsBucket)
	}
	return group("crawl", "crawls: start SPIDER [--wait] | status ID | wait ID | cancel ID | ls | logs ID [--follow] | deadletters ID | requeue ID --seq N|--all",
		start, status, waitCmd, cancel, ls, logs, dead, requeue)
}

// deadLetters lists a crawl's dead letters: URL, reason, attempts, node,
// time — a spider author sees why a page failed without reading a stream.
func deadLetters(ctx context.Context, c *cli, f *clientFlags, js jetstream.JetStream, id string) error {
	dl, err := crawlctl.ReadDeadLetters(ctx, js, id)
	if err != nil {
		return err
	}
	if f.output == "json" {
		if dl == nil {
			dl = []crawlctl.DeadLetter{}
		}
		return writeJSON(c.stdout, dl)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tURL\tATTEMPTS\tNODE\tTIME\tREASON")
	for _, d := range dl {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\n", d.Seq, d.URL, d.Attempts, d.Node, d.Time.UTC().Format(time.RFC3339), d.Reason)
	}
	_ = tw.Flush()
	fmt.Fprintf(c.stderr, "%d dead letter(s)\n", len(dl))
	return nil
}

// printStatus prints crawls as a table; wide adds the pages dropped
// (filters, limits), sitemap pages and elements that lacked a field.
func printStatus(w io.Writer, sts []crawlctl.Status, wide bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "CRAWL\tSPIDER\tSTATE\tPAGES OK\tFAILED\tDEAD\tQUEUED\tITEMS\tRATE\tELAPSED"
	if wide {
		head += "\tDROPPED\tSITEMAPS\tINCOMPLETE"
	}
	fmt.Fprintln(tw, head)
	for _, s := range sts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%.1f/s\t%s", s.ID, s.Spider, s.State, s.PagesOK, s.PagesFailed,
			s.Dead, s.Queued, s.Items, s.Rate, (time.Duration(s.Elapsed * float64(time.Second))).Round(100*time.Millisecond))
		if wide {
			fmt.Fprintf(tw, "\t%d\t%d\t%d", s.Dropped, s.Sitemaps, s.Incomplete)
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
	// Why a failed crawl failed, under the table (a column would be wide).
	for _, s := range sts {
		if s.Error != "" {
			fmt.Fprintf(w, "%s %s: %s\n", s.ID, s.State, s.Error)
		}
	}
}

func listCrawls(ctx context.Context, c *cli, f *clientFlags, js jetstream.JetStream, crawls jetstream.KeyValue) error {
	sts, err := crawlctl.ListStatus(ctx, js, crawls)
	if err != nil {
		return err
	}
	if f.output == "json" {
		return writeJSON(c.stdout, sts)
	}
	printStatus(c.stdout, sts, f.output == "wide")
	return nil
}

// statusRetry is how long crawl wait keeps trying to read a status that
// fails, as a cluster's failover takes seconds.
const statusRetry = 2 * time.Minute

// waitCrawl shows progress until the crawl ends: a progress bar with rate
// and ETA on a terminal (github.com/schollz/progressbar), a plain line
// every few seconds otherwise. It fails unless the crawl completed.
func waitCrawl(ctx context.Context, c *cli, js jetstream.JetStream, crawls jetstream.KeyValue, id string) error {
	tty := isTerminal(c.stderr)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	var lastLine, failingSince time.Time
	var pb *progressbar.ProgressBar
	for {
		st, err := crawlctl.ReadStatus(ctx, js, crawls, id)
		if err != nil {
			// A server of the cluster dying, or JetStream moving a stream's
			// leader, makes reads fail for a few seconds while the crawl
			// goes on: scripts gating on the exit code must not fail for
			// that (found by review). An unknown crawl fails at once.
			if errors.Is(err, crawler.ErrUnknownCrawl) || ctx.Err() != nil {
				return err
			}
			if failingSince.IsZero() {
				failingSince = time.Now()
				fmt.Fprintf(c.stderr, "crawl %s: status not readable (%v); trying again for up to %v\n", id, err, statusRetry)
			} else if time.Since(failingSince) > statusRetry {
				return fmt.Errorf("crawl %s: status not readable for %v: %w", id, statusRetry, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
			}
			continue
		}
		if !failingSince.IsZero() {
			fmt.Fprintf(c.stderr, "crawl %s: status readable again\n", id)
			failingSince = time.Time{}
		}
		done := st.State != mesh.CrawlRunning
		switch {
		case tty:
			_, total := crawlProgress(st)
			if pb == nil && total == 0 && !done {
				break // not seeded yet: a bar of unknown size would read "0/-"
			}
			if pb == nil {
				pb = newCrawlBar(c.stderr, id, total)
			}
			updateBar(pb, st)
			if done {
				_ = pb.Finish()
				fmt.Fprintf(c.stderr, "\ncrawl %s: %s %s\n", id, st.State, progressText(st))
			}
		case done || time.Since(lastLine) >= 2*time.Second:
			fmt.Fprintf(c.stderr, "crawl %s: %s %s\n", id, st.State, progressText(st))
			lastLine = time.Now()
		}
		if done {
			if st.State != mesh.CrawlCompleted {
				if st.Error != "" {
					return fmt.Errorf("crawl %s %s: %s", id, st.State, st.Error)
				}
				return fmt.Errorf("crawl %s %s", id, st.State)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			if pb != nil {
				_ = pb.Exit()
				fmt.Fprintln(c.stderr)
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}

// newCrawlBar is the terminal progress bar of a crawl: pages done of pages
// known (done plus queued, which grows as links are found), pages/s and
// the time left at that rate.
func newCrawlBar(w io.Writer, id string, total int64) *progressbar.ProgressBar {
	if total <= 0 {
		total = -1 // unknown: a spinner
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("crawl "+id),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("pages"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionShowDescriptionAtLineEnd(),
	)
}

// updateBar sets the bar from a crawl's status; the description carries
// the items and failures, which the count does not show.
func updateBar(pb *progressbar.ProgressBar, st crawlctl.Status) {
	done, total := crawlProgress(st)
	if total > 0 && pb.GetMax64() != total {
		pb.ChangeMax64(total)
	}
	pb.Describe(fmt.Sprintf("items %d, failed %d, dead %d", st.Items, st.PagesFailed, st.Dead))
	_ = pb.Set64(done)
}

// crawlProgress is pages handled and pages known (handled plus queued);
// a finished crawl has handled all it knows.
func crawlProgress(st crawlctl.Status) (done, total int64) {
	done = st.PagesOK + st.PagesFailed + st.Dead + st.Dropped + st.Sitemaps
	total = done + int64(st.Queued)
	if st.State != mesh.CrawlRunning {
		total = done
	}
	return done, total
}

func progressText(st crawlctl.Status) string {
	s := fmt.Sprintf("pages %d ok, %d failed, %d dead, %d queued; items %d; %.1f pages/s",
		st.PagesOK, st.PagesFailed, st.Dead, st.Queued, st.Items, st.Rate)
	if st.Incomplete > 0 {
		s += fmt.Sprintf("; %d elements lacked a required field", st.Incomplete)
	}
	return s
}

// isTerminal says whether w is a terminal (golang.org/x/term).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// crawlLogs prints a crawl's task log, and with follow keeps printing
// until the crawl ends (then what its last tasks wrote, and returns). An
// unknown crawl is an error, as for crawl status.
func crawlLogs(ctx context.Context, c *cli, f *clientFlags, js jetstream.JetStream, id string, follow bool) error {
	kv, err := js.KeyValue(ctx, mesh.CrawlsBucket)
	if err != nil {
		return fmt.Errorf("open bucket %s: %w", mesh.CrawlsBucket, err)
	}
	cr, _, err := crawler.ReadCrawl(ctx, kv, id)
	if err != nil {
		return err
	}
	printLine := func(data []byte) error {
		if f.output == "json" {
			_, err := fmt.Fprintf(c.stdout, "%s\n", data)
			return err
		}
		var e mesh.LogEntry
		if err := json.Unmarshal(data, &e); err != nil {
			return nil
		}
		line := fmt.Sprintf("%s %-14s %-8s attempt %d", e.Time.Format(time.RFC3339), e.Node, e.Outcome, e.Attempt)
		if e.Status != 0 {
			line += fmt.Sprintf(" status %d", e.Status)
		}
		line += " " + e.URL
		if e.Incomplete > 0 {
			line += fmt.Sprintf(" (%d elements lacked a required field)", e.Incomplete)
		}
		if e.Error != "" {
			line += " (" + e.Error + ")"
		}
		if len(e.Warnings) > 0 {
			line += " (missing values: " + strings.Join(e.Warnings, "; ") + ")"
		}
		if e.Sampled > 1 {
			line += fmt.Sprintf(" (one line for %d successes)", e.Sampled)
		}
		_, err := fmt.Fprintln(c.stdout, line)
		return err
	}
	subject := mesh.LogSubject(id)
	if follow && cr.State == mesh.CrawlRunning {
		err = followSubject(ctx, js, mesh.LogsStream, subject, crawlEnded(ctx, kv, id), printLine)
	} else { // an ended crawl writes no more
		err = crawlctl.ReadSubject(ctx, js, mesh.LogsStream, subject, 0, printLine)
	}
	if ctx.Err() != nil {
		return nil // ^C: what was read is printed
	}
	return err
}

// crawlEnded is closed when crawl id's record leaves running (or ctx
// ends); its watch stops then.
func crawlEnded(ctx context.Context, kv jetstream.KeyValue, id string) <-chan struct{} {
	ended := make(chan struct{})
	w, err := kv.Watch(ctx, id, jetstream.IgnoreDeletes())
	if err != nil {
		close(ended) // cannot tell: read what there is and stop
		return ended
	}
	go func() { // owned by ctx and the watch: both end it
		defer close(ended)
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue
				}
				var cr mesh.Crawl
				if json.Unmarshal(e.Value(), &cr) == nil && cr.State != mesh.CrawlRunning {
					return
				}
			}
		}
	}()
	return ended
}

// After the end, --follow reads on until no line has come for quietFor
// (at most drainWait): the tasks a cancel caught on workers log after the
// record changed, and nothing in NATS counts them once the queue is
// purged (found by review: --follow ended two lines short). A page still
// fetching after that logs to `crawl logs`.
const (
	drainWait = 30 * time.Second
	quietFor  = 2 * time.Second
)

// followSubject calls fn with each message of subject in stream, in
// order, as they come, until ended is closed; then it returns once no
// message has come for quietFor (at most drainWait).
func followSubject(ctx context.Context, js jetstream.JetStream, stream, subject string, ended <-chan struct{}, fn func([]byte) error) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("open stream %s: %w", stream, err)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return fmt.Errorf("read %s: %w", subject, err)
	}
	msgs := make(chan jetstream.Msg)
	done := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select { // the consumer's goroutine waits for this loop, or its end
		case msgs <- m:
		case <-done:
		}
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", subject, err)
	}
	defer func() {
		close(done) // first: a handler waiting to hand a message over returns
		cc.Stop()
	}()
	var quiet, deadline <-chan time.Time // after the end
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ended:
			ended = nil
			quiet, deadline = time.After(quietFor), time.After(drainWait)
		case <-quiet:
			return nil
		case <-deadline:
			return nil
		case m := <-msgs:
			if err := fn(m.Data()); err != nil {
				return err
			}
			if quiet != nil {
				quiet = time.After(quietFor)
			}
		}
	}
}

// crawlSink is a sink's delivery progress for one crawl.
type crawlSink struct {
	Sink      string `json:"sink"`
	State     string `json:"state"`
	Delivered uint64 `json:"delivered"`
	Error     string `json:"error,omitempty"`
}

// sinkProgress is the delivery progress of every sink that takes the
// crawl's spider; none when there are no sinks (or they cannot be read).
func sinkProgress(ctx context.Context, js jetstream.JetStream, st crawlctl.Status) []crawlSink {
	kv, err := js.KeyValue(ctx, mesh.SinksBucket)
	if err != nil {
		return nil
	}
	sinks, sts, err := sink.ReadAll(ctx, kv)
	if err != nil {
		return nil
	}
	var out []crawlSink
	for _, s := range sinks {
		if !s.Takes(st.Spider) || (st.FinishedAt != nil && st.FinishedAt.Before(s.CreatedAt)) {
			continue
		}
		p := crawlSink{Sink: s.Name, State: "waiting"}
		if ss, ok := sts[s.Name]; ok {
			// a batch repeated after a crash counts twice: never show more
			// than the crawl has
			p.State, p.Delivered = ss.State, min(ss.Crawls[st.ID], uint64(max(st.Items, 0)))
			if ss.State == sink.StateFailing {
				p.Error = oneLine(ss.LastError)
			}
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Sink < out[j].Sink })
	return out
}
