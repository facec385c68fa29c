package mesh

import "testing"

func TestLayoutOf(t *testing.T) {
	one := Layout{}
	if p := one.Of("http://a.example/x"); p != 0 {
		t.Fatalf("one partition: got %d", p)
	}
	byHost := NewLayout(4, "")
	seen := map[int]bool{}
	for _, u := range []string{"http://a.example/1", "http://a.example/2?q=1", "http://A.example/3#f", "http://user@a.example/4"} {
		seen[byHost.Of(u)] = true
	}
	if len(seen) != 1 {
		t.Errorf("one host's URLs went to %d partitions, want 1: %v", len(seen), seen)
	}
	byURL := NewLayout(4, PartitionByURL)
	counts := make([]int, 4)
	for i := range 400 {
		counts[byURL.Of("http://a.example/p/"+string(rune('a'+i%26))+string(rune('a'+i/26))+".html")]++
	}
	for p, n := range counts {
		if n < 50 {
			t.Errorf("by url: partition %d has %d of 400 URLs of one host: %v", p, n, counts)
		}
	}
	hosts := make([]int, 4)
	for i := range 400 {
		hosts[byHost.Of("http://h"+string(rune('a'+i%26))+string(rune('a'+i/26))+".example/")]++
	}
	for p, n := range hosts {
		if n < 50 {
			t.Errorf("by host: partition %d has %d of 400 hosts: %v", p, n, hosts)
		}
	}
}

func TestPartitionNames(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{TasksStreamOf(0), "TASKS"}, {TasksStreamOf(2), "TASKS_2"},
		{SeenBucketOf(0), "seen"}, {SeenBucketOf(1), "seen_1"},
		{TaskSubjectOf(0, "c1"), "crawlmesh.task.c1"}, {TaskSubjectOf(3, "c1"), "crawlmesh.task_3.c1"},
		{TaskSubjectsOf(3), "crawlmesh.task_3.>"},
		{CrawlOfTaskSubject("crawlmesh.task.c1"), "c1"}, {CrawlOfTaskSubject("crawlmesh.task_3.c1"), "c1"},
		{CrawlOfTaskSubject("crawlmesh.task_3"), ""}, {CrawlOfTaskSubject("crawlmesh.tasks.c1"), ""},
		{CrawlOfTaskSubject("crawlmesh.task.a.b"), ""},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// A crawl recorded before short ids keeps the ids an older worker
// published with, byte for byte; one recorded now gets 16 characters that
// differ for every task, counter and crawl.
func TestLayoutPubID(t *testing.T) {
	old := (&Crawl{ID: "c-1"}).Layout("")
	if got := old.PubID("c-1", "T", ""); got != "c-1.T" {
		t.Errorf("long task id %q, want c-1.T", got)
	}
	if got := old.PubID("c-1", "T", StatOK); got != "c-1.T.ok" {
		t.Errorf("long counter id %q, want c-1.T.ok", got)
	}
	short := (&Crawl{ID: "c-1", ShortIDs: true}).Layout("")
	ids := map[string]string{}
	for _, c := range []struct{ crawl, task, what string }{
		{"c-1", "T", ""}, {"c-1", "T", StatOK}, {"c-1", "U", ""}, {"c-2", "T", ""}, {"c-1", "T", StatIncomplete},
	} {
		id := short.PubID(c.crawl, c.task, c.what)
		if len(id) != 16 {
			t.Errorf("short id %q of %v has %d characters, want 16", id, c, len(id))
		}
		if again := short.PubID(c.crawl, c.task, c.what); again != id {
			t.Errorf("short id of %v changed: %q then %q", c, id, again)
		}
		key := c.crawl + "|" + c.task + "|" + c.what
		for k, other := range ids {
			if other == id {
				t.Errorf("%s and %s share id %q", k, key, id)
			}
		}
		ids[key] = id
	}
}
