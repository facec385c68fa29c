// Package logsample thins a stream of like log lines per key (a crawl):
// every one of a key's first All lines is kept, then one in Every (none
// when Every is 0). A big crawl's logs stay bounded, its start is logged
// whole, and a kept line past the first All says how many it stands for.
package logsample

import (
	"sync"
	"sync/atomic"
)

// Sampler counts lines per key; the zero value keeps every line. Safe for
// concurrent use.
type Sampler struct {
	All, Every int64
	m          sync.Map // key -> *atomic.Int64
}

// Next counts one more line of key. It returns the line's number (1 for
// the key's first) and whether the line is kept.
func (s *Sampler) Next(key string) (n int64, keep bool) {
	v, ok := s.m.Load(key)
	if !ok {
		v, _ = s.m.LoadOrStore(key, new(atomic.Int64)) // allocates for a key's first line only
	}
	n = v.(*atomic.Int64).Add(1)
	switch {
	case s.All == 0 && s.Every == 0, n <= s.All:
		return n, true
	case s.Every > 0:
		return n, (n-s.All)%s.Every == 0
	}
	return n, false
}

// Sampled says whether line n is past the first All, so that a kept one
// stands for Every lines.
func (s *Sampler) Sampled(n int64) bool { return (s.All > 0 || s.Every > 0) && n > s.All }

// Forget drops key's count (its crawl ended).
func (s *Sampler) Forget(key string) { s.m.Delete(key) }
