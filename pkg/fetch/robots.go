package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/temoto/robotstxt"
)

// errRobots is wrapped when robots.txt disallows a URL.
var errRobots = errors.New("blocked by robots.txt")

// robots caches robots.txt per scheme://host for ttl. colly has its own
// cache, but it fetches without the request's context (a hanging
// robots.txt would hold a cancelled task for the whole timeout) and
// cannot be asked about redirect targets; this one is used for both.
type robots struct {
	client *http.Client
	ua     string
	ttl    time.Duration
	max    int

	mu sync.Mutex
	m  map[string]*robotsEntry
}

type robotsEntry struct {
	ready   chan struct{} // closed when data or err is set
	data    *robotstxt.RobotsData
	err     error
	expires time.Time
}

func newRobots(client *http.Client, ua string) *robots {
	return &robots{client: client, ua: ua, ttl: time.Hour, max: 10000, m: map[string]*robotsEntry{}}
}

// check returns nil if u may be fetched, an error wrapping errRobots if
// robots.txt forbids it, and another error (transient) if robots.txt could
// not be read: 5xx or no answer means "not now", never "allowed".
func (r *robots) check(ctx context.Context, u *url.URL) error {
	key := u.Scheme + "://" + u.Host
	r.mu.Lock()
	e := r.m[key]
	if e != nil && e.expired() {
		delete(r.m, key)
		e = nil
	}
	if e == nil {
		if len(r.m) >= r.max {
			for k := range r.m { // drop an arbitrary entry: the map stays bounded
				delete(r.m, k)
				break
			}
		}
		e = &robotsEntry{ready: make(chan struct{})}
		r.m[key] = e
		go r.load(e, key)
	}
	r.mu.Unlock()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-e.ready:
	}
	if e.err != nil {
		return e.err
	}
	if !robotsAllow(e.data, u, r.ua) {
		return fmt.Errorf("%w: %s", errRobots, u)
	}
	return nil
}

// crawlDelay is the Crawl-delay robots.txt of u's host sets for us, 0 if
// none or if robots.txt cannot be read now.
func (r *robots) crawlDelay(ctx context.Context, u *url.URL) time.Duration {
	if err := r.check(ctx, &url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/"}); err != nil && !errors.Is(err, errRobots) {
		return 0
	}
	r.mu.Lock()
	e := r.m[u.Scheme+"://"+u.Host]
	r.mu.Unlock()
	if e == nil {
		return 0
	}
	select {
	case <-e.ready:
	default:
		return 0 // being reloaded: the next task sees it
	}
	if e.data == nil {
		return 0
	}
	return robotsDelay(e.data, r.ua)
}

func (e *robotsEntry) expired() bool {
	select {
	case <-e.ready:
		return time.Now().After(e.expires)
	default:
		return false
	}
}

// load fetches robots.txt on its own context: it is shared by every task
// waiting for this host, so one task's cancellation must not fail the rest.
func (r *robots) load(e *robotsEntry, base string) {
	defer close(e.ready)
	e.expires = time.Now().Add(r.ttl)
	req, err := http.NewRequest(http.MethodGet, base+"/robots.txt", nil)
	if err != nil {
		e.err = err
		return
	}
	req.Header.Set("User-Agent", r.ua)
	resp, err := r.client.Do(req)
	if err != nil {
		e.err, e.expires = fmt.Errorf("robots.txt of %s: %w", base, err), time.Now().Add(10*time.Second)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 512<<10)) // Google reads 500 KiB
	if err != nil {
		e.err, e.expires = fmt.Errorf("robots.txt of %s: %w", base, err), time.Now().Add(10*time.Second)
		return
	}
	e.data, e.err = parseRobots(resp.StatusCode, body)
	if e.err != nil {
		e.err, e.expires = fmt.Errorf("robots.txt of %s: %w", base, e.err), time.Now().Add(10*time.Second)
	}
}

// parseRobots reads a robots.txt answer. A 5xx is an error (not now, try
// again soon); anything else gives rules.
func parseRobots(status int, body []byte) (*robotstxt.RobotsData, error) {
	if status >= 500 {
		return nil, fmt.Errorf("status %d", status)
	}
	data, err := robotstxt.FromStatusAndBytes(status, body)
	if err != nil {
		// Unparseable or an odd status: treat as no robots.txt (RFC 9309 2.3.1.2).
		data, _ = robotstxt.FromStatusAndBytes(http.StatusNotFound, nil)
	}
	return data, nil
}

// robotsAllow reports whether the rules let user agent ua fetch u.
func robotsAllow(data *robotstxt.RobotsData, u *url.URL, ua string) bool {
	path := u.EscapedPath()
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	return data.TestAgent(path, ua)
}

// maxCrawlDelay caps Crawl-delay. robotstxt converts seconds to a
// Duration without a range check, so a huge value wraps negative (and was
// ignored); one just below that overflows the politeness arithmetic in
// nanoseconds. A site asking for more than a day between pages gets a day.
const maxCrawlDelay = 24 * time.Hour

// robotsDelay is the Crawl-delay the rules set for user agent ua, 0 if none.
func robotsDelay(data *robotstxt.RobotsData, ua string) time.Duration {
	d := data.FindGroup(ua).CrawlDelay
	if d < 0 || d > maxCrawlDelay {
		return maxCrawlDelay
	}
	return d
}
