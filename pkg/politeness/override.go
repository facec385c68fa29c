package politeness

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// MaxOverrideDelay bounds an override's delay: an hour between requests
// is already a host shut out.
const MaxOverrideDelay = time.Hour

// NewOverride checks an operator's override of host (as URLs name it:
// example.com or 127.0.0.1:8088) and returns it to store. delay "" keeps
// the spider's; parallelism 0 keeps the spider's. The CLI, the HTTP API
// and the console all store overrides through it, so they refuse alike.
func NewOverride(host, delay string, parallelism int, now time.Time) (Override, error) {
	if err := checkHost(host); err != nil {
		return Override{}, err
	}
	if delay == "" && parallelism == 0 {
		return Override{}, errors.New("give a delay, a parallelism or both")
	}
	if delay != "" {
		d, err := time.ParseDuration(delay)
		if err != nil || d < 0 || d > MaxOverrideDelay {
			return Override{}, fmt.Errorf("delay %q: want a duration from 0 to %v, such as 500ms or 2s", delay, MaxOverrideDelay)
		}
		delay = d.String()
	}
	if parallelism < 0 || parallelism > 1000 {
		return Override{}, fmt.Errorf("parallelism %d: want 1-1000", parallelism)
	}
	return Override{Host: strings.ToLower(host), Delay: delay, Parallelism: parallelism, UpdatedAt: now.UTC()}, nil
}

// checkHost accepts "host" or "host:port" as it appears in URLs.
func checkHost(h string) error {
	bad := func(why string) error {
		return fmt.Errorf("host %q: %s; want host or host:port as in the URLs, e.g. example.com or 127.0.0.1:8088", h, why)
	}
	if h == "" || len(h) > 255 {
		return bad("empty or longer than 255 characters")
	}
	host := h
	if hh, port, err := net.SplitHostPort(h); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad("the port is not a number in 1-65535 (a URL is not a host)")
		}
		if port == "80" || port == "443" {
			// Canonical URLs drop a default port, so the override would
			// never meet its host (found by review).
			return fmt.Errorf("host %q: URLs name it without its default port %s: write %s", h, port, strings.TrimSuffix(net.JoinHostPort(hh, ""), ":"))
		}
		host = hh
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	if host == "" {
		return bad("no host")
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return bad(fmt.Sprintf("%q is not allowed in a host name", r))
		}
	}
	return nil
}
