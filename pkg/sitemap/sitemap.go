package sitemap

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/htmlindex"
)

// The sitemaps.org limits, per file.
const (
	MaxEntries = 50000
	MaxBytes   = 50 * 1024 * 1024 // 52,428,800 bytes, uncompressed
)

// MaxTokenBytes bounds one XML token (a text run, a comment, a tag) and
// one line of a text sitemap. A <loc> may hold 2,048 characters, so this
// is generous; it exists so that one endless token cannot make the
// decoder buffer the whole file.
const MaxTokenBytes = 1 << 20

// maxGzipLayers: a body gzipped twice (a .gz file served with
// Content-Encoding: gzip to a client that did not decode it) is common
// enough to accept; more is not a sitemap.
const maxGzipLayers = 2

// Kind says what a sitemap file turned out to be.
type Kind int

const (
	Unknown Kind = iota // not known (yet): the file was not a sitemap
	URLSet              // <urlset>: entries are pages
	Index               // <sitemapindex>: entries are other sitemaps
	Text                // plain text, one URL a line: entries are pages
)

func (k Kind) String() string {
	switch k {
	case URLSet:
		return "urlset"
	case Index:
		return "sitemapindex"
	case Text:
		return "text"
	}
	return "unknown"
}

// Entry is one <url> of a urlset, one <sitemap> of an index, or one line
// of a text sitemap.
type Entry struct {
	Loc     string // trimmed, as written (not resolved or normalised)
	LastMod string // trimmed, as written; "" when absent
	Kind    Kind   // the kind of file it came from: Index means Loc is a sitemap
}

// Errors, matched with errors.Is; the returned errors say more.
var (
	ErrTooManyEntries = errors.New("sitemap: entry limit exceeded")
	ErrTooLarge       = errors.New("sitemap: size limit exceeded")
	ErrTokenTooLarge  = errors.New("sitemap: token size limit exceeded")
	ErrNotSitemap     = errors.New("sitemap: not a sitemap")
	ErrMalformed      = errors.New("sitemap: malformed")
)

// Limits overrides the sitemaps.org limits (tests, or a stricter crawler).
// Zero fields mean the defaults.
type Limits struct {
	MaxEntries    int
	MaxBytes      int64
	MaxTokenBytes int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxEntries <= 0 {
		l.MaxEntries = MaxEntries
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = MaxBytes
	}
	if l.MaxTokenBytes <= 0 {
		l.MaxTokenBytes = MaxTokenBytes
	}
	return l
}

// Read reads one sitemap file from r with the sitemaps.org limits, calling
// fn for each entry in order. See [Limits.Read].
func Read(r io.Reader, fn func(Entry) error) (Kind, error) {
	return Limits{}.Read(r, fn)
}

// Read reads one sitemap file: gzip is recognised by its magic bytes, so
// a .xml.gz body and a plain one both work; a body whose first
// non-blank byte is '<' is XML, anything else a text sitemap. An error
// returned by fn stops reading and is returned as is. Entries delivered
// before an error stay delivered; the Kind is returned once known, even
// with an error.
func (l Limits) Read(r io.Reader, fn func(Entry) error) (Kind, error) {
	l = l.withDefaults()
	br := bufio.NewReader(r)
	for layer := 0; ; layer++ {
		magic, _ := br.Peek(2)
		if len(magic) < 2 || magic[0] != 0x1f || magic[1] != 0x8b {
			break
		}
		if layer == maxGzipLayers {
			return Unknown, fmt.Errorf("%w: gzipped more than %d times", ErrNotSitemap, maxGzipLayers)
		}
		zr, err := gzip.NewReader(br)
		if err != nil {
			return Unknown, fmt.Errorf("sitemap: gzip: %w", err)
		}
		// Bounded too: an inner gzip stream can be endless empty deflate
		// blocks that inflate to nothing the outer count would see.
		br = bufio.NewReader(&counter{r: zr, max: l.MaxBytes})
	}
	// Everything below reads decompressed bytes through the counter, so
	// MaxBytes bounds decompression as well as parsing.
	cnt := &counter{r: br, max: l.MaxBytes}
	pr := bufio.NewReader(cnt)
	if b, _ := pr.Peek(3); bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		_, _ = pr.Discard(3)
	}
	head, err := pr.Peek(512)
	trimmed := bytes.TrimLeft(head, " \t\r\n")
	if len(trimmed) == 0 && len(head) < 512 {
		if err != nil && err != io.EOF {
			return Unknown, readErr(err)
		}
		return Unknown, fmt.Errorf("%w: empty body", ErrNotSitemap)
	}
	g := &guard{br: pr, cnt: cnt, tokenMax: l.MaxTokenBytes}
	if len(trimmed) == 0 || trimmed[0] == '<' {
		return readXML(g, l, fn)
	}
	return readText(g, l, fn)
}

// counter fails once more than max bytes would be read, and not before:
// a file of exactly max bytes is fine.
type counter struct {
	r   io.Reader
	n   int64
	max int64
	err error // the last error returned
}

func (c *counter) Read(p []byte) (n int, err error) {
	defer func() {
		if err != nil {
			c.err = err
		}
	}()
	if c.n >= c.max {
		// Probe for one more byte: EOF here means exactly max bytes.
		var one [1]byte
		n, err := io.ReadFull(c.r, one[:])
		if n == 0 {
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			return 0, err
		}
		return 0, fmt.Errorf("%w: more than %d bytes uncompressed (the sitemaps.org limit is %d)", ErrTooLarge, c.max, MaxBytes)
	}
	if room := c.max - c.n; int64(len(p)) > room {
		p = p[:room]
	}
	n, err = c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// guard hands bytes to encoding/xml one at a time (it uses only
// ReadByte on an io.ByteReader, so what guard counts is exactly what the
// decoder consumed) and refuses a token longer than tokenMax.
type guard struct {
	br       *bufio.Reader
	cnt      *counter
	n, mark  int64
	tokenMax int64
}

func (g *guard) ReadByte() (byte, error) {
	if g.n-g.mark >= g.tokenMax {
		return 0, fmt.Errorf("%w: one XML token is over %d bytes", ErrTokenTooLarge, g.tokenMax)
	}
	b, err := g.br.ReadByte()
	if err == nil {
		g.n++
	}
	return b, err
}

// Read is there to make guard an io.Reader; encoding/xml never calls it
// on an io.ByteReader.
func (g *guard) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b, err := g.ReadByte()
	if err != nil {
		return 0, err
	}
	p[0] = b
	return 1, nil
}

func readErr(err error) error {
	if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrTokenTooLarge) {
		return err
	}
	return fmt.Errorf("sitemap: reading: %w", err)
}

// entryCounter delivers entries, enforcing the entry limit.
type entryCounter struct {
	n   int
	max int
	fn  func(Entry) error
}

func (c *entryCounter) deliver(e Entry) error {
	if c.n >= c.max {
		return fmt.Errorf("%w: more than %d entries in one file (the sitemaps.org limit is %d); the first %d were read", ErrTooManyEntries, c.max, MaxEntries, c.n)
	}
	c.n++
	return c.fn(e)
}

func readXML(g *guard, l Limits, fn func(Entry) error) (Kind, error) {
	dec := xml.NewDecoder(g)
	// Sitemaps must be UTF-8, but a Latin-1 one is readable, so read it.
	dec.CharsetReader = func(label string, in io.Reader) (io.Reader, error) {
		enc, err := htmlindex.Get(label)
		if err != nil {
			return nil, fmt.Errorf("unknown charset %q", label)
		}
		return enc.NewDecoder().Reader(in), nil
	}
	// Hand-written sitemaps use HTML entities (&nbsp;, &eacute;).
	dec.Entity = xml.HTMLEntity
	out := &entryCounter{max: l.MaxEntries, fn: fn}

	kind := Unknown
	var (
		depth      int
		entryName  xml.Name // the <url> or <sitemap> element
		field      string   // "loc" or "lastmod" while inside one, at depth 3
		loc, mod   strings.Builder
		inEntry    bool
		wantEntry  string
		fieldSpace string
	)
	for {
		tok, err := dec.Token()
		g.mark = g.n
		if err != nil {
			if err == io.EOF {
				if kind == Unknown {
					return kind, fmt.Errorf("%w: no root element", ErrNotSitemap)
				}
				return kind, fmt.Errorf("%w: the file ends inside <%s>", ErrMalformed, kind)
			}
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return kind, fmt.Errorf("%w: %v", ErrMalformed, err)
			}
			return kind, readErr(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 1:
				// Only the local name counts: namespaces vary in the wild
				// (none, sitemaps.org's, Google's old 0.84, prefixed).
				switch t.Name.Local {
				case "urlset":
					kind, wantEntry = URLSet, "url"
				case "sitemapindex":
					kind, wantEntry = Index, "sitemap"
				default:
					return kind, fmt.Errorf("%w: root element is <%s>, not <urlset> or <sitemapindex>", ErrNotSitemap, t.Name.Local)
				}
			case depth == 2 && t.Name.Local == wantEntry:
				inEntry, entryName = true, t.Name
				loc.Reset()
				mod.Reset()
			case depth == 3 && inEntry && t.Name.Space == entryName.Space &&
				(t.Name.Local == "loc" || t.Name.Local == "lastmod"):
				// Same namespace as the entry, so <image:loc> and
				// friends from extensions are never taken for the page.
				field, fieldSpace = t.Name.Local, t.Name.Space
			}
		case xml.CharData:
			if depth == 3 && field != "" {
				b := &loc
				if field == "lastmod" {
					b = &mod
				}
				if int64(b.Len()+len(t)) > l.MaxTokenBytes {
					return kind, fmt.Errorf("%w: a <%s> is over %d bytes", ErrTokenTooLarge, field, l.MaxTokenBytes)
				}
				b.Write(t)
			}
		case xml.EndElement:
			switch {
			case depth == 3 && field == t.Name.Local && fieldSpace == t.Name.Space:
				field = ""
			case depth == 2 && inEntry:
				inEntry = false
				// An entry without a <loc> is skipped: nothing to visit.
				if s := strings.TrimSpace(loc.String()); s != "" {
					if err := out.deliver(Entry{Loc: s, LastMod: strings.TrimSpace(mod.String()), Kind: kind}); err != nil {
						return kind, err
					}
				}
			case depth == 1:
				// Done: whatever follows the root is not read.
				return kind, nil
			}
			depth--
		}
	}
}

// readText reads a text sitemap: one URL a line, blank lines ignored. The
// first URL must look like one, so an error page or a binary body is
// refused instead of delivered as nonsense.
func readText(g *guard, l Limits, fn func(Entry) error) (Kind, error) {
	sc := bufio.NewScanner(g.br)
	maxLine := int(min(l.MaxTokenBytes, 1<<30))
	sc.Buffer(make([]byte, 0, min(4096, maxLine)), maxLine)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		// A last line without its newline is a line only at a clean end:
		// cut off by a limit or a broken stream, it is half a URL.
		if atEOF && bytes.IndexByte(data, '\n') < 0 && g.cnt.err != io.EOF {
			return 0, nil, nil
		}
		return bufio.ScanLines(data, atEOF)
	})
	out := &entryCounter{max: l.MaxEntries, fn: fn}
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" {
			continue
		}
		// Control characters are left to the caller's URL parser, which
		// refuses them with a reason; checking here would cost a pass.
		if !utf8.ValidString(s) {
			return Text, fmt.Errorf("%w: line %d of a text sitemap is not a URL in UTF-8", ErrMalformed, line)
		}
		if out.n == 0 && !hasHTTPPrefix(s) {
			return Unknown, fmt.Errorf("%w: neither XML nor a list of URLs (line %d starts %q)", ErrNotSitemap, line, clip(s, 40))
		}
		if err := out.deliver(Entry{Loc: s, Kind: Text}); err != nil {
			return Text, err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return Text, fmt.Errorf("%w: line %d is over %d bytes", ErrTokenTooLarge, line+1, l.MaxTokenBytes)
		}
		return Text, readErr(err)
	}
	if out.n == 0 {
		return Unknown, fmt.Errorf("%w: empty body", ErrNotSitemap)
	}
	return Text, nil
}

func hasHTTPPrefix(s string) bool {
	s = strings.ToLower(s[:min(len(s), 8)])
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary so the message stays valid UTF-8.
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
