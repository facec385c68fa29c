package extract

import (
	"bytes"
	"fmt"
	"github.com/crawlmesh/crawlmesh/pkg/htmlnav"
	"net/url"
	"strconv"
	"strings"

	"github.com/andybalholm/cascadia"
	"github.com/antchfx/xpath"
	"golang.org/x/net/html"

	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

var baseSel = cascadia.MustCompile("base[href]")

// maxNesting is the depth capNesting keeps a page under, below the
// parser's limit of 512 with room for the elements it adds itself.
const maxNesting = 400

// capNesting rewrites body so that no element opens deeper than max: an
// element that would is preceded by the end tags of the innermost quarter
// of those open, so a deep unclosed run goes on from shallower, its
// content kept.
func capNesting(body []byte, max int) []byte {
	z := html.NewTokenizer(bytes.NewReader(body))
	var out bytes.Buffer
	out.Grow(len(body) + 1024)
	var open []string
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return out.Bytes()
		}
		raw := z.Raw()
		switch tt {
		case html.StartTagToken:
			name, _ := z.TagName()
			tag := string(name)
			if voidElement[tag] {
				break
			}
			// At the cap, close down to three quarters of it: the new
			// element then has room for its own children.
			if len(open) >= max {
				for len(open) > max*3/4 {
					out.WriteString("</" + open[len(open)-1] + ">")
					open = open[:len(open)-1]
				}
			}
			open = append(open, tag)
		case html.EndTagToken:
			name, _ := z.TagName()
			for i := len(open) - 1; i >= 0; i-- {
				if open[i] == string(name) {
					open = open[:i]
					break
				}
			}
		}
		out.Write(raw)
	}
}

var voidElement = map[string]bool{"area": true, "base": true, "br": true, "col": true, "embed": true, "hr": true,
	"img": true, "input": true, "link": true, "meta": true, "param": true, "source": true, "track": true, "wbr": true}

// htmlPage is one parsed HTML page.
type htmlPage struct {
	r    *Rules
	root *html.Node
	base *url.URL // <base href>, else the final URL
}

func (r *Rules) pageHTML(final *url.URL, body []byte) (Result, error) {
	root, err := html.Parse(bytes.NewReader(body))
	if err != nil && strings.Contains(err.Error(), "open stack of elements") {
		// x/net/html gives up past 512 open elements; browsers go on. A
		// page of 600 unclosed <div>s lost every item and link (found by
		// review): parse it again with its nesting capped.
		root, err = html.Parse(bytes.NewReader(capNesting(body, maxNesting)))
	}
	if err != nil {
		return Result{}, fmt.Errorf("parse HTML: %w", err)
	}
	h := &htmlPage{r: r, root: root, base: final}
	if b := cascadia.Query(root, baseSel); b != nil {
		if u, err := final.Parse(strings.TrimSpace(attr(b, "href"))); err == nil {
			h.base = u
		}
	}
	var res Result
	var pageURL string
	for _, ir := range r.items {
		if ir.kind == spec.KindJSON {
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
		for _, e := range h.elements(ir) {
			if item, ok := h.item(ir, e); ok {
				res.Items = append(res.Items, item)
			} else {
				res.Incomplete++
			}
		}
	}
	links := linkSet{r: r}
	for _, sel := range r.follow {
		for _, n := range cascadia.QueryAll(root, sel) {
			href, ok := htmlnav.LookupAttr(n, "href")
			if !ok || (r.nofollow && relNofollow(n)) {
				continue
			}
			links.add(h.base, href)
		}
	}
	res.Links = links.out
	return res, nil
}

// pageURL is the final URL as the crawl names it, for url: filters.
func (r *Rules) pageURL(final *url.URL) string {
	if c, err := r.canonical(nil, final.String()); err == nil {
		return c
	}
	return final.String()
}

// elements are the item elements of a rule, in document order. An XPath
// may pick attributes or text: they stand in as elements holding only
// their value.
func (h *htmlPage) elements(ir *itemRule) []*html.Node {
	if ir.css != nil {
		return cascadia.QueryAll(h.root, ir.css)
	}
	var out []*html.Node
	h.xpath(ir.xpath, h.root, func(n *htmlnav.Nav) bool {
		if n.OnAttr() {
			t := &html.Node{Type: html.TextNode, Data: n.Value()}
			out = append(out, &html.Node{Type: html.ElementNode, Data: n.LocalName(), FirstChild: t, LastChild: t})
		} else {
			out = append(out, n.Node())
		}
		return true
	}, nil)
	return out
}

// item builds the item of one element; ok is false when a required field
// is missing or empty.
func (h *htmlPage) item(ir *itemRule, e *html.Node) (map[string]any, bool) {
	item := make(map[string]any, len(ir.fields))
	for _, f := range ir.fields {
		v, ok := h.field(f, e)
		if f.required && empty(v, ok) {
			return nil, false
		}
		if ok {
			item[f.name] = v
		}
	}
	return item, true
}

// field picks one field's value inside element e.
func (h *htmlPage) field(f *field, e *html.Node) (any, bool) {
	c := collect{f: f}
	switch {
	case f.css != nil:
		if f.all || f.regex != nil {
			for _, n := range cascadia.QueryAll(e, f.css) {
				if !c.add(h.text(f, n)) {
					break
				}
			}
		} else if n := cascadia.Query(e, f.css); n != nil {
			c.add(h.text(f, n))
		}
	case f.xpath != nil:
		h.xpath(f.xpath, e, func(n *htmlnav.Nav) bool {
			if n.OnAttr() {
				return c.add(h.attrValue(n.LocalName(), n.Value()), true)
			}
			return c.add(h.text(f, n.Node()))
		}, func(scalar string) { c.add(htmlnav.Collapse(scalar), true) })
	default:
		c.add(h.text(f, e))
	}
	return c.value(false)
}

// text is what a selected node gives a field: its attribute (ok false
// when it has none) or its text, white space collapsed.
func (h *htmlPage) text(f *field, n *html.Node) (string, bool) {
	if f.attr != "" {
		v, ok := htmlnav.LookupAttr(n, f.attr)
		if !ok {
			return "", false
		}
		return h.attrValue(f.attr, v), true
	}
	if n.Type == html.CommentNode {
		return htmlnav.Collapse(n.Data), true
	}
	return htmlnav.Collapse(htmlnav.Text(n)), true
}

// attrValue trims an attribute's value; href and src come back absolute
// and canonical (as links are) when they are http(s) URLs. An empty href
// is the page itself, as browsers read it (found by review: it came back
// ""); an empty src names nothing.
func (h *htmlPage) attrValue(name, v string) string {
	v = strings.TrimSpace(v)
	href := strings.EqualFold(name, "href")
	if !(href || strings.EqualFold(name, "src")) || v == "" && !href {
		return v
	}
	if c, err := h.r.canonical(h.base, v); err == nil {
		return c
	}
	return v
}

// xpath runs x with e as the context node: each selected node goes to
// node until it returns false; a string, number or boolean result goes to
// scalar. A panic in the XPath library (odd expressions on odd pages) is
// taken as no result rather than a dead worker.
func (h *htmlPage) xpath(x *xpathExpr, e *html.Node, node func(*htmlnav.Nav) bool, scalar func(string)) {
	expr := x.get()
	defer func() {
		if recover() != nil {
			return // expr is dropped: its state is unknown
		}
		x.put(expr)
	}()
	switch v := expr.Evaluate(htmlnav.NewNav(h.root, e)).(type) {
	case *xpath.NodeIterator:
		for v.MoveNext() {
			n, ok := v.Current().(*htmlnav.Nav)
			if !ok || !node(n) {
				return
			}
		}
	case string:
		if scalar != nil {
			scalar(v)
		}
	case float64:
		if scalar != nil {
			scalar(strconv.FormatFloat(v, 'f', -1, 64))
		}
	case bool:
		if scalar != nil {
			scalar(strconv.FormatBool(v))
		}
	}
}

func attr(n *html.Node, name string) string { v, _ := htmlnav.LookupAttr(n, name); return v }

// relNofollow reports rel="nofollow" (a token of rel, any case).
func relNofollow(n *html.Node) bool {
	rel, ok := htmlnav.LookupAttr(n, "rel")
	if !ok {
		return false
	}
	for _, t := range strings.Fields(rel) {
		if strings.EqualFold(t, "nofollow") {
			return true
		}
	}
	return false
}
