package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/crawlmesh/crawlmesh/pkg/sink"
	"github.com/crawlmesh/crawlmesh/services/internal/harness"
)

// TestConsoleBrowserSinks drives the console's sinks page in headless
// chromium on a mesh of processes. Without the token an add is refused and
// nothing is stored; with it, a webhook sink to a receiver on loopback is
// added from the form, a crawl runs, and the receiver gets every item while
// the page shows the sink delivering with its delivered count; a second
// sink whose URL takes a token from a variable the master lacks shows
// failing (needs a fix) with its last error, the reference as written; a
// PostgreSQL URL with a literal password is refused with the CLI's own
// message next to the URL field; both sinks are removed from their rows.
// Every request the browser makes stays on loopback.
func TestConsoleBrowserSinks(t *testing.T) {
	token, tokenFile := consoleToken(t)
	m := harness.StartMesh(t, harness.MeshConfig{Workers: 2, HTTP: true, MasterArgs: []string{"--api-token-file", tokenFile}})
	site := newTrapSite(t, 40, 0)
	m.CLI.Apply(site.spec("books"))
	hook := newHookReceiver(t, 0)
	api := "http://" + m.HTTP["m1"] + "/api/v1/"
	listed := func() map[string]sink.Row {
		var rows []sink.Row
		getJSON(t, api+"sinks", &rows)
		out := map[string]sink.Row{}
		for _, r := range rows {
			out[r.Name] = r
		}
		return out
	}
	br := newConsoleBrowser(t)
	base := br.front(m.HTTP["m1"])
	row := func(name string) string { return `#sinks-table tr[data-id="` + name + `"]` }
	fillForm := func(name, url, spiders string) {
		// chromedp.SetValue refuses an empty value: set them in the page.
		for sel, v := range map[string]string{"#sink-name": name, "#sink-url": url, "#sink-spiders": spiders} {
			if _, err := chromedp.Run(br.ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(document.querySelector(%q).value = %q, true)`, sel, v))); err != nil {
				t.Fatalf("set %s: %v", sel, err)
			}
		}
	}

	br.run("open the sinks", chromedp.Navigate(base+"#sinks"))
	br.waitText("#sinks-summary", "No sink", 20*time.Second)

	// Without the token: refused, nothing stored.
	fillForm("hook", hook.srv.URL+"/items", "books")
	br.run("add without the token", chromedp.Click(chromedp.CSS("#sink-add")))
	br.waitText("#msg", "Refused (401)", 10*time.Second)
	if got := listed(); len(got) != 0 {
		t.Fatalf("stored after a refused add: %+v", got)
	}

	// With the token: the webhook sink, then one whose token is missing.
	br.run("enter the token", chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS("#token-save")))
	br.waitText("#auth-status", "Token entered", 5*time.Second)
	br.run("add the webhook sink", chromedp.Click(chromedp.CSS("#sink-add")))
	br.waitText("#msg", "Sink hook added (webhook, "+hook.srv.URL+"/items)", 10*time.Second)
	br.waitText(row("hook")+" .spiders", "books", 10*time.Second)
	noToken := "http://127.0.0.1:" + strconv.Itoa(freePort(t)) + "/hook?token=${env:CRAWLMESH_NO_SUCH_TOKEN}"
	fillForm("nohook", noToken, "")
	br.run("add the sink without its token", chromedp.Click(chromedp.CSS("#sink-add")))
	br.waitText("#msg", "Sink nohook added", 10*time.Second)
	br.waitText(row("nohook")+" .target", "${env:CRAWLMESH_NO_SUCH_TOKEN}", 10*time.Second)
	br.waitText(row("nohook")+" .spiders", "every spider", 5*time.Second)

	// A literal password: refused next to the URL with the CLI's message.
	pw := "postgres://app:hunter2@127.0.0.1:5432/items"
	_, cliErr, code := m.CLI.Run("sink", "add", "db", "--postgres", pw)
	cliMsg := strings.TrimSpace(cliErr)
	if i := strings.Index(cliMsg, "invalid sink"); code == 0 || i < 0 {
		t.Fatalf("sink add with a literal password: exit %d, %q", code, cliErr)
	} else {
		cliMsg = strings.SplitN(cliMsg[i:], "\n", 2)[0]
	}
	br.chooseByKeys("#sink-type", "p", "postgres")
	if br.isHidden("#sink-table-field") {
		t.Error("type postgres does not show the table field")
	}
	fillForm("db", pw, "")
	br.run("add a postgres sink with a password", chromedp.Click(chromedp.CSS("#sink-add")))
	br.waitText("#sink-url-error", cliMsg, 10*time.Second)
	br.waitText("#msg", "Sink not added", 5*time.Second)
	if strings.Contains(br.text("#sink-url-error"), "hunter2") {
		t.Error("the refusal repeats the password")
	}
	br.scrollTop("#h-sink-add")
	br.shot("sinks-error.png")
	if _, ok := listed()["db"]; ok {
		t.Fatal("the sink with a literal password was stored")
	}
	br.chooseByKeys("#sink-type", "w", "webhook")
	fillForm("", "", "")

	// A crawl: the receiver gets every item; the page shows the count.
	id := m.CLI.Start("books")
	if err := m.CLI.Wait(id, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	want := site.expected()
	waitFor(t, 30*time.Second, "every item at the receiver", func() bool { got, _, _ := hook.got(); return len(got) >= len(want) })
	got, posts, problems := hook.got()
	checkItems(t, got, want)
	if len(problems) > 0 {
		t.Fatalf("repeats outside their batch: %v", problems)
	}
	br.waitText(row("hook")+" .delivered", strconv.Itoa(len(want)), 30*time.Second)
	br.waitText(row("hook")+" .state", "delivering", 10*time.Second)
	br.waitText(row("hook")+" .lag", "0", 10*time.Second)
	br.waitText(row("hook")+" .last-error", "none", 5*time.Second)
	br.waitText(row("nohook")+" .state", "failing", 30*time.Second)
	br.waitText(row("nohook")+" .state", "needs a fix", 5*time.Second)
	br.waitText(row("nohook")+" .last-error", "needs a fix: --webhook: environment variable CRAWLMESH_NO_SUCH_TOKEN is not set on the master", 10*time.Second)
	if r := listed()["hook"]; r.Status == nil || r.Status.Delivered != uint64(len(want)) {
		t.Errorf("GET /api/v1/sinks: hook %+v; want %d delivered", r, len(want))
	}
	t.Logf("%d items in %d posts; page shows hook delivered %s", len(want), posts, br.text(row("hook")+" .delivered"))
	br.scrollTop("#h-sinks")
	br.shot("sinks.png")

	// Remove both from their rows.
	for _, name := range []string{"hook", "nohook"} {
		br.clickRow("remove "+name, row(name)+" button.action")
		br.waitText("#msg", "Sink "+name+" removed", 10*time.Second)
	}
	br.waitText("#sinks-summary", "No sink", 10*time.Second)
	if got := listed(); len(got) != 0 {
		t.Fatalf("listed after removing both: %+v", got)
	}
	br.checkLoopback()
}
