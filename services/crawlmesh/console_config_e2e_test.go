package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/crawlmesh/crawlmesh/pkg/clusterconfig"
	"github.com/crawlmesh/crawlmesh/pkg/httpapi"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/services/internal/harness"
)

// TestConsoleBrowserConfig drives the console's cluster config page and
// the host agent on its nodes page in headless chromium, with two workers
// and `crawlmesh agent --workers 2` as processes: the agent shows with role
// agent and its worker processes (state, restarts, last exit), and its
// workers say which agent runs them; the config page shows every key with
// its type and range, and each node's effective values with their source.
// Without the token a config write and a scale are refused and nothing
// changes; with it, concurrency 7 for role worker reaches every worker's
// effective values on the page and in its heartbeat; a bad value is shown
// next to its field and changes nothing; removing the value brings the
// flag back; scaling the agent to 1 leaves one child. Every request the
// browser makes stays on loopback.
func TestConsoleBrowserConfig(t *testing.T) {
	token, tokenFile := consoleToken(t)
	m := harness.StartMesh(t, harness.MeshConfig{Workers: 2, HTTP: true, MasterArgs: []string{"--api-token-file", tokenFile}})
	harness.StartProc(t, "agent a1", "crawlmesh", "agent", "--nats", m.Cluster.URL(), "--id", "a1", "--workers", "2")
	m.WaitOnline(60*time.Second, "a1", "a1-1", "a1-2")
	workers := []string{"w1", "w2", "a1-1", "a1-2"}
	// What each worker applies before anything is stored: the harness
	// gives w1 and w2 --concurrency 4; the agent's children take the default.
	before := map[string]string{"w1": "4 (flag)", "w2": "4 (flag)", "a1-1": "32 (default)", "a1-2": "32 (default)"}
	api := "http://" + m.HTTP["m1"] + "/api/v1/"
	br := newConsoleBrowser(t)
	base := br.front(m.HTTP["m1"])
	cell := func(node, key string) string {
		return fmt.Sprintf(`#config-effective td[data-node=%q][data-key=%q]`, node, key)
	}

	// Nodes: the agent, its children, and the agent of each worker.
	br.run("open the nodes", chromedp.Navigate(base+"#nodes"))
	br.waitText(`#nodes-table tr[data-id="a1"] .role`, "agent", 30*time.Second)
	br.waitText(`#nodes-table tr[data-id="a1"] .online`, "online", 5*time.Second)
	for _, ch := range []string{"a1-1", "a1-2"} {
		kid := fmt.Sprintf(`#nodes-table tr[data-agent="a1"] tr[data-child=%q]`, ch)
		br.waitText(kid+" .child-state", "running", 30*time.Second)
		br.waitText(kid+" .restarts", "0", 5*time.Second)
		br.waitText(kid+" .last-exit", "none", 5*time.Second)
		br.waitText(fmt.Sprintf(`#nodes-table tr[data-id=%q] .agent`, ch), "agent a1", 10*time.Second)
	}
	br.waitText(`#nodes-table tr[data-agent="a1"] caption`, "Worker processes of agent a1", 5*time.Second)
	if got := br.text(`#nodes-table tr[data-id="w1"] .agent`); got != "—" {
		t.Errorf("w1 (no agent) shows run by %q", got)
	}
	br.waitText("#scale-agent", "a1", 5*time.Second)
	br.shot("nodes-agent.png")

	// Without the token: a scale is refused and the agent keeps both.
	br.run("scale without the token", chromedp.SetValue(chromedp.CSS("#scale-n"), "1"), chromedp.Click(chromedp.CSS("#scale-submit")))
	br.waitText("#msg", "Refused (401)", 10*time.Second)
	if hb, err := m.Heartbeat("a1"); err != nil || len(hb.Children) != 2 {
		t.Fatalf("a1 after a refused scale: %d children, %v", len(hb.Children), err)
	}

	// Config, read without the token: keys with their range and doc, and
	// each node's effective values with their source.
	br.run("open the config", chromedp.Navigate(base+"#config"))
	br.waitText(`#config-keys tr[data-id="concurrency"] .range`, "1-10000", 20*time.Second)
	br.waitText(`#config-keys tr[data-id="concurrency"] .doc`, "fetch slots", 5*time.Second)
	br.waitText(`#config-keys tr[data-id="concurrency"] .cluster`, "32 (default)", 5*time.Second)
	for id, want := range before {
		br.waitText(cell(id, clusterconfig.Concurrency), want, 20*time.Second)
	}
	br.waitText(cell("m1", clusterconfig.Concurrency), "does not apply", 5*time.Second)
	br.waitText(cell("m1", clusterconfig.LogLevel), "info", 5*time.Second)
	br.waitText(`#config-nodes tr[data-id="w1"] .online`, "online", 5*time.Second)
	br.waitText("#config-stored-summary", "Nothing stored", 5*time.Second)

	// The form, by keyboard: the key, then level role (which shows the role
	// field), then the value.
	br.chooseByKeys("#cfg-key", "concurrency", "concurrency")
	br.chooseByKeys("#cfg-level", "role", "role")
	if br.isHidden("#cfg-role-field") || !br.isHidden("#cfg-node-field") {
		t.Fatal("level role does not show the role field (alone)")
	}
	br.waitText("#cfg-key-help", "range 1-10000", 5*time.Second)
	br.run("set concurrency 7 without the token", chromedp.SetValue(chromedp.CSS("#cfg-value"), "7"), chromedp.Click(chromedp.CSS("#cfg-set")))
	br.waitText("#msg", "Refused (401)", 10*time.Second)
	var cfg httpapi.ConfigReply
	getJSON(t, api+"config", &cfg)
	if len(cfg.Entries) != 0 {
		t.Fatalf("stored after a refused set: %+v", cfg.Entries)
	}

	// With the token: every worker applies 7 from its role, on the page and
	// in its heartbeat, with the config revision that stored it.
	br.run("enter the token", chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS("#token-save")))
	br.waitText("#auth-status", "Token entered", 5*time.Second)
	br.run("set concurrency 7 for role worker", chromedp.Click(chromedp.CSS("#cfg-set")))
	br.waitText("#msg", "concurrency = 7 stored for role worker", 10*time.Second)
	getJSON(t, api+"config", &cfg)
	if len(cfg.Entries) != 1 || cfg.Entries[0].Value != "7" || cfg.Entries[0].Scope.Level != clusterconfig.LevelRole {
		t.Fatalf("stored: %+v; want concurrency 7 for role worker", cfg.Entries)
	}
	rev := strconv.FormatUint(cfg.Entries[0].Revision, 10)
	for _, id := range workers {
		br.waitText(cell(id, clusterconfig.Concurrency), "7 (role)", 10*time.Second)
		br.waitText(fmt.Sprintf(`#config-nodes tr[data-id=%q] .rev`, id), rev, 5*time.Second)
		waitConcurrency(t, m, id, mesh.ConfigValue{Value: "7", Source: clusterconfig.LevelRole})
	}
	br.waitText(`#config-stored tr[data-id="role worker concurrency"]`, "valid", 5*time.Second)
	br.scrollTop("#h-config-nodes")
	br.shot("config.png")

	// A bad value: the API's error next to the value field, and nothing changed.
	br.scrollTop("#h-config")
	br.run("set a bad concurrency", chromedp.SetValue(chromedp.CSS("#cfg-value"), "-3"), chromedp.Click(chromedp.CSS("#cfg-set")))
	br.waitText("#cfg-value-error", `concurrency "-3": out of range: want 1-10000`, 10*time.Second)
	br.waitText("#msg", "Nothing changed", 5*time.Second)
	if br.isHidden("#cfg-value-error") {
		t.Error("the value's error is hidden")
	}
	inv, _ := chromedp.Run(br.ctx, chromedp.Evaluate[string](`document.querySelector("#cfg-value").getAttribute("aria-invalid")`))
	focused, _ := chromedp.Run(br.ctx, chromedp.Evaluate[string](`document.activeElement.id`))
	if inv != "true" || focused != "cfg-value" {
		t.Errorf("after the bad value: aria-invalid %q, focus on %q; want true and cfg-value", inv, focused)
	}
	br.shot("config-error.png")
	// A key for a role that does not apply it: the error is the role's.
	br.chooseByKeys("#cfg-role", "master", "master")
	br.run("set concurrency for role master", chromedp.SetValue(chromedp.CSS("#cfg-value"), "8"), chromedp.Click(chromedp.CSS("#cfg-set")))
	br.waitText("#cfg-role-error", "not to role master", 10*time.Second)
	if !br.isHidden("#cfg-value-error") {
		t.Error("the value's old error still shows")
	}
	getJSON(t, api+"config", &cfg)
	if len(cfg.Entries) != 1 || cfg.Entries[0].Value != "7" || strconv.FormatUint(cfg.Entries[0].Revision, 10) != rev {
		t.Fatalf("stored after two refused values: %+v; want concurrency 7 at revision %s alone", cfg.Entries, rev)
	}
	for _, id := range workers {
		waitConcurrency(t, m, id, mesh.ConfigValue{Value: "7", Source: clusterconfig.LevelRole})
		if got := br.text(cell(id, clusterconfig.Concurrency)); got != "7 (role)" {
			t.Errorf("%s shows concurrency %q after the refused values", id, got)
		}
	}

	// Remove from the stored values: each worker's own value is back.
	br.clickRow("remove the role's value", `#config-stored tr[data-id="role worker concurrency"] button.action`)
	br.waitText("#msg", "concurrency removed at role worker", 10*time.Second)
	for id, want := range before {
		br.waitText(cell(id, clusterconfig.Concurrency), want, 10*time.Second)
	}
	br.waitText("#config-stored-summary", "Nothing stored", 5*time.Second)

	// Scale with the token: a1 to 1, drained; one child left on the page.
	br.run("scale a1 to 1", chromedp.Navigate(base+"#nodes"), chromedp.WaitVisible(chromedp.CSS("#scale-n")))
	br.waitText("#scale-agent", "a1", 10*time.Second)
	br.run("scale a1 to 1", chromedp.SetValue(chromedp.CSS("#scale-n"), "1"), chromedp.Click(chromedp.CSS("#scale-submit")))
	br.waitText("#msg", "Agent a1 now runs 1 worker process(es)", 10*time.Second)
	harness.Eventually(t, 30*time.Second, "a1's second child gone from the page and the heartbeat", func() bool {
		hb, err := m.Heartbeat("a1")
		return err == nil && len(hb.Children) == 1 && hb.Children[0].ID == "a1-1" &&
			br.text(`#nodes-table tr[data-agent="a1"] tr[data-child="a1-2"]`) == "" &&
			strings.Contains(br.text(`#nodes-table tr[data-id="a1"]`), "runs 1 worker process(es)")
	})
	// A bad count is the API's refusal, in words.
	br.run("scale a1 to -1", chromedp.SetValue(chromedp.CSS("#scale-n"), "-1"), chromedp.Click(chromedp.CSS("#scale-submit")))
	br.waitText("#scale-status", "scale -1: want 0..256 workers", 10*time.Second)

	br.checkLoopback()
}

// waitConcurrency waits until node id's heartbeat reports want for
// concurrency.
func waitConcurrency(t *testing.T, m *harness.Mesh, id string, want mesh.ConfigValue) {
	t.Helper()
	var got mesh.ConfigValue
	harness.Eventually(t, 5*time.Second, id+"'s heartbeat reports concurrency "+want.Value+" from "+want.Source, func() bool {
		hb, err := m.Heartbeat(id)
		if err != nil || hb.Config == nil {
			return false
		}
		got = hb.Config.Values[clusterconfig.Concurrency]
		return got == want
	}, func() string { return fmt.Sprintf("it reports %+v", got) })
}

// chooseByKeys picks an option of a select as a keyboard user does: focus
// it and type the option's first letters. The page sees the change event.
func (b *consoleBrowser) chooseByKeys(sel, keys, want string) {
	b.t.Helper()
	b.run("choose "+want+" in "+sel, chromedp.Focus(chromedp.CSS(sel)), chromedp.KeyEvent(keys))
	harness.Eventually(b.t, 5*time.Second, sel+" has "+want, func() bool {
		v, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q).value`, sel)))
		return v == want
	})
}

// scrollTop scrolls the page so that sel is at the top of the window
// (chromedp's ScrollIntoView leaves a partly visible element where it is).
func (b *consoleBrowser) scrollTop(sel string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q).scrollIntoView({block: "start"}), true`, sel))); err != nil {
		b.t.Fatalf("scroll to %s: %v", sel, err)
	}
}
