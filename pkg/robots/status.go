package robots

// Kind says where a [Robots] came from, so a cache can keep a verdict for
// as long as it deserves.
type Kind int

const (
	// KindParsed: rules read from a 2xx body. Cache for the usual time
	// (RFC 9309 §2.4: up to 24 hours).
	KindParsed Kind = iota
	// KindUnavailable: the server said there is no robots.txt for us (4xx
	// other than 429, or redirects that never end). Everything is allowed.
	KindUnavailable
	// KindUnreachable: the server or the network failed (5xx, 429, no
	// answer). Everything is disallowed; cache it briefly and ask again.
	KindUnreachable
)

// String returns "parsed", "unavailable" or "unreachable".
func (k Kind) String() string {
	switch k {
	case KindParsed:
		return "parsed"
	case KindUnavailable:
		return "unavailable"
	case KindUnreachable:
		return "unreachable"
	}
	return "unknown"
}

// Kind says whether r holds parsed rules, an allow-all or a disallow-all.
func (r *Robots) Kind() Kind { return r.kind }

// ForStatus is the robots.txt of a host whose /robots.txt answered with
// HTTP status status and body body, after the caller followed redirects
// (RFC 9309 §2.3.1.2: at least five hops). See the package documentation
// for what each status means. A 304 is not an answer here: the caller keeps
// the copy it revalidated.
func ForStatus(status int, body []byte) *Robots {
	switch {
	case status >= 200 && status <= 299:
		return Parse(body)
	case status == 429:
		return Unreachable()
	case status >= 300 && status <= 499:
		return AllowAll()
	}
	return Unreachable()
}

// AllowAll is the robots.txt of a host that has none (RFC 9309 §2.3.1.3,
// "unavailable"): every path is allowed for every agent. Its [Kind] is
// [KindUnavailable].
func AllowAll() *Robots { return &Robots{kind: KindUnavailable} }

// Unreachable is the robots.txt of a host whose robots.txt could not be
// read because of a server or network error (RFC 9309 §2.3.1.4): every
// path is disallowed for every agent. Its [Kind] is [KindUnreachable], so a
// cache can keep it for minutes rather than hours.
func Unreachable() *Robots { return &Robots{kind: KindUnreachable} }
