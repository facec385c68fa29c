package boot

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// workDir is a worker's own directory for its file cache and its
// commands' working directories: under the user's cache directory (else
// a per-user one in the temp directory), open to this user only. What is
// there runs as spider code, so a directory another local user can write
// to is refused: the predictable /tmp/crawlmesh-ID of earlier versions
// let anyone on the host plant a script the worker then ran (found by
// review).
func workDir(id string) (string, error) {
	base, err := os.UserCacheDir()
	if err == nil {
		base = filepath.Join(base, "crawlmesh")
	} else {
		base = filepath.Join(os.TempDir(), "crawlmesh-"+strconv.Itoa(os.Getuid()))
	}
	dir := filepath.Join(base, "worker-"+id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("work directory %s: %w", dir, err)
	}
	for _, d := range []string{base, dir} {
		if err := ownPrivateDir(d); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// ownPrivateDir checks that d is a directory (not a link) of this user
// that no other user can write to, and closes it to others if they could
// read it.
func ownPrivateDir(d string) error {
	fi, err := os.Lstat(d)
	if err != nil {
		return fmt.Errorf("work directory %s: %w", d, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("work directory %s is not a directory (a link?): remove it", d)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("work directory %s belongs to uid %d, not to this user (%d): another user could put spider code there; remove it, or run the worker as its owner", d, st.Uid, os.Getuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(d, 0o700); err != nil {
			return fmt.Errorf("work directory %s: %w", d, err)
		}
	}
	return nil
}
