package jsspider

import (
	"runtime"
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

// markedMetric is the heap the last GC found live.
const markedMetric = "/gc/heap/live:bytes"

// liveHeap is the heap's objects now (see heapMetric).
func liveHeap() uint64 { return readUint(heapMetric) }

func readUint(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// baseline is the heap a parse starts from. Garbage not yet swept would
// raise it: a runaway's 2 GiB string, stopped a moment ago, let the retry
// of its page grow by 2 GiB more and succeed (found by review, the worker
// at 4.7 GB). So when the heap holds more than budget since the last GC,
// a GC comes first; a worker's ordinary garbage stays far below it.
func baseline(budget uint64) uint64 {
	if now := liveHeap(); now <= readUint(markedMetric)+budget {
		return now
	}
	runtime.GC()
	return liveHeap()
}

// watch is one running parse as the memory watchdog sees it.
type watch struct {
	base, budget uint64
	start        time.Time
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
	w := &watch{base: baseline(budget), budget: budget, over: over, start: time.Now()}
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
	var gcDone chan struct{} // a confirming GC runs until closed
	confirmed := false       // the last tick's overrun outlived a GC
	for range t.C {
		if gcDone != nil {
			select {
			case <-gcDone:
				gcDone, confirmed = nil, true
			default:
			}
		}
		live := liveHeap()
		memWatch.mu.Lock()
		if len(memWatch.active) == 0 {
			memWatch.running = false
			memWatch.mu.Unlock()
			if gcDone != nil {
				<-gcDone // the GC goroutine ends with the watchdog
			}
			return
		}
		// The heap is the process's: every parse running sees what any of
		// them allocates, garbage included until a GC sweeps it. So a
		// parse over its budget is first confirmed by a GC (garbage of a
		// sound script, or of one stopped already, is not held against
		// anyone), and then only one is stopped a tick: the one running
		// longest (a runaway script runs on; a normal parse takes
		// milliseconds). The others are measured from then on: the real
		// culprit exceeds its budget again. Stopping every parse over it
		// took sound pages beside a hoarding one to the dead letters.
		//
		// The GC runs beside the watch: a heap that grows by twice the
		// budget before it ends is not garbage, and is stopped then.
		// Waiting for the GC (seconds with a heap of gigabytes) let a
		// doubling string double twice more, and the worker reach 4.7 GB
		// (found by review).
		var victim *watch
		for w := range memWatch.active {
			if !w.fired && live > w.base && live-w.base > w.budget && (victim == nil || w.start.Before(victim.start)) {
				victim = w
			}
		}
		fire := victim != nil && (confirmed || live-victim.base > 2*victim.budget)
		if victim != nil && !fire && gcDone == nil {
			gcDone = make(chan struct{})
			go func(done chan struct{}) { runtime.GC(); close(done) }(gcDone)
		}
		if victim == nil || fire {
			confirmed = false
		}
		if fire {
			victim.fired = true
			// Under the lock: once watchHeap's stop returns, over is
			// never called, so a reused runtime is never hit.
			victim.over()
			for w := range memWatch.active {
				if w != victim && live > w.base {
					w.base = live
				}
			}
		}
		memWatch.mu.Unlock()
	}
}
