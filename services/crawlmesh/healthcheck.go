package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"
)

// runHealthcheck GETs a URL and succeeds on a 2xx answer. It is the
// container healthcheck of the distroless image, which has no shell, curl
// or wget: `crawlmesh healthcheck http://127.0.0.1:8090/healthz`. A node
// serves /healthz only once it has joined the mesh, so a pass means more
// than a listening socket.
func newHealthcheckCmd(c *cli) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:         "healthcheck URL",
		Short:       "GET a URL, exit 0 on 2xx: the healthcheck of the distroless image",
		Long:        "healthcheck GETs URL; exit 0 on a 2xx answer, 1 otherwise.",
		Args:        nArgs(1, 1, "healthcheck [--timeout D] URL"),
		Annotations: map[string]string{noEnv: "yes"},
		RunE: func(cmd *cobra.Command, pos []string) error {
			return runHealthcheck(cmd.Context(), c, pos[0], &timeout)
		},
	}
	// Its own --timeout (the request's), shadowing the global one.
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "time limit of the request")
	return cmd
}

func runHealthcheck(ctx context.Context, c *cli, target string, timeout *time.Duration) error {
	if *timeout <= 0 {
		return usagef("--timeout %v: must be positive", *timeout)
	}
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
