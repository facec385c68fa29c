package heartbeat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"

	"github.com/crawlmesh/crawlmesh/pkg/natsconn"
)

// ErrDuplicateID means another live process holds the node id.
var ErrDuplicateID = errors.New("heartbeat: node id in use by another live process")

// KV is the part of jetstream.KeyValue a Beater uses.
type KV interface {
	Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error)
	Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error)
	Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error)
	Purge(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error
	Watch(ctx context.Context, keys string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error)
}

var _ KV = jetstream.KeyValue(nil)

// Status is the changing part of a heartbeat, read at every beat.
type Status struct {
	State       string
	Leader      bool
	Term        uint64
	ActiveTasks int
	Capacity    int
	// Children are a host agent's worker processes.
	Children []mesh.Child
	// Config is the node's effective cluster configuration (nil: none).
	Config *mesh.NodeConfig
	// Partitions is how many work-queue partitions a worker pulls from.
	Partitions int
	// GoSpiders are a worker's compiled-in Go spiders.
	GoSpiders []string
	// ScheduleTZ is a master's schedule time zone.
	ScheduleTZ string
}

// Beater owns one node's heartbeat key.
type Beater struct {
	kv       KV
	id, role string
	interval time.Duration
	ttl      time.Duration
	status   func() Status
	now      func() time.Time
	log      *slog.Logger
	host     HostInfo
	started  time.Time
	instance string
	agent    string
	kick     chan struct{}

	mu  sync.Mutex // guards rev, and interval once running (SetInterval)
	rev uint64
	// lastOK is when a heartbeat was last stored (unix ns; 0: never).
	lastOK atomic.Int64
}

// Option configures a Beater.
type Option func(*Beater)

// WithInterval sets the time between beats (default 1s).
func WithInterval(d time.Duration) Option { return func(b *Beater) { b.interval = d } }

// WithTTL tells the Beater the bucket's TTL, used to wait out a stale key
// of this id left by a crashed process (default 3s).
func WithTTL(d time.Duration) Option { return func(b *Beater) { b.ttl = d } }

// WithStatus sets the function read at every beat.
func WithStatus(f func() Status) Option { return func(b *Beater) { b.status = f } }

// WithClock replaces time.Now for update_ts (tests inject clock offsets).
func WithClock(now func() time.Time) Option { return func(b *Beater) { b.now = now } }

// WithAgent names the host agent that started this node (a worker's
// heartbeat then carries "agent": id).
func WithAgent(id string) Option { return func(b *Beater) { b.agent = id } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(b *Beater) { b.log = l } }

// Timing builds the options a node's config gives; zero values keep the
// defaults.
func Timing(interval, ttl time.Duration, clock func() time.Time, log *slog.Logger) []Option {
	var opts []Option
	if interval > 0 {
		opts = append(opts, WithInterval(interval))
	}
	if ttl > 0 {
		opts = append(opts, WithTTL(ttl))
	}
	if clock != nil {
		opts = append(opts, WithClock(clock))
	}
	if log != nil {
		opts = append(opts, WithLogger(log))
	}
	return opts
}

// New returns a Beater for node id with role; call [Beater.Claim], then [Beater.Run].
func New(kv KV, id, role string, opts ...Option) (*Beater, error) {
	if err := mesh.ValidateNodeID(id); err != nil {
		return nil, err
	}
	// Readers drop heartbeats of other roles (mesh.DecodeHeartbeat).
	if role != mesh.RoleMaster && role != mesh.RoleWorker && role != mesh.RoleAgent {
		return nil, fmt.Errorf("heartbeat: role %q: want %s, %s or %s", role, mesh.RoleMaster, mesh.RoleWorker, mesh.RoleAgent)
	}

	b := &Beater{
		kv: kv, id: id, role: role,
		interval: time.Second, ttl: 3 * time.Second,
		status: func() Status { return Status{State: mesh.StateRunning} },
		now:    time.Now,
		log:    slog.New(slog.DiscardHandler),
		host:   LocalHostInfo(),
		kick:   make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(b)
	}
	if b.interval <= 0 || b.ttl <= 0 {
		return nil, fmt.Errorf("heartbeat: interval %v and ttl %v must be positive", b.interval, b.ttl)
	}
	if b.interval > b.ttl/2 {
		return nil, fmt.Errorf("heartbeat: interval %v must be at most half the TTL %v, or a live node would flap offline", b.interval, b.ttl)
	}
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	b.instance = hex.EncodeToString(nonce[:])
	b.started = b.now().UTC()
	b.log = b.log.With("component", "heartbeat", "node", id)
	return b, nil
}

// Instance is this process's random instance id, carried in every beat.
func (b *Beater) Instance() string { return b.instance }

// Kick makes the next beat happen now (a state change should show at once).
func (b *Beater) Kick() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

func (b *Beater) value() []byte {
	s := b.status()
	now := b.now().UTC()
	hb := mesh.Heartbeat{
		Key: b.id, IP: b.host.IP, MAC: b.host.MAC, Hostname: b.host.Hostname,
		Master: b.role == mesh.RoleMaster, UpdateTS: now, UpdateTSUnix: now.Unix(),
		Role: b.role, Version: mesh.Version, State: s.State, Leader: s.Leader, Term: s.Term,
		StartedAt: b.started, ActiveTasks: s.ActiveTasks, Capacity: s.Capacity,
		Instance: b.instance, PID: os.Getpid(), Agent: b.agent, Children: s.Children, Config: s.Config,
		Partitions: s.Partitions, GoSpiders: s.GoSpiders, ScheduleTZ: s.ScheduleTZ,
	}
	v, _ := json.Marshal(hb) // cannot fail: plain fields
	return v
}

// Claim writes the first heartbeat. If the key exists it waits up to the TTL
// plus a second: a key left by a crashed process expires and is taken over;
// a key that keeps being renewed belongs to a live process and Claim returns
// an error wrapping [ErrDuplicateID] that names it.
func (b *Beater) Claim(ctx context.Context) error {
	deadline := time.Now().Add(b.ttl + time.Second)
	for {
		rev, err := b.kv.Create(ctx, b.id, b.value())
		if err == nil {
			b.setRev(rev)
			b.log.Info("heartbeat key claimed", "rev", rev)
			return nil
		}
		if !natsconn.KeyExists(err) {
			return fmt.Errorf("claim heartbeat key %s: %w", b.id, err)
		}
		if time.Now().After(deadline) {
			return b.duplicate(ctx, nil)
		}
		live, other, err := b.watchHolder(ctx, time.Until(deadline))
		if err != nil {
			return err
		}
		if live {
			return b.duplicate(ctx, other)
		}
	}
}

// watchHolder watches the key until it changes or wait passes: a new value
// means a live holder; a delete, purge or expiry means it is free.
func (b *Beater) watchHolder(ctx context.Context, wait time.Duration) (live bool, other *mesh.Heartbeat, err error) {
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	w, err := b.kv.Watch(wctx, b.id)
	if err != nil {
		return false, nil, fmt.Errorf("watch heartbeat key %s: %w", b.id, err)
	}
	defer func() { _ = w.Stop() }()
	var first uint64
	b.log.Debug("node id still has a heartbeat key, waiting to see whether its holder is alive", "wait", wait.Round(time.Millisecond))
	for {
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return false, nil, ctx.Err()
			}
			return false, nil, nil // no change seen: try to create again
		case e, ok := <-w.Updates():
			if !ok {
				return false, nil, nil
			}
			if e == nil {
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				return false, nil, nil
			}
			if first == 0 {
				first = e.Revision()
				continue
			}
			// A new value means a live holder, readable or not.
			if hb, err := mesh.DecodeHeartbeat(e.Value()); err == nil {
				return true, &hb, nil
			}
			return true, nil, nil
		}
	}
}

func (b *Beater) duplicate(ctx context.Context, other *mesh.Heartbeat) error {
	if other == nil {
		if e, err := b.kv.Get(ctx, b.id); err == nil {
			if hb, err := mesh.DecodeHeartbeat(e.Value()); err == nil {
				other = &hb
			}
		}
	}
	who := "another process"
	if other != nil {
		who = fmt.Sprintf("%s pid %d on %s (%s)", other.Role, other.PID, other.Hostname, other.IP)
	}
	return fmt.Errorf("%w: %q is held by %s; give this node another --id, or stop the other one", ErrDuplicateID, b.id, who)
}

func (b *Beater) setRev(r uint64) {
	b.mu.Lock()
	b.rev = r
	b.mu.Unlock()
	b.lastOK.Store(time.Now().UnixNano())
}

// Check says whether the node's heartbeat is current: nil when a beat was
// stored within the bucket's TTL, so the mesh sees the node online; an
// error saying why not otherwise (what /healthz reports).
func (b *Beater) Check() error {
	last := b.lastOK.Load()
	if last == 0 {
		return errors.New("heartbeat key not claimed yet")
	}
	if age := time.Since(time.Unix(0, last)); age > b.ttl {
		return fmt.Errorf("last heartbeat stored %v ago, more than the bucket's TTL %v: the mesh sees this node offline", age.Round(time.Millisecond), b.ttl)
	}
	return nil
}

func (b *Beater) getRev() uint64 { b.mu.Lock(); defer b.mu.Unlock(); return b.rev }

// SetInterval changes the time between beats of a running Beater; it
// refuses an interval over half the TTL, as [New] does.
func (b *Beater) SetInterval(d time.Duration) error {
	if d <= 0 || d > b.ttl/2 {
		return fmt.Errorf("heartbeat interval %v: must be positive and at most half of bucket %s's TTL %v, or the node would flap offline", d, mesh.NodesBucket, b.ttl)
	}
	b.mu.Lock()
	changed := b.interval != d
	b.interval = d
	b.mu.Unlock()
	if changed {
		b.Kick()
	}
	return nil
}

// Interval is the time between beats now.
func (b *Beater) Interval() time.Duration { b.mu.Lock(); defer b.mu.Unlock(); return b.interval }

// Run beats every interval until ctx is done, then purges the key so the
// node disappears at once. It returns an error wrapping [ErrDuplicateID] if
// another process took the key over; other write errors (NATS away) are
// logged and retried at the next beat.
func (b *Beater) Run(ctx context.Context) error {
	cur := b.Interval()
	t := time.NewTicker(cur)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return b.leave()
		case <-t.C:
		case <-b.kick:
		}
		if d := b.Interval(); d != cur {
			cur = d
			t.Reset(d)
		}
		if err := b.beat(ctx); err != nil {
			if errors.Is(err, ErrDuplicateID) {
				return err
			}
			if ctx.Err() == nil {
				b.log.Warn("heartbeat not written, retrying", "err", err)
			}
		}
	}
}

// Beat writes one heartbeat now.
func (b *Beater) beat(ctx context.Context) error {
	bctx, cancel := context.WithTimeout(ctx, max(b.Interval(), time.Second))
	defer cancel()
	rev, err := b.kv.Update(bctx, b.id, b.value(), b.getRev())
	if err == nil {
		b.setRev(rev)
		return nil
	}
	if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return err
	}
	// Our last revision is not the key's: it expired while we could not
	// write (frozen, cut off), or someone else wrote it.
	e, gerr := b.kv.Get(bctx, b.id)
	if gerr == nil {
		hb, err := mesh.DecodeHeartbeat(e.Value())
		if err != nil {
			return b.duplicate(bctx, nil)
		}
		if hb.Instance != b.instance {
			return b.duplicate(bctx, &hb)
		}
		b.setRev(e.Revision()) // our own write whose ack we missed
		return nil
	}
	if !errors.Is(gerr, jetstream.ErrKeyNotFound) && !errors.Is(gerr, jetstream.ErrKeyDeleted) {
		return gerr
	}
	rev, err = b.kv.Create(bctx, b.id, b.value())
	if err != nil {
		return fmt.Errorf("re-claim expired heartbeat key: %w", err)
	}
	b.setRev(rev)
	b.log.Warn("heartbeat key had expired and was claimed again", "rev", rev)
	return nil
}

// leave marks the node stopping and purges its key, on a fresh context
// because ctx is already done.
func (b *Beater) leave() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rev := b.getRev()
	err := b.kv.Purge(ctx, b.id, jetstream.LastRevision(rev), jetstream.PurgeTTL(time.Minute))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		// A beat cancelled in flight may have been stored without us
		// seeing its ack: purge it if the key is still ours, never if
		// another process holds it.
		e, gerr := b.kv.Get(ctx, b.id)
		if gerr != nil {
			return nil // already gone
		}
		if hb, err := mesh.DecodeHeartbeat(e.Value()); err != nil || hb.Instance != b.instance {
			return nil
		}
		err = b.kv.Purge(ctx, b.id, jetstream.LastRevision(e.Revision()), jetstream.PurgeTTL(time.Minute))
	}
	if err != nil {
		return fmt.Errorf("remove heartbeat key %s: %w", b.id, err)
	}
	b.log.Info("heartbeat key removed")
	return nil
}

// HostInfo is what a heartbeat says about the machine.
type HostInfo struct{ Hostname, IP, MAC string }

// LocalHostInfo reads the hostname and the first non-loopback interface
// that is up; loopback values are used when there is none.
func LocalHostInfo() HostInfo {
	h, _ := os.Hostname()
	info := HostInfo{Hostname: h, IP: "127.0.0.1"}
	ifs, err := net.Interfaces()
	if err != nil {
		return info
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				info.IP, info.MAC = ipn.IP.String(), ifc.HardwareAddr.String()
				return info
			}
		}
	}
	return info
}

// Hold claims the key, then runs work while beating, and removes the key
// only after work has returned: a draining node stays visible until its
// last task is done. If the key is lost to another process, work's context
// is cancelled and Hold returns that error.
func (b *Beater) Hold(ctx context.Context, work func(ctx context.Context) error) error {
	if err := b.Claim(ctx); err != nil {
		return err
	}
	workCtx, cancelWork := context.WithCancelCause(ctx)
	defer cancelWork(nil)
	beatCtx, stopBeats := context.WithCancel(context.WithoutCancel(ctx))
	beatErr := make(chan error, 1)
	go func() {
		err := b.Run(beatCtx)
		if err != nil {
			cancelWork(err)
		}
		beatErr <- err
	}()
	werr := work(workCtx)
	stopBeats()
	herr := <-beatErr
	if cause := context.Cause(workCtx); errors.Is(cause, ErrDuplicateID) {
		return cause
	}
	return errors.Join(werr, herr)
}
