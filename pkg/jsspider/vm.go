package jsspider

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/crawlmesh/crawlmesh/pkg/htmlnav"
	"strings"
	"time"

	"github.com/andybalholm/cascadia"
	"github.com/antchfx/xpath"
	"github.com/dop251/goja"
	"github.com/dop251/goja/parser"
	"golang.org/x/net/html"

	"github.com/crawlmesh/crawlmesh/pkg/spiderproto"
)

// maxCached bounds each runtime's cache of compiled selectors and XPaths.
const maxCached = 256

// vmState is one sandboxed runtime with the program's top level run. It
// is used by one goroutine at a time.
type vmState struct {
	vm        *goja.Runtime
	opts      Options
	pageProto *goja.Object
	elemProto *goja.Object
	errorCtor goja.Value
	css       map[string]cascadia.SelectorGroup
	xp        map[string]*xpath.Expr
	pg        *pageState // the page being parsed, nil between parses
}

// pageState is one parse's page.
type pageState struct {
	page   *spiderproto.Page
	obj    *goja.Object
	root   *html.Node // parsed on the first css/xpath
	nodes  map[*goja.Object]*html.Node
	json   goja.Value
	logged int
}

// newRuntime makes a sandboxed runtime and runs p's top level in it.
func newRuntime(p *Program, opts Options) (*vmState, error) {
	vm := goja.New()
	vm.SetMaxCallStackSize(opts.MaxCallStack)
	vm.SetParserOptions(parser.WithDisableSourceMaps) // eval, Function
	rt := &vmState{vm: vm, opts: opts, css: map[string]cascadia.SelectorGroup{}, xp: map[string]*xpath.Expr{}}
	const where = "at top level"
	_, _, err := rt.guard(context.Background(), where, func() (goja.Value, error) {
		if err := rt.sandbox(); err != nil {
			return nil, err
		}
		return vm.RunProgram(p.prg)
	})
	if err != nil {
		return nil, err
	}
	if _, ok := goja.AssertFunction(vm.Get("parse")); !ok {
		return nil, fmt.Errorf("script defines no function parse(page)")
	}
	return rt, nil
}

// sandbox strips what goja adds beyond ECMAScript, hardens the builtins
// that could allocate without bound in one native call (see prelude) and
// adds console and the page helpers' prototypes.
func (rt *vmState) sandbox() error {
	vm := rt.vm
	g := vm.GlobalObject()
	for _, name := range []string{"GoError"} {
		if err := g.Delete(name); err != nil {
			return err
		}
	}
	rt.errorCtor = g.Get("Error")
	pre, err := vm.RunString(prelude)
	if err != nil {
		return err
	}
	harden, _ := goja.AssertFunction(pre)
	depthOK := vm.ToValue(func(s string) bool { return jsonDepthOK(s) })
	clock := vm.ToValue(func() int64 { return time.Now().UnixMilli() }) // not the script's Date, which it may replace
	// A match timed out when it took about RegexpTimeout (less a margin for
	// timer slack).
	reTimeout := vm.ToValue(RegexpTimeout.Milliseconds() - 50)
	if _, err := harden(goja.Undefined(), vm.ToValue(rt.opts.MaxHeap), depthOK, vm.ToValue(maxJSONDepth), clock, reTimeout); err != nil {
		return err
	}

	console := vm.NewObject()
	logFn := vm.ToValue(rt.log)
	for _, name := range []string{"log", "info", "warn", "error", "debug"} {
		if err := console.Set(name, logFn); err != nil {
			return err
		}
	}
	if err := g.Set("console", console); err != nil {
		return err
	}

	rt.pageProto = vm.NewObject()
	rt.elemProto = vm.NewObject()
	for _, m := range []struct {
		o    *goja.Object
		name string
		fn   func(goja.FunctionCall) goja.Value
	}{
		{rt.pageProto, "css", rt.pageCSS},
		{rt.pageProto, "xpath", rt.pageXPath},
		{rt.pageProto, "json", rt.pageJSON},
		{rt.elemProto, "text", rt.elemText},
		{rt.elemProto, "attr", rt.elemAttr},
		{rt.elemProto, "css", rt.elemCSS},
		{rt.elemProto, "xpath", rt.elemXPath},
	} {
		if err := m.o.DefineDataProperty(m.name, vm.ToValue(m.fn), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_FALSE); err != nil {
			return err
		}
	}
	return nil
}

// throw raises a JavaScript Error with msg.
func (rt *vmState) throw(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if o, err := rt.vm.New(rt.errorCtor, rt.vm.ToValue(msg)); err == nil {
		panic(o)
	}
	panic(rt.vm.NewTypeError(msg))
}

func (rt *vmState) log(call goja.FunctionCall) goja.Value {
	pg := rt.pg
	if pg == nil || rt.opts.Log == nil || pg.logged >= rt.opts.MaxLogLines {
		return goja.Undefined()
	}
	pg.logged++
	var b strings.Builder
	for i, a := range call.Arguments {
		if i > 0 {
			b.WriteByte(' ')
		}
		if b.Len() > maxLogLine {
			break
		}
		b.WriteString(a.String())
	}
	line := b.String()
	if len(line) > maxLogLine {
		line = strings.ToValidUTF8(line[:maxLogLine], "") + "…"
	}
	rt.opts.Log(pg.page, line)
	return goja.Undefined()
}

// newPage builds the page object of one parse.
func (rt *vmState) newPage(page *spiderproto.Page) *pageState {
	vm := rt.vm
	o := vm.CreateObject(rt.pageProto)
	h := vm.NewObject()
	for k, v := range page.Headers {
		_ = h.Set(k, v)
	}
	_ = o.Set("url", page.URL)
	_ = o.Set("status", page.Status)
	_ = o.Set("headers", h)
	_ = o.Set("body", page.Body)
	_ = o.Set("depth", page.Depth)
	_ = o.Set("crawl", page.Crawl)
	_ = o.Set("spider", page.Spider)
	rt.pg = &pageState{page: page, obj: o}
	return rt.pg
}

func (rt *vmState) endPage() { rt.pg = nil }

// current is the page a page method was called on; a page object kept
// from an earlier parse is refused.
func (rt *vmState) current(call goja.FunctionCall, method string) *pageState {
	if rt.pg == nil || call.This != rt.pg.obj {
		rt.throw("page.%s: called on a page other than the one being parsed", method)
	}
	return rt.pg
}

// doc is the page's HTML, parsed on first use.
func (rt *vmState) doc(pg *pageState) *html.Node {
	if pg.root == nil {
		root, err := html.Parse(strings.NewReader(pg.page.Body))
		if err != nil {
			rt.throw("page: cannot parse HTML: %v", err)
		}
		pg.root = root
		pg.nodes = make(map[*goja.Object]*html.Node)
	}
	return pg.root
}

func (rt *vmState) pageCSS(call goja.FunctionCall) goja.Value {
	pg := rt.current(call, "css")
	return rt.queryCSS(pg, rt.doc(pg), call.Argument(0), "page.css")
}

func (rt *vmState) pageXPath(call goja.FunctionCall) goja.Value {
	pg := rt.current(call, "xpath")
	root := rt.doc(pg)
	return rt.queryXPath(pg, root, call.Argument(0), "page.xpath")
}

func (rt *vmState) pageJSON(call goja.FunctionCall) goja.Value {
	pg := rt.current(call, "json")
	if pg.json != nil {
		return pg.json
	}
	body := pg.page.Body
	if !jsonDepthOK(body) {
		rt.throw("page.json: the body of %s nests deeper than %d levels", pg.page.URL, maxJSONDepth)
	}
	var raw json.RawMessage
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		rt.throw("page.json: the body of %s is not valid JSON: %v", pg.page.URL, err)
	}
	jsonObj := rt.vm.Get("JSON").ToObject(rt.vm)
	parse, ok := goja.AssertFunction(jsonObj.Get("parse"))
	if !ok {
		rt.throw("page.json: JSON.parse is not a function")
	}
	v, err := parse(jsonObj, rt.vm.ToValue(body))
	if err != nil {
		panic(err)
	}
	pg.json = v
	return v
}

// elem is the node behind an element object of the current page.
func (rt *vmState) elem(call goja.FunctionCall, method string) (*pageState, *html.Node) {
	o, _ := call.This.(*goja.Object)
	if rt.pg != nil && rt.pg.nodes != nil && o != nil {
		if n, ok := rt.pg.nodes[o]; ok {
			return rt.pg, n
		}
	}
	rt.throw("element.%s: not an element of the page being parsed", method)
	return nil, nil
}

func (rt *vmState) elemText(call goja.FunctionCall) goja.Value {
	_, n := rt.elem(call, "text")
	if n.Type == html.TextNode || n.Type == html.CommentNode {
		return rt.vm.ToValue(htmlnav.Collapse(n.Data))
	}
	return rt.vm.ToValue(htmlnav.Collapse(htmlnav.Text(n)))
}

func (rt *vmState) elemAttr(call goja.FunctionCall) goja.Value {
	_, n := rt.elem(call, "attr")
	if n.Type != html.ElementNode {
		return goja.Null()
	}
	v, ok := htmlnav.LookupAttr(n, call.Argument(0).String())
	if !ok {
		return goja.Null()
	}
	return rt.vm.ToValue(v)
}

func (rt *vmState) elemCSS(call goja.FunctionCall) goja.Value {
	pg, n := rt.elem(call, "css")
	return rt.queryCSS(pg, n, call.Argument(0), "element.css")
}

func (rt *vmState) elemXPath(call goja.FunctionCall) goja.Value {
	pg, n := rt.elem(call, "xpath")
	return rt.queryXPath(pg, n, call.Argument(0), "element.xpath")
}

// element wraps n as an element object of the current page.
func (rt *vmState) element(pg *pageState, n *html.Node) goja.Value {
	o := rt.vm.CreateObject(rt.elemProto)
	pg.nodes[o] = n
	return o
}

func (rt *vmState) queryCSS(pg *pageState, at *html.Node, arg goja.Value, what string) goja.Value {
	src := arg.String()
	sel, ok := rt.css[src]
	if !ok {
		var err error
		// A selector list ("a.next, h3 a"), as declarative css takes.
		if sel, err = cascadia.ParseGroup(src); err != nil {
			rt.throw("%s: invalid selector %q: %v", what, src, err)
		}
		if len(rt.css) >= maxCached {
			clear(rt.css)
		}
		rt.css[src] = sel
	}
	nodes := cascadia.QueryAll(at, sel)
	out := make([]any, len(nodes))
	for i, n := range nodes {
		out[i] = rt.element(pg, n)
	}
	return rt.vm.NewArray(out...)
}

func (rt *vmState) queryXPath(pg *pageState, at *html.Node, arg goja.Value, what string) (res goja.Value) {
	src := arg.String()
	expr, ok := rt.xp[src]
	if !ok {
		var err error
		if expr, err = xpath.Compile(src); err != nil {
			rt.throw("%s: invalid XPath %q: %v", what, src, err)
		}
		if len(rt.xp) >= maxCached {
			clear(rt.xp)
		}
		rt.xp[src] = expr
	}
	var out []any
	text := func(s string) { out = append(out, rt.element(pg, &html.Node{Type: html.TextNode, Data: s})) }
	failed := func() (msg any) {
		defer func() { msg = recover() }()
		switch v := expr.Evaluate(htmlnav.NewNav(pg.root, at)).(type) {
		case *xpath.NodeIterator:
			for v.MoveNext() {
				n, ok := v.Current().(*htmlnav.Nav)
				if !ok {
					continue
				}
				if n.OnAttr() {
					text(n.Value())
				} else {
					out = append(out, rt.element(pg, n.Node()))
				}
			}
		case string:
			text(v)
		case float64:
			text(fmt.Sprint(v))
		case bool:
			text(fmt.Sprint(v))
		}
		return nil
	}()
	if failed != nil {
		delete(rt.xp, src) // its state is unknown
		rt.throw("%s: XPath %q failed: %v", what, src, failed)
	}
	return rt.vm.NewArray(out...)
}
