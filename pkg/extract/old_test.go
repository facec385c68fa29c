package extract_test

import (
	"bytes"
	"net/url"
	"strings"

	"github.com/PuerkitoBio/goquery"

	"github.com/crawlmesh/crawlmesh/pkg/htmlnav"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/pkg/urlnorm"
)

// oldExtract is pkg/fetch's extract as it was before this package (items
// by CSS, links by follow selectors), kept to check old specs still mean
// what they meant and to measure against; its field text is read as
// fields now read it (see below).
func oldExtract(body []byte, final *url.URL, s *spec.Spec) ([]map[string]string, []string, error) {
	doc, err := goquery.NewDocumentFromReader(bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	var items []map[string]string
	for _, rule := range s.Items {
		doc.Find(rule.Selector).Each(func(_ int, e *goquery.Selection) {
			item := make(map[string]string, len(rule.Fields))
			for name, fld := range rule.Fields {
				sel := e
				if fld.CSS != "" {
					sel = e.Find(fld.CSS).First()
				}
				if fld.Attr != "" {
					v, _ := sel.Attr(fld.Attr)
					item[name] = strings.TrimSpace(v)
				} else if sel.Length() > 0 {
					// The text as fields now read it (htmlnav.Text: <br>
					// and blocks separate words, script and style hold
					// none), where goquery's Text ran words together.
					item[name] = htmlnav.Collapse(htmlnav.Text(sel.Get(0)))
				} else {
					item[name] = ""
				}
			}
			items = append(items, item)
		})
	}
	base := final
	if href, ok := doc.Find("base[href]").First().Attr("href"); ok {
		if b, err := final.Parse(strings.TrimSpace(href)); err == nil {
			base = b
		}
	}
	var hrefs []string
	for _, sel := range s.Follow {
		doc.Find(sel).Each(func(_ int, e *goquery.Selection) {
			if h, ok := e.Attr("href"); ok {
				hrefs = append(hrefs, h)
			}
		})
	}
	seen := map[string]bool{}
	var links []string
	for _, h := range hrefs {
		c, err := urlnorm.Resolve(base, h)
		if err != nil || seen[c] {
			continue
		}
		u, err := url.Parse(c)
		if err != nil || !spec.DomainAllowed(s.AllowedDomains, u) {
			continue
		}
		seen[c] = true
		links = append(links, c)
	}
	return items, links, nil
}
