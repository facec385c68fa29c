// Package httpapi is the masters' HTTP API, served beside /metrics: read
// the mesh and crawls, start and cancel crawls, command nodes. It is a
// gateway to the same NATS request/reply API the CLI uses, so any master,
// leader or standby, serves it.
//
// Reads are open, like /metrics (the listener is on loopback unless the
// operator binds it elsewhere). Every request that changes state needs
// the bearer token the master was started with; a master without a token
// refuses them all, so an address opened by mistake never lets anyone
// start crawls or stop nodes.
package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/clusterconfig"
	"github.com/crawlmesh/crawlmesh/pkg/clusterview"
	"github.com/crawlmesh/crawlmesh/pkg/command"
	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/scheduler"
)

// Config is what the API needs.
type Config struct {
	// Token authorises state-changing requests ("Authorization: Bearer
	// TOKEN"); empty disables them.
	Token   string
	NC      *nats.Conn
	JS      jetstream.JetStream
	Nodes   func() []clusterview.Node // the master's cluster view
	Timeout time.Duration             // per NATS request; 0: 10s
	// Schedules lists the spiders' schedules at a time, as the master's
	// scheduler fires them (nil: the route answers 404).
	Schedules func(ctx context.Context, now time.Time) ([]scheduler.Schedule, error)
	Log       *slog.Logger
}

// Prefix is the path every API route starts with.
const Prefix = "/api/v1/"

// maxBody bounds request bodies: they are a spider name or a number.
const maxBody = 64 << 10

// Handler returns the API's routes.
func Handler(cfg Config) http.Handler {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	a := &api{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Prefix+"nodes", a.nodes)
	mux.HandleFunc("GET "+Prefix+"crawls/{id}", a.crawlStatus)
	mux.HandleFunc("POST "+Prefix+"crawls", a.authorised(a.crawlStart))
	mux.HandleFunc("POST "+Prefix+"crawls/{id}/cancel", a.authorised(a.crawlCancel))
	mux.HandleFunc("POST "+Prefix+"nodes/{id}/{command}", a.authorised(a.nodeCommand))
	a.routesRead(mux)
	a.routesConfig(mux)
	a.routesSinks(mux)
	mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s (see the README's HTTP API section)", r.Method, r.URL.Path))
	})
	return SecurityHeaders(mux)
}

// SecurityHeaders sets the headers every response of a master's HTTP
// listener that a browser may read carries: a strict Content-Security-
// Policy (only this origin's scripts, styles and connections; never framed)
// and no content sniffing.
func SecurityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", CSP)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		h.ServeHTTP(w, r)
	})
}

// CSP is the Content-Security-Policy of the API and the console.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

type api struct {
	cfg Config
	// statuses keeps ended crawls' statuses between the console's polls.
	statuses crawlctl.StatusCache
}

// authorised wraps a state-changing handler with the token check.
func (a *api) authorised(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.Token == "" {
			writeError(w, http.StatusForbidden, "state-changing API disabled: start the master with --api-token-file (or CRAWLMESH_API_TOKEN)")
			return
		}
		// The scheme is case-insensitive (RFC 9110, 11.1): "bearer" too.
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		ok = ok && strings.EqualFold(scheme, "Bearer")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(a.cfg.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="crawlmesh"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong token: send Authorization: Bearer <token>")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		h(w, r)
	}
}

func (a *api) nodes(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.cfg.Nodes())
}

func (a *api) crawlStatus(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
	defer cancel()
	id := r.PathValue("id")
	kv, err := a.cfg.JS.KeyValue(ctx, mesh.CrawlsBucket)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "bucket "+mesh.CrawlsBucket+": "+err.Error())
		return
	}
	st, err := crawlctl.ReadStatus(ctx, a.cfg.JS, kv, id)
	if errors.Is(err, crawler.ErrUnknownCrawl) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (a *api) crawlStart(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Spider string `json:"spider"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.Spider == "" {
		writeError(w, http.StatusBadRequest, `body: want {"spider": "<name>"}`)
		return
	}
	id, err := crawlctl.Call(r.Context(), a.cfg.NC, mesh.APICrawlStart, crawlctl.APIRequest{Spider: req.Spider}, a.cfg.Timeout)
	if err != nil {
		writeError(w, callStatus(err), err.Error())
		return
	}
	a.cfg.Log.Info("crawl started over HTTP", "spider", req.Spider, "crawl", id, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusCreated, map[string]string{"id": id})
}

func (a *api) crawlCancel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := crawlctl.Call(r.Context(), a.cfg.NC, mesh.APICrawlCancel, crawlctl.APIRequest{ID: id}, a.cfg.Timeout); err != nil {
		writeError(w, callStatus(err), err.Error())
		return
	}
	a.cfg.Log.Info("crawl cancelled over HTTP", "crawl", id, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]string{"id": id})
}

func (a *api) nodeCommand(w http.ResponseWriter, r *http.Request) {
	target := r.PathValue("id")
	cm := mesh.Command{Name: r.PathValue("command")}
	if cm.Name == mesh.CmdSetConcurrency || cm.Name == mesh.CmdScale {
		var req struct {
			N *int `json:"n"`
		}
		if !decode(w, r, &req) {
			return
		}
		// A missing n must not read as 0 (scale 0 stops every worker).
		if req.N == nil {
			writeError(w, http.StatusBadRequest, cm.Name+` needs {"n": N} in the body`)
			return
		}
		cm.N = *req.N
		if cm.Name == mesh.CmdScale && target == "all" {
			writeError(w, http.StatusBadRequest, "scale takes one agent's id, not all")
			return
		}
	}
	if err := cm.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if cm.Name == mesh.CmdSetConcurrency {
		if _, err := clusterconfig.Validate(clusterconfig.Concurrency, strconv.Itoa(cm.N)); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
	defer cancel()
	if target == "all" {
		// Who is online decides how long to wait (until each answered)
		// and who is marked for not answering.
		kv := a.kv(ctx, w, mesh.NodesBucket)
		if kv == nil {
			return
		}
		online, err := command.Online(ctx, kv)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, cm.String()+" all not sent: "+err.Error())
			return
		}
		replies, err := command.BroadcastTo(ctx, a.cfg.NC, cm, online)
		if err != nil {
			writeError(w, commandStatus(err), err.Error())
			return
		}
		noAnswer, refused := command.Failures(replies)
		a.cfg.Log.Info("command sent over HTTP", "command", cm.Name, "node", target, "online", len(online),
			"replies", len(replies)-len(noAnswer), "no_answer", noAnswer, "refused", refused, "remote", r.RemoteAddr)
		// The broadcast may have taken ctx's whole time (a node that does
		// not answer), so storing gets a time of its own.
		sctx, scancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
		defer scancel()
		if !a.storeCommand(sctx, w, cm, true, replies) {
			return
		}
		// 200 with every node's entry, as for refusals: one that did not
		// answer has "timeout": true and its error.
		writeJSON(w, http.StatusOK, replies)
		return
	}
	if err := mesh.ValidateNodeID(target); err != nil {
		writeError(w, http.StatusBadRequest, "node: "+err.Error())
		return
	}
	rep, err := command.Send(ctx, a.cfg.NC, target, cm)
	if err != nil {
		writeError(w, commandStatus(err), err.Error())
		return
	}
	a.cfg.Log.Info("command sent over HTTP", "command", cm.Name, "node", target, "remote", r.RemoteAddr)
	if !a.storeCommand(ctx, w, cm, false, []mesh.Reply{rep}) {
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// storeCommand keeps what pause, resume and set-concurrency changed in
// bucket config, so a restarted worker keeps it (as the CLI does).
func (a *api) storeCommand(ctx context.Context, w http.ResponseWriter, cm mesh.Command, all bool, rs []mesh.Reply) bool {
	if !clusterconfig.Persists(cm) {
		return true
	}
	kv := a.kv(ctx, w, mesh.ConfigBucket)
	if kv == nil {
		return false
	}
	if err := clusterconfig.StoreCommand(ctx, kv, cm, all, rs); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return false
	}
	return true
}

func callStatus(err error) int {
	switch {
	case errors.Is(err, crawlctl.ErrNoMaster):
		return http.StatusServiceUnavailable
	case errors.Is(err, crawlctl.ErrNoAnswer):
		return http.StatusGatewayTimeout
	}
	return http.StatusUnprocessableEntity // the master refused: unknown spider, finished crawl ...
}

func commandStatus(err error) int {
	switch {
	case errors.Is(err, command.ErrNoNode):
		return http.StatusNotFound
	case errors.Is(err, command.ErrTimeout):
		return http.StatusGatewayTimeout
	case errors.Is(err, command.ErrRefused):
		return http.StatusConflict
	}
	return http.StatusBadGateway
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	d := json.NewDecoder(r.Body)
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
