package progspider

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// killOrphans kills the processes working in dir, a stopped worker's
// directory: its command spiders and what they started (the kernel kills
// a spider's own process when its worker dies; its children live on
// with parent 1, found by review). A process's working directory says
// whose it is, so an unrelated process is never touched, whatever its
// pid or group. It returns how many it killed.
func killOrphans(dir string) int {
	des, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	dir = filepath.Clean(dir)
	n := 0
	for _, de := range des {
		pid, err := strconv.Atoi(de.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", de.Name(), "cwd"))
		if err != nil {
			continue // gone, or not ours to read
		}
		cwd = strings.TrimSuffix(cwd, " (deleted)")
		if cwd == dir || strings.HasPrefix(cwd, dir+string(filepath.Separator)) {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				n++
			}
		}
	}
	return n
}
