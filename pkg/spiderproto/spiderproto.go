// Package spiderproto is the protocol every programmable spider speaks
// (DESIGN.md, "Programmable spiders"): a JavaScript `script` and a
// `command` in any language both get one [Page] per fetched page and answer
// one [Answer]. The mesh keeps fetching, de-duplication and publishing; a
// spider only reads a page and answers items and links.
package spiderproto

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
)

// Page is what a spider gets for one fetched page (2xx only).
type Page struct {
	URL     string            `json:"url"` // final canonical URL after redirects
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"` // lower-case names; repeated values joined by ", "
	Body    string            `json:"body"`    // decoded to UTF-8
	Depth   int               `json:"depth"`
	Crawl   string            `json:"crawl"`
	Spider  string            `json:"spider"`
}

// Answer is what a spider returns for a page.
type Answer struct {
	Items []map[string]any `json:"items"`
	Links []string         `json:"links"` // relative ones are resolved against Page.URL
}

// Headers turns HTTP headers into the page's header object.
func Headers(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		out[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	return out
}

// Normalize makes an answer's item values what items hold everywhere in
// the mesh: strings, or lists of strings. Numbers and booleans become
// their JSON text, objects their compact JSON, null a missing value; an
// array becomes a list, each element converted the same way (a null
// element dropped). It returns an error naming the item and field of a
// value it cannot convert.
func Normalize(a *Answer) error {
	for i, it := range a.Items {
		for k, v := range it {
			if v == nil {
				delete(it, k)
				continue
			}
			nv, err := value(v, true)
			if err != nil {
				return fmt.Errorf("items[%d].%s: %w", i, k, err)
			}
			if nv == nil { // NaN or ±Infinity: see value
				delete(it, k)
				continue
			}
			it[k] = nv
		}
	}
	return nil
}

func value(v any, top bool) (any, error) {
	js := jsonable(v)
	switch x := js.(type) {
	case nil: // NaN or ±Infinity: JSON's null, a missing value
		return nil, nil
	case string:
		return x, nil
	case []string:
		if top {
			return x, nil
		}
	case []any:
		if !top {
			break
		}
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, err := value(e, false)
			if err != nil {
				return nil, err
			}
			if s != nil {
				out = append(out, s.(string))
			}
		}
		return out, nil
	}
	b, err := json.Marshal(js)
	if err != nil {
		return nil, fmt.Errorf("value %T is not JSON: %v", v, err)
	}
	return string(b), nil
}

// jsonable is v as JSON.stringify sees a script's values: NaN and
// ±Infinity are null, a Date its ISO text (found by review: parseFloat of
// a missing price, NaN, failed the page on every attempt, and a Date kept
// its JSON quotes inside the string).
func jsonable(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
	case time.Time:
		return jsDate(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	}
	return v
}

// jsDate is a Date as JavaScript's toISOString writes it.
func jsDate(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
