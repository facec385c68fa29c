// Package files is the mesh's shared storage: the JetStream Object Store
// "files" (streams/objectstore/files.json), the NFS of a classic crawler
// farm. Operators put spider scripts, seed lists and exports there
// (crawlmesh files put|get|ls|rm); masters read seed lists from it; workers
// read spider files through a [Cache] that keeps each version on local disk
// by digest.
//
// Names are flat: letters, digits, '.', '_' and '-', at most 128
// characters, not starting with a dot. Objects are streamed in both
// directions (chunks of the Object Store), so memory stays flat whatever
// their size; a put is refused past the size limit (64 MiB unless set).
package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the Object Store the mesh's shared files live in.
const Bucket = "files"

// DefaultMaxSize is the largest file [Store.Put] accepts unless
// [WithMaxSize] says otherwise.
const DefaultMaxSize int64 = 64 << 20

// MaxNameLen is the longest name a file may have.
const MaxNameLen = 128

// ErrNotFound means no file has the name (errors.Is).
var ErrNotFound = errors.New("no such file")

// NameError is a file name that breaks a rule.
type NameError struct {
	Name string
	Rule string
}

func (e *NameError) Error() string { return fmt.Sprintf("file name %q: %s", e.Name, e.Rule) }

// SizeError is a file over the size limit.
type SizeError struct {
	Name  string
	Size  int64 // bytes read when the limit was passed, or the whole size when known
	Limit int64
	// AtLeast says Size is what was read before the put stopped, not the
	// whole file's size.
	AtLeast bool
}

func (e *SizeError) Error() string {
	size := HumanSize(e.Size)
	if e.AtLeast {
		size = "more than " + HumanSize(e.Limit)
	}
	return fmt.Sprintf("file %s is %s: over the limit of %s per file", e.Name, size, HumanSize(e.Limit))
}

// HumanSize writes n bytes in binary units: 512 B, 1.5 KiB, 64 MiB.
func HumanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	s := fmt.Sprintf("%.1f", v)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + string("KMGTP"[exp]) + "iB"
}

// ValidName checks a file name: 1-128 of [A-Za-z0-9._-], not starting
// with a dot. The error is a *NameError naming the rule broken.
func ValidName(name string) error {
	switch {
	case name == "":
		return &NameError{Name: name, Rule: "empty; give a name of letters, digits, '.', '_' and '-'"}
	case len(name) > MaxNameLen:
		return &NameError{Name: name, Rule: fmt.Sprintf("%d characters long, at most %d allowed", len(name), MaxNameLen)}
	case name[0] == '.':
		return &NameError{Name: name, Rule: "must not start with a dot"}
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		case r == '/' || r == '\\':
			return &NameError{Name: name, Rule: fmt.Sprintf("must not contain %q: names are flat (files put LOCAL stores LOCAL under its base name)", r)}
		default:
			return &NameError{Name: name, Rule: fmt.Sprintf("character %q not allowed; use letters, digits, '.', '_' and '-'", r)}
		}
	}
	return nil
}

// Info describes a stored file.
type Info struct {
	Name     string    `json:"name"`
	Size     int64     `json:"size"`
	Digest   string    `json:"digest"` // "SHA-256=" and the base64url digest, as the Object Store keeps it
	Modified time.Time `json:"modified"`
}

func infoOf(oi *jetstream.ObjectInfo) Info {
	return Info{Name: oi.Name, Size: int64(oi.Size), Digest: oi.Digest, Modified: oi.ModTime.UTC()}
}

// Store is the Object Store of shared files.
type Store struct {
	obs     jetstream.ObjectStore
	maxSize int64
}

// Option tunes a Store.
type Option func(*Store)

// WithMaxSize sets the largest file Put accepts (≤ 0: DefaultMaxSize).
func WithMaxSize(n int64) Option {
	return func(s *Store) {
		if n > 0 {
			s.maxSize = n
		}
	}
}

// MissingError means the Object Store does not exist: no master has
// created the mesh's assets on this NATS yet.
type MissingError struct{ Err error }

func (e *MissingError) Error() string {
	return "Object Store " + Bucket + " does not exist: a master creates it at start-up (has a master of this version started on this NATS?)"
}

func (e *MissingError) Unwrap() error { return e.Err }

// Open binds to the Object Store (it never creates it: masters do, from
// streams/).
func Open(ctx context.Context, js jetstream.JetStream, opts ...Option) (*Store, error) {
	obs, err := js.ObjectStore(ctx, Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, &MissingError{Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("open Object Store %s: %w", Bucket, err)
	}
	return New(obs, opts...), nil
}

// New wraps a bound Object Store.
func New(obs jetstream.ObjectStore, opts ...Option) *Store {
	s := &Store{obs: obs, maxSize: DefaultMaxSize}
	for _, o := range opts {
		o(s)
	}
	return s
}

// MaxSize is the largest file Put accepts.
func (s *Store) MaxSize() int64 { return s.maxSize }

// CheckSize refuses a file of size bytes over the limit, before any upload.
func (s *Store) CheckSize(name string, size int64) error {
	if size > s.maxSize {
		return &SizeError{Name: name, Size: size, Limit: s.maxSize}
	}
	return nil
}

// limitReader fails with a *SizeError once more than limit bytes are read.
type limitReader struct {
	r     io.Reader
	name  string
	n     int64
	limit int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.limit {
		return 0, &SizeError{Name: l.name, Size: l.n, Limit: l.limit, AtLeast: true}
	}
	return n, err
}

// Put stores r under name, streamed in chunks; it replaces a file of that
// name once the new one is complete (a failed put leaves the old one). A
// reader longer than the limit fails with a *SizeError and stores nothing.
func (s *Store) Put(ctx context.Context, name string, r io.Reader) (Info, error) {
	if err := ValidName(name); err != nil {
		return Info{}, err
	}
	if r == nil {
		r = strings.NewReader("")
	}
	lr := &limitReader{r: r, name: name, limit: s.maxSize}
	oi, err := s.obs.Put(ctx, jetstream.ObjectMeta{Name: name}, lr)
	if err != nil {
		var se *SizeError
		if errors.As(err, &se) {
			return Info{}, se
		}
		return Info{}, fmt.Errorf("put %s: %w", name, err)
	}
	return infoOf(oi), nil
}

// Stat describes the named file; a missing one is ErrNotFound.
func (s *Store) Stat(ctx context.Context, name string) (Info, error) {
	if err := ValidName(name); err != nil {
		return Info{}, err
	}
	oi, err := s.obs.GetInfo(ctx, name)
	if err != nil {
		return Info{}, notFound(name, err)
	}
	return infoOf(oi), nil
}

func notFound(name string, err error) error {
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("%w: %s (crawlmesh files ls lists them)", ErrNotFound, name)
	}
	return fmt.Errorf("file %s: %w", name, err)
}

// Reader is a stored file being read; Read fails at the end if the
// content does not match the stored digest.
type Reader struct {
	io.ReadCloser
	Info Info
}

// Open opens the named file for streaming.
func (s *Store) Open(ctx context.Context, name string) (*Reader, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	res, err := s.obs.Get(ctx, name)
	if err != nil {
		return nil, notFound(name, err)
	}
	oi, err := res.Info()
	if err != nil {
		_ = res.Close()
		return nil, notFound(name, err)
	}
	return &Reader{ReadCloser: res, Info: infoOf(oi)}, nil
}

// Get writes the named file to w, streamed, and checks its digest.
func (s *Store) Get(ctx context.Context, name string, w io.Writer) (Info, error) {
	r, err := s.Open(ctx, name)
	if err != nil {
		return Info{}, err
	}
	defer r.Close()
	n, err := io.Copy(w, r)
	if err != nil {
		return r.Info, fmt.Errorf("get %s: %w", name, err)
	}
	if n != r.Info.Size {
		return r.Info, fmt.Errorf("get %s: read %d bytes, the store says %d", name, n, r.Info.Size)
	}
	return r.Info, nil
}

// List describes every file, by name.
func (s *Store) List(ctx context.Context) ([]Info, error) {
	ois, err := s.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return []Info{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list files: %w", err)
	}
	out := make([]Info, 0, len(ois))
	for _, oi := range ois {
		out = append(out, infoOf(oi))
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Delete removes the named file; a missing one is ErrNotFound.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if _, err := s.obs.GetInfo(ctx, name); err != nil {
		return notFound(name, err)
	}
	if err := s.obs.Delete(ctx, name); err != nil {
		return notFound(name, err)
	}
	return nil
}
