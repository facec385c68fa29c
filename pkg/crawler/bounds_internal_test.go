package crawler

import (
	"strconv"
	"strings"
	"testing"

	"github.com/crawlmesh/crawlmesh/pkg/fetch"
)

func TestBoundLinks(t *testing.T) {
	page := &fetch.Page{}
	for i := range maxPageLinks + 500 {
		page.Links = append(page.Links, "http://h/"+strconv.Itoa(i))
	}
	page.Links[3] = "http://h/" + strings.Repeat("x", maxLinkBytes)
	links := boundLinks(page)
	if len(links) != maxPageLinks || links[3] != "http://h/4" {
		t.Fatalf("%d links, the fourth %.20q; want %d without the long one", len(links), links[3], maxPageLinks)
	}
	want := []string{"1 links longer than 8192 bytes left out", "20499 links: the first 20000 followed"}
	if strings.Join(page.Warnings, "|") != strings.Join(want, "|") {
		t.Errorf("warnings %q, want %q", page.Warnings, want)
	}
}
