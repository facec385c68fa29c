package logsample

import (
	"slices"
	"sync"
	"testing"
)

func TestSampler(t *testing.T) {
	for _, tc := range []struct {
		all, every, lines int64
		kept              []int64 // the numbers of the lines kept
		sampled           int64   // the first kept line that stands for others
	}{
		{all: 3, every: 2, lines: 9, kept: []int64{1, 2, 3, 5, 7, 9}, sampled: 5},
		{all: 3, every: 0, lines: 9, kept: []int64{1, 2, 3}},
		{all: 0, every: 0, lines: 4, kept: []int64{1, 2, 3, 4}},
		{all: 0, every: 3, lines: 7, kept: []int64{3, 6}, sampled: 3},
	} {
		s := &Sampler{All: tc.all, Every: tc.every}
		var kept []int64
		var sampled int64
		for i := int64(1); i <= tc.lines; i++ {
			n, keep := s.Next("a")
			if n != i {
				t.Fatalf("%+v: line %d numbered %d", tc, i, n)
			}
			if keep {
				kept = append(kept, n)
				if sampled == 0 && s.Sampled(n) {
					sampled = n
				}
			}
		}
		if !slices.Equal(kept, tc.kept) || sampled != tc.sampled {
			t.Errorf("%+v: kept %v, the first standing for others %d", tc, kept, sampled)
		}
	}
}

func TestSamplerKeysAndForget(t *testing.T) {
	s := &Sampler{All: 1, Every: 0}
	if _, keep := s.Next("a"); !keep {
		t.Fatal("a's first line dropped")
	}
	if _, keep := s.Next("a"); keep {
		t.Fatal("a's second line kept")
	}
	if n, keep := s.Next("b"); n != 1 || !keep {
		t.Fatalf("b's first line: %d %v; keys share a count", n, keep)
	}
	s.Forget("a")
	if n, keep := s.Next("a"); n != 1 || !keep {
		t.Fatalf("a after Forget: %d %v, want a fresh count", n, keep)
	}
}

func TestSamplerConcurrent(t *testing.T) {
	s := &Sampler{All: 100, Every: 10}
	var wg sync.WaitGroup
	var mu sync.Mutex
	kept := 0
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if _, keep := s.Next("c"); keep {
					mu.Lock()
					kept++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if want := 100 + (8000-100)/10; kept != want {
		t.Errorf("kept %d of 8000 lines, want %d", kept, want)
	}
}
