package politeness_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/politeness"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

// TestOverrideSlowsBusyHost: two workers keep a host busy with no delay
// (slots passed between their own tasks); an override of 300ms is obeyed
// by every start more than a second after it was set.
func TestOverrideSlowsBusyHost(t *testing.T) {
	_, js := streamstest.Start(t, streams.Options{})
	hosts := streamstest.Bucket(t, js, mesh.HostsBucket)
	throttle := streamstest.Bucket(t, js, mesh.ThrottleBucket)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	var gs []*politeness.Gate
	for _, id := range []string{"a", "b"} {
		g := politeness.New(hosts, throttle, id, 10*time.Second, nil)
		wg.Go(func() { _ = g.Run(ctx) })
		gs = append(gs, g)
	}
	var mu sync.Mutex
	var starts []time.Time
	stop := make(chan struct{})
	var tasks sync.WaitGroup
	for i := range 8 {
		g := gs[i%2]
		tasks.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				p, err := g.Acquire(ctx, "busy:1", politeness.Limits{Parallelism: 1}, nil, nil)
				if err != nil {
					return
				}
				mu.Lock()
				starts = append(starts, time.Now())
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
				p.Started(time.Now())
				p.Release(ctx, politeness.Outcome{Latency: 5 * time.Millisecond})
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	b, _ := json.Marshal(politeness.Override{Host: "busy:1", Delay: "300ms"})
	if _, err := throttle.Put(t.Context(), politeness.Key("busy:1"), b); err != nil {
		t.Fatal(err)
	}
	set := time.Now()
	time.Sleep(1100 * time.Millisecond)
	for _, g := range gs {
		t.Logf("effective: %+v", g.Effective("busy:1", politeness.Limits{Parallelism: 1}))
	}
	// Until 6 starts came after that second (about 2s at 300ms each), or
	// 20s on a starved machine; the spacing is what is checked.
	after := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, s := range starts {
			if s.After(set.Add(time.Second)) {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(20 * time.Second); after() < 6 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	cancel()
	tasks.Wait()
	mu.Lock()
	defer mu.Unlock()
	var prev time.Time
	n := 0
	for _, s := range starts {
		if s.After(set.Add(time.Second)) {
			n++
			if !prev.IsZero() && s.Sub(prev) < 295*time.Millisecond {
				t.Errorf("start %v after the override, %v after the previous one", s.Sub(set), s.Sub(prev))
			}
		}
		prev = s
	}
	if n < 6 {
		t.Errorf("only %d starts in the 19s after the override took effect, want 6", n)
	}
}

// One check for every way an override is set (CLI, API, console): a host
// as URLs name it, a bounded delay. The API once stored "bad host", "a/b"
// and "<script>…", the CLI "http://Example.COM/path"; none can match.
func TestNewOverride(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		host, delay string
		par         int
		err         string
	}{
		{"example.com", "2s", 0, ""},
		{"Example.COM:8088", "", 3, ""},
		{"127.0.0.1:8088", "500ms", 2, ""},
		{"[::1]:8080", "1s", 0, ""},
		{"bad host", "1s", 0, `' ' is not allowed`},
		{"a/b", "1s", 0, `'/' is not allowed`},
		{"<script>alert(1)</script>", "1s", 0, "is not allowed"},
		{"http://Example.COM/path", "1s", 0, "a URL is not a host"},
		{"", "1s", 0, "empty"},
		{"example.com", "", 0, "give a delay, a parallelism or both"},
		{"example.com", "-2s", 0, "from 0 to 1h0m0s"},
		{"example.com", "999999h", 0, "from 0 to 1h0m0s"},
		{"example.com", "", 1001, "want 1-1000"},
		{"example.com:80", "1s", 0, "without its default port 80: write example.com"},
		{"Example.com:443", "1s", 0, "write Example.com"},
		{"[::1]:80", "1s", 0, "write [::1]"},
	} {
		o, err := politeness.NewOverride(c.host, c.delay, c.par, now)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("NewOverride(%q, %q, %d): %v", c.host, c.delay, c.par, err)
		case c.err == "" && (o.Host != strings.ToLower(c.host) || o.Parallelism != c.par):
			t.Errorf("NewOverride(%q, %q, %d) = %+v", c.host, c.delay, c.par, o)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("NewOverride(%q, %q, %d): err %v, want %q", c.host, c.delay, c.par, err, c.err)
		}
	}
}
