//go:build !linux

package cmdspider

import "syscall"

// procAttr puts a spider's process in a group of its own (the group is
// killed on a timeout).
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
