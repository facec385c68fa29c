package sitemap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"

	"github.com/crawlmesh/crawlmesh/pkg/urlnorm"
)

// Defaults for the zero values of [Walker].
const (
	DefaultMaxDepth = 3
	DefaultMaxFiles = 1000
)

// Walker follows sitemap indexes from a set of root sitemaps.
type Walker struct {
	// Fetch opens one sitemap file. It is where the crawler puts its
	// request settings, robots and politeness; a non-2xx answer should be
	// an error.
	Fetch func(ctx context.Context, url string) (io.ReadCloser, error)
	// MaxDepth bounds index nesting: roots are depth 0 and the sitemaps an
	// index at depth d lists are at depth d+1, read only up to MaxDepth.
	// Zero or less means DefaultMaxDepth.
	MaxDepth int
	// MaxFiles bounds the sitemap files read in one walk (zero or less:
	// DefaultMaxFiles), since each index may list 50,000 more.
	MaxFiles int
	// Limits applies to each file.
	Limits Limits
	// OnFile, if set, hears about every file read or refused, for logs.
	OnFile func(File)
}

// File reports one sitemap file of a walk.
type File struct {
	URL     string
	Depth   int
	Kind    Kind
	Entries int   // entries read from it, including ones already seen
	Err     error // why it failed, or stopped early
}

// Walk reads the sitemaps at roots with fetch, following indexes, and
// streams every page URL to emit. See [Walker.Walk].
func Walk(ctx context.Context, roots []string, fetch func(ctx context.Context, url string) (io.ReadCloser, error), emit func(loc string) error, maxDepth, maxFiles int) error {
	w := &Walker{Fetch: fetch, MaxDepth: maxDepth, MaxFiles: maxFiles}
	return w.Walk(ctx, roots, emit)
}

// emitError marks an error from emit, which stops the whole walk, apart
// from a file's own errors, which only stop that file.
type emitError struct{ err error }

func (e emitError) Error() string { return e.err.Error() }

// Walk reads the roots breadth first. Sitemap URLs are compared in
// canonical form, so no sitemap is read twice in one walk. Page URLs are
// emitted as written, resolved against their sitemap when relative; the
// caller filters them like any link. A file that fails (fetch error,
// malformed, over a limit) does not stop the others: its entries read so
// far are kept and its error is part of the joined error returned at the
// end. An error from emit, or ctx ending, stops the walk at once.
func (w *Walker) Walk(ctx context.Context, roots []string, emit func(loc string) error) error {
	if w.Fetch == nil {
		return errors.New("sitemap: Walker.Fetch is nil")
	}
	maxDepth, maxFiles := w.MaxDepth, w.MaxFiles
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	if maxFiles <= 0 {
		maxFiles = DefaultMaxFiles
	}
	type job struct {
		url   string
		depth int
	}
	var (
		queue []job
		errs  []error
		seen  = map[string]bool{}
	)
	for _, r := range roots {
		c, err := urlnorm.Canonical(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("sitemap %q: %w", r, err))
			continue
		}
		if !seen[c] {
			seen[c] = true
			queue = append(queue, job{c, 0})
		}
	}
	files, tooDeep := 0, 0
	for len(queue) > 0 {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if files == maxFiles {
			errs = append(errs, fmt.Errorf("sitemap: file limit of %d reached; %d sitemaps not read", maxFiles, len(queue)))
			break
		}
		j := queue[0]
		queue = queue[1:]
		files++
		base, _ := url.Parse(j.url) // canonical, so it parses
		f := File{URL: j.url, Depth: j.depth}
		var children []string
		f.Kind, f.Err = w.readOne(ctx, j.url, func(e Entry) error {
			f.Entries++
			if e.Kind == Index {
				c, err := urlnorm.Resolve(base, e.Loc)
				if err != nil {
					return nil // not a URL a sitemap can be fetched from
				}
				if j.depth+1 > maxDepth {
					tooDeep++
				} else if !seen[c] {
					seen[c] = true
					children = append(children, c)
				}
				return nil
			}
			if err := emit(resolve(base, e.Loc)); err != nil {
				return emitError{err}
			}
			return nil
		})
		// Children of a file that failed half-way are still followed:
		// they were read before the failure, like pages are.
		for _, c := range children {
			queue = append(queue, job{c, j.depth + 1})
		}
		var ee emitError
		if errors.As(f.Err, &ee) {
			f.Err = ee.err
			w.report(f)
			return ee.err
		}
		w.report(f)
		if f.Err != nil {
			errs = append(errs, fmt.Errorf("sitemap %s: %w", j.url, f.Err))
		}
	}
	if tooDeep > 0 {
		errs = append(errs, fmt.Errorf("sitemap: %d sitemaps nested deeper than %d indexes not read", tooDeep, maxDepth))
	}
	return errors.Join(errs...)
}

func (w *Walker) readOne(ctx context.Context, u string, fn func(Entry) error) (Kind, error) {
	body, err := w.Fetch(ctx, u)
	if err != nil {
		return Unknown, err
	}
	defer body.Close()
	return w.Limits.Read(body, fn)
}

func (w *Walker) report(f File) {
	if w.OnFile != nil {
		w.OnFile(f)
	}
}

// resolve makes a relative loc absolute against its sitemap (sitemaps.org
// wants absolute ones; some sites write paths) and leaves anything else,
// even junk, for the caller's own checks to refuse with a reason.
func resolve(base *url.URL, loc string) string {
	ref, err := url.Parse(loc)
	if err != nil || ref.IsAbs() {
		return loc
	}
	return base.ResolveReference(ref).String()
}
