package crawlctl

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/extract"
	"github.com/crawlmesh/crawlmesh/pkg/files"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

// A seeds file is a file of the Object Store files with one URL a line;
// blank lines and lines starting with # are skipped. `crawl start SPIDER
// --seeds-file NAME` seeds the crawl from it instead of the spec's
// start_urls (its sitemaps still apply): each URL is canonicalised and
// admitted at depth 0 through the seen-set and page budget, as start URLs
// are, in batches, so memory stays flat whatever the file's size. A bad
// line is reported with its line number in the crawl's logs (`crawl logs
// ID`, outcome bad-seed) and the master's log, and the rest goes on.
//
// The master replies with the crawl id as soon as the record exists and
// seeds in the background; the crawl cannot complete before its seeding
// has (the record's seeded_at), and a master that dies mid-way leaves it
// to the next leader, which reads the file again from the start (what was
// admitted already is recognised through the seen-set).

// SeedBatch is how many URLs of a seeds file are admitted at a time.
const SeedBatch = 500

// maxSeedLine is the longest line of a seeds file taken as a URL.
const maxSeedLine = 8 << 10

// maxBadSeedLogs bounds the bad lines reported one by one per seeding.
const maxBadSeedLogs = 1000

// OutcomeBadSeed is the log outcome of a seeds-file line that is not a URL.
const OutcomeBadSeed = "bad-seed"

// record is the crawl record with what only crawl control reads: the
// seeds file, kept until the crawl is seeded (a re-seed needs it).
type record struct {
	mesh.Crawl
	SeedsFile string `json:"seeds_file,omitempty"`
}

// SeedReport is the outcome of seeding from a file.
type SeedReport struct {
	Lines    int // lines read
	URLs     int // valid URL lines
	Admitted int // admitted now (not already in the crawl, within max_pages)
	Bad      int // lines that are not a crawlable URL
}

// StartSeeds starts a crawl of the named spider seeded from the seeds file
// name in the Object Store files. It returns the crawl id once the record
// exists; the seeding runs in the background under ctx (the master's term:
// when ctx ends, a later leader finishes it).
func (c *Control) StartSeeds(ctx context.Context, spider, name string) (string, error) {
	if err := files.ValidName(name); err != nil {
		return "", fmt.Errorf("seeds file: %w", err)
	}
	st, err := files.Open(ctx, c.js)
	if err != nil {
		return "", fmt.Errorf("seeds file %s: %w", name, err)
	}
	if _, err := st.Stat(ctx, name); err != nil {
		return "", fmt.Errorf("seeds file: %w", err)
	}
	return c.start(ctx, spider, "", name)
}

// seedFileAsync runs seedFile in the background, once per crawl per master.
func (c *Control) seedFileAsync(ctx context.Context, cr *mesh.Crawl, s *spec.Spec, rev uint64, name string, redelivered bool) {
	c.seedMu.Lock()
	if c.seeding[cr.ID] {
		c.seedMu.Unlock()
		return
	}
	c.seeding[cr.ID] = true
	c.seedMu.Unlock()
	c.wg.Go(func() {
		defer func() {
			c.seedMu.Lock()
			delete(c.seeding, cr.ID)
			c.seedMu.Unlock()
		}()
		var rep SeedReport
		var err error
		for attempt := 1; ; attempt++ {
			rep, err = c.seedFile(ctx, cr, s, rev, name, redelivered || attempt > 1)
			if err == nil || ctx.Err() != nil {
				break
			}
			if errors.Is(err, files.ErrNotFound) {
				// Removed before the crawl was seeded: it cannot be.
				_ = c.Fail(ctx, cr.ID, fmt.Sprintf("seeds file %s was removed before the crawl was seeded", name))
				return
			}
			if attempt == 3 {
				break
			}
			c.log.Warn("seeding from file, retrying", "crawl", cr.ID, "file", name, "attempt", attempt, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(attempt) * time.Second):
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				// check() tries again from the start later.
				c.log.Error("seeding from file failed", "crawl", cr.ID, "file", name, "err", err)
				c.logEntry(cr.ID, mesh.LogEntry{Outcome: OutcomeBadSeed, Error: fmt.Sprintf("seeds file %s: %v (the master tries again)", name, err)}, "")
			}
			return
		}
		c.log.Info("crawl seeded from file", "crawl", cr.ID, "file", name, "lines", rep.Lines,
			"urls", rep.URLs, "admitted", rep.Admitted, "bad", rep.Bad)
	})
}

// isSeeding says whether this master is seeding the crawl now.
func (c *Control) isSeeding(id string) bool {
	c.seedMu.Lock()
	defer c.seedMu.Unlock()
	return c.seeding[id]
}

// seedFile admits the spec's sitemaps and every URL of the seeds file,
// then marks the record seeded (compare-and-swap at rev).
func (c *Control) seedFile(ctx context.Context, cr *mesh.Crawl, s *spec.Spec, rev uint64, name string, redelivered bool) (SeedReport, error) {
	var rep SeedReport
	maps, err := sitemapSeeds(cr.ID, s)
	if err != nil {
		return rep, err
	}
	if err := c.admit(ctx, layoutOf(cr, s), cr.ID, 0, true, maps); err != nil {
		return rep, err
	}
	st, err := files.Open(ctx, c.js)
	if err != nil {
		return rep, err
	}
	r, err := st.Open(ctx, name)
	if err != nil {
		return rep, err
	}
	defer r.Close()
	rules, err := extract.Compile(s)
	if err != nil {
		return rep, fmt.Errorf("spider %s: %w", s.Name, err)
	}
	br := bufio.NewReaderSize(r, 64<<10)
	batch := make([]mesh.Task, 0, SeedBatch)
	inBatch := make(map[string]bool, SeedBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		n, err := c.admitCount(ctx, layoutOf(cr, s), cr.ID, s.MaxPages, redelivered, batch)
		rep.Admitted += n
		batch = batch[:0]
		clear(inBatch)
		if err != nil {
			return err
		}
		// Stop when the crawl was cancelled or failed meanwhile.
		now, _, err := crawler.ReadCrawl(ctx, c.crawls, cr.ID)
		if err != nil {
			return err
		}
		if now.State != mesh.CrawlRunning {
			return errCrawlEnded
		}
		return nil
	}
	bad := func(line int, raw, why string) {
		rep.Bad++
		if len(raw) > 200 {
			raw = raw[:200] + "…"
		}
		if rep.Bad <= maxBadSeedLogs {
			msg := fmt.Sprintf("seeds file %s line %d: %s", name, line, why)
			c.log.Warn("bad seed line", "crawl", cr.ID, "file", name, "line", line, "text", raw, "reason", why)
			c.logEntry(cr.ID, mesh.LogEntry{URL: raw, Outcome: OutcomeBadSeed, Error: msg}, fmt.Sprintf("%s.seed.%d", cr.ID, line))
		}
	}
	for line := 1; ; line++ {
		text, long, err := readLine(br)
		if errors.Is(err, io.EOF) && text == "" && !long {
			break
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return rep, fmt.Errorf("read seeds file %s at line %d: %w", name, line, err)
		}
		rep.Lines++
		t := strings.TrimSpace(text)
		switch {
		case long:
			bad(line, t, fmt.Sprintf("longer than %d bytes", maxSeedLine))
		case t == "" || strings.HasPrefix(t, "#"):
		default:
			cu, cerr := rules.StartURL(t)
			if cerr != nil {
				bad(line, t, strings.TrimPrefix(cerr.Error(), "urlnorm: "))
				break
			}
			if why := rules.SeedRefused(cu); why != "" {
				// Seeds pass allowed_domains and links.deny like links:
				// the spider's headers, cookies and session are for
				// its own hosts (found by review).
				bad(line, t, why)
				break
			}
			rep.URLs++
			id := mesh.URLHash(cu)
			if inBatch[id] {
				break
			}
			inBatch[id] = true
			batch = append(batch, mesh.Task{ID: id, Crawl: cr.ID, Spider: s.Name, URL: cu})
			if len(batch) == SeedBatch {
				if err := flush(); err != nil {
					return rep, stopped(err)
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	if err := flush(); err != nil {
		return rep, stopped(err)
	}
	if rep.Bad > maxBadSeedLogs {
		c.logEntry(cr.ID, mesh.LogEntry{Outcome: OutcomeBadSeed,
			Error: fmt.Sprintf("seeds file %s: %d bad lines in all; the first %d are listed", name, rep.Bad, maxBadSeedLogs)}, cr.ID+".seed.more")
	}
	now := c.now().UTC()
	cr.SeededAt = &now
	b, _ := json.Marshal(record{Crawl: *cr, SeedsFile: name})
	if _, err := c.crawls.Update(ctx, cr.ID, b, rev); err != nil {
		if cur, _, rerr := crawler.ReadCrawl(ctx, c.crawls, cr.ID); rerr == nil && cur.State != mesh.CrawlRunning {
			return rep, nil // cancelled at the very end
		}
		return rep, fmt.Errorf("mark %s seeded: %w", cr.ID, err)
	}
	return rep, nil
}

var errCrawlEnded = errors.New("crawl ended while seeding")

func stopped(err error) error {
	if errors.Is(err, errCrawlEnded) {
		return nil
	}
	return err
}

// readLine reads one line without its end; long reports a line over
// maxSeedLine (its text is cut there, the rest is skipped).
func readLine(br *bufio.Reader) (string, bool, error) {
	var sb strings.Builder
	long := false
	for {
		frag, err := br.ReadSlice('\n')
		if !long {
			if sb.Len()+len(frag) > maxSeedLine+1 {
				long = true
				sb.Write(frag[:max(0, min(len(frag), maxSeedLine-sb.Len()))])
			} else {
				sb.Write(frag)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		s := strings.TrimSuffix(strings.TrimSuffix(sb.String(), "\n"), "\r")
		return s, long, err
	}
}

// admit admits candidates and publishes the admitted tasks.
func (c *Control) admit(ctx context.Context, lay mesh.Layout, crawl string, maxPages int, redelivered bool, cands []mesh.Task) error {
	_, err := c.admitCount(ctx, lay, crawl, maxPages, redelivered, cands)
	return err
}

func (c *Control) admitCount(ctx context.Context, lay mesh.Layout, crawl string, maxPages int, redelivered bool, cands []mesh.Task) (int, error) {
	if len(cands) == 0 {
		return 0, nil
	}
	pub := c.pub.With(lay)
	adm, err := pub.Admit(ctx, crawl, maxPages, "", redelivered, cands)
	if err != nil {
		return 0, fmt.Errorf("seed %s: %w", crawl, err)
	}
	futs := make([]jetstream.PubAckFuture, 0, len(adm.Tasks))
	for _, t := range adm.Tasks {
		f, err := pub.PublishTask(t)
		if err != nil {
			return 0, fmt.Errorf("seed %s: %w", crawl, err)
		}
		futs = append(futs, f)
	}
	if err := crawler.Wait(ctx, futs); err != nil {
		return 0, fmt.Errorf("seed %s: %w", crawl, err)
	}
	return len(adm.Tasks), nil
}

// logEntry publishes a line of the crawl's log (best effort); msgID, if
// set, keeps a re-seed from logging a line twice.
func (c *Control) logEntry(crawl string, e mesh.LogEntry, msgID string) {
	e.Time = c.now().UTC()
	e.Node = "master"
	b, _ := json.Marshal(e)
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	_, _ = c.js.PublishAsync(mesh.LogSubject(crawl), b, opts...)
}

// seedsFileOf reads the seeds file a crawl record names ("" for none).
func (c *Control) seedsFileOf(ctx context.Context, id string) string {
	e, err := c.crawls.Get(ctx, id)
	if err != nil {
		return ""
	}
	var r record
	if json.Unmarshal(e.Value(), &r) != nil {
		return ""
	}
	return r.SeedsFile
}
