package worker

import (
	"context"
	"sync"
)

// Slots is a counting semaphore whose size can change while it is held:
// the worker's fetch slots, resized by set-concurrency.
type Slots struct {
	mu    sync.Mutex
	limit int
	used  int
	wake  chan struct{} // closed and replaced whenever a slot may be free
}

func newSlots(n int) *Slots { return &Slots{limit: n, wake: make(chan struct{})} }

// Acquire takes a slot, waiting until one is free or ctx is done.
func (s *Slots) Acquire(ctx context.Context) error {
	for {
		s.mu.Lock()
		if s.used < s.limit {
			s.used++
			s.mu.Unlock()
			return nil
		}
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}

// Release returns a slot.
func (s *Slots) Release() {
	s.mu.Lock()
	s.used--
	s.signal()
	s.mu.Unlock()
}

func (s *Slots) setLimit(n int) {
	s.mu.Lock()
	s.limit = n
	s.signal()
	s.mu.Unlock()
}

func (s *Slots) signal() {
	close(s.wake)
	s.wake = make(chan struct{})
}
