package fetch

import (
	"net/http"
	"net/url"

	"github.com/crawlmesh/crawlmesh/pkg/politeness"
)

// SetReleaseHook lets tests count the permits a Fetcher releases.
func SetReleaseHook(f *Fetcher, h func(host string, o politeness.Outcome)) { f.onRelease = h }

// JarLen is how many cookies crawl's jar keeps on f.
func JarLen(f *Fetcher, crawl string) int { return f.sessions.get(crawl).jar.len() }

// JarCookies are the cookies crawl's jar would send to u.
func JarCookies(f *Fetcher, crawl string, u *url.URL) []*http.Cookie {
	return f.sessions.get(crawl).jar.Cookies(u)
}

// Cookie bounds, for tests.
const (
	MaxHostCookies = maxHostCookies
	MaxJarCookies  = maxJarCookies
)

// SetJarCookies stores cs in crawl's jar as the answer of u would.
func SetJarCookies(f *Fetcher, crawl string, u *url.URL, cs []*http.Cookie) {
	f.sessions.get(crawl).jar.SetCookies(u, cs)
}
