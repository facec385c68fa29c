package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdpage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/politeness"
	"github.com/crawlmesh/crawlmesh/pkg/synthsite"
	"github.com/crawlmesh/crawlmesh/services/internal/harness"
)

// TestConsoleBrowserSteer drives the console's other actions in headless
// chromium, as an operator steering a mesh would, each checked through the
// API or the CLI: delete a spider (confirming the browser's dialog), set a
// throttle override, read the schedules with their next run, and re-queue
// a dead letter — a crawl whose page failed until the site was fixed
// completes again from the crawl's page with the page's item and the right
// count. Every request the browser makes stays on loopback.
func TestConsoleBrowserSteer(t *testing.T) {
	token, tokenFile := consoleToken(t)
	const pages, broken = 30, 3
	cfg := synthsite.Config{Pages: pages}
	site := newBrokenSite(t, cfg, broken)
	siteHost := strings.TrimPrefix(site.URL, "http://")
	m := harness.StartMesh(t, harness.MeshConfig{Workers: 2, HTTP: true, MaxAttempts: 2,
		MasterArgs: []string{"--api-token-file", tokenFile}})
	m.CLI.Apply(synthsite.Spec("fixme", site.URL, cfg))
	m.CLI.Apply(synthsite.Spec("nightly", site.URL, cfg) + "schedule: \"0 3 * * *\"\n")
	m.CLI.Apply(synthsite.Spec("doomed", site.URL, cfg))
	api := "http://" + m.HTTP["m1"] + "/api/v1/"

	br := newConsoleBrowser(t)
	base := br.front(m.HTTP["m1"])
	// Delete asks for confirmation in a dialog, which blocks the click
	// until it is answered: a goroutine owned by the test accepts it.
	dctx, stopDialogs := context.WithCancel(br.ctx)
	dialogs := chromedp.Events(dctx, cdpage.JavascriptDialogOpening)
	var dialogMu sync.Mutex
	var asked []string
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopDialogs()
	wg.Go(func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			dialogMu.Lock()
			asked = append(asked, ev.Message)
			dialogMu.Unlock()
			if _, err := chromedp.Call(br.ctx, cdpage.HandleJavaScriptDialog, cdpage.HandleJavaScriptDialogParams{Accept: true}); err != nil {
				return
			}
		}
	})

	br.run("open the console", chromedp.Navigate(base+"#spiders"))
	br.waitText(`#spiders-table tr[data-id="doomed"]`, "doomed", 20*time.Second)
	br.run("enter the token", chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS("#token-save")))
	br.waitText("#auth-status", "Token entered", 5*time.Second)

	// Spider delete: confirmed in the dialog, gone from the page and the API.
	br.clickRow("delete spider doomed", `#spiders-table tr[data-id="doomed"] button.action`)
	br.waitText("#msg", "Spider doomed deleted", 10*time.Second)
	harness.Eventually(t, 10*time.Second, "the row of doomed goes", func() bool {
		return br.text(`#spiders-table tr[data-id="doomed"]`) == ""
	})
	if code := httpCode(t, api+"spiders/doomed"); code != http.StatusNotFound {
		t.Errorf("GET spiders/doomed after the delete: %d, want 404", code)
	}
	dialogMu.Lock()
	if len(asked) != 1 || !strings.Contains(asked[0], "doomed") {
		t.Errorf("dialogs %q: want one asking about doomed", asked)
	}
	dialogMu.Unlock()

	// A worker's actions from its row (review: the console could not
	// pause, resume, drain or size a worker): each reaches the worker.
	state := func(id string) (string, int) {
		hb, err := m.Heartbeat(id)
		if err != nil {
			return "", 0
		}
		return hb.State, hb.Capacity
	}
	br.run("open the nodes", chromedp.Navigate(base+"#nodes"))
	br.clickRow("pause w1", `#nodes-table tr[data-id="w1"] button[data-cmd="pause"]`)
	br.waitText("#msg", "Worker w1 paused", 10*time.Second)
	harness.Eventually(t, 10*time.Second, "w1 paused", func() bool { st, _ := state("w1"); return st == mesh.StatePaused })
	br.waitText(`#nodes-table tr[data-id="w1"]`, "paused", 10*time.Second)
	br.clickRow("resume w1", `#nodes-table tr[data-id="w1"] button[data-cmd="resume"]`)
	harness.Eventually(t, 10*time.Second, "w1 running", func() bool { st, _ := state("w1"); return st == mesh.StateRunning })
	br.run("set w2's concurrency", chromedp.SetValue(chromedp.CSS("#conc-node"), "w2"), chromedp.SetValue(chromedp.CSS("#conc-n"), "3"),
		chromedp.Click(chromedp.CSS("#conc-submit")))
	br.waitText("#msg", "Worker w2 now runs up to 3 tasks", 10*time.Second)
	harness.Eventually(t, 10*time.Second, "w2 at concurrency 3", func() bool { _, c := state("w2"); return c == 3 })

	// Throttle set: the override shows on the page and is stored.
	br.run("set a throttle override", chromedp.Navigate(base+"#throttle"), chromedp.WaitVisible(chromedp.CSS("#th-host")),
		chromedp.SendKeys(chromedp.CSS("#th-host"), siteHost), chromedp.SendKeys(chromedp.CSS("#th-delay"), "20ms"),
		chromedp.SendKeys(chromedp.CSS("#th-par"), "3"), chromedp.Click(chromedp.CSS(`#throttle-form button[type="submit"]`)))
	br.waitText("#msg", "Override for "+siteHost+" set", 10*time.Second)
	row := br.waitText(fmt.Sprintf(`#throttle-table tr[data-id=%q]`, siteHost), "20ms", 10*time.Second)
	if !strings.Contains(row, "3") {
		t.Errorf("throttle row %q lacks parallelism 3", row)
	}
	var overrides []politeness.Override
	getJSON(t, api+"throttle", &overrides)
	if len(overrides) != 1 || overrides[0].Host != siteHost || overrides[0].Delay != "20ms" || overrides[0].Parallelism != 3 {
		t.Errorf("throttle overrides in the API: %+v", overrides)
	}
	br.shot("throttle.png")

	// Schedules: the scheduled spider alone, with its next run at 03:00 UTC.
	br.run("open the schedules", chromedp.Navigate(base+"#schedules"))
	srow := br.waitText(`#schedules-table tr[data-id="nightly"]`, "0 3 * * * (UTC)", 10*time.Second)
	if next := br.text(`#schedules-table tr[data-id="nightly"] .next`); !strings.Contains(next, "T03:00:00Z") {
		t.Errorf("next run of nightly %q, want 03:00 UTC (row %q)", next, srow)
	}
	if s := br.text("#schedules-table tbody"); strings.Contains(s, "fixme") {
		t.Errorf("the schedules list a spider without a schedule: %q", s)
	}
	br.waitText("#schedules-summary", "1 spider(s) with a schedule", 5*time.Second)
	br.shot("schedules.png")
	// Changing a schedule is editing the spider's spec: the button opens it.
	br.clickRow("edit nightly's spec", `#schedules-table tr[data-id="nightly"] button`)
	harness.Eventually(t, 10*time.Second, "nightly's spec in the editor", func() bool {
		v, _ := chromedp.Run(br.ctx, chromedp.Evaluate[string](`document.querySelector("#spec-yaml").value`))
		return strings.Contains(v, `"schedule": "0 3 * * *"`) && !br.isHidden("#view-spiders")
	})

	// Dead-letter re-queue: the broken page is dead-lettered and the crawl
	// completes without it; after the fix, one click re-queues it.
	id := m.CLI.Start("fixme")
	st := m.WaitDone(id, 90*time.Second)
	if st.Dead != 1 || st.Items != pages-1 {
		t.Fatalf("crawl %s before the fix: %+v; want 1 dead letter, %d items", id, st, pages-1)
	}
	// The API gives the first N on ?limit=N, and says how many there are.
	resp, err := http.Get(api + "crawls/" + id + "/deadletters?limit=0")
	if err != nil {
		t.Fatal(err)
	}
	var all []map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&all)
	resp.Body.Close()
	if len(all) != 1 || resp.Header.Get("Crawlmesh-Total") != "1" {
		t.Errorf("GET deadletters?limit=0: %d letters, Crawlmesh-Total %q; want 1 and 1", len(all), resp.Header.Get("Crawlmesh-Total"))
	}
	br.run("open the crawl", chromedp.Navigate(base+"#crawl/"+url.PathEscape(id)))
	brokenURL := site.URL + site.broken
	br.waitText("#dead-table tbody", brokenURL, 10*time.Second)
	br.waitText("#dead-table tbody .reason", "503", 5*time.Second)
	br.waitText("#dead-summary", "1 dead letter(s)", 5*time.Second)
	br.waitText(`#crawl-status dd[data-key="state"]`, "completed", 5*time.Second)
	br.run("scroll to the dead letters", chromedp.ScrollIntoView(chromedp.CSS("#h-dead")))
	br.shot("deadletters.png")
	site.fixed.Store(true)
	br.clickRow("re-queue the dead letter", "#dead-table tbody tr button.action")
	br.waitText("#msg", brokenURL+" re-queued in crawl "+id+"; the crawl had ended and runs again", 10*time.Second)
	br.waitText(`#crawl-status dd[data-key="state"]`, "completed", 60*time.Second)
	br.waitText(`#crawl-status dd[data-key="items"]`, strconv.Itoa(pages), 10*time.Second)
	br.waitText("#dead-summary", "No dead letters", 10*time.Second)
	// The page's item, on the items pages (it came last).
	harness.Eventually(t, 10*time.Second, "the re-queued page's item on the items pages", func() bool {
		if strings.Contains(br.text("#items-table tbody"), brokenURL) {
			return true
		}
		_ = chromedp.Do(br.ctx, chromedp.Click(chromedp.CSS("#items-next")))
		return false
	})
	st = m.CLI.Status(id)
	if st.Dead != 0 || st.Items != pages || st.PagesOK != pages {
		t.Errorf("crawl %s after the re-queue: %+v; want 0 dead, %d pages and items", id, st, pages)
	}
	harness.CheckItems(t, m.CLI.Export(id), truthWithout(pages))
	if twice := site.servedTwice(); len(twice) > 0 {
		t.Errorf("pages fetched twice: %v", twice)
	}

	// A crawl cancelled part way: its row says what was fetched, and any
	// dropped tasks, not 100 % (a reviewer saw "cancelled 100 % (45 of 45
	// known pages)" beside 21 ok; a cancel purges the rest of the queue).
	m.CLI.Must("throttle", "set", siteHost, "--delay", "300ms", "--parallelism", "1")
	slow := m.CLI.Start("nightly")
	harness.Eventually(t, 30*time.Second, "a few pages of the slow crawl", func() bool { return m.CLI.Status(slow).PagesOK >= 2 })
	m.CLI.Must("crawl", "cancel", slow)
	harness.Eventually(t, 30*time.Second, "the cancelled crawl's tasks dropped", func() bool {
		st := m.CLI.Status(slow)
		return st.State == mesh.CrawlCancelled && st.Queued == 0
	})
	cst := m.CLI.Status(slow)
	br.run("open the crawls", chromedp.Navigate(base+"#crawls"))
	row = br.waitText(fmt.Sprintf(`#crawls-table tr[data-id=%q]`, slow), "cancelled", 10*time.Second)
	fetched := cst.PagesOK + cst.PagesFailed + cst.Dead
	if want := fmt.Sprintf("%d pages fetched before the cancel", fetched); strings.Contains(row, "100 %") || !strings.Contains(row, want) {
		t.Errorf("cancelled crawl's row %q; status %+v: want %q, not 100 %%", row, cst, want)
	}
	if cst.Dropped > 0 && !strings.Contains(row, fmt.Sprintf("%d dropped", cst.Dropped)) {
		t.Errorf("cancelled crawl's row %q does not show its %d dropped tasks", row, cst.Dropped)
	}
	t.Logf("cancelled crawl: %d ok, %d dropped; row %q", cst.PagesOK, cst.Dropped, row)

	// Drain, asked in a dialog: the worker finishes and exits.
	br.run("open the nodes", chromedp.Navigate(base+"#nodes"))
	br.clickRow("drain w2", `#nodes-table tr[data-id="w2"] button[data-cmd="drain"]`)
	br.waitText("#msg", "Worker w2 draining", 10*time.Second)
	br.waitText(`#nodes-table tr[data-id="w2"] .online`, "offline", 30*time.Second)
	dialogMu.Lock()
	if !slices.ContainsFunc(asked, func(q string) bool { return strings.Contains(q, "Drain worker w2") }) {
		t.Errorf("dialogs %q: want one asking before draining w2", asked)
	}
	dialogMu.Unlock()
	br.checkLoopback()
}

func (b *consoleBrowser) isHidden(sel string) bool {
	h, _ := chromedp.Run(b.ctx, chromedp.Evaluate[bool](fmt.Sprintf(`!!(document.querySelector(%q)||{hidden:true}).hidden`, sel)))
	return h
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", u, err, b)
	}
}
