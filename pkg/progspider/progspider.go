// Package progspider runs a worker's programmable spiders: JavaScript
// (`script` inline, or `script_file` from Object Store files) on pooled
// sandboxed runtimes (pkg/jsspider), and `command` spiders as long-lived
// processes speaking line-JSON (pkg/cmdspider) in a working directory
// holding the spider's `files`. It picks, per page, the runtime for the
// spider's current version: a script is compiled once per worker and
// version (inline text or file digest), a command's processes are kept per
// crawl and version of its files, so a file put mid-crawl is used by the
// next page and an unchanged one is never fetched or compiled again.
package progspider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/cmdspider"
	"github.com/crawlmesh/crawlmesh/pkg/files"
	"github.com/crawlmesh/crawlmesh/pkg/jsspider"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/pkg/spiderproto"
)

// CheckScript compiles src as a spider script; the spec validator uses it
// (spec.CheckScript) so `spider apply` refuses a syntax error with its line
// and column.
func CheckScript(src string) error {
	_, err := jsspider.Compile("script", src)
	return err
}

// Config sets up a Runner.
type Config struct {
	// Files is the worker's cache of Object Store files; nil makes
	// script_file and files specs fail their crawl on this worker.
	Files *files.Cache
	// WorkDir holds the commands' working directories, under a directory
	// of this process's own (its pid): one per crawl and version of the
	// spider's files, removed when its processes stop.
	WorkDir string
	// Processes is how many processes a command spider may run at once on
	// this worker (its concurrency; started as pages need them).
	Processes int
	// ScriptTimeout and CommandTimeout bound one page (defaults: the
	// engines' own, 5 s and 30 s).
	ScriptTimeout, CommandTimeout time.Duration
	// Stderr gets a command's stderr lines and a script's console.log
	// lines, for the crawl's logs.
	Stderr func(crawl, spider, line string)
	Log    *slog.Logger
	// HideEnv, when set, names more variables a command does not get
	// (the ${env:} references of sinks and the cluster configuration,
	// which share a process's environment under `crawlmesh up`).
	HideEnv func() []string
}

// Runner runs programmable spiders; safe for concurrent use.
type Runner struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	scripts map[string]*jsspider.Pool  // by version: "inline:<sha>" or "file:<digest>"
	cmds    map[string]*cmdEntry       // by crawl and version
	failed  map[string]error           // compile errors by version, so a bad script fails fast
	order   []string                   // scripts in insertion order, to bound the map
	byCrawl map[string]map[string]bool // crawl -> cmds keys
	dirs    int                        // working directories made, to name the next
	lines   *lineSampler               // program log lines per crawl
	retired sync.WaitGroup             // older versions' pools closing; Close waits
}

type cmdEntry struct {
	pool *cmdspider.Pool
	dir  string // the working directory, removed after pool.Close
	used time.Time
}

// close stops e's processes, waiting for pages in flight, then removes its
// working directory (what the command wrote there is the crawl's scratch).
func (e *cmdEntry) close(log *slog.Logger) {
	e.pool.Close()
	if err := os.RemoveAll(e.dir); err != nil {
		log.Warn("removing a command's working directory", "dir", e.dir, "err", err)
	}
}

// maxScripts bounds the compiled versions kept per worker.
const maxScripts = 64

// New returns a Runner.
func New(cfg Config) *Runner {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Processes <= 0 {
		cfg.Processes = 1
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = filepath.Join(os.TempDir(), "crawlmesh-spiders")
	}
	r := &Runner{cfg: cfg, log: cfg.Log.With("component", "progspider"), scripts: map[string]*jsspider.Pool{},
		cmds: map[string]*cmdEntry{}, failed: map[string]error{}, byCrawl: map[string]map[string]bool{}, lines: newLineSampler()}
	r.sweepLocked() // at start: a dead worker's spiders must not run until the first command
	return r
}

// Parse runs s's code on page.
func (r *Runner) Parse(ctx context.Context, s *spec.Spec, page spiderproto.Page) (spiderproto.Answer, error) {
	switch {
	case s.Script != "":
		sum := sha256.Sum256([]byte(s.Script))
		pool, err := r.script("inline:"+hex.EncodeToString(sum[:8]), s.Name, func() (string, error) { return s.Script, nil })
		if err != nil {
			return spiderproto.Answer{}, err
		}
		return scriptAnswer(ctx, s, pool, page)
	case s.ScriptFile != "":
		if r.cfg.Files == nil {
			return spiderproto.Answer{}, crawlLevel(fmt.Errorf("spider %s: script_file %s: this worker has no access to Object Store files", s.Name, s.ScriptFile))
		}
		// Held until compiled (or found compiled), so the cache cannot
		// delete this version between the lookup and the read.
		path, info, release, err := r.cfg.Files.Acquire(ctx, s.ScriptFile)
		if err != nil {
			return spiderproto.Answer{}, fileError(s, s.ScriptFile, err)
		}
		pool, err := r.script("file:"+info.Digest, s.Name, func() (string, error) {
			b, err := os.ReadFile(path)
			return string(b), err
		})
		release()
		if err != nil {
			return spiderproto.Answer{}, err
		}
		return scriptAnswer(ctx, s, pool, page)
	case len(s.Command) > 0:
		pool, err := r.command(ctx, s, page.Crawl)
		if err != nil {
			return spiderproto.Answer{}, err
		}
		ans, err := pool.Parse(ctx, page)
		if _, ok := errors.AsType[*cmdspider.StartError](err); ok {
			return ans, crawlLevel(err)
		}
		return ans, err
	}
	return spiderproto.Answer{}, fmt.Errorf("spider %s has no script or command", s.Name)
}

// scriptAnswer runs a page through a script's pool; its error names the
// spider, as a command's does, for the dead letters' reason.
func scriptAnswer(ctx context.Context, s *spec.Spec, pool *jsspider.Pool, page spiderproto.Page) (spiderproto.Answer, error) {
	ans, err := pool.Parse(ctx, page)
	if err != nil {
		return ans, fmt.Errorf("script spider %s: %w", s.Name, err)
	}
	return ans, nil
}

// script returns the pool of a script version, compiling it once.
func (r *Runner) script(version, spider string, src func() (string, error)) (*jsspider.Pool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.scripts[version]; p != nil {
		return p, nil
	}
	if err := r.failed[version]; err != nil {
		return nil, err
	}
	text, err := src()
	if err != nil {
		return nil, fmt.Errorf("spider %s: read script: %w", spider, err)
	}
	prg, err := jsspider.Compile(spider, text)
	if err != nil {
		// A script that does not compile fails every page alike: the
		// crawl, not each task, says so.
		err = crawlLevel(fmt.Errorf("spider %s: %w", spider, err))
		r.failed[version] = err
		return nil, err
	}
	opts := jsspider.Options{Timeout: r.cfg.ScriptTimeout}
	if r.cfg.Stderr != nil {
		opts.Log = func(p *spiderproto.Page, line string) { r.stderr(p.Crawl, p.Spider, "console.log: "+line) }
	}
	p := jsspider.NewPool(prg, opts)
	r.scripts[version] = p
	r.order = append(r.order, version)
	if len(r.order) > maxScripts {
		delete(r.scripts, r.order[0])
		r.order = r.order[1:]
	}
	return p, nil
}

// command returns the process pool of s for crawl, with a working directory
// holding the current version of s.Files.
func (r *Runner) command(ctx context.Context, s *spec.Spec, crawl string) (*cmdspider.Pool, error) {
	var digests []string
	paths := map[string]string{}
	for _, name := range s.Files {
		if r.cfg.Files == nil {
			return nil, crawlLevel(fmt.Errorf("spider %s: files %s: this worker has no access to Object Store files", s.Name, name))
		}
		// Held until copied into the working directory: the processes
		// use the copy, so the cache may delete its version afterwards.
		p, info, release, err := r.cfg.Files.Acquire(ctx, name)
		if err != nil {
			return nil, fileError(s, name, err)
		}
		defer release()
		digests = append(digests, name+"="+info.Digest)
		paths[name] = p
	}
	h := sha256.Sum256([]byte(strings.Join(s.Command, "\x00") + "\x01" + strings.Join(digests, "\x00")))
	version := hex.EncodeToString(h[:8])
	key := crawl + "/" + s.Name + "/" + version
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.cmds[key]; e != nil {
		e.used = time.Now()
		return e.pool, nil
	}
	if r.dirs == 0 {
		r.sweepLocked()
	}
	// Numbered, so that an older pool still closing (below) never removes
	// a directory a newer pool of the same version uses.
	r.dirs++
	dir := filepath.Join(r.cfg.WorkDir, strconv.Itoa(os.Getpid()), fmt.Sprintf("%s-%s-%s-%d", safe(s.Name), version, safe(crawl), r.dirs))
	if err := populate(dir, paths); err != nil {
		return nil, crawlLevel(fmt.Errorf("spider %s: working directory: %w", s.Name, err))
	}
	// The variables the spec itself refers to (a login password, a header
	// key) are for the mesh's requests, not for the program.
	hide := s.EnvRefs()
	if r.cfg.HideEnv != nil {
		hide = append(hide, r.cfg.HideEnv()...)
	}
	cfg := cmdspider.Config{Name: s.Name, Argv: s.Command, Dir: dir, Size: r.cfg.Processes,
		Timeout: r.cfg.CommandTimeout, Log: r.log, Hide: hide}
	if r.cfg.Stderr != nil {
		cfg.Stderr = func(line string) { r.stderr(crawl, s.Name, line) }
	}
	pool := cmdspider.NewPool(cfg)
	r.cmds[key] = &cmdEntry{pool: pool, dir: dir, used: time.Now()}
	if r.byCrawl[crawl] == nil {
		r.byCrawl[crawl] = map[string]bool{}
	}
	// An older version of this spider's files in the same crawl: its
	// processes stop once idle (Close waits for pages in flight).
	for old := range r.byCrawl[crawl] {
		if strings.HasPrefix(old, crawl+"/"+s.Name+"/") {
			e := r.cmds[old]
			r.retired.Go(func() { e.close(r.log) })
			delete(r.cmds, old)
			delete(r.byCrawl[crawl], old)
		}
	}
	r.byCrawl[crawl][key] = true
	return pool, nil
}

// sweepLocked removes, when the Runner is made and before this process's
// first command, the directories of processes that are gone (killed -9
// before they could remove them), and kills what still runs in them. Each process works under WorkDir/<pid>: two meshes on one
// host may run workers of the same node id, and a live process's
// directory is never touched.
func (r *Runner) sweepLocked() {
	des, err := os.ReadDir(r.cfg.WorkDir)
	if err != nil {
		return // none yet
	}
	n := 0
	for _, de := range des {
		pid, err := strconv.Atoi(de.Name())
		if err != nil || pid == os.Getpid() || alive(pid) {
			continue
		}
		dir := filepath.Join(r.cfg.WorkDir, de.Name())
		if k := killOrphans(dir); k > 0 {
			r.log.Warn("killed spider processes a stopped worker left running", "dir", dir, "processes", k)
		}
		if err := os.RemoveAll(dir); err != nil {
			r.log.Warn("removing a working directory a stopped process left", "dir", de.Name(), "err", err)
			continue
		}
		n++
	}
	if n > 0 {
		r.log.Info("removed working directories stopped processes left", "dir", r.cfg.WorkDir, "count", n)
	}
}

// alive says whether a process of that pid exists (a reused pid keeps a
// directory a little longer; never is a live one's removed).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// stderr hands a program's log line to Config.Stderr, sampled (see
// logAllLines).
func (r *Runner) stderr(crawl, spider, line string) {
	if line, ok := r.lines.keep(crawl, line); ok {
		r.cfg.Stderr(crawl, spider, line)
	}
}

// EndCrawl stops the command processes of a crawl that no longer runs.
func (r *Runner) EndCrawl(crawl string) {
	r.lines.forget(crawl)
	r.mu.Lock()
	var ended []*cmdEntry
	for key := range r.byCrawl[crawl] {
		if e := r.cmds[key]; e != nil {
			ended = append(ended, e)
			delete(r.cmds, key)
		}
	}
	delete(r.byCrawl, crawl)
	r.mu.Unlock()
	for _, e := range ended {
		e.close(r.log)
	}
}

// Close stops every command process.
func (r *Runner) Close() {
	r.mu.Lock()
	var all []*cmdEntry
	for key, e := range r.cmds {
		all = append(all, e)
		delete(r.cmds, key)
	}
	r.byCrawl = map[string]map[string]bool{}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, e := range all {
		wg.Go(func() { e.close(r.log) })
	}
	wg.Wait()
	r.retired.Wait()
	_ = os.Remove(filepath.Join(r.cfg.WorkDir, strconv.Itoa(os.Getpid()))) // this process's, if emptied
}

// populate makes dir hold a copy of each file (the cache's copies are
// shared and must never be written by user code, and are deleted once old:
// a copy, not a link, keeps a running command's files whatever the cache
// does).
func populate(dir string, paths map[string]string) error {
	// Left by a process that died (numbers start again on a restart).
	_ = os.RemoveAll(dir)
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	for name, src := range paths {
		if err := copyFile(src, filepath.Join(tmp, name)); err != nil {
			return err
		}
	}
	return os.Rename(tmp, dir)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	// Executable, so a file can be the command itself ("./spider").
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// safe makes s usable in a directory name.
func safe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// fileError says which file of which spider could not be had. A file the
// store does not have, or no store at all, fails the crawl (every page
// would fail alike, each to dead letters); a store that cannot answer now
// fails the page, which is retried.
func fileError(s *spec.Spec, name string, err error) error {
	_, missing := errors.AsType[*files.MissingError](err)
	if missing || errors.Is(err, files.ErrNotFound) {
		// The store's error already says how to list them.
		return crawlLevel(fmt.Errorf("spider %s: %w; crawlmesh files put %s adds it", s.Name, err, name))
	}
	return fmt.Errorf("spider %s: file %s: %w", s.Name, name, err)
}

// crawlLevelError is an error that stops the crawl on this worker
// (crawler.CrawlLevel).
type crawlLevelError struct{ error }

func (e crawlLevelError) Unwrap() error    { return e.error }
func (e crawlLevelError) CrawlLevel() bool { return true }

func crawlLevel(err error) error { return crawlLevelError{err} }
