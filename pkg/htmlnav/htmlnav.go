// Package htmlnav reads parsed HTML the way spiders need it, shared by
// the declarative extractor (pkg/extract) and the JavaScript page helpers
// (pkg/jsspider): an XPath navigator rooted at the document but starting
// at any element, an element's text as browsers and goquery give it, and
// white space collapsed as item values carry it.
package htmlnav

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/antchfx/xpath"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// Nav is an xpath.NodeNavigator over a parsed HTML tree. Unlike
// htmlquery's, its root is the document while it starts at any element,
// so "//meta" searches the whole page, as XPath means, and ".//span" the
// element.
type Nav struct {
	root, curr *html.Node
	attr       int // index in curr.Attr, or -1
}

// NewNav starts at element at of the document root.
func NewNav(root, at *html.Node) *Nav { return &Nav{root: root, curr: at, attr: -1} }

// OnAttr reports whether the navigator is on an attribute (whose value is
// Value and name LocalName).
func (n *Nav) OnAttr() bool { return n.attr != -1 }

// Node is the node the navigator is on (for an attribute, its element).
func (n *Nav) Node() *html.Node { return n.curr }

func (n *Nav) NodeType() xpath.NodeType {
	switch n.curr.Type {
	case html.CommentNode:
		return xpath.CommentNode
	case html.DocumentNode, html.DoctypeNode:
		return xpath.RootNode
	case html.ElementNode:
		if n.attr != -1 {
			return xpath.AttributeNode
		}
		return xpath.ElementNode
	}
	return xpath.TextNode
}

func (n *Nav) LocalName() string {
	if n.attr != -1 {
		return n.curr.Attr[n.attr].Key
	}
	return n.curr.Data
}

func (*Nav) Prefix() string { return "" }

func (n *Nav) Value() string {
	switch n.curr.Type {
	case html.ElementNode:
		if n.attr != -1 {
			return n.curr.Attr[n.attr].Val
		}
		return InnerText(n.curr)
	case html.DocumentNode:
		return InnerText(n.curr)
	}
	return n.curr.Data
}

func (n *Nav) Copy() xpath.NodeNavigator { c := *n; return &c }

func (n *Nav) MoveToRoot() { n.curr, n.attr = n.root, -1 }

func (n *Nav) MoveToParent() bool {
	if n.attr != -1 {
		n.attr = -1
		return true
	}
	if p := n.curr.Parent; p != nil {
		n.curr = p
		return true
	}
	return false
}

func (n *Nav) MoveToNextAttribute() bool {
	if n.curr.Type != html.ElementNode || n.attr >= len(n.curr.Attr)-1 {
		return false
	}
	n.attr++
	return true
}

func (n *Nav) MoveToChild() bool {
	if n.attr != -1 || n.curr.FirstChild == nil {
		return false
	}
	n.curr = n.curr.FirstChild
	return true
}

func (n *Nav) MoveToFirst() bool {
	if n.attr != -1 || n.curr.PrevSibling == nil {
		return false
	}
	for n.curr.PrevSibling != nil {
		n.curr = n.curr.PrevSibling
	}
	return true
}

func (n *Nav) MoveToNext() bool {
	if n.attr != -1 || n.curr.NextSibling == nil {
		return false
	}
	n.curr = n.curr.NextSibling
	return true
}

func (n *Nav) MoveToPrevious() bool {
	if n.attr != -1 || n.curr.PrevSibling == nil {
		return false
	}
	n.curr = n.curr.PrevSibling
	return true
}

func (n *Nav) MoveTo(other xpath.NodeNavigator) bool {
	o, ok := other.(*Nav)
	if !ok || o.root != n.root {
		return false
	}
	n.curr, n.attr = o.curr, o.attr
	return true
}

func (n *Nav) String() string { return n.Value() }

// InnerText is the text of n's descendants, as goquery's Text gives it.
func InnerText(n *html.Node) string { return text(n, false) }

// Text is n's text as a reader sees it, for item fields and scripts'
// .text(): InnerText without the content of script, style, template and
// noscript elements, and with a space where a <br> or a block element
// (p, div, li, td, h1 ...) breaks the line, so "1 Main St<br>Springfield"
// reads "1 Main St Springfield", not "1 Main StSpringfield" (found by
// review). XPath's string() keeps InnerText, as XPath defines it.
func Text(n *html.Node) string { return text(n, true) }

func text(n *html.Node, readable bool) string {
	if n.Type == html.TextNode {
		return n.Data
	}
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			switch {
			case c.Type == html.TextNode:
				b.WriteString(c.Data)
			case !readable:
				if c.FirstChild != nil {
					walk(c)
				}
			case c.Type != html.ElementNode, hiddenText[c.DataAtom]:
			case c.DataAtom == atom.Br:
				b.WriteByte(' ')
			case blockText[c.DataAtom]:
				b.WriteByte(' ')
				walk(c)
				b.WriteByte(' ')
			default:
				walk(c)
			}
		}
	}
	walk(n)
	return b.String()
}

// hiddenText are elements whose content no reader sees as text.
var hiddenText = map[atom.Atom]bool{atom.Script: true, atom.Style: true, atom.Template: true, atom.Noscript: true}

// blockText are elements that start a line of their own.
var blockText = map[atom.Atom]bool{
	atom.Address: true, atom.Article: true, atom.Aside: true, atom.Blockquote: true, atom.Dd: true, atom.Details: true,
	atom.Dialog: true, atom.Div: true, atom.Dl: true, atom.Dt: true, atom.Fieldset: true, atom.Figcaption: true,
	atom.Figure: true, atom.Footer: true, atom.Form: true, atom.H1: true, atom.H2: true, atom.H3: true, atom.H4: true,
	atom.H5: true, atom.H6: true, atom.Header: true, atom.Hr: true, atom.Li: true, atom.Main: true, atom.Nav: true,
	atom.Ol: true, atom.P: true, atom.Pre: true, atom.Section: true, atom.Summary: true, atom.Table: true,
	atom.Tbody: true, atom.Td: true, atom.Tfoot: true, atom.Th: true, atom.Thead: true, atom.Tr: true, atom.Ul: true,
	atom.Caption: true, atom.Option: true,
}

// Collapse trims s and turns every run of white space into one space:
// strings.Join(strings.Fields(s), " ") in one pass, bytes kept as they are.
func Collapse(s string) string {
	if isCollapsed(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for i := 0; i < len(s); {
		r, size := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		if unicode.IsSpace(r) {
			space = b.Len() > 0
		} else {
			if space {
				b.WriteByte(' ')
				space = false
			}
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// isCollapsed: no leading, trailing, doubled or non-' ' white space.
func isCollapsed(s string) bool {
	prevSpace := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return false // let collapse decode it
		}
		switch c {
		case ' ':
			if prevSpace {
				return false
			}
			prevSpace = true
		case '\t', '\n', '\v', '\f', '\r':
			return false
		default:
			prevSpace = false
		}
	}
	return !prevSpace || s == ""
}

// LookupAttr is the value of n's attribute name, as written.
func LookupAttr(n *html.Node, name string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == name { // any namespace, as goquery's Attr
			return a.Val, true
		}
	}
	return "", false
}
