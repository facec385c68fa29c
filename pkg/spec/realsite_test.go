package spec_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

// fullYAML uses every field for real sites.
const fullYAML = `
name: shop
start_urls: ["https://example.com/"]
allowed_domains: [example.com]
sitemaps: ["robots", "https://example.com/sitemap.xml.gz"]
request:
  user_agent: "shopbot/2.1 (+https://example.com/bot)"
  headers: {X-Api-Key: "${env:SHOP_KEY}", Accept-Language: en}
  cookies: {lang: "en"}
  proxies: ["http://127.0.0.1:3128", "socks5://u:${env:PROXY_PASS}@10.0.0.1:1080"]
  timeout: 15s
login:
  url: "https://example.com/login"
  form: {user: "demo", password: "${env:SHOP_PASSWORD}"}
  relogin_on: [401, 403]
links:
  follow: ["ul.pager a", "h3 a"]
  json: [".next"]
  allow: ["/catalog/", "/p/"]
  deny: ["/cart", "[?&]add="]
  strip_query: ["utm_*", "sid"]
  nofollow: false
items:
  - selector: "article.product"
    url: "/p/"
    fields:
      title: { css: "h1" }
      sku:   { xpath: ".//span[@class='sku']" }
      price: { css: ".price", regex: "[0-9]+\\.[0-9]{2}" }
      tags:  { css: ".tag", all: true }
      image: { css: "img", attr: "src" }
      meta:  { xpath: "//meta[@name='x']/@content" }
    required: ["title"]
  - xpath: "//div[@class='offer']"
    fields:
      name: { css: "h2" }
  - json: ".products[]"
    fields:
      name: { json: ".name" }
      stock: { json: ".stock" }
      tags: { json: ".tags[]", all: true }
      whole: {}
    required: [name]
`

func TestRealSiteFields(t *testing.T) {
	s := mustParse(t, fullYAML)
	if got := s.Request.TimeoutOr(time.Second); got != 15*time.Second {
		t.Errorf("timeout = %v", got)
	}
	if s.Request.Headers["X-Api-Key"] != "${env:SHOP_KEY}" {
		t.Errorf("the spec must keep ${env:} references as written: %q", s.Request.Headers["X-Api-Key"])
	}
	if s.Links.HonourNofollow() {
		t.Error("nofollow: false still honours rel=nofollow")
	}
	if got := s.FollowSelectors(); !reflect.DeepEqual(got, []string{"ul.pager a", "h3 a"}) {
		t.Errorf("FollowSelectors = %q", got)
	}
	kinds := []string{s.Items[0].Kind(), s.Items[1].Kind(), s.Items[2].Kind()}
	if !reflect.DeepEqual(kinds, []string{spec.KindCSS, spec.KindXPath, spec.KindJSON}) {
		t.Errorf("kinds = %q", kinds)
	}
	if got := s.EnvRefs(); !reflect.DeepEqual(got, []string{"PROXY_PASS", "SHOP_KEY", "SHOP_PASSWORD"}) {
		t.Errorf("EnvRefs = %q", got)
	}
}

func TestRealSiteJSONRoundTrip(t *testing.T) {
	s := mustParse(t, fullYAML)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := spec.Parse(b)
	if err != nil {
		t.Fatalf("re-parse %s: %v", b, err)
	}
	if !reflect.DeepEqual(s, s2) {
		t.Errorf("JSON round trip changed the spec:\nbefore %#v\nafter  %#v\njson %s", s, s2, b)
	}
	for _, secret := range []string{"SHOP_KEY", "SHOP_PASSWORD"} {
		if !strings.Contains(string(b), "${env:"+secret+"}") {
			t.Errorf("stored JSON lost the reference to %s: %s", secret, b)
		}
	}
}

func TestDefaults(t *testing.T) {
	s := mustParse(t, "name: d\nstart_urls: [http://a.example/]\nfollow: [a]\nlogin: {url: 'http://a.example/login'}\n")
	if !s.Links.HonourNofollow() {
		t.Error("nofollow is not honoured by default")
	}
	if got := s.FollowSelectors(); !reflect.DeepEqual(got, []string{"a"}) {
		t.Errorf("FollowSelectors = %q, want the top-level follow", got)
	}
	if got := s.Login.ReloginStatuses(); !reflect.DeepEqual(got, []int{401, 403}) {
		t.Errorf("default relogin_on = %v", got)
	}
	if got := s.Request.TimeoutOr(3 * time.Second); got != 3*time.Second {
		t.Errorf("no request: timeout = %v", got)
	}
	// An empty list is no list: the spec survives JSON unchanged.
	s = mustParse(t, "name: d\nstart_urls: [http://a.example/]\nlinks: {allow: [], strip_query: []}\nrequest: {headers: {}}\n")
	if s.Links.Allow != nil || s.Request.Headers != nil {
		t.Errorf("empty lists kept: %+v %+v", s.Links, s.Request)
	}
}

func TestExpandRequestAndLogin(t *testing.T) {
	s := mustParse(t, fullYAML)
	env := map[string]string{"SHOP_KEY": "k3y", "SHOP_PASSWORD": "pw", "PROXY_PASS": "pp"}
	lookup := func(n string) (string, bool) { v, ok := env[n]; return v, ok }
	r, err := s.Request.Expand(lookup)
	if err != nil {
		t.Fatal(err)
	}
	if r.Headers["X-Api-Key"] != "k3y" || r.Proxies[1] != "socks5://u:pp@10.0.0.1:1080" || r.Timeout != s.Request.Timeout {
		t.Errorf("expanded request = %+v", r)
	}
	l, err := s.Login.Expand(lookup)
	if err != nil || l.Form["password"] != "pw" || l.URL != s.Login.URL {
		t.Errorf("expanded login = %+v, %v", l, err)
	}
	if s.Request.Headers["X-Api-Key"] != "${env:SHOP_KEY}" || s.Login.Form["password"] != "${env:SHOP_PASSWORD}" {
		t.Error("Expand changed the spec")
	}
	delete(env, "SHOP_PASSWORD")
	if _, err := s.Login.Expand(lookup); err == nil || err.Error() != "login.form.password: environment variable SHOP_PASSWORD is not set" {
		t.Errorf("missing variable: err = %v", err)
	}
	var nilReq *spec.Request
	if r, err := nilReq.Expand(lookup); r != nil || err != nil {
		t.Errorf("nil request expanded to %v, %v", r, err)
	}
}

func TestRealSiteGoodSpecs(t *testing.T) {
	for _, src := range []string{
		"sitemaps: [robots]\n",
		"links: {follow: [a], allow: ['^https://example\\.com/'], nofollow: true}\n",
		"follow: [a]\nlinks: {deny: [/cart]}\n",
		"links: {json: ['.next', '.links[] | .href', '.items[]?.url // empty']}\n",
		"request: {timeout: 2s, proxies: ['https://p.example:8443'], headers: {Authorization: 'Bearer ${env:TOKEN}'}}\n",
		"request: {proxies: ['http://${env:PROXY_HOST}:3128']}\n",
		"login: {url: '${env:LOGIN_URL}', form: {u: x}}\n",
		"login: {url: 'https://example.com/login', relogin_on: [419]}\n",
		"go: custom\nlinks: {allow: [/p/], strip_query: [sid]}\nsitemaps: [robots]\n",
		"items: [{xpath: '//li', fields: {a: {xpath: 'string(.)'}, b: {css: span, regex: '(\\d+)', all: true}}}]\n",
		"items: [{json: '.[]', url: 'api', fields: {a: {json: .a, regex: '\\w+'}}}]\n",
		"items: [{selector: li, fields: {a: {css: ''}, b: {}}, required: [a, b]}]\n",
		"request: {headers: {X-Note: 'costs $5 or ${literal}'}}\n",
		"items: [{selector: li, fields: {note: {css: p, regex: '${env:NOT_EXPANDED}'}}}]\n",
	} {
		if _, err := spec.Parse([]byte("name: g\nstart_urls: [https://example.com/]\n" + src)); err != nil {
			t.Errorf("refused:\n%s%v", src, err)
		}
	}
}

func TestRealSiteBadSpecs(t *testing.T) {
	for _, c := range []struct{ src, path, detail string }{
		{"sitemaps: [ftp://x/s.xml]\n", "sitemaps[0]", `"robots"`},
		{"sitemaps: [Robots]\n", "sitemaps[0]", "http(s)"},
		{"request: {timeout: 0s}\n", "request.timeout", "more than 0"},
		{"request: {timeout: -1s}\n", "request.timeout", "more than 0"},
		{"request: {proxies: ['ftp://p:21']}\n", "request.proxies[0]", "socks5"},
		{"request: {proxies: ['http://']}\n", "request.proxies[0]", "no host"},
		{"request: {proxies: ['http://u:secret@p:99999999999x']}\n", "request.proxies[0]", "not a URL"},
		{"request: {headers: {X-Key: '${env:KEY'}}\n", "request.headers.X-Key", "not closed"},
		{"request: {headers: {X-Key: '${env:1KEY}'}}\n", "request.headers.X-Key", "not a variable name"},
		{"request: {user_agent: '${env:}'}\n", "request.user_agent", "names no variable"},
		{"request: {cookies: {sid: '${env:S'}}\n", "request.cookies.sid", "not closed"},
		{"request: {headers: {'bad header': x}}\n", "request.headers", "header name"},
		{"request: {headers: {User-Agent: x}}\n", "request.headers.User-Agent", "request.user_agent"},
		{"request: {user_agent: '007bot/1'}\n", "request.user_agent", "robots.txt groups could not name it"},
		{"request: {headers: {X-A: \"a\\r\\nb\"}}\n", "request.headers.X-A", "line break"},
		{"request: {cookies: {'a b': x}}\n", "request.cookies", "cookie name"},
		{"request: {bogus: 1}\n", "bogus", "unknown field"},
		{"login: {form: {u: x}}\n", "login.url", "needed"},
		{"login: {url: 'ftp://example.com/login'}\n", "login.url", "http or https"},
		{"login: {url: '/login'}\n", "login.url", "http or https"},
		{"login: {url: 'https://example.com/', relogin_on: [401, 99, 600]}\n", "login.relogin_on[1]", "100-599"},
		{"login: {url: 'https://example.com/', relogin_on: [600]}\n", "login.relogin_on[0]", "100-599"},
		{"login: {url: 'https://example.com/', form: {p: '${env:P'}}\n", "login.form.p", "not closed"},
		{"login: {url: 'https://${env:HOST/'}\n", "login.url", "not closed"},
		{"follow: [a]\nlinks: {follow: [b]}\n", "links.follow", "both"},
		{"links: {follow: ['a[']}\n", "links.follow[0]", "bad CSS selector"},
		{"links: {json: ['.next[']}\n", "links.json[0]", "bad jq expression"},
		{"links: {json: ['nosuchfn(1)']}\n", "links.json[0]", "nosuchfn"},
		{"links: {json: ['$undefined']}\n", "links.json[0]", "undefined"},
		{"links: {allow: ['(']}\n", "links.allow[0]", "missing closing )"},
		{"links: {deny: ['x', '[a-']}\n", "links.deny[1]", "bad regular expression"},
		{"links: {deny: ['(?<=x)a']}\n", "links.deny[0]", "bad regular expression: error parsing regexp"},
		{"links: {strip_query: ['[']}\n", "links.strip_query[0]", "bad glob"},
		{"links: {strip_query: ['']}\n", "links.strip_query[0]", "empty"},
		{"links: {nofollow: maybe}\n", "links.nofollow: line 3", "want true or false, not text `maybe`"},
		{"request: {timeout: soon}\n", "request.timeout: line 3", "soon"},
		{"login: {url: 'https://example.com/', relogin_on: [401, x]}\n", "login.relogin_on[1]", "want a number, not text `x`"},
		{"go: custom\nlinks: {follow: [a]}\n", "go", "links.follow"},
		{"go: custom\nlinks: {json: [.next]}\n", "go", "links.json"},
		{"go: custom\nitems: [{selector: a, fields: {t: {}}}]\n", "go", "items"},
		{"items: [{fields: {t: {}}}]\n", "items[0].selector", "one of selector"},
		{"items: [{selector: a, xpath: //a, fields: {t: {}}}]\n", "items[0]", "selector and xpath"},
		{"items: [{xpath: '//a[', fields: {t: {}}}]\n", "items[0].xpath", "bad XPath"},
		{"items: [{json: '.[', fields: {t: {}}}]\n", "items[0].json", "bad jq expression"},
		{"items: [{selector: a, url: '*', fields: {t: {}}}]\n", "items[0].url", "missing argument to repetition operator"},
		{"items: [{selector: a, fields: {t: {css: a, xpath: //a}}}]\n", "items[0].fields.t", "css and xpath"},
		{"items: [{selector: a, fields: {t: {xpath: '//a[@'}}}]\n", "items[0].fields.t.xpath", "bad XPath"},
		{"items: [{selector: a, fields: {t: {css: b, regex: '+'}}}]\n", "items[0].fields.t.regex", "bad regular expression"},
		{"items: [{selector: a, fields: {t: {json: .t}}}]\n", "items[0].fields.t.json", "json item rule"},
		{"items: [{xpath: //a, fields: {t: {json: .t}}}]\n", "items[0].fields.t.json", "json item rule"},
		{"items: [{json: '.[]', fields: {t: {css: b}}}]\n", "items[0].fields.t.css", "not CSS"},
		{"items: [{json: '.[]', fields: {t: {xpath: //b}}}]\n", "items[0].fields.t.xpath", "not XPath"},
		{"items: [{json: '.[]', fields: {t: {attr: href}}}]\n", "items[0].fields.t.attr", "no attributes"},
		{"items: [{json: '.[]', fields: {t: {json: '.a |'}}}]\n", "items[0].fields.t.json", "bad jq expression"},
		{"items: [{selector: a, fields: {t: {}}, required: [t, sku]}]\n", "items[0].required[1]", `"sku"`},
		{"items: [{selector: a, fields: {t: {all: 'maybe'}}}]\n", "items[0].fields.t.all", "want true or false"},
		{"items: [{selector: a, fields: {t: {css: b, bogus: 1}}}]\n", "items[0].fields.t.bogus", "unknown field"},
	} {
		src := "name: b\nstart_urls: [https://example.com/]\n" + c.src
		s, err := spec.Parse([]byte(src))
		var errs spec.Errors
		if s != nil || !errors.As(err, &errs) {
			t.Errorf("accepted or odd error for\n%s(err %v)", c.src, err)
			continue
		}
		found := false
		for _, e := range errs {
			if strings.Contains(e, c.path) && strings.Contains(e, c.detail) {
				found = true
			}
			if strings.Contains(e, "secret") {
				t.Errorf("mistake %q shows a password", e)
			}
		}
		if !found {
			t.Errorf("%s: no mistake names %q with %q:\n%v", strings.TrimSpace(c.src), c.path, c.detail, err)
		}
	}
}

// A spec with many mistakes in the new fields lists them all.
func TestRealSiteListsEveryMistake(t *testing.T) {
	src := `
name: multi
start_urls: [https://example.com/]
sitemaps: [nope]
request: {timeout: 0s, proxies: ["gopher://x"]}
login: {url: "ftp://x/", relogin_on: [1]}
links: {allow: ["("], deny: [")"], json: ["."]}
items:
  - selector: a
    fields: {t: {json: .t}}
    required: [missing]
`
	_, err := spec.Parse([]byte(src))
	var errs spec.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("err = %v", err)
	}
	for _, p := range []string{"sitemaps[0]", "request.timeout", "request.proxies[0]", "login.url", "login.relogin_on[0]",
		"links.allow[0]", "links.deny[0]", "items[0].fields.t.json", "items[0].required[0]"} {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("no mistake names %s in:\n%v", p, err)
		}
	}
	if len(errs) != 9 {
		t.Errorf("%d mistakes, want 9:\n%v", len(errs), err)
	}
}

// TestNewSpecChecks: a spec being applied is refused for mistakes an
// earlier version let through (a header the HTTP client sets itself, a
// start URL its own deny never lets be requested, a wildcard domain),
// each found by review; the same spec stored before still parses, so a
// running crawl or a stored spider keeps working.
func TestNewSpecChecks(t *testing.T) {
	for _, c := range []struct{ src, path, detail string }{
		{"request: {headers: {Accept-Encoding: \"gzip, deflate, br\"}}\n", "request.headers.Accept-Encoding", "sets this header itself"},
		{"request: {headers: {host: other.example}}\n", "request.headers.host", "remove it"},
		{"links: {deny: ['/shop', 'example\\.com/$']}\n", "start_urls[0]", `matches links.deny "example\\.com/$", so it would never be requested`},
		{"allowed_domains: [example.com, '*.example.org']\n", "allowed_domains[1]", "write the domain itself (example.org)"},
		{"allowed_domains: [example.com, .example.org]\n", "allowed_domains[1]", "it covers its subdomains"},
		{"schedule: \"0 0 30 2 *\"\n", "schedule", "no date matches it (such as 30 February)"},
		// Credentials written out are stored and served by the open API.
		{"request: {proxies: ['http://u:pw@p:3128']}\n", "request.proxies[0]", "${env:NAME}"},
		{"request: {proxies: ['http://TOKEN@p:3128']}\n", "request.proxies[0]", "${env:NAME}"},
		{"request: {headers: {Authorization: 'Bearer abc'}}\n", "request.headers.Authorization", "${env:NAME}"},
		{"request: {headers: {X-Api-Key: abc}}\n", "request.headers.X-Api-Key", "${env:NAME}"},
		{"request: {headers: {Cookie: 'session=abc'}}\n", "request.headers.Cookie", "${env:NAME}"},
		{"request: {headers: {X-Auth: abc}}\n", "request.headers.X-Auth", "${env:NAME}"},
		{"request: {cookies: {PHPSESSID: abc}}\n", "request.cookies.PHPSESSID", "${env:NAME}"},
		{"request: {proxies: ['http://${env:U}:pw@p:3128']}\n", "request.proxies[0]", "${env:NAME}"},
		{"request: {proxies: ['http://TOKEN:${env:P}x@p:3128']}\n", "request.proxies[0]", "${env:NAME}"},
		{"login: {url: 'https://example.com/login', form: {user: demo, password: hunter2}}\n", "login.form.password", "${env:NAME}"},
	} {
		src := "name: b\nstart_urls: [https://example.com/]\n" + c.src
		_, err := spec.ParseNew([]byte(src))
		var errs spec.Errors
		if !errors.As(err, &errs) || !slices.ContainsFunc(errs, func(e string) bool {
			return strings.HasPrefix(e, c.path) && strings.Contains(e, c.detail)
		}) {
			t.Errorf("ParseNew:\n%s\ngot %v, want %s ... %s", src, err, c.path, c.detail)
		}
		if _, err := spec.Parse([]byte(src)); err != nil {
			t.Errorf("Parse of a stored spec:\n%s\n%v", src, err)
		}
	}
}
