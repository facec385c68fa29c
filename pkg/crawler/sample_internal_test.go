package crawler

import "testing"

// TestOKLine: the first logAllOK successes of a crawl are logged each,
// then one in logEveryOK carrying the count it stands for; crawls are
// counted apart.
func TestOKLine(t *testing.T) {
	c := &Crawler{}
	c.oks.All, c.oks.Every = logAllOK, logEveryOK
	for i := range logAllOK {
		if keep, n := c.okLine("a"); !keep || n != 0 {
			t.Fatalf("success %d: keep %v, sampled %d; want every one of the first %d", i+1, keep, n, logAllOK)
		}
	}
	kept, stands := 0, 0
	for range 10 * logEveryOK {
		if keep, n := c.okLine("a"); keep {
			kept++
			stands += n
		}
	}
	if kept != 10 || stands != 10*logEveryOK {
		t.Errorf("past the first %d: %d lines standing for %d pages, want 10 for %d", logAllOK, kept, stands, 10*logEveryOK)
	}
	if keep, n := c.okLine("b"); !keep || n != 0 {
		t.Errorf("another crawl's first success: keep %v, sampled %d", keep, n)
	}
}
