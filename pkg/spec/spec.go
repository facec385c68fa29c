// Package spec parses and validates spider specs (YAML or JSON) as fixed by
// DESIGN.md. A bad spec is refused as a whole with every mistake listed,
// each naming its field path and the reason.
package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/crawlmesh/crawlmesh/pkg/urlnorm"
)

// Spec is a spider: where to start, what to follow, what to extract.
//
// Every field after Schedule is optional and was added for real sites
// (DESIGN.md, "Spec fields for real sites"); a spec without them means
// what it meant before. ${env:NAME} references are kept as written in the
// spec (it is stored and shown); they are expanded only in Request and
// Login, on the worker, at request time ([Request.Expand],
// [Login.Expand]). Anywhere else "${env:...}" is plain text.
type Spec struct {
	Name           string     `json:"name" yaml:"name"`
	StartURLs      []string   `json:"start_urls" yaml:"start_urls"`
	AllowedDomains []string   `json:"allowed_domains,omitempty" yaml:"allowed_domains"`
	MaxDepth       int        `json:"max_depth" yaml:"max_depth"`
	MaxPages       int        `json:"max_pages" yaml:"max_pages"`
	Follow         []string   `json:"follow,omitempty" yaml:"follow"` // same as Links.Follow; use [Spec.FollowSelectors]
	Items          []ItemRule `json:"items,omitempty" yaml:"items"`
	Politeness     Politeness `json:"politeness" yaml:"politeness"`
	Schedule       string     `json:"schedule,omitempty" yaml:"schedule"`
	// Go names a spider written in Go and registered with the workers; it
	// replaces follow, links.follow, links.json and items.
	Go string `json:"go,omitempty" yaml:"go"`

	// Sitemaps are seeds: "robots" (the Sitemap: lines of each start
	// host's robots.txt) or sitemap URLs.
	Sitemaps []string `json:"sitemaps,omitempty" yaml:"sitemaps"`
	Request  *Request `json:"request,omitempty" yaml:"request"`
	Login    *Login   `json:"login,omitempty" yaml:"login"`
	Links    *Links   `json:"links,omitempty" yaml:"links"`

	// Programmable spiders (DESIGN.md "Programmable spiders"): each
	// replaces follow, links.follow, links.json and items; every other
	// field still applies to what they return.
	Script     string   `json:"script,omitempty" yaml:"script"`           // JavaScript defining parse(page)
	ScriptFile string   `json:"script_file,omitempty" yaml:"script_file"` // a script kept in Object Store files
	Command    []string `json:"command,omitempty" yaml:"command"`         // argv of a long-lived line-JSON process
	Files      []string `json:"files,omitempty" yaml:"files"`             // from Object Store files into the command's directory

	// PartitionBy chooses a URL's partition of the frontier and seen-set
	// on a mesh with several: "host" (the default; a host's tasks stay
	// together) or "url" (one huge host spreads over every partition).
	PartitionBy string `json:"partition_by,omitempty" yaml:"partition_by"`
}

// Programmable reports whether a script or a command reads the pages.
func (s *Spec) Programmable() bool {
	return s.Script != "" || s.ScriptFile != "" || len(s.Command) > 0
}

// Politeness limits the load on each host, mesh-wide (pkg/politeness).
type Politeness struct {
	Delay       *Duration `json:"delay,omitempty" yaml:"delay"`   // nil: the default (250ms)
	Parallelism int       `json:"parallelism" yaml:"parallelism"` // 0: the default (2)
	RobotsTxt   *bool     `json:"robots_txt,omitempty" yaml:"robots_txt"`
}

// DelayOr returns the spider's delay, or def when the spec sets none.
func (p Politeness) DelayOr(def time.Duration) time.Duration {
	if p.Delay == nil {
		return def
	}
	return p.Delay.Std()
}

// ObeyRobots reports whether robots.txt is obeyed (the default).
func (p Politeness) ObeyRobots() bool { return p.RobotsTxt == nil || *p.RobotsTxt }

// Duration is a time.Duration written as "100ms" in specs.
type Duration time.Duration

// UnmarshalYAML accepts "250ms", "1s" ..., and 0. A number without a
// unit is refused: it was read as seconds, and `delay: 100`, meant as
// milliseconds, waited 100 s between requests (found by review; the
// CLI's durations refuse it too). A bad value is a *yaml.TypeError, so
// decoding goes on and the spec's other mistakes are listed too.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if f, err := strconv.ParseFloat(n.Value, 64); err == nil && f != 0 {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: duration `%s` has no unit: write %sms or %ss", n.Line, n.Value, n.Value, n.Value)}}
	}
	if err := d.parse(n.Value); err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	return nil
}

// UnmarshalJSON accepts "250ms" or a number of seconds (records a
// version wrote; a spec as a user writes it goes through UnmarshalYAML).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		s = string(b)
	}
	return d.parse(s)
}

func (d *Duration) parse(s string) error {
	if v, err := time.ParseDuration(s); err == nil {
		*d = Duration(v)
		return nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		*d = Duration(f * float64(time.Second))
		return nil
	}
	return fmt.Errorf("duration `%s`: want e.g. 250ms or 1s", s)
}

// MarshalJSON writes the duration as "250ms".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Errors lists every mistake found in a spec.
type Errors []string

func (e Errors) Error() string {
	if len(e) == 1 {
		return "invalid spec: " + e[0]
	}
	return fmt.Sprintf("invalid spec, %d mistakes:\n  - %s", len(e), strings.Join(e, "\n  - "))
}

var nameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Parse reads a YAML or JSON spec and validates it. The error, if any, is
// an [Errors] listing every mistake. It reads stored specs (spiders,
// crawl records) too, so it accepts every spec an earlier version
// accepted; [ParseNew] adds the checks for specs being applied.
func Parse(data []byte) (*Spec, error) { return parse(data, false) }

// ParseNew is Parse with the checks a spec being applied must pass
// besides (see [Spec.newSpecChecks]); spider apply, by the CLI or the
// API, uses it.
func ParseNew(data []byte) (*Spec, error) { return parse(data, true) }

func parse(data []byte, applying bool) (*Spec, error) {
	var s Spec
	var errs Errors
	var undecoded []string // paths whose values did not decode
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			if errors.Is(err, io.EOF) {
				return nil, Errors{"empty spec"}
			}
			return nil, Errors{strings.TrimPrefix(err.Error(), "yaml: ")}
		}
		aborted := false
		for _, m := range withPaths(data, te.Errors) {
			errs = append(errs, friendlyYAML(m))
			if path, _, ok := strings.Cut(m, ": "); ok {
				undecoded = append(undecoded, path)
			}
			// A key given twice stops the decoding of its whole mapping:
			// what validation would say of the rest is not so.
			aborted = aborted || strings.Contains(m, "already defined")
		}
		if aborted {
			return nil, errs
		}
	}
	s.normalize()
	verrs := s.validate()
	if applying {
		verrs = append(verrs, s.newSpecChecks()...)
	}
	verrs = withoutPaths(verrs, undecoded)
	// The text's tree gives mistakes their lines and fields their order:
	// read it again only when there is either to give.
	var root yaml.Node
	if len(verrs) > 0 || len(s.Items) > 0 {
		_ = yaml.Unmarshal(data, &root) // decoded above: it parses
	}
	errs = append(errs, withLines(&root, verrs)...)
	if len(errs) > 0 {
		return nil, errs
	}
	fieldOrder(&root, &s)
	return &s, nil
}

// friendlyYAML rewrites yaml's Go-flavoured messages in spec terms.
func friendlyYAML(m string) string {
	m = strings.ReplaceAll(m, " in type spec.Spec", "")
	m = strings.ReplaceAll(m, " in type spec.ItemRule", " (in items)")
	m = strings.ReplaceAll(m, " in type spec.Field", " (in an item field)")
	m = strings.ReplaceAll(m, " in type spec.Politeness", " (in politeness)")
	m = strings.ReplaceAll(m, " in type spec.Links", " (in links)")
	m = strings.ReplaceAll(m, " in type spec.Request", " (in request)")
	m = strings.ReplaceAll(m, " in type spec.Login", " (in login)")
	if strings.Contains(m, "not found") {
		m = strings.Replace(m, "field ", "unknown field ", 1)
		m = strings.Replace(m, " not found", "", 1)
	}
	// "cannot unmarshal !!str `x` into []string" is the decoder's Go;
	// say what was written and what goes there (found by review).
	return unmarshalRe.ReplaceAllStringFunc(m, func(u string) string {
		sm := unmarshalRe.FindStringSubmatch(u)
		got := map[string]string{"str": "text", "int": "a number", "float": "a number", "bool": "true/false",
			"map": "a mapping (key: value)", "seq": "a list", "null": "nothing"}[sm[1]]
		if got == "" {
			got = sm[1]
		}
		if sm[2] != "" {
			got += " " + strings.TrimSpace(sm[2])
		}
		return "want " + goTypeWords(sm[3]) + ", not " + got
	})
}

var unmarshalRe = regexp.MustCompile("cannot unmarshal !!(\\w+) (`[^`]*` )?into (\\S+)")

// goTypeWords says a Go type of the spec in a spec author's words.
func goTypeWords(t string) string {
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["), strings.HasPrefix(t, "spec."), strings.HasPrefix(t, "*spec."):
		if t == "spec.Duration" || t == "*spec.Duration" {
			return "a duration such as 250ms"
		}
		return "a mapping (key: value)"
	case t == "string":
		return "text"
	case t == "bool" || t == "*bool":
		return "true or false"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "*int") || strings.HasPrefix(t, "float"):
		return "a number"
	}
	return t
}

// Validate checks a spec built in code.
func (s *Spec) Validate() error {
	if errs := s.validate(); len(errs) > 0 {
		return errs
	}
	return nil
}

func (s *Spec) validate() Errors {
	c := &checker{}
	add := c.add
	if !nameRe.MatchString(s.Name) {
		add("name %q: use 1-63 lower-case letters, digits and '-' (no leading or trailing '-')", s.Name)
	}
	for i, d := range s.AllowedDomains {
		if err := checkDomain(d); err != nil {
			add("allowed_domains[%d] %q: %v", i, d, err)
		}
	}
	if len(s.StartURLs) == 0 && !slices.ContainsFunc(s.Sitemaps, func(sm string) bool { return sm != "robots" }) {
		// A sitemap URL is a start of its own (a sitemap-only spider).
		add("start_urls: at least one URL is needed (or a sitemap URL in sitemaps)")
	}
	for i, raw := range s.StartURLs {
		u, err := url.Parse(raw)
		_, cerr := urlnorm.Canonical(raw)
		switch {
		case err != nil:
			add("start_urls[%d] %q: not a URL: %v", i, raw, err)
		case u.Scheme != "http" && u.Scheme != "https":
			add("start_urls[%d] %q: only http and https URLs can be crawled", i, raw)
		case u.Host == "":
			add("start_urls[%d] %q: no host", i, raw)
		case cerr != nil:
			// What crawl start would refuse, said at apply.
			add("start_urls[%d] %q: %v", i, raw, strings.TrimPrefix(cerr.Error(), "urlnorm: "))
		case len(s.AllowedDomains) > 0 && !DomainAllowed(s.AllowedDomains, u):
			add("start_urls[%d] %q: host %s is not in allowed_domains", i, raw, u.Host)
		}
	}
	if s.MaxDepth < 0 {
		add("max_depth %d: must be 0 (unlimited) or more", s.MaxDepth)
	}
	if s.MaxPages < 0 {
		add("max_pages %d: must be 0 (unlimited) or more", s.MaxPages)
	}
	if s.PartitionBy != "" && s.PartitionBy != "host" && s.PartitionBy != "url" {
		add("partition_by %q: want host (the default) or url", s.PartitionBy)
	}
	c.goSpider(s)
	c.programmable(s)
	c.links(s)
	c.items(s)
	c.sitemaps(s)
	c.request(s)
	if s.Politeness.Delay != nil && *s.Politeness.Delay < 0 {
		add("politeness.delay %v: must not be negative", s.Politeness.Delay.Std())
	}
	if s.Politeness.Parallelism < 0 {
		add("politeness.parallelism %d: must be 0 (default) or more", s.Politeness.Parallelism)
	}
	if s.Schedule != "" {
		if err := checkSchedule(s.Schedule); err != nil {
			add("schedule %q: %v", s.Schedule, err)
		}
	}
	return c.errs
}

func checkDomain(d string) error {
	host := d
	if h, p, err := net.SplitHostPort(d); err == nil {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not a number in 1-65535", p)
		}
		host = h
	}
	if host == "" || strings.ContainsAny(host, "/:?#@ ") {
		return errors.New("want a host or host:port, e.g. example.com or 127.0.0.1:8088")
	}
	return nil
}

// DomainAllowed reports whether u's host is in allowed: an entry matches
// the host and its subdomains, on any port, or with a port (host:port) on
// that port only (80 and 443 when the URL gives none). Internationalised
// names match in either form (bücher.example, xn--bcher-kva.example). An
// empty list allows everything.
func DomainAllowed(allowed []string, u *url.URL) bool {
	if len(allowed) == 0 {
		return true
	}
	host := urlnorm.ASCIIHost(strings.TrimSuffix(strings.ToLower(u.Hostname()), "."))
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	for _, d := range allowed {
		d = strings.ToLower(d)
		if h, p, err := net.SplitHostPort(d); err == nil {
			if p != port {
				continue
			}
			d = h
		}
		d = urlnorm.ASCIIHost(d)
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

func checkSchedule(s string) error {
	if d, ok := strings.CutPrefix(s, "@every "); ok {
		v, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil || v < time.Second {
			return errors.New("@every wants a duration of at least 1s, e.g. @every 1h")
		}
	}
	if _, err := cron.ParseStandard(s); err != nil {
		return fmt.Errorf("want 5 cron fields (minute hour day month weekday), @hourly and the like, or @every D: %v", err)
	}
	return nil
}

// newSpecChecks are the checks a spec being applied passes besides
// validate's. Specs stored by an earlier version may fail them and still
// run as they did (a stored spider, a running crawl's record), so they
// are kept out of validate; each was found by review:
//   - a start URL matching links.deny (DESIGN: never requested); a
//     stored one is skipped at crawl start;
//   - request.headers the HTTP client sets itself (a pasted
//     Accept-Encoding turned off decompression, so robots.txt read as no
//     rules); a stored one is not sent;
//   - allowed_domains written as wildcards, which never matched a host;
//   - credentials written out in headers, cookies, login forms or proxy
//     URLs: the spec is stored and served by the open spiders API.
func (s *Spec) newSpecChecks() Errors {
	c := &checker{}
	for i, d := range s.AllowedDomains {
		if h := strings.TrimLeft(d, "*."); h != d {
			c.add("allowed_domains[%d] %q: write the domain itself (%s): it covers its subdomains", i, d, h)
		}
	}
	if r := s.Request; r != nil {
		for _, k := range sortedKeys(r.Headers) {
			switch {
			case TransportHeader(k):
				c.add("request.headers.%s: the mesh's HTTP client sets this header itself (compression, framing); remove it", k)
			case credentialName(k) && literalSecret(r.Headers[k]):
				c.add("request.headers.%s: a credential written out, and a spec is stored and shown to anyone who can read the API: write it as ${env:NAME} (\"Bearer ${env:TOKEN}\") and set NAME on the workers", k)
			}
		}
		for _, k := range sortedKeys(r.Cookies) {
			if credentialName(k) && literalSecret(r.Cookies[k]) {
				c.add("request.cookies.%s: a credential written out, and a spec is stored and shown to anyone who can read the API: write it as ${env:NAME} and set NAME on the workers", k)
			}
		}
		for i, p := range r.Proxies {
			if literalUserinfo(p) {
				c.add("request.proxies[%d]: the URL's user info is written out, and a spec is stored and shown to anyone who can read the API: write it as ${env:NAME} and set NAME on the workers", i)
			}
		}
	}
	if l := s.Login; l != nil {
		for _, k := range sortedKeys(l.Form) {
			if credentialName(k) && literalSecret(l.Form[k]) {
				c.add("login.form.%s: a credential written out, and a spec is stored and shown to anyone who can read the API: write it as ${env:NAME} and set NAME on the workers", k)
			}
		}
	}
	if s.Schedule != "" {
		// A cron schedule no date matches (30 February): the scheduler
		// looked for its next tick a million times each pass, a core of
		// the leader, and every other schedule fired late (review).
		if sched, err := cron.ParseStandard(s.Schedule); err == nil && sched.Next(time.Now()).IsZero() {
			c.add("schedule %q: no date matches it (such as 30 February), so it would never fire", s.Schedule)
		}
	}
	if s.Links != nil && len(s.Links.Deny) > 0 {
		deny := make([]*regexp.Regexp, 0, len(s.Links.Deny))
		for _, p := range s.Links.Deny {
			if re, err := regexp.Compile(p); err == nil { // a bad one is validate's to report
				deny = append(deny, re)
			}
		}
		for i, raw := range s.StartURLs {
			if p := deniedBy(deny, raw); p != "" {
				c.add("start_urls[%d] %q: it matches links.deny %q, so it would never be requested", i, raw, p)
			}
		}
	}
	return c.errs
}

// deniedBy returns the pattern of deny that URL raw matches, in its
// canonical or decoded form as the crawl's link rules read it ("" for
// none).
func deniedBy(deny []*regexp.Regexp, raw string) string {
	c, err := urlnorm.Canonical(raw)
	if err != nil {
		return ""
	}
	d := urlnorm.Decoded(c)
	for _, re := range deny {
		if re.MatchString(c) || d != "" && re.MatchString(d) {
			return re.String()
		}
	}
	return ""
}

// withoutPaths drops the mistakes about a field whose value did not
// decode: it is zero, and "request.timeout 0s: must be more than 0" under
// "request.timeout: duration `abc`" would blame the user for a value they
// never wrote.
func withoutPaths(errs Errors, paths []string) Errors {
	if len(paths) == 0 {
		return errs
	}
	out := errs[:0:0]
	for _, m := range errs {
		about := false
		for _, p := range paths {
			if rest, ok := strings.CutPrefix(m, p); ok && (rest == "" || strings.ContainsRune(" :[.", rune(rest[0]))) {
				about = true
				break
			}
		}
		if !about {
			out = append(out, m)
		}
	}
	return out
}
