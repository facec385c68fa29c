package robots

import (
	"math"
	"strconv"
	"time"
)

// MaxCrawlDelay caps Crawl-delay. A larger value, however large, reads as
// this, so no value can overflow time.Duration or the arithmetic callers do
// with it, and no site can stall a crawl for hours with one line.
const MaxCrawlDelay = time.Minute

// CrawlDelay is the Crawl-delay the site sets for productToken, 0 if none.
// Crawl-delay is not in RFC 9309 and Google ignores it; many sites still
// set it. It is chosen like the groups of [Robots.Allowed]: the User-agent
// lines naming productToken if there are any (even if none of them has a
// delay), else the "*" lines. If several delays apply, the largest counts.
//
// A Crawl-delay line applies to the User-agent lines just above it, those
// since the previous Crawl-delay line of its group. That is narrower than a
// group: Google does not let a Crawl-delay line end a run of User-agent
// lines, so in
//
//	User-agent: *
//	Crawl-delay: 10
//
//	User-agent: crawlmesh
//	Crawl-delay: 5
//
// both User-agent lines share one group for Allow and Disallow, yet
// crawlmesh's delay is 5 seconds, as the author meant.
func (r *Robots) CrawlDelay(productToken string) time.Duration {
	if r.kind != KindParsed {
		return 0
	}
	specific := r.hasGroupFor(productToken)
	var d time.Duration
	for i := range r.groups {
		for _, a := range r.groups[i].agents {
			if !a.hasDelay {
				continue
			}
			if specific && a.token != "*" && equalFold(a.token, productToken) || !specific && a.token == "*" {
				d = max(d, a.delay)
			}
		}
	}
	return d
}

// parseCrawlDelay reads a Crawl-delay value: seconds as a plain decimal
// ("10", "0.5", ".5"). Anything else ("soon", "-5", "1e3", "10s", "NaN")
// is not a delay and the line is ignored. Values above MaxCrawlDelay read
// as MaxCrawlDelay.
func parseCrawlDelay(v string) (time.Duration, bool) {
	digits, dots := 0, 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case '0' <= c && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			return 0, false
		}
	}
	if digits == 0 || dots > 1 {
		return 0, false
	}
	// The syntax is checked, so the only error left is a range error, with
	// secs +Inf for a huge value or 0 for a tiny one.
	secs, _ := strconv.ParseFloat(v, 64)
	if math.IsInf(secs, 0) || secs >= MaxCrawlDelay.Seconds() {
		return MaxCrawlDelay, true
	}
	return time.Duration(secs * float64(time.Second)), true
}
