package fetch_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"reflect"
	"testing"

	"github.com/crawlmesh/crawlmesh/pkg/fetch"
)

type entry struct {
	loc     string
	sitemap bool
}

func collect(t *testing.T, f *fetch.Fetcher, sp *specT, u string) ([]entry, error) {
	t.Helper()
	var got []entry
	err := f.Sitemap(t.Context(), sp, "c", u, nil, nil, func(loc string, isSitemap bool) error {
		got = append(got, entry{loc, isSitemap})
		return nil
	})
	return got, err
}

func TestSitemap(t *testing.T) {
	s := newRecorder(t)
	s.mux.HandleFunc("/robots.txt", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "User-agent: *\nDisallow: /private\nSitemap: /sitemap_index.xml\nSitemap: http://other.example/s.xml\n")
	})
	s.mux.HandleFunc("/sitemap_index.xml", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>/products.xml.gz</loc></sitemap></sitemapindex>`)
	})
	s.mux.HandleFunc("/products.xml.gz", func(w http.ResponseWriter, _ *http.Request) {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = io.WriteString(zw, `<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>/p/1</loc></url>
<url><loc>http://other.example/p/2?utm_source=x</loc></url></urlset>`)
		_ = zw.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(b.Bytes())
	})
	s.mux.HandleFunc("/old.xml", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/products.xml.gz", http.StatusMovedPermanently)
	})
	s.mux.HandleFunc("/private/s.xml", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "/p/3\n") })
	s.mux.HandleFunc("/gone.xml", http.NotFound)
	s.mux.HandleFunc("/busy.xml", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})
	s.mux.HandleFunc("/junk.xml", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "<html><body>no</body></html>") })
	sp := specFor(t, s.URL, "links: {allow: [\"/nothing-matches\"]}\n")
	f := fetch.New(fetch.Config{}, nil)

	got, err := collect(t, f, sp, s.URL+"/robots.txt")
	if want := []entry{{s.URL + "/sitemap_index.xml", true}, {"http://other.example/s.xml", true}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("robots.txt: %v, %v; want %v", got, err, want)
	}
	got, err = collect(t, f, sp, s.URL+"/sitemap_index.xml")
	if want := []entry{{s.URL + "/products.xml.gz", true}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("index: %v, %v; want %v", got, err, want)
	}
	// Fetched whatever links.allow says (configuration, not links); the
	// redirect is followed; entries come as listed, relative ones resolved.
	wantPages := []entry{{s.URL + "/p/1", false}, {"http://other.example/p/2?utm_source=x", false}}
	for _, path := range []string{"/products.xml.gz", "/old.xml"} {
		got, err = collect(t, f, sp, s.URL+path)
		if err != nil || !reflect.DeepEqual(got, wantPages) {
			t.Errorf("%s: %v, %v; want %v", path, got, err, wantPages)
		}
	}
	for _, c := range []struct {
		path, reason string
		transient    bool
	}{{"/gone.xml", "404", false}, {"/busy.xml", "503", true}, {"/junk.xml", "sitemap", false}, {"/private/s.xml", "robots", false}} {
		_, err := collect(t, f, sp, s.URL+c.path)
		if fe := fetchErr(t, err); fe.Reason != c.reason || fe.Transient != c.transient {
			t.Errorf("%s: %+v, want Reason %s transient %v", c.path, fe, c.reason, c.transient)
		}
	}
	if n := s.count("/robots.txt"); n != 1 {
		t.Errorf("robots.txt fetched %d times, want once", n)
	}
	stop := errors.New("stop")
	n := 0
	err = f.Sitemap(t.Context(), sp, "c", s.URL+"/products.xml.gz", nil, nil, func(string, bool) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("emit error: %v after %d entries, want it returned as is after 1", err, n)
	}
}
