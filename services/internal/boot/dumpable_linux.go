package boot

import "golang.org/x/sys/unix"

// Undumpable keeps other processes of this user out of this one's
// /proc/PID/environ, cmdline-adjacent memory and mem: a command spider runs
// as the same user, and read the worker's NATS password and the masters'
// API token and sink secrets from /proc/PPID/environ (found by review).
// It also disables core dumps, which would hold the same secrets. A
// process's own /proc files, and its children (exec makes them dumpable
// again), are unaffected.
func Undumpable() error { return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0) }
