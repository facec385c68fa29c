package crawlctl

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

// ItemWriter writes a crawl's items, as stored in RESULTS, in an export
// format: jsonl (each item's JSON as stored, one a line) or csv (the
// fixed columns, then one column per item field of the crawl's spec, a
// list as its JSON text). The CLI's `results export` and the HTTP API's
// export both write through it, so the two never differ.
type ItemWriter struct {
	bw     *bufio.Writer
	cw     *csv.Writer // nil for jsonl
	fields []string
	n      int
}

// NewItemWriter writes the header (csv) and returns the writer; format is
// "jsonl" or "csv".
func NewItemWriter(w io.Writer, format string, cr *mesh.Crawl) (*ItemWriter, error) {
	iw := &ItemWriter{bw: bufio.NewWriterSize(w, 64<<10)}
	switch format {
	case "jsonl":
		return iw, nil
	case "csv":
	default:
		return nil, fmt.Errorf("format %q: want jsonl or csv", format)
	}
	// The header comes before the first row, so the columns are every
	// field the spec can give.
	if s, err := spec.Parse(cr.Spec); err == nil {
		set := map[string]bool{}
		for _, it := range s.Items {
			for name := range it.Fields {
				set[name] = true
			}
		}
		for name := range set {
			iw.fields = append(iw.fields, name)
		}
		sort.Strings(iw.fields)
	}
	iw.cw = csv.NewWriter(iw.bw)
	return iw, iw.cw.Write(append([]string{"url", "spider", "crawl", "depth", "fetched_at"}, iw.fields...))
}

// Write writes one stored item (its JSON); an undecodable one is skipped
// in csv.
func (iw *ItemWriter) Write(b []byte) error {
	iw.n++
	if iw.cw == nil {
		if _, err := iw.bw.Write(b); err != nil {
			return err
		}
		return iw.bw.WriteByte('\n')
	}
	var it mesh.Item
	if json.Unmarshal(b, &it) != nil {
		return nil
	}
	row := []string{it.URL, it.Spider, it.Crawl, strconv.Itoa(it.Depth), it.FetchedAt.Format(time.RFC3339Nano)}
	for _, name := range iw.fields {
		row = append(row, it.Text(name))
	}
	return iw.cw.Write(row)
}

// Count is the number of items written.
func (iw *ItemWriter) Count() int { return iw.n }

// Flush writes what is buffered.
func (iw *ItemWriter) Flush() error {
	if iw.cw != nil {
		iw.cw.Flush()
		if err := iw.cw.Error(); err != nil {
			return err
		}
	}
	return iw.bw.Flush()
}

// ListStatus reads the status of every crawl in bucket crawls, in key
// order; a crawl whose status cannot be read is left out.
func ListStatus(ctx context.Context, js jetstream.JetStream, crawls jetstream.KeyValue) ([]Status, error) {
	keys, err := crawls.Keys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, err
	}
	var sts []Status
	for _, k := range keys {
		if st, err := ReadStatus(ctx, js, crawls, k); err == nil {
			sts = append(sts, st)
		}
	}
	return sts, nil
}
