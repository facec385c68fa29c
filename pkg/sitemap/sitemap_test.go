package sitemap

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

const ns = `xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"`

// read collects what Read delivers.
func read(t *testing.T, l Limits, body []byte) ([]Entry, Kind, error) {
	t.Helper()
	var got []Entry
	k, err := l.Read(bytes.NewReader(body), func(e Entry) error {
		got = append(got, e)
		return nil
	})
	return got, k, err
}

func locs(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Loc
	}
	return out
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestURLSet(t *testing.T) {
	body := `<?xml version="1.0" encoding="UTF-8"?>
<urlset ` + ns + ` xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">
  <url>
    <loc>
      https://shop.example/a
    </loc>
    <lastmod> 2024-05-01 </lastmod>
    <changefreq>daily</changefreq>
    <image:image><image:loc>https://shop.example/img/a.jpg</image:loc></image:image>
  </url>
  <!-- a comment -->
  <url><priority>0.5</priority></url>
  <url><loc><![CDATA[https://shop.example/b?x=1&y=2]]></loc></url>
  <url><loc>https://shop.example/c?x=1&amp;y=2&nbsp;</loc><unknown><loc>https://nope.example/</loc></unknown></url>
  <extra>ignored</extra>
</urlset>
trailing junk after the root is not read`
	got, k, err := read(t, Limits{}, []byte(body))
	if err != nil || k != URLSet {
		t.Fatalf("kind %v, err %v", k, err)
	}
	want := []Entry{
		{Loc: "https://shop.example/a", LastMod: "2024-05-01", Kind: URLSet},
		{Loc: "https://shop.example/b?x=1&y=2", Kind: URLSet},
		{Loc: "https://shop.example/c?x=1&y=2", Kind: URLSet},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestIndex(t *testing.T) {
	body := `<sitemapindex ` + ns + `>
<sitemap><loc>https://shop.example/s1.xml.gz</loc><lastmod>2024-01-01</lastmod></sitemap>
<sitemap><loc> https://shop.example/s2.xml </loc></sitemap>
</sitemapindex>`
	got, k, err := read(t, Limits{}, []byte(body))
	if err != nil || k != Index {
		t.Fatalf("kind %v, err %v", k, err)
	}
	want := []Entry{
		{Loc: "https://shop.example/s1.xml.gz", LastMod: "2024-01-01", Kind: Index},
		{Loc: "https://shop.example/s2.xml", Kind: Index},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
}

func TestNamespaces(t *testing.T) {
	cases := map[string]string{
		"none":      `<urlset><url><loc>https://a/1</loc></url></urlset>`,
		"default":   `<urlset ` + ns + `><url><loc>https://a/1</loc></url></urlset>`,
		"google084": `<urlset xmlns="http://www.google.com/schemas/sitemap/0.84"><url><loc>https://a/1</loc></url></urlset>`,
		"prefixed":  `<sm:urlset xmlns:sm="http://www.sitemaps.org/schemas/sitemap/0.9"><sm:url><sm:loc>https://a/1</sm:loc></sm:url></sm:urlset>`,
		// An extension's <loc> straight under <url> is not the page.
		"foreign": `<urlset ` + ns + ` xmlns:v="urn:video"><url><v:loc>https://a/video</v:loc><loc>https://a/1</loc></url></urlset>`,
	}
	for name, body := range cases {
		got, k, err := read(t, Limits{}, []byte(body))
		if err != nil || k != URLSet || !reflect.DeepEqual(locs(got), []string{"https://a/1"}) {
			t.Errorf("%s: %v %v %v", name, locs(got), k, err)
		}
	}
}

func TestGzip(t *testing.T) {
	plain := []byte(`<urlset ` + ns + `><url><loc>https://a/1</loc></url><url><loc>https://a/2</loc></url></urlset>`)
	for name, body := range map[string][]byte{
		"gzip":       gz(t, plain),
		"gzip twice": gz(t, gz(t, plain)),
		"text gzip":  gz(t, []byte("https://a/1\nhttps://a/2\n")),
	} {
		got, _, err := read(t, Limits{}, body)
		if err != nil || !reflect.DeepEqual(locs(got), []string{"https://a/1", "https://a/2"}) {
			t.Errorf("%s: %v %v", name, locs(got), err)
		}
	}
	if _, _, err := read(t, Limits{}, gz(t, gz(t, gz(t, plain)))); !errors.Is(err, ErrNotSitemap) {
		t.Errorf("gzip three times: %v", err)
	}
	// A truncated gzip body: what came before the cut is delivered.
	full := gz(t, []byte(`<urlset><url><loc>https://a/1</loc></url>`+strings.Repeat("<!-- padding -->", 5000)+`<url><loc>https://a/2</loc></url></urlset>`))
	got, _, err := read(t, Limits{}, full[:len(full)/2])
	if err == nil || !reflect.DeepEqual(locs(got), []string{"https://a/1"}) {
		t.Errorf("truncated gzip: %v %v", locs(got), err)
	}
}

// countingReader counts what the sitemap reader pulled from it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// bomb returns a gzip body that inflates to prefix + repeats×unit... by
// concatenating gzip members (which gzip readers must accept), so the test
// builds a gigabyte-scale bomb without compressing a gigabyte.
func bomb(t *testing.T, prefix, unit string, unitRepeat, members int) []byte {
	member := gz(t, []byte(strings.Repeat(unit, unitRepeat)))
	var b bytes.Buffer
	b.Write(gz(t, []byte(prefix)))
	for range members {
		b.Write(member)
	}
	return b.Bytes()
}

func TestGzipBombBounded(t *testing.T) {
	// About 1 GiB of small tokens: the uncompressed byte count stops it.
	body := bomb(t, "<urlset>", "<x/>", 1<<18, 1024)
	cr := &countingReader{r: bytes.NewReader(body)}
	l := Limits{MaxBytes: 1 << 20} // the default limit, scaled down for -race
	_, err := l.Read(cr, func(Entry) error { return nil })
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "1048576 bytes uncompressed") {
		t.Fatalf("err %v", err)
	}
	if cr.n > int64(len(body))/100 {
		t.Errorf("read %d of %d compressed bytes for a 1 MiB limit", cr.n, len(body))
	}

	// About 1 GiB of blanks inside the root, with the default limits: one
	// endless text node is refused long before 50 MB.
	body = bomb(t, "<urlset>", " ", 1<<20, 1024)
	cr = &countingReader{r: bytes.NewReader(body)}
	_, err = Read(cr, func(Entry) error { return nil })
	if !errors.Is(err, ErrTokenTooLarge) {
		t.Fatalf("err %v", err)
	}
	if cr.n > int64(len(body))/100 {
		t.Errorf("read %d of %d compressed bytes", cr.n, len(body))
	}
}

func urlset(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<urlset " + ns + ">\n")
	for i := range n {
		fmt.Fprintf(&b, "<url><loc>https://a/%d</loc></url>\n", i)
	}
	b.WriteString("</urlset>\n")
	return b.Bytes()
}

func TestEntryLimit(t *testing.T) {
	got, k, err := read(t, Limits{}, urlset(MaxEntries))
	if err != nil || k != URLSet || len(got) != MaxEntries {
		t.Fatalf("exactly %d: %d %v", MaxEntries, len(got), err)
	}
	got, k, err = read(t, Limits{}, urlset(MaxEntries+1))
	if !errors.Is(err, ErrTooManyEntries) || k != URLSet {
		t.Fatalf("%d entries: %v %v", MaxEntries+1, k, err)
	}
	if len(got) != MaxEntries || got[len(got)-1].Loc != fmt.Sprintf("https://a/%d", MaxEntries-1) {
		t.Errorf("delivered %d, last %v", len(got), got[len(got)-1])
	}
	if !strings.Contains(err.Error(), "more than 50000 entries") {
		t.Errorf("message does not name the limit: %v", err)
	}
	// Text sitemaps have the same limit.
	var txt bytes.Buffer
	for i := range 12 {
		fmt.Fprintf(&txt, "https://a/%d\n", i)
	}
	got, _, err = read(t, Limits{MaxEntries: 10}, txt.Bytes())
	if !errors.Is(err, ErrTooManyEntries) || len(got) != 10 {
		t.Errorf("text: %d %v", len(got), err)
	}
}

// longLines is a text sitemap of long URLs, so it passes 50 MB before
// 50,000 entries, and is cheap to read even under -race.
type longLines struct {
	line []byte
	off  int
	left int64
}

func (l *longLines) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && l.left > 0 {
		c := copy(p[n:], l.line[l.off:])
		n += c
		l.left -= int64(c)
		l.off = (l.off + c) % len(l.line)
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func TestSizeLimit(t *testing.T) {
	line := []byte("https://shop.example/p/1?q=" + strings.Repeat("a", 1500) + "\n")
	src := &longLines{line: line, left: 60 << 20}
	n := 0
	k, err := Read(src, func(Entry) error { n++; return nil })
	if !errors.Is(err, ErrTooLarge) || k != Text {
		t.Fatalf("kind %v, err %v", k, err)
	}
	if !strings.Contains(err.Error(), "more than 52428800 bytes uncompressed") {
		t.Errorf("message does not name the limit: %v", err)
	}
	if want := MaxBytes / len(line); n != want {
		t.Errorf("delivered %d lines before the limit, want %d", n, want)
	}

	// XML, with the limit scaled down (encoding/xml is slow under -race);
	// the boundary is exact: the limit itself is fine, one byte more not.
	body := urlset(100)
	got, _, err := read(t, Limits{MaxBytes: int64(len(body))}, body)
	if err != nil || len(got) != 100 {
		t.Errorf("exactly at the limit: %d %v", len(got), err)
	}
	got, _, err = read(t, Limits{MaxBytes: int64(len(body))}, append(body, ' '))
	if err != nil || len(got) != 100 {
		// The root ended before the extra byte: nothing past it is read.
		t.Errorf("blank after the root: %d %v", len(got), err)
	}
	got, k, err = read(t, Limits{MaxBytes: int64(len(body)) - 20}, body)
	if !errors.Is(err, ErrTooLarge) || k != URLSet || len(got) != 99 {
		t.Errorf("over the limit: %d %v %v", len(got), k, err)
	}
}

func TestText(t *testing.T) {
	body := "\xef\xbb\xbf\r\nhttps://a/1\r\n\r\n   https://a/2  \nHTTP://a/3\n"
	got, k, err := read(t, Limits{}, []byte(body))
	if err != nil || k != Text || !reflect.DeepEqual(locs(got), []string{"https://a/1", "https://a/2", "HTTP://a/3"}) {
		t.Fatalf("%v %v %v", locs(got), k, err)
	}
	for name, body := range map[string]string{
		"prose":   "Not Found\n",
		"binary":  "\x00\x01\x02garbage",
		"empty":   "",
		"blank":   " \n\n\t ",
		"html":    "<!DOCTYPE html><html><body>soft 404</body></html>",
		"rss":     `<rss version="2.0"><channel></channel></rss>`,
		"comment": "<!-- only a comment -->",
	} {
		got, _, err := read(t, Limits{}, []byte(body))
		if !errors.Is(err, ErrNotSitemap) || len(got) != 0 {
			t.Errorf("%s: %v %v", name, locs(got), err)
		}
	}
	_, _, err = read(t, Limits{}, []byte("https://a/1\nhttps://a/\xff\n"))
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad UTF-8: %v", err)
	}
	_, _, err = read(t, Limits{MaxTokenBytes: 100}, []byte("https://a/1\nhttps://a/"+strings.Repeat("x", 200)+"\n"))
	if !errors.Is(err, ErrTokenTooLarge) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("long line: %v", err)
	}
}

func TestMalformed(t *testing.T) {
	cases := map[string]string{
		"mismatched": `<urlset><url><loc>https://a/1</loc></url><url><loc>https://a/2</loc></url><url><loc>https://a/3</lo></url></urlset>`,
		"truncated":  `<urlset><url><loc>https://a/1</loc></url><url><loc>https://a/2</loc></url><url><loc>https://a/3`,
		"bad entity": `<urlset><url><loc>https://a/1</loc></url><url><loc>https://a/2</loc></url><url><loc>https://a/3&bogus;</loc></url></urlset>`,
	}
	for name, body := range cases {
		got, k, err := read(t, Limits{}, []byte(body))
		if !errors.Is(err, ErrMalformed) || k != URLSet {
			t.Errorf("%s: %v %v", name, k, err)
			continue
		}
		if !reflect.DeepEqual(locs(got), []string{"https://a/1", "https://a/2"}) {
			t.Errorf("%s: delivered %v", name, locs(got))
		}
		if !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%s: error does not say where: %v", name, err)
		}
	}
}

func TestCharset(t *testing.T) {
	body := []byte("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><urlset><url><loc>https://a/caf\xe9</loc></url></urlset>")
	got, _, err := read(t, Limits{}, body)
	if err != nil || !reflect.DeepEqual(locs(got), []string{"https://a/café"}) {
		t.Errorf("%v %v", locs(got), err)
	}
}

func TestCallbackError(t *testing.T) {
	stop := errors.New("enough")
	n := 0
	_, err := Read(bytes.NewReader(urlset(10)), func(Entry) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if err != stop || n != 3 {
		t.Errorf("err %v after %d", err, n)
	}
}
