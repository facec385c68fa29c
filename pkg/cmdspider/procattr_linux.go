package cmdspider

import "syscall"

// procAttr puts a spider's process in a group of its own (the group is
// killed on a timeout) and has the kernel kill it should the worker die
// without stopping it (kill -9, out of memory): it was left running with
// parent 1 (found by review). What it started in its group is swept when
// a worker next starts on the host (progspider).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
