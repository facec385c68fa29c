package sitemap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// files serves sitemaps from a map and records every fetch.
type files struct {
	m       map[string][]byte
	fetched []string
}

func (f *files) fetch(_ context.Context, u string) (io.ReadCloser, error) {
	f.fetched = append(f.fetched, u)
	b, ok := f.m[u]
	if !ok {
		return nil, fmt.Errorf("404 Not Found")
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func index(children ...string) []byte {
	var b strings.Builder
	b.WriteString("<sitemapindex " + ns + ">")
	for _, c := range children {
		b.WriteString("<sitemap><loc>" + c + "</loc></sitemap>")
	}
	b.WriteString("</sitemapindex>")
	return []byte(b.String())
}

func pages(ls ...string) []byte {
	var b strings.Builder
	b.WriteString("<urlset " + ns + ">")
	for _, l := range ls {
		b.WriteString("<url><loc>" + l + "</loc></url>")
	}
	b.WriteString("</urlset>")
	return []byte(b.String())
}

func walk(t *testing.T, f *files, roots []string, depth, max int) ([]string, error) {
	t.Helper()
	var got []string
	err := Walk(context.Background(), roots, f.fetch, func(loc string) error {
		got = append(got, loc)
		return nil
	}, depth, max)
	return got, err
}

func TestWalkNested(t *testing.T) {
	const h = "http://shop.test"
	f := &files{m: map[string][]byte{
		h + "/index.xml": index(h+"/sub/index.xml", h+"/a.xml.gz", " "+h+"/a.xml.gz#dup "),
		// Relative locs are resolved against their sitemap; the index
		// listing itself and its parent is not read again.
		h + "/sub/index.xml": index("b.txt", "../index.xml", "/sub/../a.xml.gz"),
		h + "/a.xml.gz":      gz(t, pages(h+"/p/1", h+"/p/2")),
		h + "/sub/b.txt":     []byte(h + "/p/3\n/p/4\n"),
	}}
	got, err := walk(t, f, []string{h + "/index.xml", "HTTP://SHOP.TEST/index.xml"}, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Breadth first: the root's urlset comes before the nested index's.
	want := []string{h + "/p/1", h + "/p/2", h + "/p/3", h + "/p/4"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("emitted %v", got)
	}
	wantFetched := []string{h + "/index.xml", h + "/sub/index.xml", h + "/a.xml.gz", h + "/sub/b.txt"}
	if !reflect.DeepEqual(f.fetched, wantFetched) {
		t.Errorf("fetched %v", f.fetched)
	}
}

func TestWalkBounds(t *testing.T) {
	const h = "http://shop.test"
	// A chain of indexes: i0 -> i1 -> ... -> i5 -> pages.
	m := map[string][]byte{}
	for i := range 6 {
		m[fmt.Sprintf("%s/i%d.xml", h, i)] = index(fmt.Sprintf("%s/i%d.xml", h, i+1))
	}
	m[h+"/i6.xml"] = pages(h + "/deep")
	f := &files{m: m}
	got, err := walk(t, f, []string{h + "/i0.xml"}, 2, 0)
	if len(got) != 0 || len(f.fetched) != 3 {
		t.Errorf("depth 2: emitted %v, fetched %v", got, f.fetched)
	}
	if err == nil || !strings.Contains(err.Error(), "deeper than 2") {
		t.Errorf("depth 2: %v", err)
	}
	f.fetched = nil
	got, err = walk(t, f, []string{h + "/i0.xml"}, 10, 4)
	if len(got) != 0 || len(f.fetched) != 4 || err == nil || !strings.Contains(err.Error(), "file limit of 4") {
		t.Errorf("4 files: emitted %v, fetched %v, %v", got, f.fetched, err)
	}
	f.fetched = nil
	_, err = walk(t, f, []string{h + "/i0.xml"}, 0, 0) // defaults: depth 3
	if len(f.fetched) != DefaultMaxDepth+1 || err == nil {
		t.Errorf("defaults: fetched %v, %v", f.fetched, err)
	}
}

func TestWalkErrors(t *testing.T) {
	const h = "http://shop.test"
	f := &files{m: map[string][]byte{
		h + "/index.xml":  index(h+"/missing.xml", h+"/broken.xml", h+"/ok.xml"),
		h + "/broken.xml": []byte(`<urlset><url><loc>` + h + `/p/1</loc></url><url><loc>` + h + `/p/2`),
		h + "/ok.xml":     pages(h + "/p/3"),
	}}
	got, err := walk(t, f, []string{h + "/index.xml", "ftp://shop.test/x.xml"}, 0, 0)
	// One bad file does not cost the others.
	if !reflect.DeepEqual(got, []string{h + "/p/1", h + "/p/3"}) {
		t.Errorf("emitted %v", got)
	}
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("err %v", err)
	}
	for _, s := range []string{"missing.xml: 404", "broken.xml", "ftp://"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("error does not mention %q: %v", s, err)
		}
	}

	// emit failing stops everything at once, with emit's error.
	stop := errors.New("frontier full")
	f.fetched = nil
	err = Walk(context.Background(), []string{h + "/index.xml"}, f.fetch, func(string) error { return stop }, 0, 0)
	if err != stop || !slices.Equal(f.fetched, []string{h + "/index.xml", h + "/missing.xml", h + "/broken.xml"}) {
		t.Errorf("emit error: %v, fetched %v", err, f.fetched)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.fetched = nil
	err = Walk(ctx, []string{h + "/index.xml"}, f.fetch, func(string) error { return nil }, 0, 0)
	if !errors.Is(err, context.Canceled) || len(f.fetched) != 0 {
		t.Errorf("cancelled: %v, fetched %v", err, f.fetched)
	}
}

func TestWalkerOnFile(t *testing.T) {
	const h = "http://shop.test"
	f := &files{m: map[string][]byte{
		h + "/index.xml": index(h + "/a.xml"),
		h + "/a.xml":     pages(h+"/p/1", h+"/p/2"),
	}}
	var reports []File
	w := &Walker{Fetch: f.fetch, OnFile: func(x File) { reports = append(reports, x) }}
	if err := w.Walk(context.Background(), []string{h + "/index.xml"}, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	want := []File{{URL: h + "/index.xml", Kind: Index, Entries: 1}, {URL: h + "/a.xml", Depth: 1, Kind: URLSet, Entries: 2}}
	if !reflect.DeepEqual(reports, want) {
		t.Errorf("reports %+v", reports)
	}
}
