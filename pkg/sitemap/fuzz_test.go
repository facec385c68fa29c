package sitemap

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzRead(f *testing.F) {
	f.Add([]byte(`<urlset ` + ns + `><url><loc> https://a/1 </loc><lastmod>x</lastmod></url></urlset>`))
	f.Add([]byte(`<sitemapindex><sitemap><loc>https://a/s.xml</loc></sitemap></sitemapindex>`))
	f.Add([]byte("https://a/1\nhttps://a/2\n"))
	f.Add([]byte(`<sm:urlset xmlns:sm="x"><sm:url><sm:loc>https://a/1</sm:loc></sm:url></sm:urlset>`))
	f.Add([]byte(`<urlset><url><loc>https://a/1</loc></url><url><loc>https://a/2</lo>`))
	f.Add([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?><urlset><url><loc>&amp;&nbsp;<![CDATA[x]]></loc></url></urlset>`))
	f.Add(gz(f, []byte(`<urlset><url><loc>https://a/1</loc></url></urlset>`)))
	f.Add(gz(f, gz(f, []byte("https://a/1\n"))))
	f.Add([]byte("\x1f\x8b\x08garbage"))
	f.Fuzz(func(t *testing.T, body []byte) {
		// Small limits, so the fuzzer reaches every limit too.
		l := Limits{MaxEntries: 8, MaxBytes: 4096, MaxTokenBytes: 256}
		var got []Entry
		k, err := l.Read(bytes.NewReader(body), func(e Entry) error {
			got = append(got, e)
			return nil
		})
		if len(got) > l.MaxEntries {
			t.Fatalf("%d entries delivered, limit %d", len(got), l.MaxEntries)
		}
		if len(got) > 0 && k == Unknown {
			t.Fatalf("entries %v from a file of unknown kind (err %v)", got, err)
		}
		for _, e := range got {
			if e.Loc == "" || e.Loc != strings.TrimSpace(e.Loc) || e.LastMod != strings.TrimSpace(e.LastMod) {
				t.Fatalf("untrimmed or empty entry %+v", e)
			}
			if e.Kind != k {
				t.Fatalf("entry kind %v in a %v file", e.Kind, k)
			}
			if k == Text && !utf8.ValidString(e.Loc) {
				t.Fatalf("invalid UTF-8 delivered: %q", e.Loc)
			}
			if int64(len(e.Loc)) > l.MaxTokenBytes*2 {
				t.Fatalf("loc of %d bytes", len(e.Loc))
			}
		}
		if err != nil && !errors.Is(err, ErrTooManyEntries) && !errors.Is(err, ErrTooLarge) &&
			!errors.Is(err, ErrTokenTooLarge) && !errors.Is(err, ErrNotSitemap) && !errors.Is(err, ErrMalformed) &&
			!strings.HasPrefix(err.Error(), "sitemap: ") {
			t.Fatalf("error without the package's prefix: %v", err)
		}
		// Reading is deterministic.
		var again []Entry
		k2, err2 := l.Read(bytes.NewReader(body), func(e Entry) error {
			again = append(again, e)
			return nil
		})
		if k2 != k || !reflect.DeepEqual(got, again) || (err == nil) != (err2 == nil) {
			t.Fatalf("second read differs")
		}
	})
}
