package jsspider

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/antchfx/xpath"
	"golang.org/x/net/html"
)

// The XPath navigator and text helpers below follow pkg/extract's (which
// keeps them unexported): a navigator whose root is the document while it
// starts at any element, so ".//a" searches an element and "//a" the page.

type nav struct {
	root, curr *html.Node
	attr       int // index in curr.Attr, or -1
}

func newNav(root, at *html.Node) *nav { return &nav{root: root, curr: at, attr: -1} }

func (n *nav) NodeType() xpath.NodeType {
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

func (n *nav) LocalName() string {
	if n.attr != -1 {
		return n.curr.Attr[n.attr].Key
	}
	return n.curr.Data
}

func (*nav) Prefix() string { return "" }

func (n *nav) Value() string {
	switch n.curr.Type {
	case html.ElementNode:
		if n.attr != -1 {
			return n.curr.Attr[n.attr].Val
		}
		return innerText(n.curr)
	case html.DocumentNode:
		return innerText(n.curr)
	}
	return n.curr.Data
}

func (n *nav) Copy() xpath.NodeNavigator { c := *n; return &c }

func (n *nav) MoveToRoot() { n.curr, n.attr = n.root, -1 }

func (n *nav) MoveToParent() bool {
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

func (n *nav) MoveToNextAttribute() bool {
	if n.curr.Type != html.ElementNode || n.attr >= len(n.curr.Attr)-1 {
		return false
	}
	n.attr++
	return true
}

func (n *nav) MoveToChild() bool {
	if n.attr != -1 || n.curr.FirstChild == nil {
		return false
	}
	n.curr = n.curr.FirstChild
	return true
}

func (n *nav) MoveToFirst() bool {
	if n.attr != -1 || n.curr.PrevSibling == nil {
		return false
	}
	for n.curr.PrevSibling != nil {
		n.curr = n.curr.PrevSibling
	}
	return true
}

func (n *nav) MoveToNext() bool {
	if n.attr != -1 || n.curr.NextSibling == nil {
		return false
	}
	n.curr = n.curr.NextSibling
	return true
}

func (n *nav) MoveToPrevious() bool {
	if n.attr != -1 || n.curr.PrevSibling == nil {
		return false
	}
	n.curr = n.curr.PrevSibling
	return true
}

func (n *nav) MoveTo(other xpath.NodeNavigator) bool {
	o, ok := other.(*nav)
	if !ok || o.root != n.root {
		return false
	}
	n.curr, n.attr = o.curr, o.attr
	return true
}

func (n *nav) String() string { return n.Value() }

// innerText is the text of n's descendants, as goquery's Text gives it.
func innerText(n *html.Node) string {
	if n.Type == html.TextNode {
		return n.Data
	}
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if c.Type == html.TextNode {
				b.WriteString(c.Data)
			} else if c.FirstChild != nil {
				walk(c)
			}
		}
	}
	walk(n)
	return b.String()
}

// collapse trims s and turns each run of white space into one space.
func collapse(s string) string {
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

func lookupAttr(n *html.Node, name string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val, true
		}
	}
	return "", false
}
