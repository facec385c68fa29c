//go:build !linux

package progspider

// killOrphans is Linux-only (it reads /proc); elsewhere a stopped
// worker's spider processes are left to the operator.
func killOrphans(string) int { return 0 }
