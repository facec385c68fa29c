package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// runHealthcheck GETs a URL and succeeds on a 2xx answer. It is the
// container healthcheck of the distroless image, which has no shell, curl
// or wget: `crawlmesh healthcheck http://127.0.0.1:8090/healthz`. A node
// serves /healthz only once it has joined the mesh, so a pass means more
// than a listening socket.
func runHealthcheck(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	timeout := fs.Duration("timeout", 3*time.Second, "time limit of the request")
	fs.Usage = func() {
		fmt.Fprintln(c.stderr, "usage: crawlmesh healthcheck [--timeout D] URL\n\nGETs URL; exit 0 on a 2xx answer, 1 otherwise.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() != 1 {
		return usagef("want one URL, got %d arguments", fs.NArg())
	}
	if *timeout <= 0 {
		return usagef("--timeout %v: must be positive", *timeout)
	}
	target := fs.Arg(0)
	if u, err := url.Parse(target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("URL %q: want http://HOST:PORT/PATH", target)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return usagef("URL %q: %v", target, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", target, err)
	}
	defer resp.Body.Close()
	// Read a little so the answer is whole, but never wait on a huge body.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s", target, resp.Status)
	}
	return nil
}
