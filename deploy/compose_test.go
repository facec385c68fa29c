package deploy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"
)

const composeFile = "docker-compose.yml"

func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// load parses compose content as `docker compose` would from deploy/: the
// compose-spec loader with schema validation, interpolation,
// normalization, path resolution and its consistency check, and no
// environment, so a developer's shell changes nothing.
func load(ctx context.Context, dir string, content []byte) (*types.Project, error) {
	return loader.LoadWithContext(ctx, types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, composeFile), Content: content}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.ResolvePaths = true })
}

func loadFile(t *testing.T) (*types.Project, []byte) {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "deploy")
	b, err := os.ReadFile(filepath.Join(dir, composeFile))
	if err != nil {
		t.Fatal(err)
	}
	p, err := load(t.Context(), dir, b)
	if err != nil {
		t.Fatalf("compose-spec loader refuses %s: %v", composeFile, err)
	}
	return p, b
}

func TestComposeFileIsConsistent(t *testing.T) {
	p, _ := loadFile(t)
	want := []string{"nats-1", "nats-2", "nats-3", "master-1", "master-2", "worker",
		"demosite", "demo-spider", "demo-crawl", "prometheus", "grafana"}
	for _, s := range want {
		if _, ok := p.Services[s]; !ok {
			t.Errorf("service %s missing; services: %v", s, p.ServiceNames())
		}
	}
	if w, ok := p.Services["worker"]; ok && (w.Deploy == nil || w.Deploy.Replicas == nil || *w.Deploy.Replicas != 3) {
		t.Errorf("worker: want deploy.replicas 3 (the demo's three workers)")
	}
	for _, e := range check(p, repoRoot(t), os.ReadFile) {
		t.Error(e)
	}
}

// The check must fail on a broken file: each case breaks one thing in a
// copy of the compose file or of a file it names, and the problem must be
// reported, by the consistency check or, for what the compose spec itself
// forbids, by the loader.
func TestComposeCheckCatchesBreakage(t *testing.T) {
	root := repoRoot(t)
	dir := filepath.Join(root, "deploy")
	_, orig := loadFile(t)
	for _, tt := range []struct {
		name     string
		file     string // repo-relative; "" is the compose file
		old, new string
		want     string // a fragment of the expected problem
	}{
		{"route to a wrong port", "",
			`"--routes", "nats://nats-1:6222,nats://nats-3:6222"]`, `"--routes", "nats://nats-1:6223,nats://nats-3:6222"]`,
			"nats-2: route nats://nats-1:6223"},
		{"route missing", "",
			`"--routes", "nats://nats-1:6222,nats://nats-2:6222"]`, `"--routes", "nats://nats-1:6222"]`,
			"nats-3: no route to nats-2:6222"},
		{"cluster names differ", "",
			`"--name", "nats-3", "--port", "4222", "--http_port", "8222",
      "--jetstream", "--store_dir", "/data",
      "--cluster_name", "crawlmesh"`, `"--name", "nats-3", "--port", "4222", "--http_port", "8222",
      "--jetstream", "--store_dir", "/data",
      "--cluster_name", "other"`,
			`nats-3: cluster name "other"`},
		{"JetStream off", "", `"--name", "nats-1", "--port", "4222", "--http_port", "8222",
      "--jetstream", `, `"--name", "nats-1", "--port", "4222", "--http_port", "8222",
      `,
			"nats-1: JetStream is off"},
		{"store not on a volume", "", `volumes: ["nats-2:/data"]`, `volumes: ["nats-2:/tmp/data"]`,
			"nats-2: JetStream store /data is not on a named volume"},
		{"masters do not wait for nats-3", "", "  nats-3: {condition: service_healthy}\n", "  nats-3: {condition: service_started}\n",
			"master-1: does not wait for nats-3 to be healthy"},
		{"NATS healthcheck removed", "",
			`    test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8222/healthz"]`,
			`    disable: true`,
			"master-1: waits for nats-1 to be healthy, but nats-1 has no healthcheck"},
		{"NATS healthcheck on the wrong port", "",
			`"http://127.0.0.1:8222/healthz"`, `"http://127.0.0.1:4222/healthz"`,
			"nats-1: healthcheck GETs http://127.0.0.1:4222/healthz, but the monitoring port is 8222"},
		{"one NATS URL missing", "",
			"CRAWLMESH_NATS_URL: nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222",
			"CRAWLMESH_NATS_URL: nats://nats-1:4222,nats://nats-2:4222",
			"master-1: NATS URLs [nats://nats-1:4222 nats://nats-2:4222]; want every cluster node"},
		{"NATS exporter reads the client port", "", `"http://nats-2:8222"]`, `"http://nats-2:4222"]`,
			"nats-exporter-2: reads http://nats-2:4222, but nats-2's monitoring port is 8222"},
		{"NATS exporter not scraped", "deploy/prometheus/prometheus.yml", `, "nats-exporter-3:7777"]`, `]`,
			"nats-exporter-3: Prometheus does not scrape nats-exporter-3:7777"},
		{"NATS server without exporter", "", `"http://nats-1:8222"]`, `"http://nats-9:8222"]`,
			"nats-1: no prometheus-nats-exporter reads its monitoring port"},
		{"masters at R1", "", `"--id", "master-2", "--http", "0.0.0.0:8090", "--replicas", "3"`, `"--id", "master-2", "--http", "0.0.0.0:8090", "--replicas", "1"`,
			`master-2: --replicas "1"; want 3`},
		{"masters share an id", "", `"--id", "master-2"`, `"--id", "master-1"`,
			"master-2: --id master-1 is also master-1's"},
		{"worker on another port than Prometheus scrapes", "", `command: ["--http", "0.0.0.0:8091"]`, `command: ["--http", "0.0.0.0:9191"]`,
			"does not scrape worker:9191"},
		{"worker on loopback", "", `command: ["--http", "0.0.0.0:8091"]`, `command: ["--http", "127.0.0.1:8091"]`,
			"worker: --http 127.0.0.1:8091 listens on 127.0.0.1 only"},
		{"worker with a fixed hostname", "", "  worker:\n    <<: *crawlmesh\n", "  worker:\n    <<: *crawlmesh\n    hostname: worker\n",
			"worker: container_name/hostname set"},
		{"worker with a fixed id", "", `command: ["--http", "0.0.0.0:8091"]`, `command: ["--http", "0.0.0.0:8091", "--id", "w"]`,
			"worker: --id w: every replica would claim the same node id"},
		{"worker with a host port", "", "    deploy:\n      replicas: 3\n", "    deploy:\n      replicas: 3\n    ports: [\"8091:8091\"]\n",
			"worker: publishes host port 8091"},
		{"worker healthcheck on the wrong port", "", `"http://127.0.0.1:8091/healthz"`, `"http://127.0.0.1:8090/healthz"`,
			"worker: healthcheck GETs http://127.0.0.1:8090/healthz, but the process listens on port 8091"},
		{"healthcheck program not in the image", "", `test: ["CMD", "/usr/local/bin/crawlmesh", "healthcheck", "http://127.0.0.1:8091/healthz"]`,
			`test: ["CMD", "/usr/bin/curl", "-f", "http://127.0.0.1:8091/healthz"]`,
			"worker: runs /usr/bin/curl, but the image has"},
		{"entrypoint not in the image", "", `entrypoint: ["/usr/local/bin/worker"]`, `entrypoint: ["/usr/local/bin/crawler"]`,
			"worker: runs /usr/local/bin/crawler"},
		{"prometheus.yml missing", "", "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro", "./prometheus/prom.yml:/etc/prometheus/prometheus.yml:ro",
			"prometheus: bind mount source deploy/prometheus/prom.yml does not exist"},
		{"alert rules not mounted", "", "      - ./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro\n", "",
			"rule file /etc/prometheus/alerts.yml is not mounted"},
		{"undeclared volume", "", "  prometheus:\n  grafana:\n", "  prometheus:\n", // the loader itself refuses this one
			`refers to undefined volume grafana`},
		{"grafana before prometheus is ready", "", "      prometheus: {condition: service_healthy}", "      prometheus: {condition: service_started}",
			"grafana: does not wait for prometheus to be healthy"},
		{"home dashboard not provisioned", "", "/etc/grafana/dashboards/crawlmesh.json", "/etc/grafana/dashboards/other.json",
			"home dashboard /etc/grafana/dashboards/other.json is not one of the provisioned dashboards"},
		{"demo base not the service", "", `"--base", "http://demosite:8088"`, `"--base", "http://localhost:8088"`,
			`demosite: --base "http://localhost:8088"`},
		{"crawl before the spider is stored", "", "demo-spider: {condition: service_completed_successfully}", "demo-spider: {condition: service_started}",
			"demo-crawl: does not wait for demo-spider to complete successfully"},
		{"crawl of another spider", "", `command: ["crawl", "start", "books"]`, `command: ["crawl", "start", "bookz"]`,
			"demo-crawl: runs [crawl start bookz]; want crawl start books"},
		{"one-shot restarted forever", "", "  demo-crawl:\n    <<: *crawlmesh\n    restart: on-failure\n", "  demo-crawl:\n    <<: *crawlmesh\n    restart: always\n",
			`demo-crawl: restart "always"`},
		{"NATS image off the tested version", "", "image: nats:2.15-alpine", "image: nats:2.9-alpine",
			"the code is tested against nats-server"},

		{"scrape target dropped", "deploy/prometheus/prometheus.yml", `["master-1:8090", "master-2:8090"]`, `["master-1:8090"]`,
			"does not scrape master-2:8090"},
		{"workers scraped as one static target", "deploy/prometheus/prometheus.yml",
			"    dns_sd_configs:\n      - names: [\"worker\"]\n        type: A\n        port: 8091\n        refresh_interval: 5s\n",
			"    static_configs:\n      - targets: [\"worker:8091\"]\n",
			"scrapes worker:8091 as a static target"},
		{"SRV lookups", "deploy/prometheus/prometheus.yml", "        type: A\n", "        type: SRV\n",
			`dns_sd_configs type "SRV"`},
		{"rule file path typo", "deploy/prometheus/prometheus.yml", "  - /etc/prometheus/alerts.yml", "  - /etc/prometheus/alert.yml",
			"rule file /etc/prometheus/alert.yml"},
		{"misspelt key", "deploy/prometheus/prometheus.yml", "dns_sd_configs:", "dns_sd_config:",
			"field dns_sd_config not found"},
		{"datasource at the wrong port", "dashboards/provisioning/datasources/prometheus.yaml", "url: http://prometheus:9090", "url: http://prometheus:9091",
			"points at http://prometheus:9091; Prometheus is http://prometheus:9090"},
		{"datasource without uid", "dashboards/provisioning/datasources/prometheus.yaml", "    uid: crawlmesh-prometheus\n", "",
			"has no fixed uid"},
		{"dashboard provider elsewhere", "dashboards/provisioning/dashboards/crawlmesh.yaml", "path: /etc/grafana/dashboards", "path: /var/lib/grafana/dashboards",
			"reads /var/lib/grafana/dashboards, which grafana does not mount"},
		{"demo spider out of date", "deploy/demo/books.yaml", "parallelism: 8", "parallelism: 4",
			"deploy/demo/books.yaml differs from `crawlmesh demo-site --print-spec --base http://demosite:8088`"},
		{"Dockerfile with cgo", "deploy/Dockerfile", "CGO_ENABLED=0 GOOS", "CGO_ENABLED=1 GOOS",
			"go build runs without CGO_ENABLED=0"},
		{"Dockerfile as root", "deploy/Dockerfile", "FROM gcr.io/distroless/static-debian12:nonroot\nCOPY --from=build /out/ /usr/local/bin/\nUSER nonroot:nonroot",
			"FROM gcr.io/distroless/static-debian12\nCOPY --from=build /out/ /usr/local/bin/\nUSER root",
			"USER root: the image must not run as root"},
		{"Dockerfile on a big base", "deploy/Dockerfile", "FROM gcr.io/distroless/static-debian12:nonroot", "FROM debian:12",
			"final stage FROM debian:12"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			compose := orig
			overlay := map[string][]byte{}
			if tt.file == "" {
				compose = mutate(t, orig, tt.old, tt.new)
			} else {
				b, err := os.ReadFile(filepath.Join(root, tt.file))
				if err != nil {
					t.Fatal(err)
				}
				overlay[filepath.Join(root, tt.file)] = mutate(t, b, tt.old, tt.new)
			}
			p, err := load(t.Context(), dir, compose)
			if err != nil {
				if !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("the loader refuses the broken copy, but not for %q: %v", tt.want, err)
				}
				return
			}
			read := func(p string) ([]byte, error) {
				if b, ok := overlay[p]; ok {
					return b, nil
				}
				return os.ReadFile(p)
			}
			errs := check(p, root, read)
			if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tt.want) }) {
				t.Errorf("no problem mentions %q; got:\n  %s", tt.want, strings.Join(errs, "\n  "))
			}
		})
	}
}

// mutate replaces old by new exactly once, so a case cannot pass because
// its edit silently did nothing.
func mutate(t *testing.T, b []byte, old, new string) []byte {
	t.Helper()
	if n := strings.Count(string(b), old); n != 1 {
		t.Fatalf("%q occurs %d times; want exactly once", old, n)
	}
	return []byte(strings.Replace(string(b), old, new, 1))
}

var (
	helpOnce sync.Once
	helpDir  string
	helpErr  error
)

// built builds the image's binaries once, as the Dockerfile names them.
func built(t *testing.T, names []string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	helpOnce.Do(func() {
		helpDir, helpErr = os.MkdirTemp("", "crawlmesh-deploy-bin-")
		if helpErr != nil {
			return
		}
		args := []string{"build", "-o", helpDir + string(filepath.Separator)}
		for _, n := range names {
			args = append(args, "./services/"+n)
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			helpErr = &buildError{err: err, out: string(out)}
		}
	})
	if helpErr != nil {
		t.Fatal(helpErr)
	}
	return helpDir
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build: " + e.err.Error() + "\n" + e.out }

func TestMain(m *testing.M) {
	code := m.Run()
	if helpDir != "" {
		_ = os.RemoveAll(helpDir)
	}
	os.Exit(code)
}

// helpFlagRE finds the flags of a help text: Go's flag package lists
// "  -name type", cobra (pflag) "  -n, --name type" or "      --name type".
var helpFlagRE = regexp.MustCompile(`(?m)^\s+-(?:([A-Za-z0-9]), --)?-?([A-Za-z0-9][A-Za-z0-9_.-]*)`)

// Every flag the compose file gives a crawlmesh binary, in commands and in
// healthchecks, is one that binary accepts: an unknown flag stops the
// process at start-up, and only `docker compose up` would show it.
func TestComposeCommandsUseRealFlags(t *testing.T) {
	p, _ := loadFile(t)
	c := &checker{p: p, root: repoRoot(t), read: os.ReadFile, byRole: map[string][]cmService{}}
	c.checkDockerfile()
	c.checkNATS()
	c.checkCrawlmesh()
	if len(c.errs) > 0 {
		t.Fatalf("compose file inconsistent (see TestComposeFileIsConsistent): %v", c.errs)
	}
	dir := built(t, c.docker.binaries)
	type call struct {
		svc, bin string
		args     []string
	}
	var calls []call
	for _, list := range c.byRole {
		for _, s := range list {
			calls = append(calls, call{s.svc.Name, s.bin, s.args})
			if h := s.svc.HealthCheck; h != nil && len(h.Test) > 1 && h.Test[0] == "CMD" {
				calls = append(calls, call{s.svc.Name + " healthcheck", filepath.Base(h.Test[1]), h.Test[2:]})
			}
		}
	}
	for _, cl := range calls {
		var words, flags []string
		for _, a := range cl.args {
			if strings.HasPrefix(a, "-") {
				n, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
				flags = append(flags, n)
			} else if len(flags) == 0 {
				words = append(words, a)
			}
		}
		// Ask for help with the command words, dropping trailing
		// positional ones (a URL, a spider name) until a flag list shows.
		known := map[string]bool{}
		var out []byte
		for k := len(words); k >= 0 && len(known) == 0; k-- {
			cmd := exec.CommandContext(t.Context(), filepath.Join(dir, cl.bin), append(slices.Clone(words[:k]), "-h")...)
			cmd.Env = cleanEnv()
			out, _ = cmd.CombinedOutput() // -h exits 0 or 2 depending on the binary
			for _, m := range helpFlagRE.FindAllStringSubmatch(string(out), -1) {
				for _, name := range m[1:] {
					if name != "" {
						known[name] = true
					}
				}
			}
		}
		if len(known) == 0 {
			t.Errorf("%s: %s %v -h lists no flags:\n%s", cl.svc, cl.bin, words, out)
			continue
		}
		for _, f := range flags {
			if !known[f] {
				t.Errorf("%s: %s has no flag -%s; it has %v", cl.svc, strings.Join(append([]string{cl.bin}, words...), " "), f, keys(known))
			}
		}
	}
}

// cleanEnv drops CRAWLMESH_* so a developer's shell cannot change a test.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CRAWLMESH_") {
			env = append(env, kv)
		}
	}
	return env
}

// The real Prometheus parser accepts prometheus.yml and the rule files it
// loads, found through the compose mounts as the container would. CI
// installs Debian's prometheus package, so there a missing promtool is a
// failure, not a skip.
func TestPrometheusConfigWithPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not found: .ci/run installs Debian's prometheus package")
		}
		t.Skip("promtool not installed (apt-get install prometheus)")
	}
	p, _ := loadFile(t)
	c := &checker{p: p, root: repoRoot(t), read: os.ReadFile, byRole: map[string][]cmService{}}
	ps := c.servicesOfImage("prom/prometheus")
	if len(ps) != 1 {
		t.Fatalf("%d Prometheus services", len(ps))
	}
	cfgPath, _ := kingpinFlag(ps[0].Command, "config.file")
	host, ok := c.hostPath(ps[0], cfgPath)
	if !ok {
		t.Fatalf("%s not mounted", cfgPath)
	}
	b, err := os.ReadFile(host)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	// Point rule_files at the repository files the container sees.
	rules, _ := cfg["rule_files"].([]any)
	for i, r := range rules {
		rp, _ := r.(string)
		if !path.IsAbs(rp) {
			rp = path.Join(path.Dir(cfgPath), rp)
		}
		h, ok := c.hostPath(ps[0], rp)
		if !ok {
			t.Fatalf("rule file %s not mounted", rp)
		}
		rules[i] = h
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := exec.CommandContext(t.Context(), promtool, "check", "config", tmp).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check config %s (from %s): %v\n%s", tmp, c.rel(host), err, res)
	}
	if !strings.Contains(string(res), fmt.Sprintf("SUCCESS: %d rule files found", len(rules))) {
		t.Errorf("promtool did not load the %d rule file(s):\n%s", len(rules), res)
	}
}
