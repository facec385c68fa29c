package fetch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Error is a failed fetch; Transient ones are worth retrying.
type Error struct {
	Transient  bool
	Status     int           // HTTP status, 0 if none
	RetryAfter time.Duration // from a 429/503 Retry-After
	Reason     string        // short and stable: "404", "robots", "timeout", "too-large", "login", "env" ...
	// CrawlLevel: the whole crawl cannot proceed on this worker (the login
	// was refused, a ${env:NAME} is unset); the crawler fails the crawl.
	CrawlLevel bool
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

func (e *Error) Unwrap() error { return e.Err }

// errRobots is wrapped when robots.txt disallows a URL.
var errRobots = errors.New("blocked by robots.txt")

// errRedirect is wrapped when a redirect is refused.
var errRedirect = errors.New("redirect refused")

// errBadURL says a URL cannot be fetched without quoting url.Parse, whose
// message may hold the whole URL twice.
func errBadURL(raw string) error {
	if len(raw) > 200 {
		raw = raw[:200] + "…"
	}
	return fmt.Errorf("cannot fetch %q: not an absolute http(s) URL", raw)
}

// transportError classifies an error of the HTTP client (no response).
// url.Error is unwrapped: its text repeats the URL, and the reason is
// enough (the URL is the task's).
func transportError(ctx context.Context, err error) *Error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if ctx.Err() != nil {
		return &Error{Transient: true, Reason: "cancelled", Err: ctx.Err()}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Transient: true, Reason: "timeout", Err: err}
	}
	return &Error{Transient: true, Reason: "network", Err: err}
}

// statusError is the error of a final answer that is not a page: 429 and
// 5xx are transient (with Retry-After), anything else permanent.
func statusError(status int, h http.Header) *Error {
	err := fmt.Errorf("status %d", status)
	if transientStatus(status) {
		return &Error{Transient: true, Status: status, Reason: strconv.Itoa(status), RetryAfter: retryAfter(h), Err: err}
	}
	return &Error{Status: status, Reason: strconv.Itoa(status), Err: err}
}

func transientStatus(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

// maxRetryAfter caps a site's Retry-After: the pause it sets is stored
// for the host mesh-wide, so a hostile or broken answer (found by review:
// 100000000 s paused a host for 3 years) must not stop every crawl of it.
const maxRetryAfter = 10 * time.Minute

// retryAfter is the answer's Retry-After (seconds or an HTTP date), at
// most maxRetryAfter.
func retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		// Compared in seconds: a Duration of a huge count overflows (and
		// ParseUint gives the largest uint64 with ErrRange).
		return time.Duration(min(s, uint64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), maxRetryAfter)
	}
	return 0
}
