package extract

import (
	"fmt"
	"mime"
	"net/url"
	"strings"
)

// Result is what a page yields.
type Result struct {
	// Items: one map per element, values string or []string (all: true).
	Items []map[string]any
	// Links: absolute, canonical, strip_query applied, passed
	// allowed_domains and allow/deny; unique, in page order.
	Links []string
	// Incomplete counts elements dropped for lacking a required field.
	Incomplete int
	// Warnings are the spec's expressions that failed on this page's data
	// (a jq error such as ascii_downcase of a number): the first error of
	// each, for at most maxWarnings expressions. What they would have
	// given is missing, as when a selector matches nothing; the warning
	// says why.
	Warnings []string
}

const maxWarnings = 3

// warn records err of the expression at where (items[0].fields.price),
// unless that expression has a warning already.
func (r *Result) warn(where string, err error) {
	if len(r.Warnings) >= maxWarnings {
		return
	}
	for _, have := range r.Warnings {
		if strings.HasPrefix(have, where+": ") {
			return
		}
	}
	r.Warnings = append(r.Warnings, where+": "+err.Error())
}

// IsJSON reports whether a Content-Type is JSON: application/json, the
// text/json older servers send, or any type with the +json suffix
// (application/ld+json, application/vnd.api+json).
func IsJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil && mt == "" {
		return false
	}
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// Page extracts the items and links of a page fetched from final (after
// redirects). A JSON content type is read as JSON, anything else as HTML
// (the caller decides what it fetches). Rules of the other kind yield
// nothing, and a page no rule reads is not parsed at all.
func (r *Rules) Page(final *url.URL, contentType string, body []byte) (Result, error) {
	if final == nil {
		return Result{}, fmt.Errorf("extract: no page URL")
	}
	if IsJSON(contentType) {
		if !r.json {
			return Result{}, nil
		}
		return r.pageJSON(final, body)
	}
	if !r.html {
		return Result{}, nil
	}
	return r.pageHTML(final, body)
}
