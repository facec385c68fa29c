package boot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A worker's directory for spider code is its user's alone: created
// closed to others, closed if found open, and refused when it is a link
// or belongs to another user, who could put code there (found by review:
// the predictable /tmp/crawlmesh-ID let any local user plant a script).
func TestWorkDirPrivate(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	dir, err := workDir("w1")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(cache, "crawlmesh", "worker-w1"); dir != want {
		t.Errorf("work dir %s, want %s", dir, want)
	}
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v; want mode 0700", d, fi.Mode(), err)
		}
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := workDir("w1"); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("an open work dir stayed %v, want 0700", fi.Mode().Perm())
	}

	other := t.TempDir()
	if err := os.Symlink(other, filepath.Join(cache, "crawlmesh", "worker-w2")); err != nil {
		t.Fatal(err)
	}
	if _, err := workDir("w2"); err == nil || !strings.Contains(err.Error(), "not a directory (a link?)") {
		t.Errorf("a link as work dir: %v, want it refused", err)
	}

	if os.Getuid() != 0 {
		t.Log("not root: the case of a directory of another user is not checked here")
		return
	}
	foreign := filepath.Join(cache, "crawlmesh", "worker-w3")
	if err := os.Mkdir(foreign, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(foreign, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := workDir("w3"); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("another user's work dir: %v, want it refused", err)
	}
}
