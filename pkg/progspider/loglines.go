package progspider

import (
	"fmt"

	"github.com/crawlmesh/crawlmesh/pkg/logsample"
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

// newLineSampler counts a worker's program log lines per crawl.
func newLineSampler() *lineSampler {
	return &lineSampler{s: logsample.Sampler{All: logAllLines, Every: logEveryLine}}
}

type lineSampler struct{ s logsample.Sampler }

// keep says whether the crawl's next line is logged, and how it reads.
func (l *lineSampler) keep(crawl, line string) (string, bool) {
	n, keep := l.s.Next(crawl)
	if keep && l.s.Sampled(n) {
		return fmt.Sprintf("%s (one line of %d: past %d lines on this worker, the crawl's program output is sampled)", line, logEveryLine, logAllLines), true
	}
	return line, keep
}

// forget drops a crawl's count (it ended).
func (l *lineSampler) forget(crawl string) { l.s.Forget(crawl) }
