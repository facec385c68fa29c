package harness

import (
	"fmt"
	"net/url"
	"sort"
	"testing"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

func itemKey(name, price, path string) string { return name + "|" + price + "|" + path }

// ItemKey spells an exported item as "name|price|path", the form of
// [Truth].Items.
func ItemKey(it mesh.Item) string {
	path := it.URL
	if u, err := url.Parse(it.URL); err == nil {
		path = u.RequestURI()
	}
	return itemKey(it.Text("name"), it.Text("price"), path)
}

// Diff is how a multiset of keys (items, dead letters) differs from the
// expected set.
type Diff struct {
	What       string   // "items", "dead letters"
	Lost       []string // expected, absent
	Doubled    []string // present more than once, as "key xN"
	Unexpected []string // present, not expected
	Got, Want  int
}

// OK is true when the multiset is exactly the expected set.
func (d Diff) OK() bool { return len(d.Lost)+len(d.Doubled)+len(d.Unexpected) == 0 }

func (d Diff) String() string {
	if d.OK() {
		return fmt.Sprintf("%s: exactly the %d expected", d.What, d.Want)
	}
	return fmt.Sprintf("%s differ (%d got, %d expected): lost %d %v; doubled %d %v; unexpected %d %v",
		d.What, d.Got, d.Want, len(d.Lost), d.Lost, len(d.Doubled), d.Doubled, len(d.Unexpected), d.Unexpected)
}

// Compare compares keys (with repeats) against want.
func Compare(what string, keys []string, want map[string]bool) Diff {
	d := Diff{What: what, Got: len(keys), Want: len(want)}
	count := map[string]int{}
	for _, k := range keys {
		count[k]++
	}
	for k := range want {
		if count[k] == 0 {
			d.Lost = append(d.Lost, k)
		}
	}
	for k, n := range count {
		if !want[k] {
			d.Unexpected = append(d.Unexpected, k)
		}
		if n > 1 {
			d.Doubled = append(d.Doubled, fmt.Sprintf("%s x%d", k, n))
		}
	}
	sort.Strings(d.Lost)
	sort.Strings(d.Doubled)
	sort.Strings(d.Unexpected)
	return d
}

// CheckItems compares exported items with want and fails the test naming
// every lost, doubled and unexpected item.
func CheckItems(t testing.TB, items []mesh.Item, want map[string]bool) Diff {
	t.Helper()
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = ItemKey(it)
	}
	d := Compare("items", keys, want)
	if !d.OK() {
		t.Error(d.String())
	}
	return d
}

// CheckDead compares dead-letter URLs with want and fails the test naming
// every difference.
func CheckDead(t testing.TB, urls []string, want map[string]bool) Diff {
	t.Helper()
	d := Compare("dead letters", urls, want)
	if !d.OK() {
		t.Error(d.String())
	}
	return d
}

// Short is d in a few words, for a table.
func (d Diff) Short() string {
	if d.OK() {
		return "0 lost, 0 doubled"
	}
	s := fmt.Sprintf("%d lost, %d doubled", len(d.Lost), len(d.Doubled))
	if len(d.Unexpected) > 0 {
		s += fmt.Sprintf(", %d unexpected", len(d.Unexpected))
	}
	return s
}
