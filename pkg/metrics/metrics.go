// Package metrics builds a process's Prometheus registry and serves it over
// HTTP, with listen errors that name the flag to change.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every crawlmesh metric.
const Namespace = "crawlmesh"

// NewRegistry returns a registry with the Go, process and build-info collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	return reg
}

// ValidateAddr checks a host:port listen address; flag names the option in
// the error.
func ValidateAddr(flag, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: want host:port, e.g. 127.0.0.1:8080", flag, addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%s %q: port %q is not a number in 0-65535", flag, addr, port)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		if _, err := net.LookupHost(host); err != nil {
			return fmt.Errorf("%s %q: unknown host %q", flag, addr, host)
		}
	}
	return nil
}

// Listen opens addr for HTTP; errors say which flag picks another address.
func Listen(flag, addr string) (net.Listener, error) {
	if err := ValidateAddr(flag, addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%s %s: address already in use (another crawlmesh process?); pick another with %s", flag, addr, flag)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, addr, err)
	}
	return ln, nil
}

// Mux returns a mux with /metrics for reg and /healthz: 200 "ok" while
// health returns nil (nil health: always), else 503 with its error, for
// container probes and `crawlmesh healthcheck`.
func Mux(reg *prometheus.Registry, health func() error) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if health != nil {
			if err := health(); err != nil {
				http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// LoopbackOnly refuses (421) a request whose Host header names anything
// but a loopback address or localhost. A server on loopback trusts that
// only this machine reaches it; a web page the operator visits could
// otherwise read its open endpoints (items, specs, config) by pointing a
// name of its own at 127.0.0.1 (DNS rebinding).
func LoopbackOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			host = hh
		}
		host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
		ip := net.ParseIP(host)
		if host != "" && !(ip != nil && ip.IsLoopback()) && host != "localhost" && !strings.HasSuffix(host, ".localhost") {
			http.Error(w, "this server listens on loopback and answers only requests to a loopback address or localhost, not to "+r.Host, http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// MountPprof adds Go's profiler under /debug/pprof/ to mux. It is opt-in
// (--pprof): profiles show the process's internals to whoever reaches it.
func MountPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

// Serve serves h on ln until ctx is done, then shuts down gracefully. On
// a loopback address it answers only requests that name a loopback host
// (see LoopbackOnly).
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	if a, ok := ln.Addr().(*net.TCPAddr); ok && a.IP.IsLoopback() {
		h = LoopbackOnly(h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	<-errc
	return nil
}
