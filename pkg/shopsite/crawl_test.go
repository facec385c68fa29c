package shopsite

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/antchfx/htmlquery"
	"github.com/itchyny/gojq"
	"github.com/temoto/robotstxt"
	"go.yaml.in/yaml/v3"

	"github.com/crawlmesh/crawlmesh/pkg/sitemap"
	"github.com/crawlmesh/crawlmesh/pkg/urlnorm"
)

// refSpec holds the DESIGN.md fields SpecYAML uses. It is decoded with
// KnownFields, so a misspelt field in SpecYAML fails the test.
type refSpec struct {
	Name           string   `yaml:"name"`
	StartURLs      []string `yaml:"start_urls"`
	AllowedDomains []string `yaml:"allowed_domains"`
	MaxDepth       int      `yaml:"max_depth"`
	MaxPages       int      `yaml:"max_pages"`
	Sitemaps       []string `yaml:"sitemaps"`
	Request        struct {
		UserAgent string            `yaml:"user_agent"`
		Headers   map[string]string `yaml:"headers"`
		Cookies   map[string]string `yaml:"cookies"`
		Timeout   string            `yaml:"timeout"`
	} `yaml:"request"`
	Login struct {
		URL       string            `yaml:"url"`
		Form      map[string]string `yaml:"form"`
		ReloginOn []int             `yaml:"relogin_on"`
	} `yaml:"login"`
	Links struct {
		Follow     []string `yaml:"follow"`
		JSON       []string `yaml:"json"`
		Allow      []string `yaml:"allow"`
		Deny       []string `yaml:"deny"`
		StripQuery []string `yaml:"strip_query"`
		Nofollow   *bool    `yaml:"nofollow"`
	} `yaml:"links"`
	Items []struct {
		Selector string              `yaml:"selector"`
		XPath    string              `yaml:"xpath"`
		JSON     string              `yaml:"json"`
		URL      string              `yaml:"url"`
		Fields   map[string]refField `yaml:"fields"`
		Required []string            `yaml:"required"`
	} `yaml:"items"`
	Politeness struct {
		Delay       string `yaml:"delay"`
		Parallelism int    `yaml:"parallelism"`
		RobotsTxt   bool   `yaml:"robots_txt"`
	} `yaml:"politeness"`
}

type refField struct {
	CSS   string `yaml:"css"`
	XPath string `yaml:"xpath"`
	JSON  string `yaml:"json"`
	Attr  string `yaml:"attr"`
	Regex string `yaml:"regex"`
	All   bool   `yaml:"all"`
}

func parseSpec(t *testing.T, y string) *refSpec {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(y))
	dec.KnownFields(true)
	var s refSpec
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("SpecYAML does not decode: %v\n%s", err, y)
	}
	return &s
}

// refCrawler is a reference reading of the DESIGN.md semantics, single
// threaded, just enough for this site. Its knobs switch one behaviour
// off at a time, to show the site needs each.
type refCrawler struct {
	t    *testing.T
	spec *refSpec
	env  map[string]string
	// robotsAgent overrides the robots.txt group ("" = product token).
	robotsAgent string
	// noLoginRedirect ignores "a redirect to the login URL" as a trigger.
	noLoginRedirect bool

	client *http.Client
	items  []ExpectedItem
	seen   map[string]bool
	queue  []string
	robots *robotstxt.Group
}

func (c *refCrawler) expand(s string) string {
	return regexp.MustCompile(`\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}`).ReplaceAllStringFunc(s, func(m string) string {
		return c.env[m[6:len(m)-1]]
	})
}

func (c *refCrawler) do(method, u string, form url.Values) (*http.Response, []byte) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("User-Agent", c.spec.Request.UserAgent)
	for k, v := range c.spec.Request.Headers {
		req.Header.Set(k, c.expand(v))
	}
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (c *refCrawler) login() {
	form := url.Values{}
	for k, v := range c.spec.Login.Form {
		form.Set(k, c.expand(v))
	}
	// A refused login is the site's to report (a violation).
	c.do(http.MethodPost, c.spec.Login.URL, form)
}

// fetch GETs u, following redirects, and logs in again once when the
// first answer says the session expired.
func (c *refCrawler) fetch(u string) (string, *http.Response, []byte) {
	for attempt := 0; attempt < 2; attempt++ {
		cur := u
		for hop := 0; hop < 10; hop++ {
			resp, body := c.do(http.MethodGet, cur, nil)
			loc := ""
			if l := resp.Header.Get("Location"); l != "" {
				base, _ := url.Parse(cur)
				loc, _ = urlnorm.Resolve(base, l)
			}
			if hop == 0 && (slices.Contains(c.spec.Login.ReloginOn, resp.StatusCode) ||
				!c.noLoginRedirect && loc != "" && loc == c.spec.Login.URL) {
				break // expired: log in and start again
			}
			if loc == "" {
				return cur, resp, body
			}
			cur = loc
		}
		if attempt == 0 {
			c.login()
		}
	}
	return u, nil, nil
}

// canonical resolves href and drops strip_query parameters.
func (c *refCrawler) canonical(base *url.URL, href string) (string, bool) {
	s, err := urlnorm.Resolve(base, href)
	if err != nil {
		return "", false
	}
	u, _ := url.Parse(s)
	var keep []string
	for _, kv := range strings.Split(u.RawQuery, "&") {
		name, _, _ := strings.Cut(kv, "=")
		strip := kv == ""
		for _, g := range c.spec.Links.StripQuery {
			if ok, _ := path.Match(g, name); ok {
				strip = true
			}
		}
		if !strip {
			keep = append(keep, kv)
		}
	}
	u.RawQuery = strings.Join(keep, "&")
	return u.String(), true
}

func (c *refCrawler) enqueue(base *url.URL, href string) {
	u, ok := c.canonical(base, href)
	if !ok || c.seen[u] {
		return
	}
	pu, _ := url.Parse(u)
	if !slices.Contains(c.spec.AllowedDomains, pu.Host) {
		return
	}
	allowed := len(c.spec.Links.Allow) == 0
	for _, re := range c.spec.Links.Allow {
		allowed = allowed || regexp.MustCompile(re).MatchString(u)
	}
	for _, re := range c.spec.Links.Deny {
		allowed = allowed && !regexp.MustCompile(re).MatchString(u)
	}
	if !allowed || c.robots != nil && !c.robots.Test(pu.RequestURI()) {
		return
	}
	c.seen[u] = true
	c.queue = append(c.queue, u)
}

func (c *refCrawler) run() []ExpectedItem {
	jar, _ := cookiejar.New(nil)
	c.client = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	c.seen = map[string]bool{}
	start, _ := url.Parse(c.spec.StartURLs[0])
	var cookies []*http.Cookie
	for k, v := range c.spec.Request.Cookies {
		cookies = append(cookies, &http.Cookie{Name: k, Value: v, Path: "/"})
	}
	jar.SetCookies(start, cookies)

	resp, body := c.do(http.MethodGet, start.ResolveReference(&url.URL{Path: "/robots.txt"}).String(), nil)
	rd, err := robotstxt.FromStatusAndBytes(resp.StatusCode, body)
	if err != nil {
		c.t.Fatal(err)
	}
	agent := c.robotsAgent
	if agent == "" {
		agent, _, _ = strings.Cut(c.spec.Request.UserAgent, "/")
	}
	if c.spec.Politeness.RobotsTxt {
		c.robots = rd.FindGroup(agent)
	}
	c.login()
	for _, s := range c.spec.StartURLs {
		c.enqueue(start, s)
	}
	if slices.Contains(c.spec.Sitemaps, "robots") {
		fetch := func(_ context.Context, u string) (io.ReadCloser, error) {
			resp, b := c.do(http.MethodGet, u, nil)
			if resp.StatusCode != 200 {
				return nil, fmt.Errorf("status %d", resp.StatusCode)
			}
			return io.NopCloser(bytes.NewReader(b)), nil
		}
		err := sitemap.Walk(context.Background(), rd.Sitemaps, fetch, func(loc string) error {
			c.enqueue(start, loc)
			return nil
		}, 0, 0)
		if err != nil {
			c.t.Fatalf("sitemaps: %v", err)
		}
	}
	for len(c.queue) > 0 {
		u := c.queue[0]
		c.queue = c.queue[1:]
		final, resp, body := c.fetch(u)
		if resp == nil || resp.StatusCode != 200 {
			continue
		}
		base, _ := url.Parse(final)
		ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if ct == "application/json" || strings.HasSuffix(ct, "+json") {
			c.jsonPage(base, body)
		} else {
			c.htmlPage(base, body)
		}
	}
	return c.items
}

func jq(t *testing.T, expr string, v any) []any {
	q, err := gojq.Parse(expr)
	if err != nil {
		t.Fatal(err)
	}
	var out []any
	iter := q.Run(v)
	for {
		x, ok := iter.Next()
		if !ok {
			return out
		}
		if err, ok := x.(error); ok {
			t.Fatal(err)
		}
		out = append(out, x)
	}
}

// jsonText is DESIGN.md's reading of a JSON value: strings as they are,
// anything else as its compact JSON; null is missing.
func jsonText(v any) (string, bool) {
	if v == nil {
		return "", false
	}
	if s, ok := v.(string); ok {
		return s, true
	}
	b, _ := json.Marshal(v)
	return string(b), true
}

func (c *refCrawler) jsonPage(base *url.URL, body []byte) {
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		c.t.Fatal(err)
	}
	for _, expr := range c.spec.Links.JSON {
		for _, v := range jq(c.t, expr, doc) {
			if s, ok := v.(string); ok {
				c.enqueue(base, s)
			}
		}
	}
	for _, rule := range c.spec.Items {
		if rule.JSON == "" || !regexp.MustCompile(rule.URL).MatchString(base.String()) {
			continue
		}
		for _, el := range jq(c.t, rule.JSON, doc) {
			data := map[string]any{}
			for name, f := range rule.Fields {
				var vals []string
				for _, v := range jq(c.t, f.JSON, el) {
					if s, ok := jsonText(v); ok {
						vals = append(vals, s)
					}
				}
				put(data, name, vals, f.All)
			}
			c.keep(base, data, rule.Required)
		}
	}
}

// put stores a field: the first value, or all of them as a list.
func put(data map[string]any, name string, vals []string, all bool) {
	switch {
	case all:
		data[name] = vals
	case len(vals) > 0:
		data[name] = vals[0]
	}
}

func (c *refCrawler) keep(base *url.URL, data map[string]any, required []string) {
	for _, r := range required {
		switch v := data[r].(type) {
		case string:
			if v == "" {
				return
			}
		case []string:
			if len(v) == 0 {
				return
			}
		default:
			return
		}
	}
	c.items = append(c.items, ExpectedItem{URL: base.String(), Data: data})
}

func (c *refCrawler) htmlPage(base *url.URL, body []byte) {
	doc, err := goquery.NewDocumentFromReader(bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	nofollow := c.spec.Links.Nofollow == nil || *c.spec.Links.Nofollow
	for _, sel := range c.spec.Links.Follow {
		doc.Find(sel).Each(func(_ int, a *goquery.Selection) {
			href, ok := a.Attr("href")
			rel, _ := a.Attr("rel")
			if ok && !(nofollow && slices.Contains(strings.Fields(strings.ToLower(rel)), "nofollow")) {
				c.enqueue(base, href)
			}
		})
	}
	for _, rule := range c.spec.Items {
		if rule.Selector == "" || !regexp.MustCompile(rule.URL).MatchString(base.String()) {
			continue
		}
		doc.Find(rule.Selector).Each(func(_ int, el *goquery.Selection) {
			data := map[string]any{}
			for name, f := range rule.Fields {
				put(data, name, c.htmlField(base, el, f), f.All)
			}
			c.keep(base, data, rule.Required)
		})
	}
}

// htmlField returns the field's values in document order (regex applied;
// href/src made absolute).
func (c *refCrawler) htmlField(base *url.URL, el *goquery.Selection, f refField) []string {
	var raw []string
	if f.XPath != "" {
		for _, n := range htmlquery.Find(el.Nodes[0], f.XPath) {
			if f.Attr != "" {
				raw = append(raw, htmlquery.SelectAttr(n, f.Attr))
			} else {
				raw = append(raw, strings.TrimSpace(htmlquery.InnerText(n)))
			}
		}
	} else {
		el.Find(f.CSS).Each(func(_ int, s *goquery.Selection) {
			if f.Attr == "" {
				raw = append(raw, strings.TrimSpace(s.Text()))
			} else if v, ok := s.Attr(f.Attr); ok {
				if f.Attr == "href" || f.Attr == "src" {
					v, _ = urlnorm.Resolve(base, v)
				}
				raw = append(raw, v)
			}
		})
	}
	if f.Regex == "" {
		return raw
	}
	re := regexp.MustCompile(f.Regex)
	var out []string
	for _, v := range raw {
		if m := re.FindStringSubmatch(v); m != nil {
			out = append(out, m[len(m)-1])
			if !f.All {
				break
			}
		}
	}
	return out
}
