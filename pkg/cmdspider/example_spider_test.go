package cmdspider_test

import (
	"context"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/cmdspider"
	"github.com/crawlmesh/crawlmesh/pkg/extract"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/pkg/spiderproto"
	"github.com/crawlmesh/crawlmesh/pkg/synthsite"
)

// TestExampleShopSpider runs deploy/examples/shop_spider.py and
// deploy/examples/shop_spider_go on synthsite pages and wants exactly the
// declarative spider's items and links. It needs python3: CI installs it,
// so its absence is a failure, not a skip.
func TestExampleShopSpider(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatalf("python3 is needed to test deploy/examples/shop_spider.py: %v", err)
	}
	dir, err := filepath.Abs("../../deploy/examples")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "shop_spider")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "./shop_spider_go")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building deploy/examples/shop_spider_go: %v\n%s", err, out)
	}
	for _, argv := range [][]string{{"python3", "shop_spider.py"}, {bin}} {
		t.Run(filepath.Base(argv[len(argv)-1]), func(t *testing.T) { checkShopSpider(t, dir, argv) })
	}
}

func checkShopSpider(t *testing.T, dir string, argv []string) {
	const base = "http://127.0.0.1:9000"
	cfg := synthsite.Config{Pages: 50}
	sp, err := spec.Parse([]byte(synthsite.Spec("synth", base, cfg)))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := extract.Compile(sp)
	if err != nil {
		t.Fatal(err)
	}
	site := synthsite.New(cfg)
	pool := cmdspider.NewPool(cmdspider.Config{Name: "shop", Argv: argv, Dir: dir,
		Size: 2, Timeout: 10 * time.Second, Stderr: func(l string) { t.Logf("spider stderr: %s", l) }})
	defer pool.Close()

	for i := range cfg.Pages {
		u := base + "/p/" + strconv.Itoa(i) + ".html"
		rec := httptest.NewRecorder()
		site.ServeHTTP(rec, httptest.NewRequest("GET", u, nil))
		if rec.Code != 200 {
			t.Fatalf("%s: status %d", u, rec.Code)
		}
		final, _ := url.Parse(u)
		want, err := rules.Page(final, rec.Header().Get("Content-Type"), rec.Body.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		got, err := pool.Parse(ctx, spiderproto.Page{URL: u, Status: rec.Code, Headers: spiderproto.Headers(rec.Header()),
			Body: rec.Body.String(), Crawl: "c1", Spider: "shop"})
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if len(want.Items) != 1 || !reflect.DeepEqual(got.Items, want.Items) {
			t.Errorf("%s: items %v, declarative %v", u, got.Items, want.Items)
		}
		// The mesh resolves and canonicalises a spider's links, as it
		// does here; the spider answers them as written.
		var links []string
		for _, l := range got.Links {
			if c, ok := rules.Link(final, l); ok {
				links = append(links, c)
			}
		}
		if !reflect.DeepEqual(links, want.Links) {
			t.Errorf("%s: links %v (resolved: %v), declarative %v", u, got.Links, links, want.Links)
		}
	}
}
