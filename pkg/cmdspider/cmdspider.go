// Package cmdspider runs a `command` spider (DESIGN.md, "Programmable
// spiders"): a program in any language that reads one JSON page a line on
// stdin and writes one JSON answer a line on stdout, in order, while its
// stderr goes to the crawl's logs.
//
// A [Pool] keeps up to Config.Size long-lived processes of one spider, each
// handling one page at a time, so an answer can never be matched to the
// wrong page. A page that times out, a process that crashes and a process
// that writes garbage fail that page only: the process (its whole process
// group) is killed and started again, with exponential back-off while it
// keeps failing. A command that cannot start at all is a [*StartError],
// which the caller makes a crawl-level error.
//
// The command is executed directly, never through a shell, in its own
// process group, in Config.Dir, with the worker's environment minus
// CRAWLMESH_* and NATS_* variables and those named in Config.Hide (the
// worker's secrets are not the spider's business) plus Config.Env.
package cmdspider

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/spiderproto"
)

// Limits.
const (
	DefaultTimeout = 30 * time.Second
	// MaxLine bounds one answer line; a longer line is garbage.
	MaxLine = 16 << 20
	// MaxStderrLine bounds one stderr line handed to Config.Stderr; the
	// rest of a longer line is dropped.
	MaxStderrLine = 4096
	// StopGrace is how long Close lets a process exit after its stdin
	// closes before its process group is killed.
	StopGrace = 2 * time.Second

	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
	quoteMax   = 200 // bytes of garbage quoted in an error
	tailLines  = 5   // stderr lines quoted when a process crashes
)

// Config describes one command spider on one worker.
type Config struct {
	// Name is the spider's name, used in messages.
	Name string
	// Argv is the command and its arguments; Argv[0] is looked up in
	// PATH unless it contains a slash (then it is relative to Dir).
	Argv []string
	// Dir is the working directory, already holding the spider's files.
	Dir string
	// Env is added to the worker's environment (minus CRAWLMESH_*,
	// NATS_* and Hide), as "KEY=value".
	Env []string
	// Hide names variables of the worker's environment the program does
	// not get.
	Hide []string
	// Size is the most processes run at once (default 1).
	Size int
	// Timeout bounds one page (default 30s).
	Timeout time.Duration
	// Stderr gets each line the spider writes on stderr (at most
	// MaxStderrLine bytes, without the newline). It is called from the
	// pool's goroutines and must not block for long. Nil: lines go to
	// Log at debug level.
	Stderr func(line string)
	// Log gets restarts and other pool events; nil discards them.
	Log *slog.Logger
}

// ErrClosed is returned by Parse on a closed pool.
var ErrClosed = errors.New("cmdspider: pool closed")

// Kinds of page failure, for errors.Is on a [*PageError].
var (
	ErrTimeout = errors.New("command spider timed out")
	ErrCrashed = errors.New("command spider crashed")
	ErrGarbage = errors.New("command spider answered garbage")
)

// PageError is a page that failed because of the spider; errors.Is
// matches its Kind (ErrTimeout, ErrCrashed or ErrGarbage). The process
// was recycled, except after a well-formed answer whose item values
// spiderproto.Normalize refuses (ErrGarbage, the process keeps running).
type PageError struct {
	Kind error
	Msg  string
}

func (e *PageError) Error() string { return e.Msg }
func (e *PageError) Unwrap() error { return e.Kind }

// StartError is a command that cannot be started at all (executable not
// found, permission denied, no working directory): no page can succeed,
// so it is the crawl's error rather than a page's.
type StartError struct {
	Spider string
	Argv   []string
	Err    error
}

func (e *StartError) Error() string {
	return fmt.Sprintf("command spider %s: cannot start %q: %v", e.Spider, e.Argv, e.Err)
}
func (e *StartError) Unwrap() error { return e.Err }

// Pool runs the processes of one command spider. It is safe for
// concurrent use.
type Pool struct {
	cfg     Config
	log     *slog.Logger
	env     []string
	sem     chan struct{} // one token per slot in use
	closing chan struct{}
	active  sync.WaitGroup // Parse calls in flight

	mu     sync.Mutex
	closed bool
	free   []*slot // LIFO: a warm process is reused before a cold slot starts one
	all    []*slot
}

// slot is one process place in the pool; it belongs to the Parse that
// took it from free.
type slot struct {
	p         *proc // nil: not running; guarded by Pool.mu for Close
	fails     int   // consecutive failures
	notBefore time.Time
}

// NewPool returns a pool; processes start on demand.
func NewPool(cfg Config) *Pool {
	if cfg.Size <= 0 {
		cfg.Size = 1
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pool{
		cfg:     cfg,
		log:     log.With("spider", cfg.Name),
		env:     childEnv(os.Environ(), cfg.Hide, cfg.Env),
		sem:     make(chan struct{}, cfg.Size),
		closing: make(chan struct{}),
	}
	for range cfg.Size {
		s := &slot{}
		p.all = append(p.all, s)
		p.free = append(p.free, s)
	}
	return p
}

// childEnv is the worker's environment without its own and NATS
// variables and those in hide, plus extra.
func childEnv(base, hide, extra []string) []string {
	out := make([]string, 0, len(base)+len(extra))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(strings.ToUpper(k), "CRAWLMESH_") || strings.HasPrefix(strings.ToUpper(k), "NATS_") || slices.Contains(hide, k) {
			continue
		}
		out = append(out, kv)
	}
	return append(out, extra...)
}

// Parse hands page to one of the spider's processes and returns its
// answer, normalised with spiderproto.Normalize. It waits (bounded by
// ctx) for a free process, and for a restart while the spider is backing
// off after failures.
func (p *Pool) Parse(ctx context.Context, page spiderproto.Page) (spiderproto.Answer, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return spiderproto.Answer{}, ErrClosed
	}
	p.active.Add(1)
	p.mu.Unlock()
	defer p.active.Done()

	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return spiderproto.Answer{}, ctx.Err()
	case <-p.closing:
		return spiderproto.Answer{}, ErrClosed
	}
	p.mu.Lock()
	s := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.free = append(p.free, s)
		p.mu.Unlock()
		<-p.sem
	}()

	for {
		pr, err := p.ready(ctx, s)
		if err != nil {
			return spiderproto.Answer{}, err
		}
		ans, err, healthy := pr.exchange(ctx, p, page)
		if healthy {
			if err == nil {
				s.fails = 0
			}
			return ans, err
		}
		p.retire(s, pr, ctx.Err() == nil)
		if p.isClosed() {
			return spiderproto.Answer{}, ErrClosed
		}
		if errors.Is(err, errIdleDeath) {
			continue // died between pages: start again, this page was never seen
		}
		return spiderproto.Answer{}, err
	}
}

func (p *Pool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// ready returns the slot's running process, starting one (after the
// back-off) when there is none.
func (p *Pool) ready(ctx context.Context, s *slot) (*proc, error) {
	if s.p != nil {
		return s.p, nil
	}
	if d := time.Until(s.notBefore); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-p.closing:
			t.Stop()
			return nil, ErrClosed
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	pr, err := p.start()
	if err != nil {
		return nil, err
	}
	s.p = pr
	return pr, nil
}

// retire kills the slot's process; failed counts towards the back-off.
func (p *Pool) retire(s *slot, pr *proc, failed bool) {
	pr.kill()
	pr.wait()
	p.mu.Lock()
	if s.p == pr {
		s.p = nil
	}
	p.mu.Unlock()
	if failed {
		s.fails++
		d := minBackoff << min(s.fails-1, 10)
		d = min(d, maxBackoff)
		s.notBefore = time.Now().Add(d)
		p.log.Warn("command spider process recycled", "pid", pr.pid, "failures", s.fails, "restart_in", d)
	}
}

// Close stops every process: stdin is closed, and a process group still
// running after StopGrace is killed. It waits for Parse calls in flight,
// which fail with ErrClosed.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.active.Wait()
		return
	}
	p.closed = true
	close(p.closing)
	var procs []*proc
	for _, s := range p.all {
		if s.p != nil {
			procs = append(procs, s.p)
		}
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, pr := range procs {
		wg.Go(func() { pr.stop(StopGrace) })
	}
	wg.Wait()
	p.active.Wait()
	p.mu.Lock()
	for _, s := range p.all {
		s.p = nil
	}
	p.mu.Unlock()
}

// proc is one running process of the spider.
type proc struct {
	name   string
	pid    int
	cmd    *exec.Cmd
	stdin  *os.File
	stdout *os.File // read end; closed to end the reader
	stderr *os.File // read end

	lines      chan []byte   // answers, one per request
	eof        chan struct{} // closed when stdout ended
	readErr    error         // why stdout ended; set before eof closes
	exited     chan struct{} // closed when the process was reaped
	waitErr    error         // set before exited closes
	stderrDone chan struct{}
	served     int           // answers read; only the slot's holder uses it
	lastURL    string        // the page of the last answer read
	dead       chan struct{} // closed by kill: readers stop delivering
	killOnce   sync.Once
	closeOnce  sync.Once
	readers    sync.WaitGroup

	mu          sync.Mutex
	waiting     bool   // a page was written and its answer is awaited
	unsolicited []byte // a line written when no page was waiting
	tail        []string
}

func (p *Pool) start() (*proc, error) {
	cfg := p.cfg
	if len(cfg.Argv) == 0 || cfg.Argv[0] == "" {
		return nil, &StartError{Spider: cfg.Name, Argv: cfg.Argv, Err: errors.New("empty command")}
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("command spider %s: %w", cfg.Name, err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW)
		return nil, fmt.Errorf("command spider %s: %w", cfg.Name, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW, outR, outW)
		return nil, fmt.Errorf("command spider %s: %w", cfg.Name, err)
	}
	cmd := exec.Command(cfg.Argv[0], cfg.Argv[1:]...)
	cmd.Dir = cfg.Dir
	cmd.Env = p.env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		closeAll(inR, inW, outR, outW, errR, errW)
		return nil, &StartError{Spider: cfg.Name, Argv: cfg.Argv, Err: err}
	}
	closeAll(inR, outW, errW) // the child holds its copies
	pr := &proc{
		name: cfg.Name, pid: cmd.Process.Pid, cmd: cmd,
		stdin: inW, stdout: outR, stderr: errR,
		lines: make(chan []byte), eof: make(chan struct{}), exited: make(chan struct{}),
		stderrDone: make(chan struct{}), dead: make(chan struct{}),
	}
	pr.readers.Add(3)
	go pr.waitLoop()
	go pr.stdoutLoop()
	go pr.stderrLoop(p.stderrSink())
	p.log.Debug("command spider started", "pid", pr.pid, "argv", cfg.Argv)
	return pr, nil
}

func (p *Pool) stderrSink() func(string) {
	if p.cfg.Stderr != nil {
		return p.cfg.Stderr
	}
	return func(line string) { p.log.Debug("command spider stderr", "line", line) }
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		_ = f.Close()
	}
}

func (pr *proc) waitLoop() {
	defer pr.readers.Done()
	pr.waitErr = pr.cmd.Wait()
	close(pr.exited)
}

func (pr *proc) stdoutLoop() {
	defer pr.readers.Done()
	defer close(pr.eof)
	sc := bufio.NewScanner(pr.stdout)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLine)
	for sc.Scan() {
		line := bytes.Clone(sc.Bytes())
		pr.mu.Lock()
		if !pr.waiting {
			if pr.unsolicited == nil {
				pr.unsolicited = line
			}
			pr.mu.Unlock()
			continue
		}
		pr.waiting = false
		pr.mu.Unlock()
		select {
		case pr.lines <- line:
		case <-pr.dead:
			return
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("an answer line longer than %d MiB", MaxLine>>20)
		}
		pr.readErr = err
	}
}

func (pr *proc) stderrLoop(sink func(string)) {
	defer pr.readers.Done()
	defer close(pr.stderrDone)
	r := bufio.NewReaderSize(pr.stderr, MaxStderrLine)
	skipping := false // discarding the rest of an over-long line
	for {
		b, err := r.ReadSlice('\n')
		if len(b) > 0 && !skipping {
			line := strings.TrimRight(string(b), "\r\n")
			pr.mu.Lock()
			pr.tail = append(pr.tail, line)
			if len(pr.tail) > tailLines {
				pr.tail = pr.tail[len(pr.tail)-tailLines:]
			}
			pr.mu.Unlock()
			sink(line)
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			skipping = true
		case err != nil:
			return
		default:
			skipping = false
		}
	}
}

// exitedCleanly waits (StopGrace at most) for the process to exit and
// says whether its status was 0.
func (pr *proc) exitedCleanly() bool {
	t := time.NewTimer(StopGrace)
	defer t.Stop()
	select {
	case <-pr.exited:
		return pr.waitErr == nil
	case <-t.C:
		return false
	}
}

// errIdleDeath: the process had died before the page was written.
var errIdleDeath = errors.New("process died while idle")

// exchange writes page and reads its answer. healthy is false when the
// process must be recycled.
func (pr *proc) exchange(ctx context.Context, p *Pool, page spiderproto.Page) (ans spiderproto.Answer, err error, healthy bool) {
	timeout := p.cfg.Timeout
	pr.mu.Lock()
	extra := pr.unsolicited
	pr.mu.Unlock()
	if extra != nil && pr.served > 0 {
		// A second line for the page before (its first was its answer):
		// the process is out of step, not this page. It is restarted and
		// the page goes to a fresh one (found by review: the innocent next
		// page failed and spent an attempt).
		msg := fmt.Sprintf("command spider %s wrote a second line after its answer for %s: %s; the process is restarted", pr.name, pr.lastURL, quote(extra))
		p.log.Warn(msg)
		p.stderrSink()("crawlmesh: " + msg)
		return ans, errIdleDeath, false
	}
	if extra != nil { // before any page: a banner, a debugging print
		return ans, &PageError{Kind: ErrGarbage, Msg: fmt.Sprintf("command spider %s answered out of turn before %s (a line no page asked for): %s", pr.name, page.URL, quote(extra))}, false
	}
	if pr.served > 0 {
		// A process that died after its last answer never saw this
		// page: start another rather than fail the page. A fresh one
		// gets the page, so a spider that cannot run reports why.
		select {
		case <-pr.eof:
			return ans, errIdleDeath, false
		case <-pr.exited:
			return ans, errIdleDeath, false
		default:
		}
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(page); err != nil { // appends the newline
		return ans, fmt.Errorf("command spider %s: encoding %s: %w", pr.name, page.URL, err), true
	}
	deadline := time.Now().Add(timeout)
	timedOut := func() error {
		return &PageError{Kind: ErrTimeout, Msg: fmt.Sprintf("command spider %s timed out after %v on %s", pr.name, timeout, page.URL)}
	}
	pr.mu.Lock()
	pr.waiting = true
	pr.mu.Unlock()

	_ = pr.stdin.SetWriteDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = pr.stdin.SetWriteDeadline(time.Unix(1, 0)) })
	_, werr := pr.stdin.Write(buf.Bytes())
	stop()
	if werr != nil {
		switch {
		case ctx.Err() != nil:
			return ans, ctx.Err(), false
		case errors.Is(werr, os.ErrDeadlineExceeded):
			return ans, timedOut(), false
		}
		if pr.served > 0 && pr.exitedCleanly() {
			return ans, errIdleDeath, false // left with status 0 after its last answer (below)
		}
		return ans, pr.crashed(page.URL), false // EPIPE: it is gone
	}

	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	var line []byte
	select {
	case line = <-pr.lines:
	case <-pr.eof:
		if pr.readErr != nil { // an over-long line, not a crash
			return ans, &PageError{Kind: ErrGarbage, Msg: fmt.Sprintf("command spider %s answered garbage on %s: %v", pr.name, page.URL, pr.readErr)}, false
		}
		if pr.served > 0 && pr.exitedCleanly() {
			// It exited with status 0 after its last answer (a spider
			// that serves N pages, then leaves): the page may have been
			// written before the exit showed, but it was never read. A
			// fresh process gets it; one that exits 0 on its first page
			// fails it, below (found by review: 21 innocent pages failed).
			return ans, errIdleDeath, false
		}
		return ans, pr.crashed(page.URL), false
	case <-t.C:
		return ans, timedOut(), false
	case <-ctx.Done():
		return ans, ctx.Err(), false
	}
	a, err := decode(line)
	if err != nil {
		return ans, &PageError{Kind: ErrGarbage, Msg: fmt.Sprintf("command spider %s answered garbage on %s: %v: %s", pr.name, page.URL, err, quote(line))}, false
	}
	pr.served++
	pr.lastURL = page.URL
	items := a.Items[:0]
	for _, it := range a.Items {
		if it != nil { // a null item is no item
			items = append(items, it)
		}
	}
	a.Items = items
	if err := spiderproto.Normalize(&a); err != nil {
		// The process keeps its turn-taking: only this answer is bad.
		return ans, &PageError{Kind: ErrGarbage, Msg: fmt.Sprintf("command spider %s answered an unusable item on %s: %v", pr.name, page.URL, err)}, true
	}
	return a, nil, true
}

// decode reads one answer strictly: a JSON object with only the known
// fields and nothing after it.
func decode(line []byte) (spiderproto.Answer, error) {
	var a spiderproto.Answer
	trimmed := bytes.TrimSpace(line)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return a, errors.New("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	dec.UseNumber() // 12.50 stays "12.50"
	if err := dec.Decode(&a); err != nil {
		return a, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return a, errors.New("more than one JSON value on the line")
	}
	return a, nil
}

// quote shows at most quoteMax bytes of what a spider wrote.
func quote(b []byte) string {
	if len(b) > quoteMax {
		return fmt.Sprintf("%q…", b[:quoteMax])
	}
	return fmt.Sprintf("%q", b)
}

// crashed describes a process whose stdout ended: its exit status and its
// last stderr lines.
func (pr *proc) crashed(url string) error {
	status := "closed its stdout"
	t := time.NewTimer(StopGrace)
	select {
	case <-pr.exited:
		status = exitStatus(pr.waitErr)
	case <-t.C:
	}
	t.Stop()
	// Let stderr drain so the tail holds the last words.
	t = time.NewTimer(200 * time.Millisecond)
	select {
	case <-pr.stderrDone:
	case <-t.C:
	}
	t.Stop()
	msg := fmt.Sprintf("command spider %s %s on %s", pr.name, status, url)
	pr.mu.Lock()
	tail := append([]string(nil), pr.tail...)
	pr.mu.Unlock()
	if len(tail) > 0 {
		for i, l := range tail {
			if len(l) > quoteMax {
				l = l[:quoteMax] + "…"
			}
			tail[i] = l
		}
		msg += "; stderr: " + strings.Join(tail, " | ")
	}
	return &PageError{Kind: ErrCrashed, Msg: msg}
}

func exitStatus(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "was killed by signal " + ws.Signal().String()
		}
		return fmt.Sprintf("exited with status %d", ee.ExitCode())
	}
	if err == nil {
		return "exited with status 0"
	}
	return "exited: " + err.Error()
}

// kill ends the whole process group at once.
func (pr *proc) kill() {
	pr.killOnce.Do(func() {
		close(pr.dead)
		_ = syscall.Kill(-pr.pid, syscall.SIGKILL)
		_ = pr.stdin.Close()
	})
}

// wait reaps the process and ends the reader goroutines: the pipes' read
// ends are closed so a grandchild that escaped the group cannot hold
// them.
func (pr *proc) wait() {
	<-pr.exited
	t := time.NewTimer(200 * time.Millisecond)
	select {
	case <-pr.stderrDone:
	case <-t.C:
	}
	t.Stop()
	pr.closeOnce.Do(func() { closeAll(pr.stdout, pr.stderr) })
	pr.readers.Wait()
}

// stop asks the process to end by closing its stdin, and kills its group
// after grace.
func (pr *proc) stop(grace time.Duration) {
	_ = pr.stdin.Close()
	t := time.NewTimer(grace)
	select {
	case <-pr.exited:
	case <-t.C:
	}
	t.Stop()
	pr.kill() // also children left behind by a leader that exited
	pr.wait()
}
