package harness

import (
	"testing"
	"time"
)

// Eventually polls cond every 25ms (fine enough to time failovers) until it holds, and returns how long
// that took; after timeout it fails the test naming what, plus detail()
// when given (the last error seen, say).
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool, detail ...func() string) time.Duration {
	t.Helper()
	t0 := time.Now()
	for {
		if cond() {
			return time.Since(t0)
		}
		if time.Since(t0) > timeout {
			msg := "harness: not within " + timeout.String() + ": " + what
			for _, d := range detail {
				msg += " (" + d() + ")"
			}
			t.Fatal(msg)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
