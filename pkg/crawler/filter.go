package crawler

import "sync"

// filter remembers URL keys this worker has already offered to the mesh,
// so common links (navigation, pagers) do not cost a round trip per page.
// It is bounded: two generations of at most size keys; the older one is
// dropped when the newer fills. A miss only costs a claim the bucket
// refuses; a hit is always right, because claims are never undone.
type filter struct {
	mu       sync.Mutex
	size     int
	cur, old map[string]struct{}
}

func newFilter(size int) *filter {
	return &filter{size: size, cur: map[string]struct{}{}, old: map[string]struct{}{}}
}

func (f *filter) seen(crawl, id string) bool {
	k := crawl + "." + id
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.cur[k]; ok {
		return true
	}
	_, ok := f.old[k]
	return ok
}

func (f *filter) add(crawl, id string) {
	k := crawl + "." + id
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.cur) >= f.size {
		f.old, f.cur = f.cur, make(map[string]struct{}, f.size)
	}
	f.cur[k] = struct{}{}
}
