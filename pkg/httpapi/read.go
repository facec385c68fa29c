package httpapi

// The routes the web console needs beyond the CLI's: spiders, crawl
// lists, a crawl's items, logs and dead letters, throttle overrides.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/politeness"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

// crawlIDRe is a crawl id: one subject token (see mesh.NewCrawlID).
var crawlIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// maxPage bounds one page of items or log lines.
const maxPage = 500

func (a *api) routesRead(mux *http.ServeMux) {
	mux.HandleFunc("GET "+Prefix+"info", a.info)
	mux.HandleFunc("GET "+Prefix+"spiders", readBucket(a, mesh.SpidersBucket, spiderList))
	mux.HandleFunc("GET "+Prefix+"spiders/{name}", a.spiderGet)
	mux.HandleFunc("POST "+Prefix+"spiders", a.authorised(a.spiderApply))
	mux.HandleFunc("DELETE "+Prefix+"spiders/{name}", a.authorised(a.spiderDelete))
	mux.HandleFunc("GET "+Prefix+"crawls", readBucket(a, mesh.CrawlsBucket, a.crawlList))
	mux.HandleFunc("GET "+Prefix+"crawls/{id}/items", a.page(mesh.ResultsStream, mesh.ResultSubject))
	mux.HandleFunc("GET "+Prefix+"crawls/{id}/logs", a.page(mesh.LogsStream, mesh.LogSubject))
	mux.HandleFunc("GET "+Prefix+"crawls/{id}/export", a.export)
	mux.HandleFunc("GET "+Prefix+"crawls/{id}/deadletters", a.deadLetters)
	mux.HandleFunc("POST "+Prefix+"crawls/{id}/deadletters/requeue", a.authorised(a.requeue))
	mux.HandleFunc("POST "+Prefix+"crawls/{id}/deadletters/{seq}/requeue", a.authorised(a.requeue))
	mux.HandleFunc("GET "+Prefix+"schedules", a.schedules)
	mux.HandleFunc("GET "+Prefix+"throttle", readBucket(a, mesh.ThrottleBucket, throttleList))
	mux.HandleFunc("PUT "+Prefix+"throttle/{host}", a.authorised(a.throttleSet))
	mux.HandleFunc("DELETE "+Prefix+"throttle/{host}", a.authorised(a.throttleRemove))
}

// info tells the console whether actions can work on this master. It
// never carries the token.
func (a *api) info(w http.ResponseWriter, _ *http.Request) {
	out := map[string]any{"actions": a.cfg.Token != ""}
	if a.cfg.Token == "" {
		out["reason"] = "this master was started without an API token (--api-token-file or CRAWLMESH_API_TOKEN), so it refuses every action; reads work"
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) kv(ctx context.Context, w http.ResponseWriter, bucket string) jetstream.KeyValue {
	kv, err := a.cfg.JS.KeyValue(ctx, bucket)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "bucket "+bucket+": "+err.Error())
		return nil
	}
	return kv
}

func (a *api) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.cfg.Timeout)
}

// readBucket serves a GET whose answer is what read makes of one bucket:
// 503 with the reason when the bucket cannot be opened or read.
func readBucket[T any](a *api, bucket string, read func(context.Context, jetstream.KeyValue) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := a.ctx(r)
		defer cancel()
		kv := a.kv(ctx, w, bucket)
		if kv == nil {
			return
		}
		out, err := read(ctx, kv)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// entries is every value of kv that decode takes, in key order; keys
// deleted meanwhile and values decode refuses are left out. Any other
// failure to read a key is an error, not a shorter list served as whole.
func entries[T any](ctx context.Context, kv jetstream.KeyValue, decode func(jetstream.KeyValueEntry) (T, bool)) ([]T, error) {
	ks, err := keys(ctx, kv)
	if err != nil {
		return nil, err
	}
	out := []T{}
	for _, k := range ks {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", k, err)
		}
		if v, ok := decode(e); ok {
			out = append(out, v)
		}
	}
	return out, nil
}

func keys(ctx context.Context, kv jetstream.KeyValue) ([]string, error) {
	ks, err := kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	sort.Strings(ks)
	return ks, err
}

// spiderView is a stored spider: its spec as JSON and as the YAML a
// person edits.
type spiderView struct {
	Name     string     `json:"name"`
	Revision uint64     `json:"revision"`
	Spec     *spec.Spec `json:"spec"`
}

// spiderList is every stored spider whose spec parses.
func spiderList(ctx context.Context, kv jetstream.KeyValue) ([]spiderView, error) {
	return entries(ctx, kv, func(e jetstream.KeyValueEntry) (spiderView, bool) {
		s, err := spec.Parse(e.Value())
		if err != nil {
			return spiderView{}, false
		}
		return spiderView{Name: s.Name, Revision: e.Revision(), Spec: s}, true
	})
}

func (a *api) spiderGet(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.ctx(r)
	defer cancel()
	kv := a.kv(ctx, w, mesh.SpidersBucket)
	if kv == nil {
		return
	}
	e, err := kv.Get(ctx, r.PathValue("name"))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		writeError(w, http.StatusNotFound, "no spider "+r.PathValue("name"))
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	s, err := spec.Parse(e.Value())
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, spiderView{Name: s.Name, Revision: e.Revision(), Spec: s})
}

// spiderApply stores the spec in the body (YAML or JSON), as `crawlmesh
// spider apply` does. A spec with mistakes is refused with 422 and
// {"error": ..., "errors": [...]}, one message per mistake, each starting
// with the field's path (name, start_urls[0], items[0].fields ...).
func (a *api) spiderApply(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "body: "+err.Error())
		return
	}
	s, err := spec.ParseNew(data)
	if err != nil {
		var errs spec.Errors
		if !errors.As(err, &errs) {
			errs = spec.Errors{err.Error()}
		}
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": err.Error(), "errors": []string(errs)})
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	kv := a.kv(ctx, w, mesh.SpidersBucket)
	if kv == nil {
		return
	}
	rev, changed, err := crawlctl.ApplySpider(ctx, kv, s)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	if changed {
		a.cfg.Log.Info("spider applied over HTTP", "spider", s.Name, "revision", rev, "remote", r.RemoteAddr)
	}
	out := map[string]any{"name": s.Name, "revision": rev, "changed": changed}
	if warn := crawlctl.GoSpiderWarning(s, a.cfg.Nodes()); warn != "" {
		out["warning"] = warn
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) spiderDelete(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.ctx(r)
	defer cancel()
	kv := a.kv(ctx, w, mesh.SpidersBucket)
	if kv == nil {
		return
	}
	name := r.PathValue("name")
	if _, err := kv.Get(ctx, name); err != nil {
		writeError(w, http.StatusNotFound, "no spider "+name)
		return
	}
	if err := kv.Delete(ctx, name); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	a.cfg.Log.Info("spider removed over HTTP", "spider", name, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]string{"name": name})
}

// crawlList is every crawl's status, newest first.
func (a *api) crawlList(ctx context.Context, kv jetstream.KeyValue) ([]crawlctl.Status, error) {
	out, err := a.statuses.List(ctx, a.cfg.JS, kv)
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []crawlctl.Status{}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, nil
}

// pageOut is one page of a crawl's stream: messages as JSON, and the
// stream sequence to ask for the next page from (?after=).
type pageOut struct {
	Entries []json.RawMessage `json:"entries"`
	Next    uint64            `json:"next"`
}

// page serves ?after=SEQ&limit=N of subject(id) in stream: the messages
// after stream sequence SEQ, at most N (50; at most 500).
func (a *api) page(stream string, subject func(string) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if !crawlIDRe.MatchString(id) {
			writeError(w, http.StatusBadRequest, "crawl: want an id of letters, digits, '-' and '_'")
			return
		}
		var after uint64
		var err error
		if s := r.URL.Query().Get("after"); s != "" {
			if after, err = strconv.ParseUint(s, 10, 64); err != nil {
				writeError(w, http.StatusBadRequest, "after: want a stream sequence")
				return
			}
		}
		limit := 50
		if l := r.URL.Query().Get("limit"); l != "" {
			if limit, err = strconv.Atoi(l); err != nil || limit < 1 || limit > maxPage {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("limit: want 1-%d", maxPage))
				return
			}
		}
		ctx, cancel := a.ctx(r)
		defer cancel()
		s, err := a.cfg.JS.Stream(ctx, stream)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "stream "+stream+": "+err.Error())
			return
		}
		out := pageOut{Entries: []json.RawMessage{}, Next: after}
		subj := subject(id)
		for len(out.Entries) < limit {
			m, err := s.GetMsg(ctx, out.Next+1, jetstream.WithGetMsgSubject(subj))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				writeError(w, http.StatusServiceUnavailable, "read "+stream+": "+err.Error())
				return
			}
			out.Next = m.Sequence
			if json.Valid(m.Data) {
				out.Entries = append(out.Entries, m.Data)
			}
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// export streams every item of the crawl as JSONL or CSV, as `crawlmesh
// results export` does, as a download.
func (a *api) export(w http.ResponseWriter, r *http.Request) {
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "jsonl"
	}
	if format != "jsonl" && format != "csv" {
		writeError(w, http.StatusBadRequest, "format: want jsonl or csv")
		return
	}
	ctx, cancel := a.ctx(r)
	kv := a.kv(ctx, w, mesh.CrawlsBucket)
	if kv == nil {
		cancel()
		return
	}
	cr, _, err := crawler.ReadCrawl(ctx, kv, r.PathValue("id"))
	cancel()
	if errors.Is(err, crawler.ErrUnknownCrawl) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	ctype := "application/jsonl"
	if format == "csv" {
		ctype = "text/csv"
	}
	w.Header().Set("Content-Type", ctype+"; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.%s"`, cr.ID, format))
	// A csv export reads the items once for its columns before it writes
	// a byte, so a failure then still gets its status; after the first
	// byte the body just ends, as when the client goes.
	cw := &countingWriter{w: w}
	if _, err := crawlctl.Export(r.Context(), a.cfg.JS, cr, format, cw, a.cfg.Timeout); err != nil && cw.n == 0 && r.Context().Err() == nil {
		w.Header().Del("Content-Disposition")
		writeError(w, http.StatusServiceUnavailable, err.Error())
	}
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (a *api) deadLetters(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.ctx(r)
	defer cancel()
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "limit: want a number of dead letters (0 or none: all)")
			return
		}
		limit = n
	}
	dl, total, err := crawlctl.ReadDeadLettersUpTo(ctx, a.cfg.JS, r.PathValue("id"), limit)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	if dl == nil {
		dl = []crawlctl.DeadLetter{}
	}
	// The list may be the first limit: the header says how many there are.
	w.Header().Set("Crawlmesh-Total", strconv.FormatUint(total, 10))
	writeJSON(w, http.StatusOK, dl)
}

// requeue puts one dead letter ({seq}) or every one of the crawl back on
// the work queue, as `crawlmesh crawl requeue` does: both ask the leading
// master, which runs crawlctl.Control.Requeue.
func (a *api) requeue(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !crawlIDRe.MatchString(id) {
		writeError(w, http.StatusBadRequest, "crawl: want an id of letters, digits, '-' and '_'")
		return
	}
	var seq uint64
	if s := r.PathValue("seq"); s != "" {
		var err error
		if seq, err = strconv.ParseUint(s, 10, 64); err != nil || seq == 0 {
			writeError(w, http.StatusBadRequest, "seq: want a dead letter's sequence (the seq of GET crawls/"+id+"/deadletters)")
			return
		}
	}
	res, err := crawlctl.RequeueCall(r.Context(), a.cfg.NC, id, seq, a.cfg.Timeout)
	if err != nil {
		writeJSON(w, callStatus(err), map[string]any{"error": err.Error(), "requeue": res})
		return
	}
	a.cfg.Log.Info("dead letters re-queued over HTTP", "crawl", id, "seq", seq, "tasks", res.Requeued, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, res)
}

func (a *api) schedules(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Schedules == nil {
		writeError(w, http.StatusNotFound, "this master runs no scheduler")
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	out, err := a.cfg.Schedules(ctx, time.Now())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// throttleList is every throttle override, by host.
func throttleList(ctx context.Context, kv jetstream.KeyValue) ([]politeness.Override, error) {
	out, err := entries(ctx, kv, func(e jetstream.KeyValueEntry) (politeness.Override, bool) {
		var o politeness.Override
		return o, json.Unmarshal(e.Value(), &o) == nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out, err
}

// throttleSet stores {"delay": "2s", "parallelism": 2} for the host, as
// `crawlmesh throttle set` does.
func (a *api) throttleSet(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Delay       string `json:"delay"`
		Parallelism int    `json:"parallelism"`
	}
	if !decode(w, r, &req) {
		return
	}
	host := r.PathValue("host")
	o, err := politeness.NewOverride(host, req.Delay, req.Parallelism, time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	kv := a.kv(ctx, w, mesh.ThrottleBucket)
	if kv == nil {
		return
	}
	b, _ := json.Marshal(o)
	if _, err := kv.Put(ctx, politeness.Key(host), b); err != nil {
		writeError(w, http.StatusServiceUnavailable, "store override: "+err.Error())
		return
	}
	a.cfg.Log.Info("throttle set over HTTP", "host", host, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, o)
}

func (a *api) throttleRemove(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.ctx(r)
	defer cancel()
	kv := a.kv(ctx, w, mesh.ThrottleBucket)
	if kv == nil {
		return
	}
	host := r.PathValue("host")
	if _, err := kv.Get(ctx, politeness.Key(host)); err != nil {
		writeError(w, http.StatusNotFound, "no throttle for "+host)
		return
	}
	if err := kv.Purge(ctx, politeness.Key(host)); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"host": host})
}
