package crawlctl

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

// ItemWriter writes a crawl's items, as stored in RESULTS, in an export
// format: jsonl (each item's JSON as stored, one a line) or csv (the
// fixed columns, then one column per data key: the fields the crawl's spec
// declares, then every other key the items carry, sorted; a list as its
// JSON text; a cell that would be a spreadsheet formula after a '). The CLI's `results export` and the HTTP API's export both
// write through it (see [Export]), so the two never differ.
//
// The csv columns must be known before the first row, and a spider's own
// code (script:, command:, ...) declares no fields, so for csv every item
// is first given to Scan, then to Write: the writer holds the column
// names, never the items.
type ItemWriter struct {
	bw     *bufio.Writer
	cw     *csv.Writer // nil for jsonl
	keys   map[string]bool
	fields []string // the data keys in column order; fixed by the header
	header bool
	n      int
}

// fixedColumns start every csv row; a data key of the same name is given
// the column "data."+name, so each header name stays unique.
var fixedColumns = []string{"url", "spider", "crawl", "depth", "fetched_at"}

// maxDataColumns bounds the csv columns a crawl's data keys make: items
// whose keys are themselves data (an id as a key) belong in jsonl.
const maxDataColumns = 10000

// NewItemWriter returns the writer; format is "jsonl" or "csv". For csv
// the header is written by the first Write (or Flush), after Scan has seen
// the items.
func NewItemWriter(w io.Writer, format string, cr *mesh.Crawl) (*ItemWriter, error) {
	iw := &ItemWriter{bw: bufio.NewWriterSize(w, 64<<10)}
	switch format {
	case "jsonl":
		return iw, nil
	case "csv":
	default:
		return nil, fmt.Errorf("format %q: want jsonl or csv", format)
	}
	iw.cw = csv.NewWriter(iw.bw)
	iw.keys = map[string]bool{}
	// The spec's fields come first, in the order written, even one no
	// item has.
	if s, err := spec.Parse(cr.Spec); err == nil {
		for _, it := range s.Items {
			for _, name := range it.FieldNames() {
				if !iw.keys[name] {
					iw.keys[name] = true
					iw.fields = append(iw.fields, name)
				}
			}
		}
	}
	return iw, nil
}

// NeedsScan says whether the items must go through Scan before Write.
func (iw *ItemWriter) NeedsScan() bool { return iw.cw != nil }

// Scan notes the data keys of one stored item (its JSON), for the csv
// columns; an undecodable item is skipped, as Write skips it.
func (iw *ItemWriter) Scan(b []byte) error {
	if iw.cw == nil {
		return nil
	}
	if iw.header {
		return errors.New("csv export: Scan after the header was written")
	}
	var it struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	if json.Unmarshal(b, &it) != nil {
		return nil
	}
	for k := range it.Data {
		if !iw.keys[k] {
			if len(iw.keys) >= maxDataColumns {
				return fmt.Errorf("csv export: the items have more than %d distinct data keys; export as jsonl", maxDataColumns)
			}
			iw.keys[k] = true
		}
	}
	return nil
}

// writeHeader fixes the columns: the declared fields, then the other keys
// sorted, each named so that no two header names are the same.
func (iw *ItemWriter) writeHeader() error {
	iw.header = true
	declared := len(iw.fields)
	for k := range iw.keys {
		if !slices.Contains(iw.fields[:declared], k) {
			iw.fields = append(iw.fields, k)
		}
	}
	sort.Strings(iw.fields[declared:])
	used := map[string]bool{}
	for _, c := range fixedColumns {
		used[c] = true
	}
	for _, k := range iw.fields {
		used[k] = true
	}
	header := slices.Clone(fixedColumns)
	for _, k := range iw.fields {
		name := k
		if slices.Contains(fixedColumns, k) {
			// "url" is the page's URL; the item's own url is "data.url"
			// (or "data.data.url" should the items also have "data.url").
			for name = "data." + k; used[name]; name = "data." + name {
			}
			used[name] = true
		}
		header = append(header, name)
	}
	return iw.writeRow(header)
}

// writeRow writes one csv record, each cell made inert for a spreadsheet.
func (iw *ItemWriter) writeRow(cells []string) error {
	for i, c := range cells {
		cells[i] = neutralise(c)
	}
	return iw.cw.Write(cells)
}

// neutralise prefixes a cell a spreadsheet would read as a formula (one
// starting with = + - @ tab or CR) with a single quote, as OWASP's CSV
// injection advice says: a crawled page chooses the values, and
// =HYPERLINK(...) would run in whoever opens the export. A number such as
// -5 or +3.2 is left as it is.
func neutralise(c string) string {
	if c == "" || !strings.ContainsRune("=+-@\t\r", rune(c[0])) || decimal.MatchString(c) {
		return c
	}
	return "'" + c
}

// decimal is a plain decimal number, sign and exponent allowed.
var decimal = regexp.MustCompile(`^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$`)

// Write writes one stored item (its JSON); an undecodable one is skipped
// in csv. A data key Scan did not see is an error: its value would be lost.
func (iw *ItemWriter) Write(b []byte) error {
	iw.n++
	if iw.cw == nil {
		if _, err := iw.bw.Write(b); err != nil {
			return err
		}
		return iw.bw.WriteByte('\n')
	}
	if !iw.header {
		if err := iw.writeHeader(); err != nil {
			return err
		}
	}
	var it mesh.Item
	if json.Unmarshal(b, &it) != nil {
		return nil
	}
	for k := range it.Data {
		if !iw.keys[k] {
			return fmt.Errorf("csv export: item %d (%s) has data key %q, which is not a column (its items were not scanned first)", iw.n, it.URL, k)
		}
	}
	row := []string{it.URL, it.Spider, it.Crawl, strconv.Itoa(it.Depth), it.FetchedAt.Format(time.RFC3339Nano)}
	for _, name := range iw.fields {
		row = append(row, it.Text(name))
	}
	return iw.writeRow(row)
}

// Count is the number of items written.
func (iw *ItemWriter) Count() int { return iw.n }

// Flush writes what is buffered (and the csv header, if no item came).
func (iw *ItemWriter) Flush() error {
	if iw.cw != nil {
		if !iw.header {
			if err := iw.writeHeader(); err != nil {
				return err
			}
		}
		iw.cw.Flush()
		if err := iw.cw.Error(); err != nil {
			return err
		}
	}
	return iw.bw.Flush()
}

// Export writes crawl cr's items in RESULTS to w as format and returns how
// many. It reads up to the crawl's last item as of its start, so a running
// crawl's later items are left for the next export. For csv it reads them
// twice, first for the columns (every data key), then for the rows, up to
// the same item: memory holds the column names, never the items. idle
// bounds the wait for each item (0: ctx alone bounds it).
func Export(ctx context.Context, js jetstream.JetStream, cr *mesh.Crawl, format string, w io.Writer, idle time.Duration) (int, error) {
	iw, err := NewItemWriter(w, format, cr)
	if err != nil {
		return 0, err
	}
	subject := mesh.ResultSubject(cr.ID)
	s, err := js.Stream(ctx, mesh.ResultsStream)
	if err != nil {
		return 0, fmt.Errorf("open stream %s: %w", mesh.ResultsStream, err)
	}
	last, err := lastSeq(ctx, s, subject)
	if err != nil {
		return 0, err
	}
	if iw.NeedsScan() && last > 0 {
		if err := readUpTo(ctx, s, subject, last, idle, iw.Scan); err != nil {
			return 0, err
		}
	}
	if last > 0 {
		err = readUpTo(ctx, s, subject, last, idle, iw.Write)
	}
	if err == nil {
		err = iw.Flush()
	}
	return iw.Count(), err
}

// ReadSubject calls fn with each message of subject in stream, in order,
// up to the subject's last message as of the call (a log still written to
// is read to that point); memory stays flat however long the stream is.
// idle bounds the wait for each message (0: ctx alone bounds it).
func ReadSubject(ctx context.Context, js jetstream.JetStream, stream, subject string, idle time.Duration, fn func([]byte) error) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("open stream %s: %w", stream, err)
	}
	last, err := lastSeq(ctx, s, subject)
	if err != nil || last == 0 {
		return err
	}
	return readUpTo(ctx, s, subject, last, idle, fn)
}

// LastSeq is the stream sequence of subject's last message in stream, 0
// for none.
func LastSeq(ctx context.Context, js jetstream.JetStream, stream, subject string) (uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("open stream %s: %w", stream, err)
	}
	return lastSeq(ctx, s, subject)
}

// lastSeq is the stream sequence of subject's last message, 0 for none.
func lastSeq(ctx context.Context, s jetstream.Stream, subject string) (uint64, error) {
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", subject, err)
	}
	if info.State.Subjects[subject] == 0 {
		return 0, nil
	}
	lm, err := s.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		return 0, fmt.Errorf("read %s: last message: %w", subject, err)
	}
	return lm.Sequence, nil
}

// readUpTo calls fn with each message of subject up to stream sequence
// last. It goes by that sequence, not the consumer's pending count: right
// after a stream leader change that has said 0 with most messages to come.
func readUpTo(ctx context.Context, s jetstream.Stream, subject string, last uint64, idle time.Duration, fn func([]byte) error) error {
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return fmt.Errorf("read %s: %w", subject, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("read %s: %w", subject, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	var opts []jetstream.NextOpt
	if idle > 0 {
		opts = append(opts, jetstream.NextMaxWait(idle))
	}
	for {
		m, err := it.Next(opts...)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, nats.ErrTimeout) {
				return fmt.Errorf("read %s: no message within %v, want them up to stream sequence %d", subject, idle, last)
			}
			return fmt.Errorf("read %s: %w", subject, err)
		}
		if err := fn(m.Data()); err != nil {
			return err
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("read %s: %w", subject, err)
		}
		if md.Sequence.Stream >= last {
			return nil
		}
	}
}
