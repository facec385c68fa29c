// Package natsconn dials NATS the way every crawlmesh process does: credentials
// and TLS from one [Config], reconnecting forever once connected, JetStream
// checked up front, and start-up failures turned into one clear sentence that
// says what is wrong and what to do.
package natsconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultURL is where a client looks for NATS when nothing else is said.
const DefaultURL = "nats://127.0.0.1:4222"

// Config says where NATS is and how to authenticate.
type Config struct {
	URL      string // comma-separated server URLs
	Name     string // connection name shown by the server
	Creds    string // credentials (JWT + nkey) file
	NKey     string // nkey seed file
	User     string
	Password string
	TLSCA    string // CA file to verify the server
	TLSCert  string // client certificate (mutual TLS)
	TLSKey   string
	// Timeout bounds the first connection attempt and the JetStream check.
	Timeout time.Duration
	// InboxPrefix replaces _INBOX in reply subjects ("" keeps _INBOX).
	InboxPrefix string
	// PublishAckTimeout bounds the wait for an asynchronous publish's ack
	// (0: [DefaultPublishAckTimeout]).
	PublishAckTimeout time.Duration
}

// DefaultPublishAckTimeout: an ack lost while a stream's leader moves
// (a server of the cluster killed) never arrives, and without a bound a
// worker's task waited on it for good, holding its slot and blocking a
// drain (found by review). Below the task's ack wait (30 s), so the page
// fails and is retried before it would be delivered again to another.
const DefaultPublishAckTimeout = 10 * time.Second

// Hooks observe the connection's life; any may be nil.
type Hooks struct {
	Disconnected func(error)
	Reconnected  func()
}

// Redact returns the URL list with passwords and tokens removed, for logs.
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		u.User = url.User("redacted")
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// Options returns the nats.go options for c: reconnect forever, credentials, TLS.
func (c Config) Options(log *slog.Logger, h Hooks) ([]nats.Option, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := []nats.Option{
		nats.Name(c.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() || nc.IsDraining() {
				return // our own close, not an outage
			}
			log.Warn("nats disconnected, reconnecting", "err", err)
			if h.Disconnected != nil {
				h.Disconnected(err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
			if h.Reconnected != nil {
				h.Reconnected()
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("nats async error", "subject", subj, "err", err)
		}),
	}
	if c.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(c.InboxPrefix))
	}
	if c.Timeout > 0 {
		opts = append(opts, nats.Timeout(c.Timeout))
	}
	if c.Creds != "" {
		opts = append(opts, nats.UserCredentials(c.Creds))
	}
	if c.NKey != "" {
		o, err := nats.NkeyOptionFromSeed(c.NKey)
		if err != nil {
			return nil, fmt.Errorf("nkey seed file %s: %w", c.NKey, err)
		}
		opts = append(opts, o)
	}
	if c.User != "" || c.Password != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together: give both or neither")
	}
	if c.TLSCert != "" {
		opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
	}
	return opts, nil
}

// Dial connects, checks that JetStream is enabled for the account, and
// returns the connection and its JetStream context. The connection then
// reconnects forever; the first attempt fails fast with an explanation,
// except that a JetStream that does not answer yet (a cluster still
// electing leaders) is waited for, up to [ReadyWait].
func Dial(ctx context.Context, c Config, log *slog.Logger, h Hooks) (*nats.Conn, jetstream.JetStream, error) {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	opts, err := c.Options(log, h)
	if err != nil {
		return nil, nil, err
	}
	where := Redact(c.URL)
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, nil, explainConnect(where, err)
	}
	ackTimeout := c.PublishAckTimeout
	if ackTimeout <= 0 {
		ackTimeout = DefaultPublishAckTimeout
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(ackTimeout))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream client: %w", err)
	}
	t0 := time.Now()
	err = UntilReady(ctx, log, "account info", func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, min(c.Timeout, RequestTimeout(ctx, c.Timeout)))
		defer cancel()
		_, err := js.AccountInfo(actx)
		if last := nc.LastError(); err != nil && errors.Is(last, nats.ErrPermissionViolation) {
			// The answer could not reach us: the user may not subscribe
			// to its inbox (or publish the request). Said as a timeout
			// after 2 minutes of waiting, it sent operators to wait
			// longer (found by review). No wait heals it.
			return fmt.Errorf("NATS at %s denies this user what it needs (%w): are these the credentials of another role? Each role's user has only its own subjects (deploy/nats)", where, last)
		}
		return err
	})
	if err != nil {
		nc.Close()
		switch {
		case errors.Is(err, nats.ErrPermissionViolation):
			return nil, nil, err
		case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
			return nil, nil, fmt.Errorf("NATS at %s has JetStream disabled: start nats-server with -js (or a jetstream {} block in its config)", where)
		case NotReady(err):
			return nil, nil, fmt.Errorf("NATS at %s: %w within %v (%v): the wait may be too short (the CLI's --timeout); on a cluster, its servers elect a meta leader 4–9 s after they start and need a majority running; else start nats-server with -js and check the account has JetStream",
				where, ErrJetStreamNotReady, time.Since(t0).Round(time.Millisecond), err)
		default:
			return nil, nil, fmt.Errorf("JetStream at %s: %w", where, err)
		}
	}
	return nc, js, nil
}

// ErrJetStreamNotReady is wrapped by [Dial] when JetStream did not answer
// in time: on a cluster, usually one with no meta leader yet.
var ErrJetStreamNotReady = errors.New("JetStream did not answer")

func explainConnect(where string, err error) error {
	switch {
	case errors.Is(err, nats.ErrNoServers):
		return fmt.Errorf("cannot reach NATS at %s (%v): start a server (nats-server -js, or crawlmesh up) or point --nats / CRAWLMESH_NATS_URL at one", where, err)
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked):
		return fmt.Errorf("NATS at %s refused our credentials (%v): check --creds, --user/--password", where, err)
	case clientCertRefused(err):
		return fmt.Errorf("TLS with NATS at %s: %v: the server requires a client certificate it trusts: give --tls-cert and --tls-key signed by its CA", where, err)
	case isTLSError(err):
		return fmt.Errorf("TLS with NATS at %s: %v: check --tls-ca / --tls-cert / --tls-key and the URL scheme", where, err)
	case noGreeting(err):
		return fmt.Errorf("%s accepts connections but sent no NATS greeting (%v): point --nats at a NATS client port (4222 by default), not the monitoring port (8222) or another service; a server that wants TLS first needs a tls:// URL and --tls-ca", where, err)
	default:
		return fmt.Errorf("connect to NATS at %s: %w", where, err)
	}
}

// noGreeting: the TCP connection opened, but no NATS INFO line came (an
// HTTP server, such as nats-server's monitoring port, waits for a request
// and the read times out) or something else did.
func noGreeting(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "read" && op.Timeout() {
		return true
	}
	return errors.Is(err, nats.ErrNoInfoReceived)
}

// clientCertRefused tells a server that wants a client certificate it
// trusts (mutual TLS) from other TLS failures. The alert comes back as text
// only, or, when the server drops us after the handshake, not at all.
func clientCertRefused(err error) bool {
	s := err.Error()
	return strings.Contains(s, "tls: certificate required") || strings.Contains(s, "tls: bad certificate") ||
		strings.Contains(s, "tls: unknown certificate authority") ||
		(errors.Is(err, nats.ErrTLS) && strings.Contains(s, "closed by remote after TLS handshake"))
}

func isTLSError(err error) bool {
	var verr *tls.CertificateVerificationError
	var rerr tls.RecordHeaderError
	var uerr x509.UnknownAuthorityError
	return errors.As(err, &verr) || errors.As(err, &rerr) || errors.As(err, &uerr) || errors.Is(err, nats.ErrTLS) ||
		errors.Is(err, nats.ErrSecureConnRequired) || errors.Is(err, nats.ErrSecureConnWanted)
}
