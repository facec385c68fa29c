package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/metrics"
	"github.com/crawlmesh/crawlmesh/pkg/nodeconfig"
	"github.com/crawlmesh/crawlmesh/services/internal/harness"
)

// The dashboard and the alert rules are checked against what the binaries
// really export: the metric names come from the live registry of a running
// mesh (master and workers, the code the master and worker binaries run),
// never from a hand-kept list.

const (
	dashboardFile = "../../dashboards/crawlmesh.json"
	alertsFile    = "../../deploy/prometheus/alerts.yml"
	alertTests    = "../../deploy/prometheus/alerts_test.yml"
)

// promQuery is one PromQL expression and where it comes from.
type promQuery struct {
	where string
	expr  string
	// instant: the panel shows the latest value (stat, table) rather
	// than a range.
	instant bool
}

// grafanaVars replaces Grafana's variables with values Prometheus accepts:
// every node, and rate windows that suit a scrape interval of 1 s.
func grafanaVars(expr string) string {
	return strings.NewReplacer(
		"$__rate_interval", "10s",
		"$__interval", "1s",
		"$__range", "5m",
		"${node}", ".*",
		"$node", ".*",
	).Replace(expr)
}

type dashboard struct {
	Panels     []dashPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type dashPanel struct {
	ID      int         `json:"id"`
	Type    string      `json:"type"`
	Title   string      `json:"title"`
	Panels  []dashPanel `json:"panels"` // a collapsed row's panels
	Targets []struct {
		RefID   string `json:"refId"`
		Expr    string `json:"expr"`
		Instant bool   `json:"instant"`
	} `json:"targets"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// panelQueries lists every query of every panel, rows' nested panels too.
func panelQueries(t *testing.T, d dashboard) []promQuery {
	t.Helper()
	var out []promQuery
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %d %q has no query", p.ID, p.Title)
			}
			for _, tg := range p.Targets {
				out = append(out, promQuery{where: fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID),
					expr: tg.Expr, instant: tg.Instant || p.Type == "stat" || p.Type == "table"})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

var labelValuesRe = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$`)

// variableQueries turns the templating variables' label_values(metric,
// label) into selectors of that metric.
func variableQueries(t *testing.T, d dashboard) []promQuery {
	t.Helper()
	var out []promQuery
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValuesRe.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: definition %q is not label_values(metric, label)", v.Name, v.Definition)
			continue
		}
		out = append(out, promQuery{where: "variable " + v.Name, expr: m[1]})
	}
	return out
}

func ruleQueries(t *testing.T) []promQuery {
	t.Helper()
	groups, errs := rulefmt.ParseFile(alertsFile, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("%s: %v", alertsFile, errs)
	}
	var out []promQuery
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			out = append(out, promQuery{where: fmt.Sprintf("rule %s/%s", g.Name, r.Alert+r.Record), expr: r.Expr})
		}
	}
	return out
}

// queryMetrics parses expr and returns the metric names it selects.
func queryMetrics(expr string) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVars(expr))
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && name == "" {
				name = m.Value
			}
		}
		names = append(names, name)
		return nil
	})
	return names, nil
}

// checkQuery reports a parse error, a selector without a metric name, or
// a metric that is not exported. A histogram's series carry _bucket, _sum
// and _count after the family's name.
func checkQuery(q promQuery, exported exportedMetrics) error {
	names, err := queryMetrics(q.expr)
	if err != nil {
		return fmt.Errorf("%s: %q does not parse: %v", q.where, q.expr, err)
	}
	if len(names) == 0 {
		return fmt.Errorf("%s: %q selects no metric", q.where, q.expr)
	}
	for _, n := range names {
		if n == "" {
			return fmt.Errorf("%s: %q has a selector without a metric name", q.where, q.expr)
		}
		if !exported.has(n) {
			return fmt.Errorf("%s: metric %s is exported by no crawlmesh binary", q.where, n)
		}
	}
	return nil
}

var fqNameRe = regexp.MustCompile(`fqName: "([^"]+)"`)

// exportedMetrics maps every metric name a registry describes to its type
// (as far as its series have been gathered; "" before any).
type exportedMetrics map[string]dto.MetricType

// liveMetrics runs a master and two workers in this process, the way
// `crawlmesh up` does with the code of the master and worker binaries,
// crawls the demo site with them so every labelled series exists, and
// returns every metric their registry describes with its type.
func liveMetrics(t *testing.T) exportedMetrics {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	u := upConfig{workers: 2, concurrency: 8, data: t.TempDir(), natsPort: freePort(t),
		node: nodeconfig.Node{HeartbeatInterval: time.Second, HeartbeatTTL: 3 * time.Second}}
	reg := metrics.NewRegistry()
	log := slog.New(slog.DiscardHandler)
	m, err := launchMesh(ctx, cancel, u, log, reg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := m.wait(); err != nil {
			t.Errorf("mesh: %v", err)
		}
	})
	var out syncBuf
	dctx, dcancel := context.WithTimeout(ctx, 60*time.Second)
	defer dcancel()
	if err := runDemo(dctx, &cli{getenv: func(string) string { return "" }, stdout: &out, stderr: &out}, m.url, log, false); err != nil {
		t.Fatalf("demo crawl: %v\n%s", err, out.String())
	}
	got := exportedMetrics{}
	ch := make(chan *prometheus.Desc)
	go func() { reg.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqNameRe.FindStringSubmatch(d.String()); m != nil {
			got[m[1]] = -1
		}
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		got[f.GetName()] = f.GetType()
	}
	return got
}

// has tells whether series name exists: a metric's own name, or a
// histogram's _bucket, _sum or _count series.
func (e exportedMetrics) has(name string) bool {
	if _, ok := e[name]; ok && e[name] != dto.MetricType_HISTOGRAM {
		return true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(name, suf); ok && e[b] == dto.MetricType_HISTOGRAM {
			return true
		}
	}
	return false
}

func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a mesh in-process")
	}
	exported := liveMetrics(t)
	var ours []string
	for n := range exported {
		if strings.HasPrefix(n, "crawlmesh_") {
			ours = append(ours, n)
		}
	}
	slices.Sort(ours)
	t.Logf("%d crawlmesh metrics exported: %s", len(ours), strings.Join(ours, " "))
	// The names DESIGN.md fixes.
	for _, n := range []string{"crawlmesh_node_online", "crawlmesh_node_clock_skew_seconds", "crawlmesh_node_heartbeat_age_seconds",
		"crawlmesh_leader", "crawlmesh_pages_total", "crawlmesh_items_total", "crawlmesh_fetch_duration_seconds", "crawlmesh_tasks_pending"} {
		if _, ok := exported[n]; !ok {
			t.Errorf("DESIGN.md's metric %s is not exported", n)
		}
	}
	d := loadDashboard(t)
	qs := append(panelQueries(t, d), variableQueries(t, d)...)
	qs = append(qs, ruleQueries(t)...)
	if len(qs) < 20 {
		t.Fatalf("only %d queries found in the dashboard and rules", len(qs))
	}
	for _, q := range qs {
		if err := checkQuery(q, exported); err != nil {
			t.Error(err)
		}
	}
	// The check itself catches what it is for.
	for _, bad := range []promQuery{
		{where: "bad", expr: `sum(rate(crawlmesh_pages_total[1m])`},
		{where: "bad", expr: `rate(crawlmesh_pagez_total[$__rate_interval])`},
		{where: "bad", expr: `histogram_quantile(0.5, rate(crawlmesh_items_total_bucket[1m]))`},
		{where: "bad", expr: `{node="x"}`},
		{where: "bad", expr: `crawlmesh_fetch_duration_seconds`}, // a histogram has no series of its own name
	} {
		if err := checkQuery(bad, exported); err == nil {
			t.Errorf("checkQuery accepted %q", bad.expr)
		}
	}
}

// promTool finds a Prometheus binary. CI installs Debian's prometheus
// package, so there a missing binary is a failure, not a skip.
func promTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found: .ci/run installs Debian's prometheus package", name)
		}
		t.Skipf("%s not installed (apt-get install prometheus)", name)
	}
	return p
}

func TestAlertRulesWithPromtool(t *testing.T) {
	promtool := promTool(t, "promtool")
	for _, args := range [][]string{{"check", "rules", alertsFile}, {"test", "rules", alertTests}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// promAPI queries a Prometheus server's HTTP API.
type promAPI struct{ base string }

type promResult struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
	Values [][2]any          `json:"values"`
}

func (p promAPI) get(path string, params url.Values, out any) error {
	resp, err := http.Get(p.base + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s: %v: %.200s", path, err, b)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s: %s", path, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

// hasData tells whether a query result holds at least one number that is
// not NaN: what a panel needs to draw something.
func hasData(res []promResult) bool {
	num := func(v any) bool {
		s, _ := v.(string)
		f, err := strconv.ParseFloat(s, 64)
		return err == nil && f == f
	}
	for _, r := range res {
		if num(r.Value[1]) {
			return true
		}
		for _, v := range r.Values {
			if num(v[1]) {
				return true
			}
		}
	}
	return false
}

func (p promAPI) query(q promQuery, from time.Time) ([]promResult, error) {
	var data struct {
		Result []promResult `json:"result"`
	}
	expr := grafanaVars(q.expr)
	var err error
	if q.instant {
		err = p.get("/api/v1/query", url.Values{"query": {expr}}, &data)
	} else {
		now := time.Now()
		err = p.get("/api/v1/query_range", url.Values{"query": {expr},
			"start": {strconv.FormatInt(from.Unix(), 10)}, "end": {strconv.FormatInt(now.Unix(), 10)}, "step": {"1"}}, &data)
	}
	return data.Result, err
}

// TestDashboardPanelsReturnData runs `crawlmesh up --demo` scraped by a
// real Prometheus that also loads the alert rules, and checks that every
// dashboard query returns data and every rule evaluates.
func TestDashboardPanelsReturnData(t *testing.T) {
	promBin := promTool(t, "prometheus")
	bins(t)
	dir := t.TempDir()
	httpAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	promAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	rules, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: crawlmesh
    static_configs:
      - targets: [%q]
`, rules, httpAddr)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := exec.Command(promBin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	promOut := &syncBuf{}
	prom.Stdout, prom.Stderr = promOut, promOut
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = prom.Process.Kill()
		_ = prom.Wait()
		if t.Failed() {
			t.Logf("--- prometheus output:\n%s", promOut.String())
		}
	})
	api := promAPI{base: "http://" + promAddr}
	waitFor(t, 30*time.Second, "prometheus ready", func() bool {
		resp, err := http.Get(api.base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	from := time.Now().Add(-time.Second)
	natsPort := freePort(t)
	up := start(t, "crawlmesh", "up", "--demo", "--data", filepath.Join(dir, "data"), "--nats-port", strconv.Itoa(natsPort),
		"--http", httpAddr, "--log-level", "warn")
	// The demo crawl is over in a couple of seconds, between two scrapes
	// at worst; a slower, polite crawl beside it keeps every rate and
	// latency series moving for several scrapes, as on a real mesh.
	m := &testMesh{t: t, url: "nats://127.0.0.1:" + strconv.Itoa(natsPort)}
	site := newPoliteSite(t, "", 400, 30*time.Millisecond)
	m.apply(politeSpec("slow", []*politeSite{site}, 2, "20ms"))
	// A sink so the sink panels have series: a webhook receiver on
	// loopback that takes every batch.
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	t.Cleanup(hook.Close)
	m.mustCLI("sink", "add", "dash", "--webhook", hook.URL, "--batch-wait", "100ms")
	m.mustCLI("crawl", "start", "slow")

	d := loadDashboard(t)
	qs := append(panelQueries(t, d), variableQueries(t, d)...)
	pending := map[string]promQuery{}
	for _, q := range qs {
		pending[q.where] = q
	}
	// The demo crawl takes a few seconds; a panel has data once Prometheus
	// has scraped the series it reads (two samples for a rate).
	var lastErr = map[string]error{}
	deadline := time.Now().Add(90 * time.Second)
	for len(pending) > 0 && time.Now().Before(deadline) {
		for where, q := range pending {
			res, err := api.query(q, from)
			if err != nil {
				lastErr[where] = err
				continue
			}
			if hasData(res) {
				delete(pending, where)
			}
		}
		if len(pending) > 0 {
			time.Sleep(time.Second)
		}
	}
	t.Logf("%d of %d queries returned data after %v", len(qs)-len(pending), len(qs), time.Since(from).Round(time.Second))
	for where, q := range pending {
		t.Errorf("%s returned no data: %s (last error: %v)", where, grafanaVars(q.expr), lastErr[where])
	}

	// Every alert rule is loaded and evaluates without error.
	var rulesData struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	want := len(ruleQueries(t))
	waitFor(t, 30*time.Second, "every alert rule evaluated", func() bool {
		if err := api.get("/api/v1/rules", url.Values{}, &rulesData); err != nil {
			return false
		}
		ok := 0
		for _, g := range rulesData.Groups {
			for _, r := range g.Rules {
				if r.Health == "ok" {
					ok++
				}
			}
		}
		return ok == want
	})
	t.Logf("%d alert rules evaluated without error after %v", want, time.Since(from).Round(time.Second))
	// Healthy mesh: no alert fires. One may be pending from the first
	// evaluations (no leader elected yet when Prometheus first scraped);
	// it must clear by itself well before its `for` would make it fire.
	var alerts struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	var active []string
	harness.Eventually(t, 25*time.Second, "no alert pending or firing on the healthy demo mesh", func() bool {
		if err := api.get("/api/v1/alerts", url.Values{}, &alerts); err != nil {
			active = []string{err.Error()}
			return false
		}
		active = active[:0]
		for _, a := range alerts.Alerts {
			active = append(active, a.Labels["alertname"]+" "+a.State+" "+fmt.Sprint(a.Labels))
			if a.State == "firing" {
				t.Fatalf("alert %s is firing on a healthy demo mesh: %v", a.Labels["alertname"], a.Labels)
			}
		}
		return len(active) == 0
	}, func() string { return strings.Join(active, "; ") })
	// The demo bookshop stays up while the mesh runs: spider books crawls
	// again, as from the console (it was shut when the demo crawl ended,
	// and every later crawl of books dead-lettered its start URL).
	again := strings.TrimSpace(m.mustCLI("crawl", "start", "books", "--wait"))
	var st crawlctl.Status
	if err := json.Unmarshal([]byte(m.mustCLI("crawl", "status", again, "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.State != mesh.CrawlCompleted || st.Dead != 0 || st.PagesOK == 0 {
		t.Errorf("books crawled again while up runs: %+v, want completed with pages and no dead letters", st)
	}
	// Stop the mesh before the site closes (cleanups run last-in first-out).
	up.Signal(syscall.SIGTERM)
	if code := exitCode(t, up, 20*time.Second); code != 0 {
		t.Errorf("crawlmesh up exit %d after SIGTERM", code)
	}
	t.Logf("done after %v", time.Since(from).Round(time.Second))
}
