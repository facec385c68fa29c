//go:build !linux

package boot

// Undumpable does nothing here: the /proc it guards is Linux's.
func Undumpable() error { return nil }
