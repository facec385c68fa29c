package jsspider

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/dlclark/regexp2/v2"
	"github.com/dop251/goja"
	"github.com/dop251/goja/parser"

	"github.com/crawlmesh/crawlmesh/pkg/spiderproto"
)

// Defaults for the zero values of Options.
const (
	DefaultTimeout      = 5 * time.Second
	DefaultMaxHeap      = 256 << 20
	DefaultMaxCallStack = 1000
	DefaultMaxLogLines  = 100
	// RegexpTimeout bounds one match of a backtracking (regexp2) regexp.
	RegexpTimeout = 2 * time.Second
	maxLogLine    = 1 << 10
)

func init() {
	// Process-wide, but goja is regexp2/v2's only user: it bounds a
	// catastrophic backtrack, which no interrupt can stop (native code).
	regexp2.DefaultMatchTimeout = RegexpTimeout
}

// Options are a pool's limits; zero values take the defaults.
type Options struct {
	// Timeout is the CPU-time limit of one parse (default 5 s); a
	// runtime's first run of the top level gets the same.
	Timeout time.Duration
	// MaxHeap is how far the process's live heap may grow during one
	// parse (default 256 MiB): see the package doc for what that means.
	MaxHeap int64
	// MaxCallStack is the deepest JavaScript call stack (default 1000).
	MaxCallStack int
	// MaxIdle is the number of idle runtimes kept (default 2×GOMAXPROCS);
	// more are created when more parses run at once, and dropped after.
	MaxIdle int
	// MaxLogLines bounds console.log lines per page (default 100).
	MaxLogLines int
	// Log gets console.log lines (each at most 1 KiB); nil drops them.
	Log func(page *spiderproto.Page, line string)
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxHeap <= 0 {
		o.MaxHeap = DefaultMaxHeap
	}
	if o.MaxCallStack <= 0 {
		o.MaxCallStack = DefaultMaxCallStack
	}
	if o.MaxIdle <= 0 {
		o.MaxIdle = 2 * runtime.GOMAXPROCS(0)
	}
	if o.MaxLogLines <= 0 {
		o.MaxLogLines = DefaultMaxLogLines
	}
	return o
}

// compiles counts goja compilations of scripts (tests check a script is
// compiled once, not per page).
var compiles atomic.Int64

// Program is a compiled script; it may be shared by any number of pools
// and goroutines.
type Program struct {
	name string
	prg  *goja.Program
}

// Name is the name the script was compiled under.
func (p *Program) Name() string { return p.name }

// Compile compiles a script once and checks it: a syntax error comes back
// as "script line L, column C: SyntaxError: ..."; the top level is run
// once in a throwaway sandbox with the default limits, and a throw there
// or a missing function parse is an error too.
func Compile(name, src string) (*Program, error) {
	compiles.Add(1)
	// Source maps off: the parser would otherwise read any file a
	// "//# sourceMappingURL=" comment names.
	ast, err := parser.ParseFile(nil, name, src, 0, parser.WithDisableSourceMaps)
	if err != nil {
		return nil, syntaxError(err)
	}
	prg, err := goja.CompileAST(ast, false)
	if err != nil {
		return nil, syntaxError(err)
	}
	p := &Program{name: name, prg: prg}
	if _, err := newRuntime(p, Options{}.withDefaults()); err != nil {
		return nil, err
	}
	return p, nil
}

func syntaxError(err error) error {
	var list parser.ErrorList
	var one *parser.Error
	var ce *goja.CompilerSyntaxError
	switch {
	case errors.As(err, &list) && len(list) > 0:
		return fmt.Errorf("script line %d, column %d: SyntaxError: %s", list[0].Position.Line, list[0].Position.Column, list[0].Message)
	case errors.As(err, &one):
		return fmt.Errorf("script line %d, column %d: SyntaxError: %s", one.Position.Line, one.Position.Column, one.Message)
	case errors.As(err, &ce) && ce.File != nil:
		pos := ce.File.Position(ce.Offset)
		return fmt.Errorf("script line %d, column %d: SyntaxError: %s", pos.Line, pos.Column, ce.Message)
	}
	return fmt.Errorf("script: %w", err)
}

// Pool runs one program's parse on pooled runtimes. It is safe for
// concurrent use.
type Pool struct {
	p    *Program
	opts Options
	idle chan *vmState
}

// NewPool returns a pool for p; runtimes are created as parses need them.
func NewPool(p *Program, opts Options) *Pool {
	opts = opts.withDefaults()
	return &Pool{p: p, opts: opts, idle: make(chan *vmState, opts.MaxIdle)}
}

// Parse runs parse(page) and returns its answer, normalised. A script
// that throws, times out, goes over a limit or answers something other
// than {items, links} fails with an error saying so; ctx cancels the run.
func (pl *Pool) Parse(ctx context.Context, page spiderproto.Page) (spiderproto.Answer, error) {
	var rt *vmState
	select {
	case rt = <-pl.idle:
	default:
		var err error
		if rt, err = newRuntime(pl.p, pl.opts); err != nil {
			return spiderproto.Answer{}, err
		}
	}
	ans, healthy, err := rt.parsePage(ctx, &page)
	if healthy {
		select {
		case pl.idle <- rt:
		default:
		}
	}
	return ans, err
}

// limitError is what a runtime is interrupted with.
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }

// guard runs f with the limits: a timer and ctx interrupt the runtime,
// the heap watchdog too. healthy is false when the runtime may not be
// reused (interrupted, stack overflow, a Go panic).
func (rt *vmState) guard(ctx context.Context, where string, f func() (goja.Value, error)) (v goja.Value, healthy bool, err error) {
	vm, opts := rt.vm, rt.opts
	var interrupted atomic.Bool
	interrupt := func(msg string) {
		interrupted.Store(true)
		vm.Interrupt(&limitError{msg})
	}
	t := time.AfterFunc(opts.Timeout, func() {
		interrupt(fmt.Sprintf("script timed out after %v %s", opts.Timeout, where))
	})
	stopCtx := context.AfterFunc(ctx, func() {
		interrupt(fmt.Sprintf("script cancelled %s: %v", where, context.Cause(ctx)))
	})
	stopMem := watchHeap(uint64(opts.MaxHeap), func() {
		interrupt(fmt.Sprintf("script exceeded the memory limit (%d MiB) %s", opts.MaxHeap>>20, where))
	})
	defer func() {
		// A stop that comes too late means an interrupt is (or will be)
		// pending and would hit the runtime's next run.
		late := !t.Stop()
		late = !stopCtx() || late
		stopMem()
		if late {
			interrupted.Store(true)
		}
		if x := recover(); x != nil {
			v, healthy, err = nil, false, fmt.Errorf("script failed %s: %v", where, x)
			return
		}
		if err != nil {
			err = rt.explain(err, where)
		}
		// An interrupt that came after f returned would hit the next run.
		healthy = healthy && !interrupted.Load()
	}()
	v, err = f()
	var ie *goja.InterruptedError
	var so *goja.StackOverflowError
	healthy = err == nil || !(errors.As(err, &ie) || errors.As(err, &so))
	return v, healthy, err
}

// explain turns a goja error into the package's messages.
func (rt *vmState) explain(err error, where string) error {
	var ie *goja.InterruptedError
	var so *goja.StackOverflowError
	var ex *goja.Exception
	switch {
	case errors.As(err, &ie):
		if le, ok := ie.Value().(*limitError); ok {
			return le
		}
		return fmt.Errorf("script interrupted %s: %v", where, ie.Value())
	case errors.As(err, &so):
		return fmt.Errorf("script exceeded the call stack limit (%d) %s", rt.opts.MaxCallStack, where)
	case errors.As(err, &ex):
		msg := "undefined"
		if v := ex.Value(); v != nil {
			msg = v.String()
		}
		for _, fr := range ex.Stack() {
			if pos := fr.Position(); pos.Line > 0 {
				return fmt.Errorf("script threw %s: %s (line %d)", where, msg, pos.Line)
			}
		}
		return fmt.Errorf("script threw %s: %s", where, msg)
	}
	return fmt.Errorf("script failed %s: %w", where, err)
}

// parsePage calls parse(page) and converts its answer.
func (rt *vmState) parsePage(ctx context.Context, page *spiderproto.Page) (spiderproto.Answer, bool, error) {
	where := "on " + page.URL
	st := rt.newPage(page)
	defer rt.endPage()
	v, healthy, err := rt.guard(ctx, where, func() (goja.Value, error) {
		fn, ok := goja.AssertFunction(rt.vm.Get("parse"))
		if !ok {
			return nil, fmt.Errorf("parse is not a function")
		}
		return fn(goja.Undefined(), st.obj)
	})
	if err != nil {
		return spiderproto.Answer{}, healthy, err
	}
	ans, err := answer(v)
	if err != nil {
		return spiderproto.Answer{}, healthy, fmt.Errorf("script answered garbage %s: %w", where, err)
	}
	if err := spiderproto.Normalize(&ans); err != nil {
		return spiderproto.Answer{}, healthy, fmt.Errorf("script answered garbage %s: %w", where, err)
	}
	return ans, healthy, nil
}

// answer converts parse's result, {items: [...], links: [...]}.
func answer(v goja.Value) (spiderproto.Answer, error) {
	var ans spiderproto.Answer
	obj, ok := v.(*goja.Object)
	if !ok || isArray(obj) || isFunc(obj) {
		return ans, fmt.Errorf("parse returned %s, want an object {items: [...], links: [...]}", describe(v))
	}
	if items := obj.Get("items"); !missing(items) {
		arr, ok := items.(*goja.Object)
		if !ok || !isArray(arr) {
			return ans, fmt.Errorf("items is %s, want an array of objects", describe(items))
		}
		n := arrayLen(arr)
		ans.Items = make([]map[string]any, 0, n)
		for i := range n {
			e := arr.Get(strconv.Itoa(i))
			o, ok := e.(*goja.Object)
			if !ok || isArray(o) || isFunc(o) {
				return ans, fmt.Errorf("items[%d] is %s, want an object", i, describe(e))
			}
			m, ok := o.Export().(map[string]any)
			if !ok {
				return ans, fmt.Errorf("items[%d] is %s, want a plain object", i, describe(e))
			}
			ans.Items = append(ans.Items, m)
		}
	}
	if links := obj.Get("links"); !missing(links) {
		arr, ok := links.(*goja.Object)
		if !ok || !isArray(arr) {
			return ans, fmt.Errorf("links is %s, want an array of strings", describe(links))
		}
		n := arrayLen(arr)
		ans.Links = make([]string, 0, n)
		for i := range n {
			e := arr.Get(strconv.Itoa(i))
			s, ok := e.Export().(string)
			if !ok {
				return ans, fmt.Errorf("links[%d] is %s, want a string", i, describe(e))
			}
			ans.Links = append(ans.Links, s)
		}
	}
	return ans, nil
}

func missing(v goja.Value) bool { return v == nil || goja.IsUndefined(v) || goja.IsNull(v) }

func isArray(o *goja.Object) bool { return o.ClassName() == "Array" }

func isFunc(o *goja.Object) bool { _, ok := goja.AssertFunction(o); return ok }

func arrayLen(o *goja.Object) int {
	n := o.Get("length").ToInteger()
	if n < 0 {
		return 0
	}
	return int(n)
}

// describe names a JavaScript value's kind for an error message.
func describe(v goja.Value) string {
	switch {
	case v == nil || goja.IsUndefined(v):
		return "undefined"
	case goja.IsNull(v):
		return "null"
	}
	if o, ok := v.(*goja.Object); ok {
		switch {
		case isArray(o):
			return "an array"
		case isFunc(o):
			return "a function"
		}
		return "an object (" + o.ClassName() + ")"
	}
	s := v.String()
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	switch v.Export().(type) {
	case string:
		return "a string (" + strconv.Quote(s) + ")"
	case int64, float64:
		return "a number (" + s + ")"
	case bool:
		return "a boolean (" + s + ")"
	}
	return "a " + v.ExportType().String() + " (" + s + ")"
}
