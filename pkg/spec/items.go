package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// ItemRule yields one item per element picked by exactly one of Selector
// (CSS), XPath or JSON (a jq expression over a JSON response, each output
// one element).
type ItemRule struct {
	Selector string           `json:"selector,omitempty" yaml:"selector"`
	XPath    string           `json:"xpath,omitempty" yaml:"xpath"`
	JSON     string           `json:"json,omitempty" yaml:"json"`
	URL      string           `json:"url,omitempty" yaml:"url"` // regular expression on the page's final URL
	Fields   map[string]Field `json:"fields" yaml:"fields"`
	// Required names fields an element must have (not missing, not "",
	// not an empty list) to be an item.
	Required []string `json:"required,omitempty" yaml:"required"`

	order []string // Fields' names as written (Parse sets it); see FieldNames
}

// FieldNames lists the rule's field names in the order the spec gives
// them, or sorted for a rule built in code.
func (it ItemRule) FieldNames() []string {
	if len(it.order) == len(it.Fields) {
		ok := true
		for _, n := range it.order {
			_, has := it.Fields[n]
			ok = ok && has
		}
		if ok {
			return slices.Clone(it.order)
		}
	}
	names := slices.Collect(maps.Keys(it.Fields))
	slices.Sort(names)
	return names
}

// MarshalJSON writes fields in their spec order (a crawl record keeps the
// spec as JSON, and Parse reads that order back from it).
func (it ItemRule) MarshalJSON() ([]byte, error) {
	type plain ItemRule // without this method
	var fields bytes.Buffer
	fields.WriteByte('{')
	for i, n := range it.FieldNames() {
		if i > 0 {
			fields.WriteByte(',')
		}
		k, _ := json.Marshal(n)
		v, err := json.Marshal(it.Fields[n])
		if err != nil {
			return nil, err
		}
		fields.Write(k)
		fields.WriteByte(':')
		fields.Write(v)
	}
	fields.WriteByte('}')
	if it.Fields == nil {
		fields.Reset()
		fields.WriteString("null")
	}
	// The outer fields key hides plain's: encoding/json takes the shallower.
	return json.Marshal(struct {
		plain
		Fields json.RawMessage `json:"fields"`
	}{plain(it), fields.Bytes()})
}

// Item rule kinds, as returned by [ItemRule.Kind].
const (
	KindCSS   = "selector"
	KindXPath = "xpath"
	KindJSON  = "json"
)

// Kind tells how the rule picks its elements: [KindCSS], [KindXPath] or
// [KindJSON] ("" when a rule, not validated, gives none).
func (it ItemRule) Kind() string {
	switch {
	case it.Selector != "":
		return KindCSS
	case it.XPath != "":
		return KindXPath
	case it.JSON != "":
		return KindJSON
	}
	return ""
}

// Field is one value of an item, picked inside the item element by at most
// one of CSS, XPath or JSON (none: the element itself): the trimmed text
// of the first match, or its attribute Attr; Regex narrows it to the first
// match (or its first group); All takes every match as a list.
type Field struct {
	CSS   string `json:"css,omitempty" yaml:"css"`
	XPath string `json:"xpath,omitempty" yaml:"xpath"`
	JSON  string `json:"json,omitempty" yaml:"json"`
	Attr  string `json:"attr,omitempty" yaml:"attr"`
	Regex string `json:"regex,omitempty" yaml:"regex"`
	All   bool   `json:"all,omitempty" yaml:"all"`
}

func (c *checker) items(s *Spec) {
	for i, it := range s.Items {
		p := fmt.Sprintf("items[%d]", i)
		var kinds []string
		for _, k := range []struct{ name, v string }{{KindCSS, it.Selector}, {KindXPath, it.XPath}, {KindJSON, it.JSON}} {
			if k.v != "" {
				kinds = append(kinds, k.name)
			}
		}
		switch len(kinds) {
		case 0:
			c.add("%s.selector: give one of selector (CSS), xpath or json (jq) to pick the item elements", p)
		case 1:
		default:
			c.add("%s: give only one of selector, xpath and json, not %s", p, strings.Join(kinds, " and "))
		}
		if it.Selector != "" {
			if err := checkSelector(it.Selector); err != nil {
				c.add("%s.selector %q: bad CSS selector: %v", p, it.Selector, err)
			}
		}
		if it.XPath != "" {
			if err := checkXPath(it.XPath); err != nil {
				c.add("%s.xpath %q: bad XPath: %v", p, it.XPath, err)
			}
		}
		if it.JSON != "" {
			if err := checkJQ(it.JSON); err != nil {
				c.add("%s.json %q: bad jq expression: %v", p, it.JSON, err)
			}
		}
		if it.URL != "" {
			if err := checkRegex(it.URL); err != nil {
				c.add("%s.url %q: %v", p, it.URL, err)
			}
		}
		kind := ""
		if len(kinds) == 1 {
			kind = kinds[0]
		}
		c.fields(p, kind, it.Fields)
		for j, r := range it.Required {
			if _, ok := it.Fields[r]; !ok {
				c.add("%s.required[%d] %q: no field of that name in %s.fields", p, j, r, p)
			}
		}
	}
}

func (c *checker) fields(p, kind string, fields map[string]Field) {
	if len(fields) == 0 {
		c.add("%s.fields: at least one field is needed", p)
	}
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := fields[n]
		fp := p + ".fields." + n
		if n == "" {
			c.add("%s.fields: a field has an empty name", p)
		}
		var picks []string
		for _, k := range []struct{ name, v string }{{"css", f.CSS}, {"xpath", f.XPath}, {"json", f.JSON}} {
			if k.v != "" {
				picks = append(picks, k.name)
			}
		}
		if len(picks) > 1 {
			c.add("%s: give at most one of css, xpath and json, not %s", fp, strings.Join(picks, " and "))
		}
		if f.CSS != "" {
			if err := checkSelector(f.CSS); err != nil {
				c.add("%s.css %q: bad CSS selector: %v", fp, f.CSS, err)
			}
		}
		if f.XPath != "" {
			if err := checkXPath(f.XPath); err != nil {
				c.add("%s.xpath %q: bad XPath: %v", fp, f.XPath, err)
			}
		}
		if f.JSON != "" {
			if err := checkJQ(f.JSON); err != nil {
				c.add("%s.json %q: bad jq expression: %v", fp, f.JSON, err)
			}
		}
		if f.Regex != "" {
			if err := checkRegex(f.Regex); err != nil {
				c.add("%s.regex %q: %v", fp, f.Regex, err)
			}
		}
		switch kind {
		case KindJSON:
			if f.CSS != "" {
				c.add("%s.css: a json item rule picks fields with json (jq), not CSS", fp)
			}
			if f.XPath != "" {
				c.add("%s.xpath: a json item rule picks fields with json (jq), not XPath", fp)
			}
			if f.Attr != "" {
				c.add("%s.attr %q: JSON values have no attributes", fp, f.Attr)
			}
		case KindCSS, KindXPath:
			if f.JSON != "" {
				c.add("%s.json: a jq expression needs a json item rule; this rule uses %s (HTML): use css or xpath", fp, kind)
			}
		}
	}
}
