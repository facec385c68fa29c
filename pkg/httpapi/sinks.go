package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/sink"
)

// Sinks (bucket sinks), for the console's sinks section, the same
// operations as `crawlmesh sink add|ls|rm` through pkg/sink:
//
//	GET    /api/v1/sinks         every sink as `sink ls -o json` lists it (targets redacted)
//	PUT    /api/v1/sinks/{name}  add one: {"webhook": URL} or {"postgres": URL, "table": T}, plus
//	                             "spiders", "batch_size", "batch_wait", "give_up", "request_timeout"
//	DELETE /api/v1/sinks/{name}  remove one
//
// PUT and DELETE need the token. A literal password is refused with 400
// and the CLI's message; a ${env:NAME} reference is stored and shown as
// written, never resolved (only the delivering master reads it).
func (a *api) routesSinks(mux *http.ServeMux) {
	mux.HandleFunc("GET "+Prefix+"sinks", readBucket(a, mesh.SinksBucket, a.sinkList))
	mux.HandleFunc("PUT "+Prefix+"sinks/{name}", a.authorised(a.sinkAdd))
	mux.HandleFunc("DELETE "+Prefix+"sinks/{name}", a.authorised(a.sinkRemove))
}

func (a *api) sinkList(ctx context.Context, kv jetstream.KeyValue) ([]sink.Row, error) {
	return sink.List(ctx, a.cfg.JS, kv)
}

// sinkBody is the body of PUT /api/v1/sinks/{name}: the CLI's flags.
type sinkBody struct {
	sink.Spec
	BatchWait      string `json:"batch_wait,omitempty"`
	GiveUp         string `json:"give_up,omitempty"`
	RequestTimeout string `json:"request_timeout,omitempty"`
}

func (a *api) sinkAdd(w http.ResponseWriter, r *http.Request) {
	var req sinkBody
	if !decode(w, r, &req) {
		return
	}
	sp := req.Spec
	sp.Name = r.PathValue("name")
	for _, d := range []struct {
		field, v string
		to       *time.Duration
	}{{"batch_wait", req.BatchWait, &sp.BatchWait}, {"give_up", req.GiveUp, &sp.GiveUp}, {"request_timeout", req.RequestTimeout, &sp.Timeout}} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "body: "+d.field+" "+`"`+d.v+`": want a duration like 1s`)
			return
		}
		*d.to = v
	}
	s, err := sink.Build(sp, time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	kv := a.kv(ctx, w, mesh.SinksBucket)
	if kv == nil {
		return
	}
	if err := sink.Add(ctx, kv, s); errors.Is(err, sink.ErrExists) {
		writeError(w, http.StatusConflict, err.Error())
		return
	} else if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	a.cfg.Log.Info("sink added over HTTP", "sink", s.Name, "type", s.Type, "target", s.Target(), "remote", r.RemoteAddr)
	writeJSON(w, http.StatusCreated, sink.Row{Sink: s, Target: s.Target(), State: sink.StateWaiting})
}

func (a *api) sinkRemove(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	ctx, cancel := a.ctx(r)
	defer cancel()
	kv := a.kv(ctx, w, mesh.SinksBucket)
	if kv == nil {
		return
	}
	if err := sink.Remove(ctx, kv, name); errors.Is(err, sink.ErrNotFound) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	} else if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	a.cfg.Log.Info("sink removed over HTTP", "sink", name, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]string{"removed": name})
}
