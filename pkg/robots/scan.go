package robots

import "strings"

// This file splits a robots.txt body into lines and each line into a key and
// a value, as google/robotstxt's RobotsTxtParser does. It knows nothing of
// groups; [Parse] builds those from what scan emits.

// maxLineLen is the longest line Google's parser keeps: its buffer holds
// 2083*8 bytes including a terminating NUL. The rest of a longer line is
// dropped; the kept part is still parsed (GoogleOnly_LineTooLong).
const maxLineLen = 2083*8 - 1

// bom is the UTF-8 byte order mark. Any prefix of it at the start of the
// body is skipped; elsewhere its bytes are ordinary text.
const bom = "\xEF\xBB\xBF"

// asciiSpace is what absl::StripAsciiWhitespace strips. strings.TrimSpace
// would also strip Unicode spaces such as U+00A0, which Google keeps.
const asciiSpace = " \t\n\v\f\r"

// key is the kind of a robots.txt line.
type key int

const (
	keyNone       key = iota // blank, comment-only or unparseable line
	keyUnknown               // "name: value" with a name we do not use
	keyUserAgent             // user-agent, and the typos useragent, user agent
	keyAllow                 // allow
	keyDisallow              // disallow, and five typos of it
	keySitemap               // sitemap, site-map
	keyCrawlDelay            // crawl-delay, crawldelay, crawl delay: ours, unknown to Google
)

// line is one parsed robots.txt line.
type line struct {
	num     int    // 1-based; CR, LF and CRLF each end one line
	key     key    // keyNone: no directive on this line
	typo    bool   // key is one of the misspellings Google accepts
	name    string // the key as written, trimmed
	value   string // trimmed; for allow and disallow, escaped by escapePattern
	tooLong bool   // the line was cut at maxLineLen
}

// scan calls emit for every line of body, in order, blank ones included.
func scan(body string, emit func(line)) {
	i := 0
	for i < len(body) && i < len(bom) && body[i] == bom[i] {
		i++
	}
	num := 0
	start := i
	lastCR := false
	for j := i; j < len(body); j++ {
		c := body[j]
		if c != '\n' && c != '\r' {
			continue
		}
		// The LF of a CRLF ends no second line.
		if j != start || !lastCR || c != '\n' {
			num++
			emit(parseLine(num, body[start:j]))
		}
		start = j + 1
		lastCR = c == '\r'
	}
	num++
	emit(parseLine(num, body[start:]))
}

// parseLine splits one line into key and value, following Google's
// GetKeyAndValueFrom: a comment runs from '#' to the end of the line; the
// key and value are separated by the first ':', or, when the line has no
// colon, by whitespace if the line holds exactly two words ("disallow /").
func parseLine(num int, s string) line {
	l := line{num: num}
	if len(s) > maxLineLen {
		s, l.tooLong = s[:maxLineLen], true
	}
	// Google works on NUL-terminated strings: a NUL ends the line.
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i]
	}
	s = strings.Trim(s, asciiSpace)
	if s == "" {
		return l
	}
	sep := strings.IndexByte(s, ':')
	if sep < 0 {
		sep = strings.IndexAny(s, " \t")
		if sep < 0 {
			return l
		}
		if strings.ContainsAny(strings.TrimLeft(s[sep:], " \t"), " \t") {
			return l // more than two words: not a missing colon
		}
	}
	name := strings.Trim(s[:sep], asciiSpace)
	if name == "" {
		return l
	}
	l.key, l.typo = classify(name)
	l.name = name
	l.value = strings.Trim(s[sep+1:], asciiSpace)
	if l.key == keyAllow || l.key == keyDisallow {
		l.value = escapePattern(l.value)
	}
	return l
}

// classify names the key of a line. Like Google's ParsedRobotsKey it
// matches by case-insensitive prefix, so "User-agents" and "Disallowed" are
// keys too, and it accepts the misspellings Google accepts.
func classify(name string) (k key, typo bool) {
	switch {
	case hasPrefixFold(name, "user-agent"):
		return keyUserAgent, false
	case hasPrefixFold(name, "useragent"), hasPrefixFold(name, "user agent"):
		return keyUserAgent, true
	case hasPrefixFold(name, "allow"):
		return keyAllow, false
	case hasPrefixFold(name, "disallow"):
		return keyDisallow, false
	case hasPrefixFold(name, "dissallow"), hasPrefixFold(name, "dissalow"),
		hasPrefixFold(name, "disalow"), hasPrefixFold(name, "diasllow"),
		hasPrefixFold(name, "disallaw"):
		return keyDisallow, true
	case hasPrefixFold(name, "sitemap"):
		return keySitemap, false
	case hasPrefixFold(name, "site-map"):
		return keySitemap, true
	case hasPrefixFold(name, "crawl-delay"):
		return keyCrawlDelay, false
	case hasPrefixFold(name, "crawldelay"), hasPrefixFold(name, "crawl delay"):
		return keyCrawlDelay, true
	}
	return keyUnknown, false
}

// escapePattern percent-encodes every octet with its high bit set and
// upper-cases the hex digits of existing %xx escapes, as Google's
// MaybeEscapePattern does for rule values: "/foo/bar/ツ" becomes
// "/foo/bar/%E3%83%84" and "%aa" becomes "%AA". Everything else, reserved
// characters and unreserved escapes such as %62 included, is left alone.
func escapePattern(s string) string {
	need := false
	for i := 0; i < len(s); i++ {
		if isEscape(s, i) {
			need = need || isLowerHex(s[i+1]) || isLowerHex(s[i+2])
			i += 2
		} else if s[i] >= 0x80 {
			need = true
		}
	}
	if !need {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isEscape(s, i):
			b.WriteByte('%')
			b.WriteByte(upper(s[i+1]))
			b.WriteByte(upper(s[i+2]))
			i += 2
		case c >= 0x80:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// isEscape reports whether s[i:] starts with '%' and two hex digits.
func isEscape(s string, i int) bool {
	return s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2])
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isLowerHex(c byte) bool { return 'a' <= c && c <= 'f' }

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// hasPrefixFold is strings.HasPrefix ignoring ASCII case only.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && equalFold(s[:len(prefix)], prefix)
}

// equalFold compares ASCII case-insensitively. strings.EqualFold applies
// Unicode folding, under which the Kelvin sign "\u212A" equals "k": an
// agent name could then match a token it does not spell.
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c - 'A' + 'a'
	}
	return c
}
