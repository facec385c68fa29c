package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/robots"
)

// RobotsFile is one host's robots.txt answer as fetched (Status 0:
// unreachable, no answer at all).
type RobotsFile struct {
	Status  int       `json:"status"`
	Body    []byte    `json:"body,omitempty"` // at most robots.MaxSize; only for 2xx
	Expires time.Time `json:"expires"`        // 2xx/4xx: now + RobotsTTL; 5xx/unreachable: now + 1m
	// Fetched is when a 2xx or 4xx answer was read (zero for no answer):
	// with it a lowered robots_ttl applies to answers kept already.
	Fetched time.Time `json:"fetched,omitzero"`
	// Why says what made it unreachable ("connection refused", "status
	// 503"), for the pages' failure reason.
	Why string `json:"why,omitempty"`
}

// ExpiresBy is when f stops standing with answers kept at most maxAge:
// its expiry, or sooner once robots_ttl was lowered (found by review: a
// changed robots.txt stayed unseen for the old TTL's hour).
func (f RobotsFile) ExpiresBy(maxAge time.Duration) time.Time {
	if f.Fetched.IsZero() || maxAge <= 0 {
		return f.Expires
	}
	if by := f.Fetched.Add(maxAge); by.Before(f.Expires) {
		return by
	}
	return f.Expires
}

// robotsRules is a host's robots.txt verdict and, when unreachable, why.
type robotsRules struct {
	*robots.Robots
	why string
}

// unreachableErr is the transient failure of a page of u's host while its
// robots.txt cannot be read.
func (r robotsRules) unreachableErr(u *url.URL) *Error {
	msg := fmt.Sprintf("robots.txt of %s://%s cannot be read now", u.Scheme, u.Host)
	if r.why != "" {
		msg += " (" + r.why + ")"
	}
	return robotsUnreachable(errors.New(msg))
}

// RobotsStore returns the stored file for key while it has not expired,
// else runs fetch once mesh-wide (other callers wait for that result,
// bounded) and stores and returns its answer. key is origin
// ("http://host:port") + " " + product token. fetch returns an error only
// when no answer should be stored (the caller's context ended, no permit);
// an unreachable host is a RobotsFile with Status 0. Load must call fetch,
// if at all, before it returns (fetch uses the caller's permits).
type RobotsStore interface {
	// Load returns the file kept for key unless it expired by
	// [RobotsFile.ExpiresBy] maxAge, else the answer of fetch.
	Load(ctx context.Context, key string, maxAge time.Duration, fetch func(ctx context.Context) (RobotsFile, error)) (RobotsFile, error)
}

// unreachableTTL is how long a 5xx or no answer stands (disallow all).
const unreachableTTL = time.Minute

// robotsCache is this worker's copy of robots.txt verdicts, in front of
// the mesh-wide store, per origin and product token. Loads are single
// flight: one goroutine loads, the others wait (and load themselves if it
// fails, e.g. because its task was cancelled).
type robotsCache struct {
	mu  sync.Mutex
	m   map[string]*robotsEntry
	max int
}

type robotsEntry struct {
	ready chan struct{} // closed when rules or err is set
	rules robotsRules
	err   error
	file  RobotsFile // its expiry, and when it was read
}

// stale: the entry's answer has expired by maxAge (robots_ttl now).
func (e *robotsEntry) stale(maxAge time.Duration) bool {
	return e.err != nil || time.Now().After(e.file.ExpiresBy(maxAge))
}

func newRobotsCache() *robotsCache {
	return &robotsCache{m: map[string]*robotsEntry{}, max: 10000}
}

// cached returns a fresh verdict for key without waiting.
func (rc *robotsCache) cached(key string, maxAge time.Duration) (robotsRules, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	e := rc.m[key]
	if e == nil || !isDone(e.ready) || e.stale(maxAge) {
		return robotsRules{}, false
	}
	return e.rules, true
}

func isDone(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// load returns the verdict for key, running load when no goroutine of
// this worker is loading it already.
func (rc *robotsCache) load(ctx context.Context, key string, maxAge time.Duration, load func(ctx context.Context) (robotsRules, RobotsFile, error)) (robotsRules, error) {
	var lastErr error
	for range 3 { // a waiter whose loader failed tries itself, a bounded number of times
		rc.mu.Lock()
		e := rc.m[key]
		if e != nil && isDone(e.ready) && e.stale(maxAge) {
			delete(rc.m, key)
			e = nil
		}
		if e == nil {
			if len(rc.m) >= rc.max {
				for k := range rc.m { // drop an arbitrary entry: the map stays bounded
					delete(rc.m, k)
					break
				}
			}
			e = &robotsEntry{ready: make(chan struct{})}
			rc.m[key] = e
			rc.mu.Unlock()
			r, file, err := load(ctx)
			rc.mu.Lock()
			e.rules, e.file, e.err = r, file, err
			if err != nil && rc.m[key] == e {
				delete(rc.m, key)
			}
			close(e.ready)
			rc.mu.Unlock()
			return r, err
		}
		rc.mu.Unlock()
		select {
		case <-ctx.Done():
			return robotsRules{}, ctx.Err()
		case <-e.ready:
		}
		if e.err == nil {
			return e.rules, nil
		}
		lastErr = e.err
	}
	return robotsRules{}, lastErr
}

// robotsFor returns the robots.txt verdict of u's origin for the spider's
// product token: from this worker's cache, else through the store (which
// fetches it with the spider's request settings, under a permit).
func (c *call) robotsFor(ctx context.Context, u *url.URL) (robotsRules, error) {
	origin := u.Scheme + "://" + u.Host
	key := origin + " " + c.token
	maxAge := c.live.RobotsTTL
	if r, ok := c.f.robots.cached(key, maxAge); ok {
		return r, nil
	}
	// Never wait for a load another goroutine does while holding a permit:
	// it may need that very permit.
	c.ch.release(ctx)
	r, err := c.f.robots.load(ctx, key, maxAge, func(ctx context.Context) (robotsRules, RobotsFile, error) {
		fetch := func(ctx context.Context) (RobotsFile, error) { return c.fetchRobots(ctx, origin) }
		var file RobotsFile
		var err error
		if c.f.cfg.Robots != nil {
			file, err = c.f.cfg.Robots.Load(ctx, key, maxAge, fetch)
		} else {
			file, err = fetch(ctx)
		}
		if err != nil {
			return robotsRules{}, RobotsFile{}, err
		}
		if file.Expires.IsZero() {
			file.Expires = time.Now().Add(unreachableTTL)
		}
		return robotsRules{rulesOf(file), file.Why}, file, nil
	})
	if err != nil {
		var fe *Error
		if errors.As(err, &fe) {
			return robotsRules{}, fe
		}
		if ctx.Err() != nil {
			return robotsRules{}, &Error{Transient: true, Reason: "cancelled", Err: ctx.Err()}
		}
		// Not the site's answer (that is stored, 5xx or none alike): the
		// shared store or a permit failed, so the usual short retry.
		return robotsRules{}, &Error{Transient: true, Reason: "robots-unreachable", Err: fmt.Errorf("robots.txt of %s: %w", origin, err)}
	}
	return r, nil
}

// rulesOf turns a stored answer into rules (RFC 9309 §2.3.1).
func rulesOf(f RobotsFile) *robots.Robots {
	if f.Status == 0 {
		return robots.Unreachable()
	}
	return robots.ForStatus(f.Status, f.Body)
}

// checkRobots returns nil when the spider may fetch u, a permanent
// "robots" error when robots.txt disallows it, and a transient one when
// robots.txt cannot be read now (5xx or no answer: not now, never "allowed").
func (c *call) checkRobots(ctx context.Context, u *url.URL) error {
	if !c.s.Politeness.ObeyRobots() {
		return nil
	}
	r, err := c.robotsFor(ctx, u)
	if err != nil {
		return err
	}
	return c.verdict(r, u)
}

// verdict is checkRobots' answer once r is loaded.
func (c *call) verdict(r robotsRules, u *url.URL) error {
	// The crawl's URLs are canonical: escapes of unreserved characters
	// decoded, so the rules' are too.
	if r.AllowedNormalizedURL(c.token, u) {
		return nil
	}
	if r.Kind() == robots.KindUnreachable {
		return r.unreachableErr(u)
	}
	return &Error{Reason: "robots", Err: fmt.Errorf("%w: %s", errRobots, u.Redacted())}
}

// robotsUnreachable is the transient failure of a page whose robots.txt
// cannot be read now. Its retry waits out the answer's time (RFC 9309
// §2.3.1.4: disallow all while it stands), so that the retry reads
// robots.txt again: a retry within the same minute could only fail alike.
func robotsUnreachable(err error) *Error {
	return &Error{Transient: true, Reason: "robots-unreachable", RetryAfter: unreachableTTL + time.Second, Err: err}
}

// fetchRobots fetches origin's robots.txt with the spider's request
// settings, following up to five redirects (each hop under its own
// permit). No answer is Status 0, not an error: it is stored (briefly) like
// a 5xx. Only a cancelled context or a missing permit is an error.
func (c *call) fetchRobots(ctx context.Context, origin string) (RobotsFile, error) {
	u, err := url.Parse(origin + "/robots.txt")
	if err != nil {
		return RobotsFile{}, &Error{Reason: "bad-url", Err: errBadURL(origin)}
	}
	unreachable := RobotsFile{Expires: time.Now().Add(unreachableTTL)}
	for hop := 0; ; hop++ {
		resp, done, err := c.send(ctx, "GET", u, "")
		if err != nil {
			var fe *Error
			if ctx.Err() != nil || (errors.As(err, &fe) && fe.Reason == "politeness") {
				return RobotsFile{}, err
			}
			unreachable.Why = whyUnreachable(err)
			return unreachable, nil
		}
		status := resp.StatusCode
		if isRedirect(status) && hop < 5 {
			next, perr := u.Parse(resp.Header.Get("Location"))
			drain(resp)
			done()
			c.ch.end(false, 0)
			if perr == nil && resp.Header.Get("Location") != "" && (next.Scheme == "http" || next.Scheme == "https") {
				u = next
				continue
			}
		}
		var body []byte
		if status >= 200 && status <= 299 {
			body, err = io.ReadAll(io.LimitReader(resp.Body, robots.MaxSize+1))
		}
		resp.Body.Close()
		done()
		if err != nil {
			c.ch.end(true, 0)
			if ctx.Err() != nil {
				return RobotsFile{}, &Error{Transient: true, Reason: "cancelled", Err: ctx.Err()}
			}
			unreachable.Why = whyUnreachable(err)
			return unreachable, nil
		}
		c.ch.end(transientStatus(status), retryAfter(resp.Header))
		now := time.Now()
		file := RobotsFile{Status: status, Body: capRobots(body), Expires: now.Add(c.live.RobotsTTL), Fetched: now}
		if rulesOf(file).Kind() == robots.KindUnreachable {
			file.Body, file.Expires, file.Fetched = nil, time.Now().Add(unreachableTTL), time.Time{}
			file.Why = fmt.Sprintf("status %d", status)
		}
		return file, nil
	}
}

// whyUnreachable is the short cause of a failed robots.txt request
// ("connection refused", "timeout"), as the page's failure reason gives it.
func whyUnreachable(err error) string {
	var ne *net.OpError
	if errors.As(err, &ne) && ne.Err != nil {
		return ne.Op + ": " + ne.Err.Error()
	}
	var fe *Error
	if errors.As(err, &fe) && fe.Reason != "" {
		// With its cause: "network" alone hid an https:// start URL
		// on a plain-http site (found by review). A *net.OpError in it
		// was answered above.
		if fe.Err != nil {
			return fe.Reason + ": " + shortCause(fe.Err.Error())
		}
		return fe.Reason
	}
	return err.Error()
}

// shortCause is the last part of a chain of error messages ("Get
// \"https://h/robots.txt\": http: server gave HTTP response to HTTPS
// client" gives the part after the URL), at most 200 bytes.
func shortCause(m string) string {
	if i := strings.LastIndex(m, "\": "); i >= 0 {
		m = m[i+3:]
	}
	if len(m) > 200 {
		m = m[:200] + "..."
	}
	return m
}

// capRobots cuts a body to at most robots.MaxSize bytes the way
// robots.Parse reads it: a line cut by the limit is dropped.
func capRobots(b []byte) []byte {
	if len(b) <= robots.MaxSize {
		return b
	}
	end := robots.MaxSize
	if c := b[robots.MaxSize]; c != '\n' && c != '\r' {
		end = bytes.LastIndexAny(b[:robots.MaxSize], "\r\n") + 1
	}
	return b[:end]
}
