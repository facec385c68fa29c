package crawler

import "testing"

// TestSampleOK: the first logAllOK successes of a crawl are logged each,
// then one in logEveryOK carrying the count it stands for; crawls are
// counted apart.
func TestSampleOK(t *testing.T) {
	c := &Crawler{}
	for i := range logAllOK {
		if keep, n := c.sampleOK("a"); !keep || n != 0 {
			t.Fatalf("success %d: keep %v, sampled %d; want every one of the first %d", i+1, keep, n, logAllOK)
		}
	}
	kept, stands := 0, 0
	for range 10 * logEveryOK {
		if keep, n := c.sampleOK("a"); keep {
			kept++
			stands += n
		}
	}
	if kept != 10 || stands != 10*logEveryOK {
		t.Errorf("past the first %d: %d lines standing for %d pages, want 10 for %d", logAllOK, kept, stands, 10*logEveryOK)
	}
	if keep, n := c.sampleOK("b"); !keep || n != 0 {
		t.Errorf("another crawl's first success: keep %v, sampled %d", keep, n)
	}
}
