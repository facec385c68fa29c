package jsspider

import (
	"runtime/metrics"
	"sync"
	"time"
)

// memTick is how often the watchdog samples the live heap.
const memTick = 5 * time.Millisecond

// heapMetric is the memory of heap objects, live or not yet swept: kept
// current by every allocation, unlike the live heap, which is only known
// at the end of a GC cycle. A script doubling a string (s = s + s) went
// from 256 MiB to 8 GiB between two GCs while the live heap still read
// its start, and the process died out of memory.
const heapMetric = "/memory/classes/heap/objects:bytes"

// liveHeap is the heap's objects now (see heapMetric).
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// watch is one running parse as the memory watchdog sees it.
type watch struct {
	base, budget uint64
	over         func() // called at most once, by the watchdog, under memWatch.mu
	fired        bool
}

// memWatch is the process-wide watchdog: one goroutine, running only while
// some parse is registered.
var memWatch struct {
	mu      sync.Mutex
	active  map[*watch]struct{}
	running bool
}

// watchHeap registers a parse with a budget of bytes above the live heap
// now; over is called if the live heap grows past it. The returned
// function unregisters it.
func watchHeap(budget uint64, over func()) (stop func()) {
	w := &watch{base: liveHeap(), budget: budget, over: over}
	memWatch.mu.Lock()
	if memWatch.active == nil {
		memWatch.active = make(map[*watch]struct{})
	}
	memWatch.active[w] = struct{}{}
	if !memWatch.running {
		memWatch.running = true
		go watchLoop()
	}
	memWatch.mu.Unlock()
	return func() {
		memWatch.mu.Lock()
		delete(memWatch.active, w)
		memWatch.mu.Unlock()
	}
}

func watchLoop() {
	t := time.NewTicker(memTick)
	defer t.Stop()
	for range t.C {
		live := liveHeap()
		memWatch.mu.Lock()
		if len(memWatch.active) == 0 {
			memWatch.running = false
			memWatch.mu.Unlock()
			return
		}
		for w := range memWatch.active {
			if !w.fired && live > w.base && live-w.base > w.budget {
				w.fired = true
				// Under the lock: once watchHeap's stop returns, over
				// is never called, so a reused runtime is never hit.
				w.over()
			}
		}
		memWatch.mu.Unlock()
	}
}
