// Command shop_spider_go is deploy/examples/shop_spider.py in Go: a
// crawlmesh command spider for the synthetic site (pkg/synthsite), built
// into one static binary and shipped with `crawlmesh files put`.
//
// It reads one JSON page a line on stdin and answers one JSON object a
// line on stdout, in order: one item per <div class="item"> with the text
// of its .name and .price, and every <a class="l" href> (without
// rel=nofollow) as a link, written as on the page (the mesh resolves and
// canonicalises links). Only a <base href> is resolved here, since the
// mesh does not see it.
//
//	go build -o shop_spider ./deploy/examples/shop_spider_go
//	crawlmesh files put shop_spider
//	# spec: command: ["./shop_spider"]
//	#       files: ["shop_spider"]
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

type page struct {
	URL  string `json:"url"`
	Body string `json:"body"`
}

type answer struct {
	Items []map[string]string `json:"items"`
	Links []string            `json:"links"`
}

func main() {
	in := bufio.NewReaderSize(os.Stdin, 1<<16)
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for {
		line, err := in.ReadBytes('\n')
		if len(strings.TrimSpace(string(line))) > 0 {
			var p page
			if jerr := json.Unmarshal(line, &p); jerr != nil {
				// The mesh only sends valid JSON: a failure here is a bug
				// worth a crash, which fails this page with our stderr.
				fmt.Fprintln(os.Stderr, "bad page:", jerr)
				os.Exit(1)
			}
			if eerr := enc.Encode(parse(p)); eerr != nil {
				os.Exit(1)
			}
			// The mesh waits for each answer: flush at once.
			if ferr := out.Flush(); ferr != nil {
				os.Exit(1)
			}
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "reading stdin:", err)
			os.Exit(1)
		}
	}
}

func hasClass(t html.Token, c string) bool {
	for _, a := range t.Attr {
		if a.Key == "class" {
			for _, f := range strings.Fields(a.Val) {
				if f == c {
					return true
				}
			}
		}
	}
	return false
}

func attr(t html.Token, k string) (string, bool) {
	for _, a := range t.Attr {
		if a.Key == k {
			return a.Val, true
		}
	}
	return "", false
}

// parse walks the page's tokens once, tracking element depth the way the
// Python example does: void elements never open, and <x/> opens and closes.
func parse(p page) answer {
	w := walker{a: answer{Items: []map[string]string{}, Links: []string{}}}
	z := html.NewTokenizer(strings.NewReader(p.Body))
	for {
		switch tt := z.Next(); tt {
		case html.ErrorToken:
			w.resolve(p.URL)
			return w.a
		case html.StartTagToken, html.SelfClosingTagToken:
			t := z.Token()
			w.start(t)
			if tt == html.SelfClosingTagToken {
				w.end(t)
			}
		case html.EndTagToken:
			w.end(z.Token())
		case html.TextToken:
			if w.field != "" {
				w.text.Write(z.Text())
			}
		}
	}
}

type walker struct {
	a                     answer
	base                  string
	depth                 int
	item                  map[string]string // the item being read
	itemDepth, fieldDepth int
	field                 string // the field being read
	text                  strings.Builder
}

func (w *walker) start(t html.Token) {
	if t.DataAtom == atom.Base && w.base == "" {
		if h, ok := attr(t, "href"); ok && h != "" {
			w.base = h
		}
	}
	if t.DataAtom == atom.A && hasClass(t, "l") {
		if h, ok := attr(t, "href"); ok {
			rel, _ := attr(t, "rel")
			if !strings.Contains(" "+strings.ToLower(rel)+" ", " nofollow ") {
				w.a.Links = append(w.a.Links, strings.TrimSpace(h))
			}
		}
	}
	if void[t.DataAtom] {
		return
	}
	w.depth++
	switch {
	case w.item == nil && t.DataAtom == atom.Div && hasClass(t, "item"):
		w.item, w.itemDepth = map[string]string{}, w.depth
	case w.item != nil && w.field == "":
		// The first element of each class wins, as a css field does.
		for _, name := range []string{"name", "price"} {
			if _, done := w.item[name]; !done && hasClass(t, name) {
				w.field, w.fieldDepth = name, w.depth
				w.text.Reset()
				break
			}
		}
	}
}

func (w *walker) end(t html.Token) {
	if void[t.DataAtom] {
		return
	}
	if w.field != "" && w.depth == w.fieldDepth {
		w.item[w.field] = strings.Join(strings.Fields(w.text.String()), " ")
		w.field = ""
	}
	if w.item != nil && w.depth == w.itemDepth {
		// A field that selects nothing is "", as in a declarative spec.
		w.a.Items = append(w.a.Items, map[string]string{"name": w.item["name"], "price": w.item["price"]})
		w.item = nil
	}
	w.depth = max(0, w.depth-1)
}

// resolve applies a <base href> to the links found.
func (w *walker) resolve(pageURL string) {
	if w.base == "" {
		return
	}
	b, err := url.Parse(pageURL)
	if err != nil {
		return
	}
	if b, err = b.Parse(w.base); err != nil {
		return
	}
	for i, l := range w.a.Links {
		if u, err := b.Parse(l); err == nil {
			u.Fragment = ""
			w.a.Links[i] = u.String()
		}
	}
}

var void = map[atom.Atom]bool{atom.Area: true, atom.Base: true, atom.Br: true, atom.Col: true, atom.Embed: true,
	atom.Hr: true, atom.Img: true, atom.Input: true, atom.Link: true, atom.Meta: true, atom.Source: true,
	atom.Track: true, atom.Wbr: true}
