package boot

import (
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/crawlmesh/crawlmesh/pkg/console"
	"github.com/crawlmesh/crawlmesh/pkg/httpapi"
	"github.com/crawlmesh/crawlmesh/pkg/master"
)

// APITokenEnv holds the HTTP API token when no file is given; a variable
// rather than a flag so the token never shows in a process list.
const APITokenEnv = "CRAWLMESH_API_TOKEN"

// minTokenLen is the shortest API token taken, from a file or the
// environment alike: a short one is guessed.
const minTokenLen = 16

// APIToken reads the HTTP API's token from file, else from the
// environment; "" (no token) leaves the API read-only. An error never
// holds the token.
func APIToken(file string, getenv func(string) string) (string, error) {
	if file == "" {
		tok := strings.TrimSpace(getenv(APITokenEnv))
		if tok != "" && len(tok) < minTokenLen {
			return "", fmt.Errorf("%s: the token has %d characters; use at least %d (e.g. openssl rand -hex 32)", APITokenEnv, len(tok), minTokenLen)
		}
		return tok, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--api-token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("--api-token-file %s: the file is empty", file)
	}
	if len(tok) < minTokenLen {
		return "", fmt.Errorf("--api-token-file %s: the token has %d characters; use at least %d (e.g. openssl rand -hex 32)", file, len(tok), minTokenLen)
	}
	return tok, nil
}

// APIHandler is master m's HTTP API on env's connection.
func (e *Env) APIHandler(m *master.Master, token string) http.Handler {
	cfg := httpapi.Config{Token: token, NC: e.NC, JS: e.JS, Nodes: m.View().Nodes,
		Log: e.Log.With("component", "httpapi")}
	if sc := m.Scheduler(); sc != nil {
		cfg.Schedules = sc.List
	}
	return httpapi.Handler(cfg)
}

// ServeAPI makes env's HTTP listener serve master m's API beside /metrics.
func (e *Env) ServeAPI(m *master.Master, token string) { e.api = e.APIHandler(m, token) }

// MountMaster adds a master's HTTP API (/api/v1/) and web console (/)
// to mux, beside /metrics and /healthz.
func MountMaster(mux *http.ServeMux, api http.Handler) {
	mux.Handle(httpapi.Prefix, api)
	mux.Handle("/", console.Handler())
}
