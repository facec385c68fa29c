package progspider

import (
	"fmt"
	"sync"
)

// A spider's stderr and console.log lines go to the crawl's logs, which
// every crawl shares (stream LOGS, 1 GiB, oldest dropped first). A
// worker logs a crawl's first logAllLines such lines, then one in
// logEveryLine, saying how many it stands for: a command writing 200
// lines a page filled 50 MB in 7 s and would have pushed every other
// crawl's logs out within minutes (found by review).
const (
	logAllLines  = 10_000
	logEveryLine = 100
)

// lineSampler counts a worker's program log lines per crawl.
type lineSampler struct {
	mu sync.Mutex
	n  map[string]int // crawl -> lines seen
}

// keep says whether the crawl's next line is logged, and how it reads.
func (s *lineSampler) keep(crawl, line string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = map[string]int{}
	}
	s.n[crawl]++
	n := s.n[crawl]
	switch {
	case n <= logAllLines:
		return line, true
	case (n-logAllLines)%logEveryLine == 0:
		return fmt.Sprintf("%s (one line of %d: past %d lines on this worker, the crawl's program output is sampled)", line, logEveryLine, logAllLines), true
	}
	return "", false
}

// forget drops a crawl's count (it ended).
func (s *lineSampler) forget(crawl string) {
	s.mu.Lock()
	delete(s.n, crawl)
	s.mu.Unlock()
}
