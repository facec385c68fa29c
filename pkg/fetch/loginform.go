package fetch

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/PuerkitoBio/goquery"
)

// maxLoginPage bounds the login page read for its form.
const maxLoginPage = 2 << 20

// loginForm GETs the login URL as a browser would before it posts the
// form, and returns the values the page's login form already carries
// (hidden inputs such as a CSRF token, whose cookie goes to the crawl's
// jar through send, and other fields' defaults) and the form's action, if
// it names an http(s) URL. A page that is not HTML or has no form (an API
// endpoint answering 404 or 405) gives neither: the configured fields are
// posted to the login URL alone, as before. A transport error or a status
// the site would answer again later (5xx, 429) is the login's transient
// error.
func (c *call) loginForm(ctx context.Context, u *url.URL, shown string) (url.Values, *url.URL, error) {
	resp, done, err := c.send(ctx, http.MethodGet, u, "")
	if err != nil {
		fe := err.(*Error)
		return nil, nil, &Error{Transient: fe.Transient, Reason: fe.Reason, Err: fmt.Errorf("login page %s: %w", shown, fe.Err)}
	}
	defer done()
	status := resp.StatusCode
	if transientStatus(status) {
		drain(resp)
		c.ch.end(true, retryAfter(resp.Header))
		return nil, nil, &Error{Transient: true, Status: status, Reason: "login", RetryAfter: retryAfter(resp.Header),
			Err: fmt.Errorf("login page %s: status %d", shown, status)}
	}
	var doc *goquery.Document
	if status == http.StatusOK && strings.Contains(strings.ToLower(resp.Header.Get("Content-Type")), "html") {
		doc, _ = goquery.NewDocumentFromReader(io.LimitReader(resp.Body, maxLoginPage))
	}
	drain(resp)
	c.ch.end(false, 0)
	if doc == nil {
		return nil, nil, nil
	}
	form := loginFormOf(doc, c.login.Form)
	if form == nil {
		return nil, nil, nil
	}
	return formDefaults(form), formAction(doc, form, u), nil
}

// formAction is where form posts: its action resolved against the page
// (and its <base href>); nil for an empty or non-http(s) one.
func formAction(doc *goquery.Document, form *goquery.Selection, page *url.URL) *url.URL {
	action := strings.TrimSpace(form.AttrOr("action", ""))
	if action == "" {
		return nil
	}
	base := page
	if href, ok := doc.Find("base[href]").First().Attr("href"); ok {
		if b, err := page.Parse(strings.TrimSpace(href)); err == nil {
			base = b
		}
	}
	a, err := base.Parse(action)
	if err != nil || (a.Scheme != "http" && a.Scheme != "https") || a.Host == "" {
		return nil
	}
	return a
}

// loginFormOf picks the login form of doc: the first holding a field the
// spec fills, else one with a password input, else the only form.
func loginFormOf(doc *goquery.Document, fill map[string]string) *goquery.Selection {
	forms := doc.Find("form")
	var form *goquery.Selection
	forms.EachWithBreak(func(_ int, f *goquery.Selection) bool {
		f.Find("input[name], textarea[name], select[name]").EachWithBreak(func(_ int, in *goquery.Selection) bool {
			if _, ok := fill[in.AttrOr("name", "")]; ok {
				form = f
			}
			return form == nil
		})
		return form == nil
	})
	if form == nil {
		if f := forms.Has(`input[type="password" i]`).First(); f.Length() > 0 {
			form = f
		} else if forms.Length() == 1 {
			form = forms
		}
	}
	return form
}

// formDefaults is what a browser would submit of form untouched: named
// inputs with their values (checkboxes and radios only when checked; no
// buttons or files), textareas, and each select's selected (else first)
// option.
func formDefaults(form *goquery.Selection) url.Values {
	vals := url.Values{}
	form.Find("input[name]").Each(func(_ int, in *goquery.Selection) {
		switch strings.ToLower(in.AttrOr("type", "text")) {
		case "submit", "button", "image", "reset", "file":
			return
		case "checkbox", "radio":
			if _, on := in.Attr("checked"); !on {
				return
			}
			vals.Add(in.AttrOr("name", ""), in.AttrOr("value", "on"))
			return
		}
		if _, off := in.Attr("disabled"); !off {
			vals.Add(in.AttrOr("name", ""), in.AttrOr("value", ""))
		}
	})
	form.Find("textarea[name]").Each(func(_ int, ta *goquery.Selection) {
		vals.Add(ta.AttrOr("name", ""), ta.Text())
	})
	form.Find("select[name]").Each(func(_ int, sel *goquery.Selection) {
		opt := sel.Find("option[selected]").First()
		if opt.Length() == 0 {
			opt = sel.Find("option").First()
		}
		if opt.Length() > 0 {
			vals.Add(sel.AttrOr("name", ""), opt.AttrOr("value", strings.TrimSpace(opt.Text())))
		}
	})
	return vals
}
