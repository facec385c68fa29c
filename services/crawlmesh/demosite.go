package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/crawlmesh/crawlmesh/pkg/demosite"
	"github.com/crawlmesh/crawlmesh/pkg/metrics"
	"github.com/crawlmesh/crawlmesh/pkg/synthsite"
)

// demoSiteConfig is what `crawlmesh demo-site` takes.
type demoSiteConfig struct {
	listen    string
	base      string
	printSpec bool
	synthetic int // pages of pkg/synthsite's site instead of the bookshop
}

// runDemoSite serves the demo bookshop of `up --demo` as a process of its
// own, for a mesh that runs elsewhere (the docker compose demo), until ctx
// ends. With --print-spec it prints the bookshop's spider for --base
// instead, so `spider apply -f` gets a spec whose start URL and allowed
// domain are the address crawlers use, which only the operator knows.
func newDemoSiteCmd(c *cli) *cobra.Command {
	var d demoSiteConfig
	cmd := &cobra.Command{
		Use:   "demo-site",
		Short: "serve the demo bookshop for a mesh elsewhere (docker compose); --print-spec prints its spider",
		Long:  "demo-site serves the demo bookshop until SIGTERM; --print-spec prints its spider instead.",
		Args:  nArgs(0, 0, "demo-site [--listen ADDR] [--base URL] [--print-spec]"),
		RunE:  func(cmd *cobra.Command, _ []string) error { return runDemoSite(cmd.Context(), c, d) },
	}
	fs := cmd.Flags()
	fs.StringVar(&d.listen, "listen", "127.0.0.1:8088", "listen address of the site")
	fs.StringVar(&d.base, "base", "", "the site's URL as crawlers reach it, e.g. http://demosite:8088 (default: http:// plus the listen address)")
	fs.BoolVar(&d.printSpec, "print-spec", false, "print the demo spider spec for --base on stdout and exit")
	fs.IntVar(&d.synthetic, "synthetic", 0, "serve the synthetic site of N pages that bench crawls and deploy/examples' spiders read (/p/0.html ...) instead of the bookshop")
	return cmd
}

func runDemoSite(ctx context.Context, c *cli, d demoSiteConfig) error {
	if err := metrics.ValidateAddr("--listen", d.listen); err != nil {
		return usageError{err}
	}
	if d.base != "" {
		if err := checkBase(d.base); err != nil {
			return usageError{err}
		}
	}
	if d.synthetic < 0 || d.synthetic > 0 && d.printSpec {
		return usagef("--synthetic %d: want a number of pages, without --print-spec (deploy/examples/README.md has its spider)", d.synthetic)
	}
	if d.printSpec {
		base := d.base
		if base == "" {
			b, err := baseOf(d.listen)
			if err != nil {
				return usagef("--print-spec: %v; give --base", err)
			}
			base = b
		}
		_, err := fmt.Fprint(c.stdout, demosite.Spec(base))
		return err
	}
	return serveDemoSite(ctx, c, d)
}

// serveDemoSite listens, serves the bookshop until ctx ends, then shuts the
// server down, letting requests in flight finish.
func serveDemoSite(ctx context.Context, c *cli, d demoSiteConfig) error {
	log := slog.New(slog.NewTextHandler(c.stderr, nil)).With("component", "demo-site")
	ln, err := metrics.Listen("--listen", d.listen)
	if err != nil {
		return err
	}
	base := d.base
	if base == "" {
		// The bound address, so port 0 shows the port picked.
		if base, err = baseOf(ln.Addr().String()); err != nil {
			_ = ln.Close()
			return err
		}
	}
	h, what := demosite.Handler(), "demo site"
	pages, items := demosite.Expected()
	if d.synthetic > 0 {
		h, what = synthsite.New(synthsite.Config{Pages: d.synthetic}), "synthetic site"
		pages, items = d.synthetic, d.synthetic
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	log.Info(what+" serving", "addr", ln.Addr().String(), "base", base, "pages", pages, "items", items)
	select {
	case err := <-done:
		return fmt.Errorf("demo site on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	serr := srv.Shutdown(sctx)
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("demo site on %s: %w", ln.Addr(), err)
	}
	if serr != nil {
		return fmt.Errorf("demo site shutdown: %w", serr)
	}
	log.Info("demo site stopped")
	return nil
}

// baseOf is the URL of a site listening on addr, as seen from this
// machine: an unspecified host (all interfaces) is reached on loopback.
func baseOf(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %v", addr, err)
	}
	if port == "0" {
		return "", fmt.Errorf("listen address %q: the port is not known before listening", addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// checkBase accepts an http(s) URL with a host and no path beyond "/": the
// spec's start URL is base + "/" and its allowed domain base's host.
func checkBase(base string) error {
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("--base %q: %v", base, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--base %q: want http://HOST[:PORT]", base)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("--base %q: the demo site lives at the root; want http://HOST[:PORT] without a path", base)
	}
	return nil
}
