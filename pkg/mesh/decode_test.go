package mesh_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

const taskURL = "http://example.com/a?b=c"

func taskJSON(mod func(*mesh.Task)) []byte {
	t := mesh.Task{ID: mesh.URLHash(taskURL), Crawl: "books-20261123060632-f916", Spider: "books", URL: taskURL, Depth: 2,
		Referrer: "http://example.com/"}
	if mod != nil {
		mod(&t)
	}
	b, _ := json.Marshal(t)
	return b
}

func TestDecodeTask(t *testing.T) {
	for _, c := range []struct {
		what string
		data []byte
		want string // in the error; "" for none
	}{
		{"valid", taskJSON(nil), ""},
		{"unknown field ignored", []byte(`{"id":"` + mesh.URLHash(taskURL) + `","crawl":"c","url":"` + taskURL + `","new":1}`), ""},
		{"not json", []byte("not json"), "invalid character"},
		{"null", []byte("null"), "id, crawl, url missing"},
		{"array", []byte("[]"), "cannot unmarshal array"},
		{"crawl missing", taskJSON(func(t *mesh.Task) { t.Crawl = "" }), "crawl missing"},
		{"crawl two tokens", taskJSON(func(t *mesh.Task) { t.Crawl = "a.b" }), `crawl "a.b" is not one subject token`},
		{"crawl wildcard", taskJSON(func(t *mesh.Task) { t.Crawl = ">" }), "not one subject token"},
		{"crawl space", taskJSON(func(t *mesh.Task) { t.Crawl = "a b" }), "not one subject token"},
		{"url relative", taskJSON(func(t *mesh.Task) { t.URL, t.ID = "/a", mesh.URLHash("/a") }), "not an absolute http or https URL"},
		{"url ftp", taskJSON(func(t *mesh.Task) { t.URL, t.ID = "ftp://h/", mesh.URLHash("ftp://h/") }), "not an absolute http"},
		{"url unparseable", taskJSON(func(t *mesh.Task) { t.URL, t.ID = "http://h/%zz", mesh.URLHash("http://h/%zz") }), "invalid URL escape"},
		{"id not the hash", taskJSON(func(t *mesh.Task) { t.ID = "x" }), `id "x" is not the hash of url`},
		{"negative depth", taskJSON(func(t *mesh.Task) { t.Depth = -1 }), "depth -1 is negative"},
		{"depth not a number", []byte(`{"id":"i","crawl":"c","url":"u","depth":"1"}`), "cannot unmarshal string"},
	} {
		got, err := mesh.DecodeTask(c.data)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.what, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, mesh.ErrBadTask) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: DecodeTask(%s) = %+v, %v; want ErrBadTask saying %q", c.what, c.data, got, err, c.want)
		}
		if got != (mesh.Task{}) {
			t.Errorf("%s: a zero task wanted with the error, got %+v", c.what, got)
		}
	}
}

func heartbeatJSON(mod func(*mesh.Heartbeat)) []byte {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	hb := mesh.Heartbeat{Key: "w1", IP: "10.0.0.1", Hostname: "h1", UpdateTS: now, UpdateTSUnix: now.Unix(),
		Role: mesh.RoleWorker, Version: "1", State: mesh.StateRunning, StartedAt: now, Capacity: 4, Instance: "ab", PID: 7}
	if mod != nil {
		mod(&hb)
	}
	b, _ := json.Marshal(hb)
	return b
}

func TestDecodeHeartbeat(t *testing.T) {
	for _, c := range []struct {
		what string
		data []byte
		want string
	}{
		{"worker", heartbeatJSON(nil), ""},
		{"master", heartbeatJSON(func(h *mesh.Heartbeat) { h.Role, h.Master, h.Leader = mesh.RoleMaster, true, true }), ""},
		{"agent with children", heartbeatJSON(func(h *mesh.Heartbeat) {
			h.Role, h.Children = mesh.RoleAgent, []mesh.Child{{ID: "w1-1", PID: 9, State: mesh.ChildRunning}}
		}), ""},
		{"worker of an agent", heartbeatJSON(func(h *mesh.Heartbeat) { h.Agent = "w1" }), ""},
		{"state of a newer version", heartbeatJSON(func(h *mesh.Heartbeat) { h.State = "hibernating" }), ""},
		{"crawlab fields only", []byte(`{"key":"w1","role":"worker","ip":"1.2.3.4","update_ts_unix":1}`), ""},
		{"not json", []byte("{broken"), "invalid character"},
		{"null", []byte("null"), "key: bad node id"},
		{"empty object", []byte("{}"), "key: bad node id"},
		{"bad key", heartbeatJSON(func(h *mesh.Heartbeat) { h.Key = "a.b" }), `key: bad node id "a.b"`},
		{"no role", heartbeatJSON(func(h *mesh.Heartbeat) { h.Role = "" }), `role "": want master, worker or agent`},
		{"other role", heartbeatJSON(func(h *mesh.Heartbeat) { h.Role = "Worker" }), `role "Worker"`},
		{"bad time", []byte(`{"key":"w1","role":"worker","update_ts":"yesterday"}`), "cannot parse"},
	} {
		got, err := mesh.DecodeHeartbeat(c.data)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.what, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, mesh.ErrBadHeartbeat) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: DecodeHeartbeat(%s) = %+v, %v; want ErrBadHeartbeat saying %q", c.what, c.data, got, err, c.want)
		}
		if got.Key != "" || got.Role != "" {
			t.Errorf("%s: a zero heartbeat wanted with the error, got %+v", c.what, got)
		}
	}
}

func FuzzDecodeTask(f *testing.F) {
	f.Add(taskJSON(nil))
	f.Add(taskJSON(func(t *mesh.Task) { t.Crawl = "a.b" }))
	f.Add(taskJSON(func(t *mesh.Task) { t.Depth = -3 }))
	f.Add(taskJSON(func(t *mesh.Task) { t.ID = "x" }))
	f.Add([]byte(`{"id":"` + mesh.URLHash("https://[::1]:8443/") + `","crawl":"c","url":"https://[::1]:8443/","depth":9223372036854775807}`))
	f.Add([]byte(`{"crawl":"c"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"id":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		task, err := mesh.DecodeTask(data)
		if err != nil {
			if !errors.Is(err, mesh.ErrBadTask) {
				t.Fatalf("error %v does not wrap ErrBadTask", err)
			}
			if task != (mesh.Task{}) {
				t.Fatalf("task %+v returned with error %v", task, err)
			}
			return
		}
		// What the worker relies on holds for every accepted task.
		u, perr := url.Parse(task.URL)
		if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			t.Fatalf("accepted url %q is not absolute http(s): %v", task.URL, perr)
		}
		if task.ID != mesh.URLHash(task.URL) || task.Depth < 0 ||
			strings.ContainsAny(task.Crawl, ".*> \t\r\n") || task.Crawl == "" {
			t.Fatalf("accepted task breaks an invariant: %+v", task)
		}
		// The worker re-publishes children in the same encoding: a
		// decoded task survives encoding and decoding unchanged.
		b, err := json.Marshal(task)
		if err != nil {
			t.Fatalf("marshal %+v: %v", task, err)
		}
		again, err := mesh.DecodeTask(b)
		if err != nil || again != task {
			t.Fatalf("round trip of %+v: %+v, %v", task, again, err)
		}
	})
}

func FuzzDecodeHeartbeat(f *testing.F) {
	f.Add(heartbeatJSON(nil))
	f.Add(heartbeatJSON(func(h *mesh.Heartbeat) { h.Role, h.Leader, h.Term = mesh.RoleMaster, true, 1<<63+5 }))
	f.Add([]byte(`{"key":"w1","role":"worker","update_ts":"2026-05-01T12:00:00.123456789+05:30"}`))
	f.Add([]byte(`{"key":"w1","role":"worker","update_ts":"0000-01-01T00:00:00Z","started_at":"9999-12-31T23:59:59Z"}`))
	f.Add([]byte(`{"key":"","role":"worker"}`))
	f.Add([]byte(`{"key":"w1","role":"worker","active_tasks":-1,"pid":1e3}`))
	f.Add([]byte(`not json at all`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		hb, err := mesh.DecodeHeartbeat(data)
		if err != nil {
			if !errors.Is(err, mesh.ErrBadHeartbeat) {
				t.Fatalf("error %v does not wrap ErrBadHeartbeat", err)
			}
			return
		}
		if mesh.ValidateNodeID(hb.Key) != nil || (hb.Role != mesh.RoleMaster && hb.Role != mesh.RoleWorker) {
			t.Fatalf("accepted heartbeat breaks an invariant: %+v", hb)
		}
		// Compared as JSON: time.Time values equal as instants may hold
		// different *Location pointers.
		b1, err := json.Marshal(hb)
		if err != nil {
			t.Fatalf("marshal %+v: %v", hb, err)
		}
		again, err := mesh.DecodeHeartbeat(b1)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", b1, err)
		}
		b2, _ := json.Marshal(again)
		if !bytes.Equal(b1, b2) {
			t.Fatalf("round trip changed the heartbeat:\n%s\n%s", b1, b2)
		}
	})
}

// A sitemap task's id is the hash of "sitemap " and its URL; a page id on
// a sitemap task, and an unknown kind, are refused.
func TestDecodeSitemapTask(t *testing.T) {
	sm := func(tk *mesh.Task) { tk.Kind, tk.ID = mesh.TaskSitemap, mesh.TaskID(mesh.TaskSitemap, taskURL) }
	if tk, err := mesh.DecodeTask(taskJSON(sm)); err != nil || tk.Kind != mesh.TaskSitemap {
		t.Errorf("sitemap task: %+v, %v", tk, err)
	}
	if mesh.TaskID(mesh.TaskSitemap, taskURL) == mesh.URLHash(taskURL) {
		t.Error("a sitemap and a page of one URL share an id")
	}
	for what, mod := range map[string]func(*mesh.Task){
		"page id on a sitemap": func(tk *mesh.Task) { tk.Kind = mesh.TaskSitemap },
		"unknown kind":         func(tk *mesh.Task) { tk.Kind = "video" },
	} {
		if _, err := mesh.DecodeTask(taskJSON(mod)); !errors.Is(err, mesh.ErrBadTask) {
			t.Errorf("%s: %v, want ErrBadTask", what, err)
		}
	}
}

func TestRoleArticle(t *testing.T) {
	for role, want := range map[string]string{mesh.RoleAgent: "an agent", mesh.RoleWorker: "a worker", mesh.RoleMaster: "a master"} {
		if got := mesh.RoleArticle(role); got != want {
			t.Errorf("RoleArticle(%q) = %q, want %q", role, got, want)
		}
	}
}
