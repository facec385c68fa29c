package clusterconfig

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/envsubst"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// The keys, as shared/DESIGN.md names them.
const (
	Concurrency       = "concurrency"
	UserAgent         = "user_agent"
	RequestTimeout    = "request_timeout"
	MaxBody           = "max_body"
	MaxAttempts       = "max_attempts"
	RetryBackoff      = "retry_backoff"
	Proxies           = "proxies"
	RobotsTTL         = "robots_ttl"
	HeartbeatInterval = "heartbeat_interval"
	LogLevel          = "log_level"
	Paused            = "paused"
)

// DefaultUserAgent is the user agent when none is configured.
const DefaultUserAgent = "crawlmesh/1 (+https://github.com/crawlmesh/crawlmesh)"

// ErrUnknownKey is wrapped by errors about a key not in the table.
var ErrUnknownKey = errors.New("unknown config key")

// ErrBadValue is wrapped by errors about a value a key refuses.
var ErrBadValue = errors.New("bad config value")

// Key describes one configuration key.
type Key struct {
	Name string `json:"name"`
	// Type is int, bytes, duration, string, list, level or bool.
	Type    string `json:"type"`
	Range   string `json:"range"`
	Default string `json:"default"`
	Doc     string `json:"doc"`
	// Roles are the node roles that apply the key.
	Roles []string                     `json:"roles"`
	parse func(string) (string, error) // canonical text, or an error without the key's name
}

// AppliesTo reports whether nodes of role apply k.
func (k Key) AppliesTo(role string) bool { return slices.Contains(k.Roles, role) }

var (
	workers = []string{mesh.RoleWorker}
	all     = []string{mesh.RoleWorker, mesh.RoleMaster}
)

// keys is the table, in the order DESIGN.md lists them.
var keys = []Key{
	{Name: Concurrency, Type: "int", Range: "1-" + strconv.Itoa(mesh.MaxConcurrency), Default: "32", Roles: workers, parse: intIn(1, mesh.MaxConcurrency),
		Doc: "fetch slots of a worker (tasks fetching at once); its heartbeat's capacity"},
	{Name: UserAgent, Type: "string", Range: "1-512 characters, no line break", Default: DefaultUserAgent, Roles: workers, parse: userAgent,
		Doc: "User-Agent of a spider that sets no request.user_agent; its product token picks the robots.txt group"},
	{Name: RequestTimeout, Type: "duration", Range: "100ms-10m", Default: "15s", Roles: workers, parse: durationIn(100*time.Millisecond, 10*time.Minute),
		Doc: "time limit of one HTTP request when the spider sets no request.timeout"},
	{Name: MaxBody, Type: "bytes", Range: "1KiB-1GiB", Default: strconv.Itoa(10 << 20), Roles: workers, parse: bytesIn(1<<10, 1<<30),
		Doc: "largest page body; larger pages are skipped (a number of bytes, or with KiB, MiB or GiB)"},
	{Name: MaxAttempts, Type: "int", Range: "1-100", Default: "3", Roles: workers, parse: intIn(1, 100),
		Doc: "fetch attempts before a transiently failing task goes to the dead letters"},
	{Name: RetryBackoff, Type: "duration", Range: "10ms-10m", Default: "1s", Roles: workers, parse: durationIn(10*time.Millisecond, 10*time.Minute),
		Doc: "delay before the first retry of a transient failure, doubled at each attempt; a retry also waits its host's turn, and a host that keeps failing is slowed mesh-wide by itself (its delay doubles per failure, up to 30 s; halves per success)"},
	{Name: Proxies, Type: "list", Range: "comma-separated http, https, socks5 or socks5h URLs; \"\" for none", Default: "", Roles: workers, parse: proxies,
		Doc: "proxies (round-robin) of spiders that set no request.proxies; a password only as ${env:NAME}"},
	// RFC 9309 2.4: a cached robots.txt SHOULD NOT be used for more than 24 hours.
	{Name: RobotsTTL, Type: "duration", Range: "1s-24h", Default: "1h0m0s", Roles: workers, parse: durationIn(time.Second, 24*time.Hour),
		Doc: "how long a fetched robots.txt is kept before it is fetched again (RFC 9309: at most 24 hours)"},
	{Name: HeartbeatInterval, Type: "duration", Range: "100ms-30s, at most half the nodes bucket TTL", Default: "1s", Roles: all, parse: durationIn(100*time.Millisecond, 30*time.Second),
		Doc: "time between heartbeats"},
	{Name: LogLevel, Type: "level", Range: "debug, info, warn, error", Default: "info", Roles: all, parse: level,
		Doc: "the node's log level"},
	{Name: Paused, Type: "bool", Range: "true, false", Default: "false", Roles: workers, parse: boolean,
		Doc: "a paused worker takes no new tasks and gives back the ones it holds that wait for their host's turn; what it fetches finishes (node pause|resume writes it)"},
}

// Keys returns the key table.
func Keys() []Key { return slices.Clone(keys) }

// Lookup returns the key named name.
func Lookup(name string) (Key, error) {
	for _, k := range keys {
		if k.Name == name {
			return k, nil
		}
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.Name
	}
	return Key{}, fmt.Errorf("%w %q: want one of %s", ErrUnknownKey, name, strings.Join(names, ", "))
}

// Validate checks value for key and returns its canonical text. The error
// names the key and the value.
func Validate(key, value string) (string, error) {
	k, err := Lookup(key)
	if err != nil {
		return "", err
	}
	if len(value) > 4096 {
		return "", fmt.Errorf("%w: %s: %d bytes; at most 4096", ErrBadValue, key, len(value))
	}
	v, err := k.parse(value)
	if err != nil {
		if key == Proxies { // never quote a proxy URL: it may hold a password
			return "", fmt.Errorf("%w: %s: %v", ErrBadValue, key, err)
		}
		return "", fmt.Errorf("%w: %s %q: %v", ErrBadValue, key, value, err)
	}
	return v, nil
}

// CheckInterval checks a heartbeat interval against the nodes bucket's TTL:
// a node beating less often than every TTL/2 would flap offline.
func CheckInterval(d, ttl time.Duration) error {
	if ttl > 0 && d > ttl/2 {
		return fmt.Errorf("%w: %s %v: more than half of bucket %s's TTL %v, so nodes would flap offline",
			ErrBadValue, HeartbeatInterval, d, mesh.NodesBucket, ttl)
	}
	return nil
}

func intIn(lo, hi int) func(string) (string, error) {
	return func(s string) (string, error) {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return "", fmt.Errorf("want a whole number %d-%d", lo, hi)
		}
		if n < lo || n > hi {
			return "", fmt.Errorf("out of range: want %d-%d", lo, hi)
		}
		return strconv.Itoa(n), nil
	}
}

func durationIn(lo, hi time.Duration) func(string) (string, error) {
	return func(s string) (string, error) {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return "", fmt.Errorf("want a duration such as 500ms, 15s or 2m (%v-%v)", lo, hi)
		}
		if d < lo || d > hi {
			return "", fmt.Errorf("out of range: want %v-%v", lo, hi)
		}
		return d.String(), nil
	}
}

func bytesIn(lo, hi int64) func(string) (string, error) {
	return func(s string) (string, error) {
		s = strings.TrimSpace(s)
		mul := int64(1)
		for suf, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
			if t, ok := strings.CutSuffix(s, suf); ok {
				s, mul = strings.TrimSpace(t), m
				break
			}
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return "", errors.New("want a number of bytes, e.g. 10485760 or 10MiB")
		}
		if n < 0 || n > hi/mul || n*mul < lo {
			return "", fmt.Errorf("out of range: want %d-%d bytes (1KiB-1GiB)", lo, hi)
		}
		return strconv.FormatInt(n*mul, 10), nil
	}
}

func userAgent(s string) (string, error) {
	switch {
	case s == "":
		return "", errors.New("empty: give a user agent (config rm restores the default)")
	case len(s) > 512:
		return "", errors.New("longer than 512 characters")
	case strings.ContainsAny(s, "\r\n\x00"):
		return "", errors.New("a line break or NUL cannot be sent in a header")
	case strings.Contains(s, "${env:"):
		// Only proxies expand references: this one would be sent as it is.
		return "", errors.New("${env:NAME} is expanded in proxies only; write the user agent itself")
	}
	return s, nil
}

func level(s string) (string, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.TrimSpace(s))); err != nil {
		return "", errors.New("want debug, info, warn or error")
	}
	return strings.ToLower(l.String()), nil
}

func boolean(s string) (string, error) {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return "", errors.New("want true or false")
	}
	return strconv.FormatBool(b), nil
}

// proxies checks a comma-separated list of proxy URLs. Its errors name the
// position in the list, never the URL, which may hold a password.
func proxies(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		parts[i] = p
		if err := envsubst.Check(p); err != nil {
			return "", fmt.Errorf("proxy %d: %v", i+1, err)
		}
		// References stand for text the worker supplies: check the shape
		// with each replaced by a placeholder.
		shape, _ := envsubst.Expand(p, func(string) (string, bool) { return "x", true })
		if strings.HasPrefix(p, "${env:") {
			continue // the whole URL comes from the worker's environment
		}
		u, err := url.Parse(shape)
		if err != nil {
			return "", fmt.Errorf("proxy %d: not a URL", i+1)
		}
		switch u.Scheme {
		case "http", "https", "socks5", "socks5h":
		default:
			return "", fmt.Errorf("proxy %d: scheme %q: want http, https, socks5 or socks5h, e.g. http://127.0.0.1:3128", i+1, u.Scheme)
		}
		if u.Host == "" {
			return "", fmt.Errorf("proxy %d: no host", i+1)
		}
		user, pw, hasPW, _ := envsubst.UserInfo(p)
		if envsubst.Literal(pw) {
			return "", fmt.Errorf("proxy %d: a password in the bucket would be readable by every node and operator: write it as ${env:NAME} and set NAME on the workers", i+1)
		}
		// A user name alone is often the proxy's token, and a proxy URL
		// has no use for a query: both were stored as written (review).
		if !hasPW && envsubst.Literal(user) {
			return "", fmt.Errorf("proxy %d: user info in the bucket would be readable by every node and operator: write it as ${env:NAME} and set NAME on the workers", i+1)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return "", fmt.Errorf("proxy %d: a proxy URL takes no query or fragment", i+1)
		}
	}
	return strings.Join(parts, ","), nil
}
