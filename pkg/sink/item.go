package sink

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"time"
)

// Item is one item as a sink delivers it: the object of `results export`
// plus its id.
type Item struct {
	ID        string          `json:"id"`
	URL       string          `json:"url"`
	Spider    string          `json:"spider"`
	Crawl     string          `json:"crawl"`
	Depth     int             `json:"depth"`
	FetchedAt time.Time       `json:"fetched_at"`
	Data      json.RawMessage `json:"data"`
}

// Batch is what one delivery attempt carries. ID is the same on every
// retry of the batch: it is derived from the sink and its item ids.
type Batch struct {
	ID    string
	Items []Item
}

// batchID is a stable id for a sink's batch of items.
func batchID(sink string, items []Item) string {
	h := sha256.New()
	h.Write([]byte(sink))
	for _, it := range items {
		h.Write([]byte{0})
		h.Write([]byte(it.ID))
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:18])
}

// Deliverer sends batches to one target.
type Deliverer interface {
	// Deliver returns nil only once the target holds every item of b.
	Deliver(ctx context.Context, b Batch) error
	Close()
}

// permanentError marks a failure that retrying will not heal.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// Permanent wraps err as a failure that needs a fix from the user.
func Permanent(err error) error { return permanentError{err} }

// IsPermanent reports whether err needs a fix from the user.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// redactor replaces expanded secret values in text.
type redactor struct{ pairs []string }

// newRedactor replaces each value (as is, and URL-escaped as it would
// appear in a URL quoted by an error) with its reference.
func newRedactor(vals map[string]string) *redactor {
	r := &redactor{}
	for name, v := range vals {
		if len(v) < 3 {
			continue // too short to replace without mangling other text
		}
		for _, f := range []string{v, url.QueryEscape(v), url.PathEscape(v)} {
			r.pairs = append(r.pairs, f, "${env:"+name+"}")
		}
	}
	return r
}

func (r *redactor) String(s string) string {
	if r == nil || len(r.pairs) == 0 {
		return s
	}
	return strings.NewReplacer(r.pairs...).Replace(s)
}
