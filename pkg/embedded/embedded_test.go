package embedded_test

import (
	"strings"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/embedded"
	"github.com/crawlmesh/crawlmesh/pkg/natstest"
)

// Two servers on one store corrupt it (found by review: a second `crawlmesh
// up` on the default --data lost the first one's crawl records and span
// after SIGTERM). The second is refused, naming the flag; once the first
// has shut down the directory is free again.
func TestStoreDirLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := embedded.Start(embedded.Config{Port: -1, StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if s2, err := embedded.Start(embedded.Config{Port: -1, StoreDir: dir}); err == nil {
		s2.Shutdown()
		s.Shutdown()
		t.Fatal("a second server started on the same store")
	} else if !strings.Contains(err.Error(), "--data "+dir+" is in use") {
		t.Errorf("error %q: want it to say the --data directory is in use", err)
	}
	s.Shutdown()
	s.WaitForShutdown()
	natstest.Eventually(t, 10*time.Second, "the store free once its server shut down", func() bool {
		s, err = embedded.Start(embedded.Config{Port: -1, StoreDir: dir})
		return err == nil
	})
	s.Shutdown()
	s.WaitForShutdown()
}
