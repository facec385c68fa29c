package deploy

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v3"

	"github.com/crawlmesh/crawlmesh/pkg/demosite"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

// The consistency check of the compose demo. It reads the loaded project
// and every file the project points at (Dockerfile, Prometheus config,
// Grafana provisioning, the demo spider) and reports each place where two
// of them disagree. Every expected value comes from one of the files, never
// from a constant here, so changing one file without the other fails.

// checker collects problems; read gives file contents by absolute path, so
// tests can swap a file for a broken copy.
type checker struct {
	p      *types.Project
	root   string // repository root
	read   func(string) ([]byte, error)
	errs   []string
	docker dockerfile
	nats   []natsNode
	byRole map[string][]cmService // master, worker, and crawlmesh subcommands
	prom   *promSetup
}

func (c *checker) errorf(format string, a ...any) { c.errs = append(c.errs, fmt.Sprintf(format, a...)) }

// check runs every check and returns the problems found, sorted.
func check(p *types.Project, root string, read func(string) ([]byte, error)) []string {
	c := &checker{p: p, root: root, read: read, byRole: map[string][]cmService{}}
	c.checkMounts()
	c.checkDependencies()
	c.checkDockerfile()
	c.checkNATS()
	c.checkCrawlmesh()
	c.checkPrometheus()
	c.checkNATSExporters()
	c.checkGrafana()
	c.checkDemo()
	sort.Strings(c.errs)
	return c.errs
}

func (c *checker) services() []types.ServiceConfig {
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range c.p.Services {
			if !yield(n) {
				return
			}
		}
	})
	out := make([]types.ServiceConfig, 0, len(names))
	for _, n := range names {
		out = append(out, c.p.Services[n])
	}
	return out
}

// imageRepo is an image reference without its tag: nats:2.15-alpine → nats.
func imageRepo(image string) (repo, tag string) {
	slash := strings.LastIndex(image, "/")
	if i := strings.LastIndex(image, ":"); i > slash {
		return image[:i], image[i+1:]
	}
	return image, ""
}

func (c *checker) servicesOfImage(repo string) []types.ServiceConfig {
	var out []types.ServiceConfig
	for _, s := range c.services() {
		if r, _ := imageRepo(s.Image); r == repo {
			out = append(out, s)
		}
	}
	return out
}

// hostPath maps a path inside service s's container to the repository file
// a bind mount puts there.
func (c *checker) hostPath(s types.ServiceConfig, inContainer string) (string, bool) {
	best, bestLen := "", -1
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		t := path.Clean(v.Target)
		rel, ok := strings.CutPrefix(path.Clean(inContainer), t)
		if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) || len(t) <= bestLen {
			continue
		}
		best, bestLen = filepath.Join(v.Source, filepath.FromSlash(rel)), len(t)
	}
	return best, bestLen >= 0
}

func (c *checker) rel(p string) string {
	if r, err := filepath.Rel(c.root, p); err == nil {
		return r
	}
	return p
}

// checkMounts: bind sources are repository files that exist (a missing one
// would be created by Docker as an empty directory), named volumes are
// declared.
func (c *checker) checkMounts() {
	for _, s := range c.services() {
		for _, v := range s.Volumes {
			switch v.Type {
			case types.VolumeTypeBind:
				r, err := filepath.Rel(c.root, v.Source)
				if err != nil || r == ".." || strings.HasPrefix(r, "../") {
					c.errorf("%s: bind mount %s is outside the repository", s.Name, v.Source)
					continue
				}
				if _, err := c.read(v.Source); err != nil && !isDir(v.Source) {
					c.errorf("%s: bind mount source %s does not exist (%v)", s.Name, r, err)
				}
			case types.VolumeTypeVolume:
				if _, ok := c.p.Volumes[v.Source]; !ok {
					c.errorf("%s: volume %q is not declared under volumes:", s.Name, v.Source)
				}
			}
		}
	}
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// checkDependencies: a service_healthy dependency has a healthcheck to wait
// for; a service_completed_successfully one is a one-shot that is not
// restarted after it succeeds.
func (c *checker) checkDependencies() {
	for _, s := range c.services() {
		for dep, d := range s.DependsOn {
			t, ok := c.p.Services[dep]
			if !ok {
				c.errorf("%s: depends on unknown service %s", s.Name, dep)
				continue
			}
			switch d.Condition {
			case types.ServiceConditionHealthy:
				if t.HealthCheck == nil || t.HealthCheck.Disable || len(t.HealthCheck.Test) == 0 {
					c.errorf("%s: waits for %s to be healthy, but %s has no healthcheck", s.Name, dep, dep)
				}
			case types.ServiceConditionCompletedSuccessfully:
				if t.Restart == types.RestartPolicyAlways || t.Restart == types.RestartPolicyUnlessStopped {
					c.errorf("%s: waits for %s to complete, but %s restarts %s", s.Name, dep, dep, t.Restart)
				}
			}
		}
	}
}

func (c *checker) waitsHealthy(s types.ServiceConfig, dep string) bool {
	d, ok := s.DependsOn[dep]
	return ok && d.Condition == types.ServiceConditionHealthy
}

// --- Dockerfile -----------------------------------------------------------

// dockerfile is what the checks need from deploy/Dockerfile.
type dockerfile struct {
	path       string
	binaries   []string // services built: master, worker, crawlmesh
	binDir     string   // where the final stage puts them
	entrypoint []string
}

// logicalLines joins backslash continuations and drops comments.
func logicalLines(b []byte) []string {
	var out []string
	var cur strings.Builder
	for _, l := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "#") || (t == "" && cur.Len() == 0) {
			continue
		}
		if s, ok := strings.CutSuffix(t, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(t)
		out = append(out, cur.String())
		cur.Reset()
	}
	return out
}

func (c *checker) checkDockerfile() {
	var ctx, file, image string
	for _, s := range c.services() {
		if s.Build == nil {
			continue
		}
		if image == "" {
			ctx, file, image = s.Build.Context, s.Build.Dockerfile, s.Image
		}
		if s.Build.Context != ctx || s.Build.Dockerfile != file || s.Image != image {
			c.errorf("%s: builds %s from %s in %s; other services build %s from %s in %s: one image for every crawlmesh process",
				s.Name, s.Image, s.Build.Dockerfile, s.Build.Context, image, file, ctx)
		}
	}
	if image == "" {
		c.errorf("no service builds the crawlmesh image")
		return
	}
	if ctx != c.root {
		c.errorf("the image's build context is %s, want the repository root %s (go build needs the module)", ctx, c.root)
	}
	if !filepath.IsAbs(file) {
		file = filepath.Join(ctx, file)
	}
	c.docker.path = file
	b, err := c.read(file)
	if err != nil {
		c.errorf("Dockerfile: %v", err)
		return
	}
	var stage, stages int
	var cgoOff, user bool
	var final string
	for _, l := range logicalLines(b) {
		instr, rest, _ := strings.Cut(l, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			stages++
			stage = stages
			f := strings.Fields(rest)
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				f = f[1:]
			}
			if len(f) > 0 {
				final = f[0]
			}
			user = false
		case "ENV", "ARG":
			if strings.Contains(rest, "CGO_ENABLED=0") {
				cgoOff = true
			}
		case "RUN":
			if strings.Contains(rest, "CGO_ENABLED=0") {
				cgoOff = true
			}
			if i := strings.Index(rest, "go build"); i >= 0 {
				if !cgoOff {
					c.errorf("Dockerfile: go build runs without CGO_ENABLED=0: the binaries would need libc, which distroless/static lacks")
				}
				args := strings.Fields(rest[i:])
				if !slices.Contains(args, "-trimpath") || !strings.Contains(rest[i:], "-s -w") {
					c.errorf("Dockerfile: go build without -trimpath and -ldflags -s -w: a bigger image with build paths in it")
				}
				for _, a := range args {
					if p, ok := strings.CutPrefix(a, "./services/"); ok {
						c.docker.binaries = append(c.docker.binaries, path.Base(p))
					}
				}
			}
		case "COPY":
			if stage == stages && strings.Contains(rest, "--from=") {
				f := strings.Fields(rest)
				c.docker.binDir = path.Clean(f[len(f)-1])
			}
		case "USER":
			u, _, _ := strings.Cut(strings.TrimSpace(rest), ":")
			user = u != "root" && u != "0"
			if !user {
				c.errorf("Dockerfile: USER %s: the image must not run as root", rest)
			}
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &c.docker.entrypoint); err != nil {
				c.errorf("Dockerfile: ENTRYPOINT %s: want exec form [\"...\"]: %v", rest, err)
			}
		}
	}
	if stages < 2 {
		c.errorf("Dockerfile: %d stage(s); want a build stage and a small final stage", stages)
	}
	if !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" {
		c.errorf("Dockerfile: final stage FROM %s; want gcr.io/distroless/static* or scratch (static binaries need nothing else)", final)
	}
	if !user && !strings.HasSuffix(final, ":nonroot") {
		c.errorf("Dockerfile: the final stage sets no non-root USER")
	}
	if len(c.docker.binaries) == 0 || c.docker.binDir == "" {
		c.errorf("Dockerfile: cannot tell which binaries it builds (go build ./services/...) and where it copies them (COPY --from=... DIR)")
	}
}

// binary is the program a crawlmesh-image service runs and its arguments.
func (c *checker) binary(s types.ServiceConfig) (name string, args []string) {
	argv := append([]string{}, c.docker.entrypoint...)
	if s.Entrypoint != nil {
		argv = append([]string{}, s.Entrypoint...)
	}
	if len(argv) == 0 {
		return "", s.Command
	}
	return c.checkInstalled(s.Name, argv[0]), append(argv[1:], s.Command...)
}

// checkInstalled reports a program path the image does not have; it
// returns the binary's name.
func (c *checker) checkInstalled(svc, prog string) string {
	name := path.Base(prog)
	if !slices.Contains(c.docker.binaries, name) || (strings.Contains(prog, "/") && path.Dir(prog) != c.docker.binDir) {
		c.errorf("%s: runs %s, but the image has %v in %s", svc, prog, c.docker.binaries, c.docker.binDir)
	}
	return name
}

// --- NATS -----------------------------------------------------------------

type natsNode struct {
	svc  types.ServiceConfig
	opts *server.Options
}

func (n natsNode) clientPort() int {
	if n.opts.Port == 0 {
		return server.DEFAULT_PORT
	}
	return n.opts.Port
}

// checkNATS parses each node's command line with nats-server's own flag
// parser and checks the cluster is one: JetStream on, a common cluster
// name, routes to exactly the other members at the cluster port each
// listens on, storage on a volume, and a healthcheck on the monitoring
// port.
func (c *checker) checkNATS() {
	for _, s := range c.servicesOfImage("nats") {
		args := []string(s.Command)
		if len(args) > 0 && args[0] == "nats-server" {
			args = args[1:]
		}
		fs := flag.NewFlagSet(s.Name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		nop := func() {}
		opts, err := server.ConfigureOptions(fs, args, nop, nop, nop)
		if err != nil {
			c.errorf("%s: nats-server flags: %v", s.Name, err)
			continue
		}
		if opts.ConfigFile != "" {
			c.errorf("%s: nats-server --config is not checked here; keep the node's options on its command line", s.Name)
		}
		c.nats = append(c.nats, natsNode{svc: s, opts: opts})
	}
	if len(c.nats) != 3 {
		c.errorf("%d NATS services; want 3: a JetStream cluster with R3 assets that survives one node down", len(c.nats))
	}
	if v := c.natsModuleVersion(); v != "" {
		for _, n := range c.nats {
			if _, tag := imageRepo(n.svc.Image); !strings.HasPrefix(tag, v+".") && !strings.HasPrefix(tag, v+"-") && tag != v {
				c.errorf("%s: image %s; the code is tested against nats-server %s.x (go.mod)", n.svc.Name, n.svc.Image, v)
			}
		}
	}
	names := map[string]string{}
	for _, n := range c.nats {
		o, s := n.opts, n.svc
		if !o.JetStream {
			c.errorf("%s: JetStream is off (--jetstream)", s.Name)
		}
		if o.ServerName == "" {
			c.errorf("%s: no --name; JetStream clusters need unique server names", s.Name)
		} else if other, dup := names[o.ServerName]; dup {
			c.errorf("%s: server name %q is also %s's", s.Name, o.ServerName, other)
		} else {
			names[o.ServerName] = s.Name
		}
		if o.Cluster.Name == "" || o.Cluster.Name != c.nats[0].opts.Cluster.Name {
			c.errorf("%s: cluster name %q, %s has %q: one cluster needs one name", s.Name, o.Cluster.Name, c.nats[0].svc.Name, c.nats[0].opts.Cluster.Name)
		}
		if o.Cluster.Port <= 0 {
			c.errorf("%s: no cluster listener (--cluster nats://0.0.0.0:PORT)", s.Name)
		}
		if o.StoreDir == "" {
			c.errorf("%s: no --store_dir: JetStream would write inside the container", s.Name)
		} else if !c.onVolume(s, o.StoreDir) {
			c.errorf("%s: JetStream store %s is not on a named volume: its data would die with the container", s.Name, o.StoreDir)
		}
		want := map[string]bool{}
		for _, m := range c.nats {
			if m.svc.Name != s.Name {
				want[net.JoinHostPort(m.svc.Name, strconv.Itoa(m.opts.Cluster.Port))] = true
			}
		}
		have := map[string]bool{}
		for _, r := range o.Routes {
			have[r.Host] = true
			if !want[r.Host] {
				c.errorf("%s: route %s is not another cluster member's service name and cluster port (want %v)", s.Name, r, keys(want))
			}
		}
		for w := range want {
			if !have[w] {
				c.errorf("%s: no route to %s", s.Name, w)
			}
		}
		u := c.healthURL(s)
		if u == nil {
			c.errorf("%s: no HTTP healthcheck", s.Name)
		} else if o.HTTPPort <= 0 || u.Port() != strconv.Itoa(o.HTTPPort) || u.Path != "/healthz" {
			c.errorf("%s: healthcheck GETs %s, but the monitoring port is %d (--http_port) and the check is /healthz", s.Name, u, o.HTTPPort)
		}
	}
}

// natsModuleVersion is the major.minor of nats-server in go.mod, the
// version every test runs against. (Test binaries carry no dependency list
// in their build info, so go.mod is read.)
func (c *checker) natsModuleVersion() string {
	b, err := c.read(filepath.Join(c.root, "go.mod"))
	if err != nil {
		c.errorf("go.mod: %v", err)
		return ""
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/nats-io/nats-server/v2 v(\d+)\.(\d+)\.`).FindSubmatch(b)
	if m == nil {
		c.errorf("go.mod: no github.com/nats-io/nats-server/v2 requirement")
		return ""
	}
	return string(m[1]) + "." + string(m[2])
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (c *checker) onVolume(s types.ServiceConfig, dir string) bool {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && (path.Clean(v.Target) == path.Clean(dir) || strings.HasPrefix(path.Clean(dir), path.Clean(v.Target)+"/")) {
			return true
		}
	}
	return false
}

var urlRE = regexp.MustCompile(`https?://[^\s"']+`)

// healthURL is the URL a service's healthcheck fetches, if it is HTTP.
func (c *checker) healthURL(s types.ServiceConfig) *url.URL {
	h := s.HealthCheck
	if h == nil || h.Disable {
		return nil
	}
	for _, a := range h.Test {
		if m := urlRE.FindString(a); m != "" {
			u, err := url.Parse(m)
			if err == nil {
				return u
			}
		}
	}
	return nil
}

// --- crawlmesh processes --------------------------------------------------

// cmService is a service running a crawlmesh binary.
type cmService struct {
	svc  types.ServiceConfig
	bin  string   // master, worker, crawlmesh
	args []string // after the binary
}

// sub is a crawlmesh CLI service's command words (crawl start books).
func (s cmService) sub() []string {
	var w []string
	for _, a := range s.args {
		if strings.HasPrefix(a, "-") {
			break
		}
		w = append(w, a)
	}
	return w
}

// flagValue finds --name V, --name=V, -name V or -name=V in args.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		n := strings.TrimLeft(a, "-")
		if n == a {
			continue
		}
		if k, v, ok := strings.Cut(n, "="); ok && k == name {
			return v, true
		}
		if n == name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

// setting is a crawlmesh option as the process sees it: the flag, else
// its CRAWLMESH_* environment variable (nodeconfig.EnvName).
func (s cmService) setting(name string) (string, bool) {
	if v, ok := flagValue(s.args, name); ok {
		return v, true
	}
	env := "CRAWLMESH_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	if name == "nats" {
		env = "CRAWLMESH_NATS_URL"
	}
	if v, ok := s.svc.Environment[env]; ok && v != nil {
		return *v, true
	}
	return "", false
}

// listenPort checks a listen address (--http, --listen) is on every
// interface, so other containers reach it, and returns its port.
func (c *checker) listenPort(s cmService, flagName string) string {
	v, ok := s.setting(flagName)
	if !ok {
		c.errorf("%s: no --%s: it would listen on loopback only, out of Prometheus' reach", s.svc.Name, flagName)
		return ""
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		c.errorf("%s: --%s %q: %v", s.svc.Name, flagName, v, err)
		return ""
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		c.errorf("%s: --%s %s listens on %s only: other containers cannot reach it (use 0.0.0.0)", s.svc.Name, flagName, v, host)
	}
	return port
}

// checkHealthPort: the healthcheck fetches the port the process listens on,
// with a program the image has.
func (c *checker) checkHealthPort(s cmService, port string) {
	u := c.healthURL(s.svc)
	if u == nil {
		c.errorf("%s: no HTTP healthcheck", s.svc.Name)
		return
	}
	if u.Port() != port {
		c.errorf("%s: healthcheck GETs %s, but the process listens on port %s", s.svc.Name, u, port)
	}
	t := s.svc.HealthCheck.Test
	if len(t) > 1 && t[0] == "CMD" {
		c.checkInstalled(s.svc.Name, t[1])
	} else {
		c.errorf("%s: healthcheck %v: the image has no shell; use [\"CMD\", ...]", s.svc.Name, []string(t))
	}
}

func (c *checker) checkCrawlmesh() {
	if c.docker.path == "" {
		return
	}
	var image string
	for _, s := range c.services() {
		if s.Build != nil {
			image = s.Image
		}
	}
	var natsWant []string
	for _, n := range c.nats {
		natsWant = append(natsWant, fmt.Sprintf("nats://%s:%d", n.svc.Name, n.clientPort()))
	}
	sort.Strings(natsWant)
	for _, s := range c.services() {
		if s.Image != image {
			continue
		}
		bin, args := c.binary(s)
		cs := cmService{svc: s, bin: bin, args: args}
		role := bin
		if bin == "crawlmesh" {
			if w := cs.sub(); len(w) > 0 {
				role = w[0]
			}
		}
		c.byRole[role] = append(c.byRole[role], cs)
		if role == "demo-site" || role == "healthcheck" {
			continue // no NATS
		}
		v, _ := cs.setting("nats")
		urls := strings.Split(v, ",")
		for i := range urls {
			urls[i] = strings.TrimSpace(urls[i])
		}
		sort.Strings(urls)
		if !slices.Equal(urls, natsWant) {
			c.errorf("%s: NATS URLs %v; want every cluster node, %v", s.Name, urls, natsWant)
		}
	}
	masters, workers := c.byRole["master"], c.byRole["worker"]
	if len(masters) < 2 {
		c.errorf("%d master services; want 2 or more, so one takes over", len(masters))
	}
	if len(workers) == 0 {
		c.errorf("no worker service")
	}
	ids := map[string]string{}
	for _, m := range masters {
		r, _ := m.setting("replicas")
		if n, err := strconv.Atoi(r); err != nil || n != len(c.nats) || n < 3 {
			c.errorf("%s: --replicas %q; want %d, one copy of every asset per NATS node", m.svc.Name, r, len(c.nats))
		}
		if id, ok := m.setting("id"); ok {
			if other, dup := ids[id]; dup {
				c.errorf("%s: --id %s is also %s's", m.svc.Name, id, other)
			}
			ids[id] = m.svc.Name
		}
		c.checkHealthPort(m, c.listenPort(m, "http"))
		for _, other := range masters {
			if other.svc.Name != m.svc.Name && c.waitsHealthy(m.svc, other.svc.Name) {
				c.errorf("%s: waits for %s to be healthy: masters start together (one creates the assets under a lease, the others wait for them)", m.svc.Name, other.svc.Name)
			}
		}
	}
	for _, ms := range [][]cmService{masters, workers} {
		for _, m := range ms {
			for _, n := range c.nats {
				if !c.waitsHealthy(m.svc, n.svc.Name) {
					c.errorf("%s: does not wait for %s to be healthy (depends_on condition service_healthy)", m.svc.Name, n.svc.Name)
				}
			}
		}
	}
	for _, w := range workers {
		s := w.svc
		if s.ContainerName != "" || s.Hostname != "" {
			c.errorf("%s: container_name/hostname set: --scale needs names (and node ids) that differ per replica", s.Name)
		}
		if id, ok := w.setting("id"); ok {
			c.errorf("%s: --id %s: every replica would claim the same node id (the default, the hostname, is unique)", s.Name, id)
		}
		for _, p := range s.Ports {
			if p.Published != "" {
				c.errorf("%s: publishes host port %s: a second replica could not bind it", s.Name, p.Published)
			}
		}
		if s.Deploy == nil || s.Deploy.Replicas == nil || *s.Deploy.Replicas < 1 {
			c.errorf("%s: no deploy.replicas", s.Name)
		}
		// Workers never create assets (they wait for a master's), so
		// nothing orders them after the masters: a site comes back all at
		// once (issue 12).
		for _, m := range masters {
			if c.waitsHealthy(s, m.svc.Name) {
				c.errorf("%s: waits for %s to be healthy: nodes start together and wait for the assets themselves", s.Name, m.svc.Name)
			}
		}
		c.checkHealthPort(w, c.listenPort(w, "http"))
	}
}

// --- Prometheus -----------------------------------------------------------

type promConfig struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
		DNSSDConfigs []struct {
			Names           []string `yaml:"names"`
			Type            string   `yaml:"type"`
			Port            int      `yaml:"port"`
			RefreshInterval string   `yaml:"refresh_interval"`
		} `yaml:"dns_sd_configs"`
	} `yaml:"scrape_configs"`
}

type promSetup struct {
	svc            types.ServiceConfig
	port           string
	scrapeInterval string
	static         map[string]bool // host:port
	dns            map[string]bool // name:port of type A
}

// kingpinFlag finds --name=V or --name V (Prometheus' flag style).
func kingpinFlag(args []string, name string) (string, bool) { return flagValue(args, name) }

func (c *checker) checkPrometheus() {
	ps := c.servicesOfImage("prom/prometheus")
	if len(ps) != 1 {
		c.errorf("%d Prometheus services; want 1", len(ps))
		return
	}
	s := ps[0]
	pr := &promSetup{svc: s, port: "9090", static: map[string]bool{}, dns: map[string]bool{}}
	if v, ok := kingpinFlag(s.Command, "web.listen-address"); ok {
		_, pr.port, _ = net.SplitHostPort(v)
	}
	cfgPath, ok := kingpinFlag(s.Command, "config.file")
	if !ok {
		c.errorf("%s: no --config.file in its command: which file it reads depends on the image", s.Name)
		return
	}
	host, ok := c.hostPath(s, cfgPath)
	if !ok {
		c.errorf("%s: %s is not mounted from the repository", s.Name, cfgPath)
		return
	}
	b, err := c.read(host)
	if err != nil {
		c.errorf("%s: config: %v", s.Name, err)
		return
	}
	var cfg promConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		c.errorf("%s: %s: %v", s.Name, c.rel(host), err)
		return
	}
	if _, err := time.ParseDuration(cfg.Global.ScrapeInterval); err != nil {
		c.errorf("%s: global scrape_interval %q: %v", c.rel(host), cfg.Global.ScrapeInterval, err)
	}
	pr.scrapeInterval = cfg.Global.ScrapeInterval
	if len(cfg.RuleFiles) == 0 {
		c.errorf("%s: no rule_files: the alert rules are not loaded", c.rel(host))
	}
	for _, rf := range cfg.RuleFiles {
		if !path.IsAbs(rf) {
			rf = path.Join(path.Dir(cfgPath), rf)
		}
		h, ok := c.hostPath(s, rf)
		if !ok {
			c.errorf("%s: rule file %s is not mounted into %s", c.rel(host), rf, s.Name)
			continue
		}
		if _, err := c.read(h); err != nil {
			c.errorf("%s: rule file %s (%s): %v", c.rel(host), rf, c.rel(h), err)
		}
	}
	for _, sc := range cfg.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			c.errorf("%s: job %s scrapes %s; crawlmesh serves /metrics", c.rel(host), sc.JobName, sc.MetricsPath)
		}
		for _, st := range sc.StaticConfigs {
			for _, t := range st.Targets {
				pr.static[t] = true
			}
		}
		for _, d := range sc.DNSSDConfigs {
			if d.Type != "A" {
				c.errorf("%s: job %s: dns_sd_configs type %q; compose DNS answers A queries (the default is SRV)", c.rel(host), sc.JobName, d.Type)
				continue
			}
			for _, n := range d.Names {
				pr.dns[net.JoinHostPort(n, strconv.Itoa(d.Port))] = true
			}
		}
	}
	c.prom = pr
	for _, role := range []string{"master", "worker"} {
		for _, m := range c.byRole[role] {
			v, _ := m.setting("http")
			_, port, err := net.SplitHostPort(v)
			if err != nil {
				continue // reported by checkCrawlmesh
			}
			t := net.JoinHostPort(m.svc.Name, port)
			scaled := m.svc.Deploy != nil && m.svc.Deploy.Replicas != nil && *m.svc.Deploy.Replicas > 1 || role == "worker"
			switch {
			case pr.dns[t]:
			case pr.static[t] && !scaled:
			case pr.static[t]:
				c.errorf("%s: scrapes %s as a static target: that reaches one replica; use dns_sd_configs type A", c.rel(host), t)
			default:
				c.errorf("%s: does not scrape %s (%s listens on port %s)", c.rel(host), t, m.svc.Name, port)
			}
		}
	}
}

// checkNATSExporters: every NATS server has a prometheus-nats-exporter
// reading its monitoring port, started once the server is healthy, and
// Prometheus scrapes that exporter (nats-server has no /metrics itself).
func (c *checker) checkNATSExporters() {
	exporters := c.servicesOfImage("natsio/prometheus-nats-exporter")
	for _, n := range c.nats {
		found := false
		for _, e := range exporters {
			args := []string(e.Command)
			if len(args) == 0 {
				continue
			}
			u, err := url.Parse(args[len(args)-1])
			if err != nil || u.Hostname() != n.svc.Name {
				continue
			}
			found = true
			if u.Port() != strconv.Itoa(n.opts.HTTPPort) {
				c.errorf("%s: reads %s, but %s's monitoring port is %d (--http_port)", e.Name, u, n.svc.Name, n.opts.HTTPPort)
			}
			if !c.waitsHealthy(e, n.svc.Name) {
				c.errorf("%s: does not wait for %s to be healthy", e.Name, n.svc.Name)
			}
			port := "7777" // the exporter's default
			for _, f := range []string{"p", "port"} {
				if v, ok := flagValue(args, f); ok {
					port = v
				}
			}
			if c.prom != nil && !c.prom.static[net.JoinHostPort(e.Name, port)] {
				c.errorf("%s: Prometheus does not scrape %s", e.Name, net.JoinHostPort(e.Name, port))
			}
		}
		if !found {
			c.errorf("%s: no prometheus-nats-exporter reads its monitoring port: Prometheus would not see this server", n.svc.Name)
		}
	}
}

// --- Grafana --------------------------------------------------------------

type grafanaDatasources struct {
	Datasources []struct {
		Name      string         `yaml:"name"`
		UID       string         `yaml:"uid"`
		Type      string         `yaml:"type"`
		URL       string         `yaml:"url"`
		IsDefault bool           `yaml:"isDefault"`
		JSONData  map[string]any `yaml:"jsonData"`
	} `yaml:"datasources"`
}

type grafanaProviders struct {
	Providers []struct {
		Name    string `yaml:"name"`
		Type    string `yaml:"type"`
		Options struct {
			Path string `yaml:"path"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

func (c *checker) env(s types.ServiceConfig, k string) string {
	if v, ok := s.Environment[k]; ok && v != nil {
		return *v
	}
	return ""
}

// yamlFiles reads every *.yaml/*.yml in a provisioning directory.
func (c *checker) yamlFiles(dir string) map[string][]byte {
	out := map[string][]byte{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		c.errorf("grafana provisioning: %v", err)
		return out
	}
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml") {
			p := filepath.Join(dir, n)
			if b, err := c.read(p); err == nil {
				out[p] = b
			} else {
				c.errorf("grafana provisioning: %v", err)
			}
		}
	}
	return out
}

func (c *checker) checkGrafana() {
	gs := c.servicesOfImage("grafana/grafana")
	if len(gs) != 1 {
		c.errorf("%d Grafana services; want 1", len(gs))
		return
	}
	g := gs[0]
	if c.env(g, "GF_AUTH_ANONYMOUS_ENABLED") != "true" || c.env(g, "GF_AUTH_ANONYMOUS_ORG_ROLE") != "Viewer" {
		c.errorf("%s: anonymous viewers are not on (GF_AUTH_ANONYMOUS_ENABLED=true, GF_AUTH_ANONYMOUS_ORG_ROLE=Viewer)", g.Name)
	}
	prov := c.env(g, "GF_PATHS_PROVISIONING")
	if prov == "" {
		prov = "/etc/grafana/provisioning"
	}
	provHost, ok := c.hostPath(g, prov)
	if !ok {
		c.errorf("%s: %s (provisioning) is not mounted from the repository", g.Name, prov)
		return
	}
	var promDS int
	for p, b := range c.yamlFiles(filepath.Join(provHost, "datasources")) {
		var ds grafanaDatasources
		if err := yaml.Unmarshal(b, &ds); err != nil {
			c.errorf("%s: %v", c.rel(p), err)
			continue
		}
		for _, d := range ds.Datasources {
			if d.Type != "prometheus" {
				continue
			}
			promDS++
			if d.UID == "" {
				c.errorf("%s: data source %s has no fixed uid", c.rel(p), d.Name)
			}
			if !d.IsDefault {
				c.errorf("%s: data source %s is not the default: the dashboard's datasource variable picks the default", c.rel(p), d.Name)
			}
			if c.prom != nil {
				want := "http://" + net.JoinHostPort(c.prom.svc.Name, c.prom.port)
				if strings.TrimSuffix(d.URL, "/") != want {
					c.errorf("%s: data source %s points at %s; Prometheus is %s", c.rel(p), d.Name, d.URL, want)
				}
				if ti, _ := d.JSONData["timeInterval"].(string); ti != c.prom.scrapeInterval {
					c.errorf("%s: data source %s timeInterval %q; Prometheus scrapes every %q", c.rel(p), d.Name, ti, c.prom.scrapeInterval)
				}
			}
		}
	}
	if promDS == 0 {
		c.errorf("%s: no Prometheus data source provisioned", c.rel(provHost))
	}
	var dashboards []string
	for p, b := range c.yamlFiles(filepath.Join(provHost, "dashboards")) {
		var pv grafanaProviders
		if err := yaml.Unmarshal(b, &pv); err != nil {
			c.errorf("%s: %v", c.rel(p), err)
			continue
		}
		for _, prv := range pv.Providers {
			h, ok := c.hostPath(g, prv.Options.Path)
			if !ok || !isDir(h) {
				c.errorf("%s: provider %s reads %s, which %s does not mount from the repository", c.rel(p), prv.Name, prv.Options.Path, g.Name)
				continue
			}
			js, _ := filepath.Glob(filepath.Join(h, "*.json"))
			if len(js) == 0 {
				c.errorf("%s: provider %s: no dashboards in %s", c.rel(p), prv.Name, c.rel(h))
			}
			dashboards = append(dashboards, js...)
		}
	}
	for _, d := range dashboards {
		c.checkDashboard(d, promDS)
	}
	if home := c.env(g, "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"); home != "" {
		h, ok := c.hostPath(g, home)
		if !ok || !slices.Contains(dashboards, h) {
			c.errorf("%s: home dashboard %s is not one of the provisioned dashboards", g.Name, home)
		}
	}
	if c.prom != nil && !c.waitsHealthy(g, c.prom.svc.Name) {
		c.errorf("%s: does not wait for %s to be healthy", g.Name, c.prom.svc.Name)
	}
}

// checkDashboard: every data source variable of a dashboard finds a
// provisioned data source of its type.
func (c *checker) checkDashboard(p string, promDS int) {
	b, err := c.read(p)
	if err != nil {
		c.errorf("%s: %v", c.rel(p), err)
		return
	}
	var d struct {
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		c.errorf("%s: %v", c.rel(p), err)
		return
	}
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && (v.Query != "prometheus" || promDS == 0) {
			c.errorf("%s: variable %s wants data sources of type %v; provisioned: %d prometheus", c.rel(p), v.Name, v.Query, promDS)
		}
	}
}

// --- demo -----------------------------------------------------------------

func (c *checker) checkDemo() {
	sites, spiders, crawls := c.byRole["demo-site"], c.byRole["spider"], c.byRole["crawl"]
	if len(sites) != 1 || len(spiders) != 1 || len(crawls) != 1 {
		c.errorf("demo: %d demo-site, %d spider and %d crawl services; want one of each", len(sites), len(spiders), len(crawls))
		return
	}
	site, sp, cr := sites[0], spiders[0], crawls[0]
	port := c.listenPort(site, "listen")
	c.checkHealthPort(site, port)
	base, _ := site.setting("base")
	u, err := url.Parse(base)
	if err != nil || u.Hostname() != site.svc.Name || u.Port() != port {
		c.errorf("%s: --base %q; crawlers reach it at http://%s:%s", site.svc.Name, base, site.svc.Name, port)
	}

	if w := sp.sub(); !slices.Equal(w, []string{"spider", "apply"}) {
		c.errorf("%s: runs %v; want spider apply -f FILE", sp.svc.Name, w)
	}
	f, _ := flagValue(sp.args, "f")
	h, ok := c.hostPath(sp.svc, f)
	if !ok {
		c.errorf("%s: spec %q is not mounted from the repository", sp.svc.Name, f)
		return
	}
	b, err := c.read(h)
	if err != nil {
		c.errorf("%s: %v", sp.svc.Name, err)
		return
	}
	got, err := spec.Parse(b)
	if err != nil {
		c.errorf("%s: %v", c.rel(h), err)
		return
	}
	want, err := spec.Parse([]byte(demosite.Spec(base)))
	if err != nil {
		c.errorf("demosite.Spec(%q): %v", base, err)
	} else if !reflect.DeepEqual(got, want) {
		c.errorf("%s differs from `crawlmesh demo-site --print-spec --base %s`: regenerate it", c.rel(h), base)
	}
	master := false
	for _, m := range c.byRole["master"] {
		master = master || c.waitsHealthy(sp.svc, m.svc.Name)
	}
	if !master {
		c.errorf("%s: does not wait for a healthy master: bucket spiders may not exist yet", sp.svc.Name)
	}

	if w := cr.sub(); len(w) != 3 || w[1] != "start" || w[2] != got.Name {
		c.errorf("%s: runs %v; want crawl start %s (the spider %s applies)", cr.svc.Name, w, got.Name, sp.svc.Name)
	}
	if d, ok := cr.svc.DependsOn[sp.svc.Name]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
		c.errorf("%s: does not wait for %s to complete successfully", cr.svc.Name, sp.svc.Name)
	}
	if !c.waitsHealthy(cr.svc, site.svc.Name) {
		c.errorf("%s: does not wait for %s to be healthy", cr.svc.Name, site.svc.Name)
	}
	for _, one := range []cmService{sp, cr} {
		if r := one.svc.Restart; r != types.RestartPolicyOnFailure && !strings.HasPrefix(r, types.RestartPolicyOnFailure+":") {
			c.errorf("%s: restart %q; a one-shot retries on failure only (restart: on-failure)", one.svc.Name, r)
		}
	}
}
