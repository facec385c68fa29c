package jsspider

// prelude hardens a fresh runtime before the script's top level runs. It
// is a function expression called with the memory budget (bytes) and a
// native check of JSON nesting; nothing it uses stays reachable from the
// script's globals.
//
// Builtins run natively and goja only sees an interrupt between
// JavaScript instructions, so a single call that makes a huge value would
// allocate it before the memory watchdog could stop the script. The
// common ways to do that in one call are wrapped to refuse results bigger
// than the budget; JSON.parse refuses text nested deeper than the Go
// stack can safely take.
const prelude = `(function (limit, jsonDepthOK, maxDepth, clock, reTimeout) {
	'use strict';
	const big = (what, n) => { throw new RangeError(what + ': ' + n + ' is over the memory limit of this sandbox'); };
	const wrap = (obj, name, check) => {
		const orig = obj[name];
		const f = {[name](...a) { check(this, a); return Reflect.apply(orig, this, a); }}[name];
		Object.defineProperty(obj, name, {value: f, writable: true, configurable: true, enumerable: false});
	};
	const chars = limit / 2; // UTF-16 code units
	wrap(String.prototype, 'repeat', (s, a) => {
		const n = Math.trunc(Number(a[0]));
		if (n > 0 && String(s).length * n > chars) big('String.prototype.repeat', n);
	});
	for (const name of ['padStart', 'padEnd']) {
		wrap(String.prototype, name, (s, a) => { if (Number(a[0]) > chars) big('String.prototype.' + name, a[0]); });
	}
	const len = o => (o !== null && o !== undefined) ? Number(o.length) >>> 0 : 0;
	wrap(Array.prototype, 'join', (o, a) => {
		const sep = a[0] === undefined ? 1 : String(a[0]).length;
		if (len(o) * Math.max(sep, 1) > chars) big('Array.prototype.join', len(o));
	});
	for (const name of ['fill', 'sort', 'reverse', 'toSorted', 'toReversed', 'copyWithin']) {
		if (typeof Array.prototype[name] === 'function') {
			wrap(Array.prototype, name, (o) => { if (len(o) > limit / 16) big('Array.prototype.' + name, len(o)); });
		}
	}
	wrap(Array, 'from', (_, a) => { if (len(a[0]) > limit / 16) big('Array.from', len(a[0])); });
	const guard = (name, size) => {
		const C = globalThis[name];
		if (typeof C !== 'function') return;
		globalThis[name] = new Proxy(C, {
			construct(t, a, nt) {
				if (typeof a[0] === 'number' && a[0] * size > limit) big(name, a[0]);
				return Reflect.construct(t, a, nt);
			},
		});
	};
	guard('ArrayBuffer', 1);
	for (const [n, s] of [['Int8Array', 1], ['Uint8Array', 1], ['Uint8ClampedArray', 1], ['Int16Array', 2], ['Uint16Array', 2],
		['Int32Array', 4], ['Uint32Array', 4], ['Float32Array', 4], ['Float64Array', 8], ['BigInt64Array', 8], ['BigUint64Array', 8]]) {
		guard(n, s);
	}
	wrap(JSON, 'parse', (_, a) => {
		a[0] = String(a[0]);
		if (!jsonDepthOK(a[0])) throw new SyntaxError('JSON nested deeper than ' + maxDepth + ' levels');
	});
	// A backtracking match that runs out of time reads as "no match" in
	// goja: a "no match" that took the whole time limit throws instead.
	const define = (obj, name, f) => Object.defineProperty(obj, name, {value: f, writable: true, configurable: true, enumerable: false});
	const timedOut = (re, t0) => {
		if (clock() - t0 >= reTimeout) throw new RangeError('regular expression ' + String(re) + ' timed out after ' + reTimeout + ' ms');
	};
	const rexec = RegExp.prototype.exec;
	define(RegExp.prototype, 'exec', {exec(s) {
		const t0 = clock();
		const r = Reflect.apply(rexec, this, [s]);
		if (r === null) timedOut(this, t0);
		return r;
	}}.exec);
	// goja's test matches natively, not through exec: as the spec has it.
	define(RegExp.prototype, 'test', {test(s) { return this.exec(s) !== null; }}.test);
	for (const [name, none] of [['match', r => r === null], ['search', r => r === -1], ['split', r => r.length <= 1],
		['replace', (r, s) => r === String(s)], ['replaceAll', (r, s) => r === String(s)]]) {
		const orig = String.prototype[name];
		if (typeof orig !== 'function') continue;
		define(String.prototype, name, {[name](re, ...rest) {
			if (!(re instanceof RegExp)) return Reflect.apply(orig, this, [re, ...rest]); // no clock for a plain string
			const t0 = clock();
			const r = Reflect.apply(orig, this, [re, ...rest]);
			if (none(r, this)) timedOut(re, t0);
			return r;
		}}[name]);
	}
})`

// maxJSONDepth bounds the nesting JSON.parse accepts.
const maxJSONDepth = 1000

// jsonDepthOK reports whether JSON-like text s nests arrays and objects at
// most maxJSONDepth deep (strings skipped; s need not be valid).
func jsonDepthOK(s string) bool {
	depth, inStr, esc := 0, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '[' || c == '{':
			depth++
			if depth > maxJSONDepth {
				return false
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return true
}
