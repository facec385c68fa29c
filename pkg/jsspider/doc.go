// Package jsspider runs JavaScript spiders (DESIGN.md, "Programmable
// spiders") on goja, a pure-Go ECMAScript engine.
//
// A script is compiled once with [Compile] (the spec validator calls it at
// `spider apply`: a syntax error comes back with its line and column, and a
// script whose top level throws or that defines no function `parse` is
// refused). A [Pool] then runs `parse(page)` for each page on pooled
// runtimes: each runtime runs the program's top level once when it is
// created and is reused for later pages, so concurrent tasks do not
// serialise on one VM and a script is not compiled per page. A runtime
// whose run was interrupted (timeout, memory, cancellation, stack
// overflow) is discarded, never reused. Globals a script sets persist
// across the pages one runtime handles, but runtimes are independent: a
// script must not count on seeing them.
//
// # The page object
//
// parse gets `page` with url, status, headers (lower-case names), body,
// depth, crawl and spider (see [spiderproto.Page]), and the helpers
// page.css(selector) and page.xpath(expr) (arrays of elements; an element
// has .text() — its text, trimmed, white space collapsed —, .attr(name) —
// as written, or null —, and .css()/.xpath() to query inside it) and
// page.json() (the body parsed; throws on invalid JSON). The HTML is parsed
// lazily, once per page, on the first css/xpath call. An XPath that picks
// attributes or text nodes gives elements whose .text() is that value; a
// scalar XPath (count(), string()) gives one such element. parse returns
// {items: [...], links: [...]} (a missing field is empty); the answer goes
// through [spiderproto.Normalize]. Relative links are returned as written:
// resolving them against the page URL is the mesh's business.
//
// # Sandbox and limits
//
//   - Globals: only the ECMAScript builtins (goja's GoError is deleted) plus
//     console.log/info/warn/error/debug. There is no require, module
//     loader, file system, network, timers (setTimeout etc.), process or
//     host object of any kind: nothing from Go is exposed but the page
//     helpers. eval and Function exist (they are ECMAScript) and only ever
//     run JavaScript inside the same sandbox.
//   - console.log: lines go to [Options.Log] (dropped when nil), at most
//     [Options.MaxLogLines] per page, each cut at 1 KiB.
//   - CPU time: a timer calls Runtime.Interrupt after [Options.Timeout]
//     (default 5 s); the parse fails with "script timed out after 5s on
//     URL". The context given to Parse interrupts the same way. Limit:
//     goja only checks for interrupts between JavaScript instructions, so
//     a single long native call (one huge regexp match, a JSON.parse of a
//     huge string) finishes before the interrupt is seen. Regexps that
//     goja hands to the backtracking engine (regexp2: back-references,
//     look-around) get a match timeout (regexp2.DefaultMatchTimeout,
//     process-wide, set to 2 s by this package) so catastrophic
//     backtracking cannot pin a CPU; other regexps use Go's linear-time
//     engine. goja reads a timed-out match as "no match", so the prelude
//     wraps exec, test and String's match, search, split and replace: a
//     "no match" that took the whole time limit throws a RangeError
//     ("regular expression /…/ timed out after 1950 ms") and the page fails
//     with it, rather than a wrong answer.
//   - Call depth: Runtime.SetMaxCallStackSize([Options.MaxCallStack],
//     default 1000); deeper recursion fails the parse. JSON.parse (and
//     page.json) refuse text nested deeper than 1000 arrays/objects, as
//     goja's decoder recurses on the Go stack and a hostile page could
//     otherwise overflow it and kill the process.
//   - Memory: goja has no heap limit and Go has no per-goroutine
//     accounting, so the bound is a process-wide signal. While any parse
//     runs, one watchdog goroutine samples runtime/metrics
//     "/memory/classes/heap/objects:bytes" (every heap object, live or
//     not yet swept, kept current by each allocation) every 5 ms; each
//     running parse records the value when it starts, and a parse during
//     which it grows by more than [Options.MaxHeap] (default 256 MiB) is
//     interrupted and fails with "script exceeded the memory limit (256
//     MiB) on URL"; its runtime is dropped, so the memory is freed by the
//     next GC (a parse that starts with more than the budget unswept since
//     the last GC runs one first, so a runaway's garbage does not loosen
//     its retry's bound). A parse seen over its budget is confirmed by a
//     GC first (garbage does not count against it) unless the heap grows
//     by twice the budget before that GC ends, and one parse is stopped a
//     tick, the one running longest; the others are measured afresh from
//     then on. Limits, honestly: it cannot tell whose memory grew, so a
//     parse that started before a runaway one and is still running when
//     the runaway crosses the budget is the one stopped (its task is
//     retried, the worker lives; the runaway is stopped once it grows by
//     the budget again); a runaway is stopped between two instructions, so the one
//     that crossed the budget completes (a string doubling from 256 MiB
//     ends near 512 MiB); and a single allocation larger than the budget (e.g.
//     'x'.repeat(1e9)) happens before any watchdog can react, so
//     String.prototype.repeat, padStart and padEnd are wrapped to refuse
//     results larger than MaxHeap.
//
// # Errors
//
// A parse fails with "script threw on URL: MESSAGE (line N)" when the
// script throws, and with a clear message when parse returns something
// other than {items, links} or a value Normalize cannot convert.
package jsspider
