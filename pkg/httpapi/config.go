package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/crawlmesh/crawlmesh/pkg/clusterconfig"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// The cluster configuration (bucket config), for the console's page:
//
//	GET    /api/v1/config                      keys, stored values, the cluster's values, every node's effective values
//	GET    /api/v1/config/nodes/{id}           one node's effective values with their sources
//	PUT    /api/v1/config/cluster/{key}        {"value": "7"}: store at the cluster level
//	PUT    /api/v1/config/role/{role}/{key}    ... for every worker or every master
//	PUT    /api/v1/config/node/{id}/{key}      ... for one node
//	DELETE the same three paths                remove the stored value
//
// PUT and DELETE need the token. A bad value is refused with 400 and an
// error naming the key, exactly as `crawlmesh config set` refuses it.
func (a *api) routesConfig(mux *http.ServeMux) {
	mux.HandleFunc("GET "+Prefix+"config", a.configGet)
	mux.HandleFunc("GET "+Prefix+"config/nodes/{id}", a.configNode)
	for _, p := range []string{"config/cluster/{key}", "config/role/{target}/{key}", "config/node/{target}/{key}"} {
		mux.HandleFunc("PUT "+Prefix+p, a.authorised(a.configSet))
		mux.HandleFunc("DELETE "+Prefix+p, a.authorised(a.configRemove))
	}
}

// ConfigReply is the answer to GET /api/v1/config.
type ConfigReply struct {
	Keys    []clusterconfig.Key         `json:"keys"`
	Entries []clusterconfig.Entry       `json:"entries"`
	Cluster map[string]mesh.ConfigValue `json:"cluster"`
	Nodes   []clusterconfig.NodeView    `json:"nodes"`
}

func (a *api) configEntries(w http.ResponseWriter, r *http.Request) ([]clusterconfig.Entry, bool) {
	ctx, cancel := a.ctx(r)
	defer cancel()
	kv := a.kv(ctx, w, mesh.ConfigBucket)
	if kv == nil {
		return nil, false
	}
	es, err := clusterconfig.List(ctx, kv)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return nil, false
	}
	if es == nil {
		es = []clusterconfig.Entry{}
	}
	return es, true
}

func (a *api) nodeViews(es []clusterconfig.Entry) []clusterconfig.NodeView {
	out := []clusterconfig.NodeView{}
	if a.cfg.Nodes == nil {
		return out
	}
	for _, n := range a.cfg.Nodes() {
		var reported *mesh.NodeConfig
		if n.Online {
			reported = n.Heartbeat.Config
		}
		v := clusterconfig.View(es, n.ID, n.Role, reported)
		v.Online = n.Online
		out = append(out, v)
	}
	return out
}

func (a *api) configGet(w http.ResponseWriter, r *http.Request) {
	es, ok := a.configEntries(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, ConfigReply{Keys: clusterconfig.Keys(), Entries: es,
		Cluster: clusterconfig.ClusterView(es), Nodes: a.nodeViews(es)})
}

func (a *api) configNode(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := mesh.ValidateNodeID(id); err != nil {
		writeError(w, http.StatusBadRequest, "node: "+err.Error())
		return
	}
	es, ok := a.configEntries(w, r)
	if !ok {
		return
	}
	for _, v := range a.nodeViews(es) {
		if v.Node == id {
			writeJSON(w, http.StatusOK, v)
			return
		}
	}
	writeError(w, http.StatusNotFound, "no node "+id+" in the cluster view (crawlmesh nodes lists them)")
}

// configScope reads the scope from the path.
func configScope(r *http.Request) (clusterconfig.Scope, error) {
	switch {
	case r.PathValue("target") == "":
		return clusterconfig.Cluster(), nil
	case strings.HasPrefix(r.URL.Path, Prefix+"config/role/"):
		return clusterconfig.ScopeFor("", r.PathValue("target"))
	default:
		return clusterconfig.ScopeFor(r.PathValue("target"), "")
	}
}

func (a *api) configSet(w http.ResponseWriter, r *http.Request) {
	s, err := configScope(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var req struct {
		Value *string `json:"value"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.Value == nil {
		writeError(w, http.StatusBadRequest, `body: want {"value": "..."}`)
		return
	}
	key := r.PathValue("key")
	// Refuse before touching NATS, naming the key.
	if _, err := clusterconfig.Check(s, key, *req.Value, 0); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	kv := a.kv(ctx, w, mesh.ConfigBucket)
	if kv == nil {
		return
	}
	e, _, err := clusterconfig.SetLive(ctx, a.cfg.JS, kv, s, key, *req.Value)
	if errors.Is(err, clusterconfig.ErrBadValue) || errors.Is(err, clusterconfig.ErrUnknownKey) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	a.cfg.Log.Info("config set over HTTP", "key", key, "scope", s.String(), "rev", e.Revision, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, e)
}

func (a *api) configRemove(w http.ResponseWriter, r *http.Request) {
	s, err := configScope(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	key := r.PathValue("key")
	if _, err := clusterconfig.Lookup(key); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	kv := a.kv(ctx, w, mesh.ConfigBucket)
	if kv == nil {
		return
	}
	err = clusterconfig.Remove(ctx, kv, s, key)
	if errors.Is(err, clusterconfig.ErrNotSet) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	a.cfg.Log.Info("config removed over HTTP", "key", key, "scope", s.String(), "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]any{"removed": key, "scope": s})
}
