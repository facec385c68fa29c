package extract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"strconv"
	"time"

	"github.com/itchyny/gojq"

	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

// jqTimeout bounds the jq work of one page: an expression that never
// ends (a spec author's mistake) fails the page, not the worker.
var jqTimeout = 10 * time.Second

// maxOutputs bounds what one expression may yield on one page.
const maxOutputs = 100_000

func (r *Rules) pageJSON(final *url.URL, body []byte) (Result, error) {
	doc, err := decodeJSON(body)
	if err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), jqTimeout)
	defer cancel()
	var res Result
	var pageURL string
	for _, ir := range r.items {
		if ir.kind != spec.KindJSON {
			continue
		}
		if ir.url != nil {
			if pageURL == "" {
				pageURL = r.pageURL(final)
			}
			if !ir.matchesURL(pageURL) {
				continue
			}
		}
		var elems []any
		err := run(ctx, ir.jq, doc, func(v any) bool { elems = append(elems, v); return true }, func(err error) {
			res.warn(fmt.Sprintf("items[%d].json", ir.index), err)
		})
		if err != nil {
			return Result{}, err
		}
		for _, e := range elems {
			item, ok, err := jsonItem(ctx, ir, e, &res)
			if err != nil {
				return Result{}, err
			}
			if ok {
				res.Items = append(res.Items, item)
			} else {
				res.Incomplete++
			}
		}
	}
	links := linkSet{r: r}
	for i, code := range r.jsonLink {
		err := run(ctx, code, doc, func(v any) bool {
			if s, ok := v.(string); ok {
				links.add(final, s)
			}
			return true
		}, func(err error) { res.warn(fmt.Sprintf("links.json[%d]", i), err) })
		if err != nil {
			return Result{}, err
		}
	}
	res.Links = links.out
	return res, nil
}

// decodeJSON reads one JSON value, numbers kept as json.Number so they
// come back as written (and big integers keep every digit).
func decodeJSON(body []byte) (any, error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("parse JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("parse JSON: more after the value at byte %d", dec.InputOffset())
	}
	return v, nil
}

func jsonItem(ctx context.Context, ir *itemRule, e any, res *Result) (map[string]any, bool, error) {
	item := make(map[string]any, len(ir.fields))
	for _, f := range ir.fields {
		c := collect{f: f}
		if f.jq == nil {
			c.add(jsonText(e), true)
		} else if err := run(ctx, f.jq, e, func(v any) bool { return c.add(jsonText(v), true) }, func(err error) {
			res.warn(fmt.Sprintf("items[%d].fields.%s", ir.index, f.name), err)
		}); err != nil {
			return nil, false, err
		}
		v, ok := c.value(true)
		if f.required && empty(v, ok) {
			return nil, false, nil
		}
		if ok {
			item[f.name] = v
		}
	}
	return item, true, nil
}

// run feeds the non-null outputs of code on v to out until it returns
// false. A jq error ends the outputs (the data is not shaped as the
// expression expects: like a selector matching nothing) and goes to
// jqErr, for the page's warnings; only running out of time is an error.
func run(ctx context.Context, code *gojq.Code, v any, out func(any) bool, jqErr func(error)) error {
	iter := code.RunWithContext(ctx, v)
	for n := 0; n < maxOutputs; n++ {
		x, ok := iter.Next()
		if !ok {
			return nil
		}
		if err, isErr := x.(error); isErr {
			if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
				return fmt.Errorf("jq ran over %v on this page", jqTimeout)
			}
			if h := (*gojq.HaltError)(nil); !errors.As(err, &h) || h.Value() != nil {
				jqErr(err) // a bare halt is a stop, not a mistake
			}
			return nil
		}
		if x != nil && !out(x) {
			return nil
		}
	}
	return nil
}

// jsonText is a JSON value as an item holds it: strings as they are,
// anything else as its compact JSON text (7, true, {"a":1}).
func jsonText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	case int:
		return strconv.Itoa(v)
	case *big.Int:
		return v.String()
	}
	b, _ := gojq.Marshal(v)
	return string(b)
}
