package sink

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/envsubst"
)

// Types of sink.
const (
	TypePostgres = "postgres"
	TypeWebhook  = "webhook"
)

// DefaultTable is the PostgreSQL table when none is given.
const DefaultTable = "crawlmesh_items"

// Defaults of the batch and give-up settings.
const (
	DefaultBatchSize = 500
	DefaultBatchWait = time.Second
	DefaultGiveUp    = 10 * time.Minute
	MaxBatchSize     = 10000
)

// StatusPrefix starts the key of a sink's status in bucket sinks.
const StatusPrefix = "status."

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid sink")

// Sink is one sink as stored in bucket sinks under its name.
type Sink struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Spiders whose crawls the sink takes; empty: every spider. A spider
	// not applied yet may be named.
	Spiders  []string  `json:"spiders,omitempty"`
	Postgres *Postgres `json:"postgres,omitempty"`
	Webhook  *Webhook  `json:"webhook,omitempty"`
	// BatchSize is the most items a batch holds; BatchWait how long a batch
	// waits to fill before it goes (the latency bound).
	BatchSize int      `json:"batch_size,omitempty"`
	BatchWait Duration `json:"batch_wait,omitempty"`
	// CreatedAt decides which crawls the sink takes: every matching crawl
	// that had not ended by then.
	CreatedAt time.Time `json:"created_at"`
}

// Postgres is a PostgreSQL sink's settings.
type Postgres struct {
	// URL is a libpq URL or keyword/value string; a password only as a
	// ${env:NAME} reference.
	URL   string `json:"url"`
	Table string `json:"table,omitempty"`
}

// Webhook is a webhook sink's settings.
type Webhook struct {
	URL string `json:"url"`
	// GiveUp is how long one batch is retried before its items go to the
	// sink's dead letters.
	GiveUp Duration `json:"give_up,omitempty"`
	// Timeout of one POST.
	Timeout Duration `json:"timeout,omitempty"`
}

// Duration is a time.Duration stored as its text ("1s").
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

var (
	nameRe   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	tableRe  = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,62}$`)
	spiderRe = regexp.MustCompile(`^[a-z0-9-]+$`)
)

// Normalize fills defaults.
func (s *Sink) Normalize() {
	if s.BatchSize == 0 {
		s.BatchSize = DefaultBatchSize
		if s.Type == TypeWebhook {
			s.BatchSize = 100
		}
	}
	if s.BatchWait == 0 {
		s.BatchWait = Duration(DefaultBatchWait)
	}
	if s.Postgres != nil && s.Postgres.Table == "" {
		s.Postgres.Table = DefaultTable
	}
	if s.Webhook != nil {
		if s.Webhook.GiveUp == 0 {
			s.Webhook.GiveUp = Duration(DefaultGiveUp)
		}
		if s.Webhook.Timeout == 0 {
			s.Webhook.Timeout = Duration(10 * time.Second)
		}
	}
}

// Validate checks a sink; errors name the setting and never repeat a
// value that could be a secret.
func (s *Sink) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalid, s.Name, fmt.Sprintf(format, a...))
	}
	if !nameRe.MatchString(s.Name) {
		return fmt.Errorf("%w: name %q: use 1-63 lower-case letters, digits and '-', starting with a letter or digit", ErrInvalid, s.Name)
	}
	for _, sp := range s.Spiders {
		if !spiderRe.MatchString(sp) {
			return bad("--spider %q: a spider name is [a-z0-9-]+", sp)
		}
	}
	if s.BatchSize < 1 || s.BatchSize > MaxBatchSize {
		return bad("--batch-size %d: want 1-%d", s.BatchSize, MaxBatchSize)
	}
	if w := time.Duration(s.BatchWait); w < 10*time.Millisecond || w > time.Minute {
		return bad("--batch-wait %v: want 10ms-1m", w)
	}
	switch s.Type {
	case TypePostgres:
		if s.Postgres == nil || s.Webhook != nil {
			return bad("a postgres sink has postgres settings only")
		}
		if !tableRe.MatchString(s.Postgres.Table) {
			return bad("--table %q: want a table name ([A-Za-z_][A-Za-z0-9_]*), optionally schema.table", s.Postgres.Table)
		}
		return checkPostgresURL(s.Postgres.URL)
	case TypeWebhook:
		if s.Webhook == nil || s.Postgres != nil {
			return bad("a webhook sink has webhook settings only")
		}
		if g := time.Duration(s.Webhook.GiveUp); g < time.Second {
			return bad("--give-up %v: want at least 1s", g)
		}
		if t := time.Duration(s.Webhook.Timeout); t < 100*time.Millisecond || t > 5*time.Minute {
			return bad("--request-timeout %v: want 100ms-5m", t)
		}
		return checkWebhookURL(s.Webhook.URL)
	default:
		return bad("type %q: want %s or %s", s.Type, TypePostgres, TypeWebhook)
	}
}

// errSecret says how to give a password.
const errSecret = "give the password as ${env:NAME}, a variable in the masters' environment, so it is never stored"

func checkPostgresURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("%w: --postgres: empty URL", ErrInvalid)
	}
	if err := envsubst.Check(raw); err != nil {
		return fmt.Errorf("%w: --postgres: %v", ErrInvalid, err)
	}
	if strings.HasPrefix(raw, "postgres://") || strings.HasPrefix(raw, "postgresql://") {
		u, err := url.Parse(placeholders(raw))
		if err != nil {
			return fmt.Errorf("%w: --postgres: not a URL (want postgres://user:${env:PGPASS}@host:5432/db)", ErrInvalid)
		}
		if p, ok := u.User.Password(); ok && !isPlaceholder(p) {
			return fmt.Errorf("%w: --postgres: the URL holds a password: %s", ErrInvalid, errSecret)
		}
		if p := u.Query().Get("password"); p != "" && !isPlaceholder(p) {
			return fmt.Errorf("%w: --postgres: the URL holds a password parameter: %s", ErrInvalid, errSecret)
		}
		if u.Host == "" && u.Query().Get("host") == "" {
			return fmt.Errorf("%w: --postgres: no host (want postgres://user:${env:PGPASS}@host:5432/db)", ErrInvalid)
		}
		return nil
	}
	if !strings.Contains(raw, "=") {
		return fmt.Errorf("%w: --postgres: want postgres://user:${env:PGPASS}@host:5432/db or host=... dbname=... keyword/value", ErrInvalid)
	}
	pairs, err := keywordValues(raw)
	if err != nil {
		return fmt.Errorf("%w: --postgres: %v", ErrInvalid, err)
	}
	for _, kv := range pairs {
		if strings.EqualFold(kv.key, "password") && !isRef(kv.value) {
			return fmt.Errorf("%w: --postgres: password= holds a password: %s", ErrInvalid, errSecret)
		}
	}
	return nil
}

// keyValue is one setting of a libpq keyword/value connection string.
type keyValue struct {
	key, value string
	start, end int // the setting's bytes in the string
}

// keywordValues reads a keyword/value connection string as libpq does
// ("key = value", spaces around '=' allowed, a value in single quotes
// with \' and \\ escapes), so that "password = x" is seen as the
// password pgx will send, not as three words.
func keywordValues(s string) ([]keyValue, error) {
	var out []keyValue
	i := 0
	skip := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
			i++
		}
	}
	for {
		skip()
		if i >= len(s) {
			return out, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r' {
			i++
		}
		key := s[start:i]
		skip()
		if i >= len(s) || s[i] != '=' {
			return nil, fmt.Errorf("%q is missing '=' after it", key)
		}
		i++
		skip()
		var v strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			for ; i < len(s) && s[i] != '\''; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				v.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("the value of %q has no closing quote", key)
			}
			i++
		} else {
			for ; i < len(s) && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				v.WriteByte(s[i])
			}
		}
		out = append(out, keyValue{key: key, value: v.String(), start: start, end: i})
	}
}

// literalCredential reports whether query parameter name=v (references
// as placeholders, see placeholders) holds a credential written out
// rather than as references.
func literalCredential(name, v string, refs []string) bool {
	if !secretParam(name) {
		return false
	}
	for _, n := range refs {
		v = strings.ReplaceAll(v, "envREF"+n, "")
	}
	return v != ""
}

// secretParam reports whether a query parameter's name says it holds a
// credential (token, api_key, secret, signature ...).
func secretParam(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"token", "secret", "passw", "apikey", "api_key", "api-key", "auth", "signature", "credential", "jwt", "session"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	switch n {
	case "key", "sig", "sid", "pwd", "pass", "code":
		return true
	}
	return false
}

func checkWebhookURL(raw string) error {
	if err := envsubst.Check(raw); err != nil {
		return fmt.Errorf("%w: --webhook: %v", ErrInvalid, err)
	}
	u, err := url.Parse(placeholders(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: --webhook: want an http:// or https:// URL with a host", ErrInvalid)
	}
	if p, ok := u.User.Password(); ok && !isPlaceholder(p) {
		return fmt.Errorf("%w: --webhook: the URL holds a password: %s", ErrInvalid, errSecret)
	}
	// A user name alone is a webhook's token as often as not (review).
	if u.User != nil && u.User.Username() != "" && !isPlaceholder(u.User.Username()) {
		return fmt.Errorf("%w: --webhook: the URL holds user info: %s", ErrInvalid, errSecret)
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%w: --webhook: port %s: want 1-65535", ErrInvalid, port)
		}
	}
	refs := envsubst.Refs(raw)
	for name, vals := range u.Query() {
		for _, v := range vals {
			if literalCredential(name, v, refs) {
				return fmt.Errorf("%w: --webhook: query parameter %q holds a literal credential: give it as ${env:NAME}, a variable in the masters' environment, so it is never stored", ErrInvalid, name)
			}
		}
	}
	return nil
}

// placeholders replaces each reference with a plain token ("envREF0"),
// so a URL holding references parses.
func placeholders(s string) string {
	for _, n := range envsubst.Refs(s) {
		s = strings.ReplaceAll(s, "${env:"+n+"}", "envREF"+n)
	}
	return s
}

func isPlaceholder(s string) bool { return strings.HasPrefix(s, "envREF") }

// isRef is true when s is made only of ${env:NAME} references.
func isRef(s string) bool { return !envsubst.Literal(s) }

// Takes reports whether the sink takes items of spider.
func (s *Sink) Takes(spider string) bool {
	if len(s.Spiders) == 0 {
		return true
	}
	for _, sp := range s.Spiders {
		if sp == spider {
			return true
		}
	}
	return false
}

// Target is the sink's destination for listings, with any password or
// userinfo replaced ("postgres://app:***@db:5432/items"); references stay
// as written, they hold no secret.
func (s *Sink) Target() string {
	switch {
	case s.Postgres != nil:
		return redactURL(s.Postgres.URL) + " table " + s.Postgres.Table
	case s.Webhook != nil:
		return redactURL(s.Webhook.URL)
	}
	return ""
}

func redactURL(raw string) string {
	if !strings.Contains(raw, "://") {
		// keyword/value: hide a literal password=
		pairs, err := keywordValues(raw)
		if err != nil {
			return "(connection string does not parse)"
		}
		var out []string
		for _, kv := range pairs {
			f := raw[kv.start:kv.end]
			if strings.EqualFold(kv.key, "password") && !isRef(kv.value) {
				f = kv.key + "=***"
			}
			out = append(out, f)
		}
		return strings.Join(out, " ")
	}
	u, err := url.Parse(placeholders(raw))
	if err != nil {
		return "(URL does not parse)"
	}
	if p, ok := u.User.Password(); ok && !isPlaceholder(p) {
		u.User = url.UserPassword(u.User.Username(), "***")
	}
	if q := u.Query(); len(q) > 0 {
		hidden, refs := false, envsubst.Refs(raw)
		for name, vals := range q {
			for i, v := range vals {
				if literalCredential(name, v, refs) {
					vals[i], hidden = "***", true
				}
			}
		}
		if hidden {
			u.RawQuery = q.Encode()
		}
	}
	s := strings.ReplaceAll(u.String(), "%2A%2A%2A", "***")
	// references back as written
	for _, n := range envsubst.Refs(raw) {
		s = strings.ReplaceAll(s, "envREF"+n, "${env:"+n+"}")
	}
	return s
}

// Status is a sink's delivery status, written by the delivering master
// under StatusPrefix+name.
type Status struct {
	Name      string `json:"name"`
	Node      string `json:"node"` // the master delivering it
	State     string `json:"state"`
	Delivered uint64 `json:"delivered"`
	Failures  uint64 `json:"failures"`
	Dead      uint64 `json:"dead_letters,omitempty"`
	// LastError is the last failure, redacted; Permanent marks one that
	// will not heal by itself (a table with the wrong columns, a refused
	// password): the sink keeps retrying slowly until it is fixed.
	LastError   string     `json:"last_error,omitempty"`
	Permanent   bool       `json:"permanent,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	LastOKAt    *time.Time `json:"last_ok_at,omitempty"`
	// FailingSince is when the current run of failures began.
	FailingSince *time.Time `json:"failing_since,omitempty"`
	// Crawls counts the items delivered per crawl (the most recent crawls).
	Crawls    map[string]uint64 `json:"crawls,omitempty"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// States of a sink.
const (
	StateOK       = "ok"
	StateFailing  = "failing"
	StateStarting = "starting"
)
