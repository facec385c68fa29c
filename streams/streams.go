package streams

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

//go:embed kv/*.json stream/*.json consumer/*/*.json objectstore/*.json
var files embed.FS

// Definitions are the parsed files.
type Definitions struct {
	KV        []jetstream.KeyValueConfig
	Streams   []jetstream.StreamConfig
	Consumers []ConsumerDef
	// ObjectStores are the Object Store buckets (objectstore/NAME.json);
	// bucket B is stream OBJ_B with subjects $O.B.C.> and $O.B.M.>.
	ObjectStores []jetstream.ObjectStoreConfig
}

// ConsumerDef is a durable consumer of a stream.
type ConsumerDef struct {
	Stream string
	Config jetstream.ConsumerConfig
}

// Options override what an operator may tune per deployment.
type Options struct {
	// NodesTTL is the heartbeat TTL of bucket nodes; 0 keeps the file's.
	NodesTTL time.Duration
	// Replicas for every asset; 0 keeps the files', [ReplicasAuto] lets
	// Ensure choose (3 on a cluster that can place them, else 1).
	Replicas int
	// TaskAckWait is the AckWait of the task consumer; 0 keeps the file's.
	TaskAckWait time.Duration
	// Lease is the TTL of bucket election; 0 keeps the file's.
	Lease time.Duration
	// Partitions of the frontier and seen-set (see [Definitions.Partitioned]);
	// 0 keeps the count the mesh recorded (1 for a new mesh). A count
	// above the recorded one adds partitions; one below is refused.
	Partitions int
	// PartitionTags, when set, place partition p's work queue, counter
	// stream and seen bucket on servers with tag PartitionTags[p mod
	// len] (see [Definitions.Placed]).
	PartitionTags []string
	// Log receives the replica decisions and scale-ups; nil discards them.
	Log *slog.Logger
}

// Load parses the embedded files, refusing unknown fields so a typo in a
// file is an error, not a silently dropped setting.
func Load() (Definitions, error) {
	var d Definitions
	err := fs.WalkDir(files, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || path.Ext(p) != ".json" {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		base := strings.TrimSuffix(path.Base(p), ".json")
		switch dir := path.Dir(p); {
		case dir == "kv":
			var c jetstream.KeyValueConfig
			if err := strictJSON(b, &c); err != nil {
				return fmt.Errorf("streams/%s: %w", p, err)
			}
			if c.Bucket != base {
				return fmt.Errorf("streams/%s: bucket %q must match the file name", p, c.Bucket)
			}
			d.KV = append(d.KV, c)
		case dir == "stream":
			var c jetstream.StreamConfig
			if err := strictJSON(b, &c); err != nil {
				return fmt.Errorf("streams/%s: %w", p, err)
			}
			if c.Name != base {
				return fmt.Errorf("streams/%s: stream %q must match the file name", p, c.Name)
			}
			d.Streams = append(d.Streams, c)
		case strings.HasPrefix(dir, "consumer/"):
			var c jetstream.ConsumerConfig
			if err := strictJSON(b, &c); err != nil {
				return fmt.Errorf("streams/%s: %w", p, err)
			}
			if c.Durable != base {
				return fmt.Errorf("streams/%s: durable %q must match the file name", p, c.Durable)
			}
			d.Consumers = append(d.Consumers, ConsumerDef{Stream: path.Base(dir), Config: c})
		case dir == "objectstore":
			var c jetstream.ObjectStoreConfig
			if err := strictJSON(b, &c); err != nil {
				return fmt.Errorf("streams/%s: %w", p, err)
			}
			if c.Bucket != base {
				return fmt.Errorf("streams/%s: bucket %q must match the file name", p, c.Bucket)
			}
			d.ObjectStores = append(d.ObjectStores, c)
		default:
			return fmt.Errorf("streams/%s: unexpected file", p)
		}
		return nil
	})
	return d, err
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// MustLoad is [Load] for callers that run after the package tests proved the
// embedded files parse.
func MustLoad() Definitions {
	d, err := Load()
	if err != nil {
		panic(err)
	}
	return d
}

// Bucket returns the definition of the named KV bucket with opts applied.
func (d Definitions) Bucket(name string, opts Options) (jetstream.KeyValueConfig, bool) {
	for _, c := range d.KV {
		if c.Bucket == name {
			return applyKV(c, opts), true
		}
	}
	return jetstream.KeyValueConfig{}, false
}

// ObjectStore returns the definition of the named Object Store with opts
// applied.
func (d Definitions) ObjectStore(name string, opts Options) (jetstream.ObjectStoreConfig, bool) {
	for _, c := range d.ObjectStores {
		if c.Bucket == name {
			return applyObj(c, opts), true
		}
	}
	return jetstream.ObjectStoreConfig{}, false
}

func applyObj(c jetstream.ObjectStoreConfig, o Options) jetstream.ObjectStoreConfig {
	if o.Replicas > 0 {
		c.Replicas = o.Replicas
	}
	return c
}

func applyKV(c jetstream.KeyValueConfig, o Options) jetstream.KeyValueConfig {
	if o.NodesTTL > 0 && c.Bucket == "nodes" {
		c.TTL = o.NodesTTL
	}
	if o.Lease > 0 && c.Bucket == "election" {
		c.TTL = o.Lease
	}
	if o.Replicas > 0 {
		c.Replicas = o.Replicas
	}
	return c
}

// Drift is one setting whose running value differs from its definition.
type Drift struct {
	Asset   string // "kv nodes"
	Setting string
	Want    string
	Have    string
}

func (d Drift) String() string {
	return fmt.Sprintf("%s: %s is %s, want %s", d.Asset, d.Setting, d.Have, d.Want)
}

// DriftError lists what [Ensure] could not reconcile.
type DriftError struct{ Drift []Drift }

func (e *DriftError) Error() string {
	parts := make([]string, len(e.Drift))
	for i, d := range e.Drift {
		parts[i] = d.String()
	}
	return "running JetStream config differs from streams/ and was not changed: " + strings.Join(parts, "; ") +
		" (delete the asset, or fix it with the nats CLI, then restart)"
}

// Ensure creates or updates every asset to match its definition, then
// checks the running config. A remaining difference is a *DriftError.
//
// Assets are applied side by side: on a cluster each new stream waits for
// its Raft group to elect a leader before the server answers, and one at a
// time that added up to seconds. The first bucket goes alone, so in auto
// mode the replica count is settled by one request before the rest follow;
// a stream with consumers is applied with them, before the rest, so that a
// work-queue consumer (whose replicas must equal its stream's) finds room
// for the same count as its stream.
func Ensure(ctx context.Context, js jetstream.JetStream, d Definitions, o Options) error {
	parts, err := partitionsFor(ctx, js, o.Partitions)
	if err != nil {
		return err
	}
	d = d.Partitioned(parts).Placed(parts, o.PartitionTags)
	p := newPlanner(js, o)
	var first, rest []func() ([]Drift, error)
	for i, c := range d.KV {
		job := func() ([]Drift, error) { return ensureKV(ctx, js, p, applyKV(c, o)) }
		if i == 0 {
			first = append(first, job)
		} else {
			rest = append(rest, job)
		}
	}
	for _, c := range d.Streams {
		if o.Replicas > 0 {
			c.Replicas = o.Replicas
		}
		var cons []ConsumerDef
		for _, cd := range d.Consumers {
			if cd.Stream == c.Name {
				if o.TaskAckWait > 0 && cd.Stream == "TASKS" {
					cd.Config.AckWait = o.TaskAckWait
				}
				cons = append(cons, cd)
			}
		}
		job := func() ([]Drift, error) {
			drift, err := ensureStream(ctx, js, p, c)
			for _, cd := range cons {
				if err != nil {
					break
				}
				var dd []Drift
				dd, err = ensureConsumer(ctx, js, cd)
				drift = append(drift, dd...)
			}
			return drift, err
		}
		if len(cons) > 0 {
			first = append(first, job)
		} else {
			rest = append(rest, job)
		}
	}
	for _, c := range d.ObjectStores {
		rest = append(rest, func() ([]Drift, error) { return ensureObjectStore(ctx, js, p, applyObj(c, o)) })
	}
	var drift []Drift
	for _, job := range first {
		dd, err := job()
		if err != nil {
			return err
		}
		drift = append(drift, dd...)
	}
	dd, err := runAll(rest)
	if err != nil {
		return err
	}
	if drift = append(drift, dd...); len(drift) > 0 {
		return &DriftError{Drift: drift}
	}
	return nil
}

// runAll runs jobs concurrently and returns their drift in job order, or
// the first error in job order.
func runAll(jobs []func() ([]Drift, error)) ([]Drift, error) {
	drift := make([][]Drift, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, job := range jobs {
		wg.Go(func() { drift[i], errs[i] = job() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return slices.Concat(drift...), nil
}

// reconcile turns the outcome of an apply and the check after it into
// drift or an error. An update the server refuses (storage type, say) is
// an API error: it is reported setting by setting from the running config.
func reconcile(what string, applyErr error, check func() ([]Drift, error)) ([]Drift, error) {
	if applyErr != nil && !isAPIError(applyErr) {
		return nil, fmt.Errorf("apply %s: %w", what, applyErr)
	}
	dd, err := check()
	if err != nil {
		if applyErr != nil {
			return nil, fmt.Errorf("apply %s: %w", what, applyErr)
		}
		return nil, err
	}
	if len(dd) == 0 && applyErr != nil {
		return nil, fmt.Errorf("apply %s: %w", what, applyErr)
	}
	return dd, nil
}

func ensureKV(ctx context.Context, js jetstream.JetStream, p *planner, c jetstream.KeyValueConfig) ([]Drift, error) {
	applyErr := p.apply(ctx, "kv "+c.Bucket, kvStream(c.Bucket), &c.Replicas, func() error {
		rctx, cancel := request(ctx)
		defer cancel()
		_, err := js.CreateOrUpdateKeyValue(rctx, c)
		return err
	})
	return reconcile("kv "+c.Bucket, applyErr, func() ([]Drift, error) { return CheckKV(ctx, js, c) })
}

func ensureStream(ctx context.Context, js jetstream.JetStream, p *planner, c jetstream.StreamConfig) ([]Drift, error) {
	applyErr := p.apply(ctx, "stream "+c.Name, c.Name, &c.Replicas, func() error {
		rctx, cancel := request(ctx)
		defer cancel()
		_, err := js.CreateOrUpdateStream(rctx, c)
		return insufficient(err, c)
	})
	return reconcile("stream "+c.Name, applyErr, func() ([]Drift, error) { return CheckStream(ctx, js, c) })
}

// errCodeStorageExceeded is nats-server's JSStorageResourcesExceededErr.
const errCodeStorageExceeded jetstream.ErrorCode = 10047

// insufficient explains the server's "insufficient storage resources" for
// a stream with max_bytes: JetStream reserves a stream's max_bytes of its
// storage up front, so a server with less (max_file_store) refuses it, and
// an operator read only the server's words (found by review).
func insufficient(err error, c jetstream.StreamConfig) error {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != errCodeStorageExceeded || c.MaxBytes <= 0 {
		return err
	}
	return fmt.Errorf("%w: JetStream reserves each stream's max_bytes up front, and %s's is %d MiB (%d MiB times %d replica(s) in all); give the servers' JetStream more storage (max_file_store), see deploy/OPERATIONS.md, Storage",
		err, c.Name, c.MaxBytes>>20, c.MaxBytes>>20*int64(max(c.Replicas, 1)), max(c.Replicas, 1))
}

func ensureObjectStore(ctx context.Context, js jetstream.JetStream, p *planner, c jetstream.ObjectStoreConfig) ([]Drift, error) {
	applyErr := p.apply(ctx, "objectstore "+c.Bucket, objStream(c.Bucket), &c.Replicas, func() error {
		rctx, cancel := request(ctx)
		defer cancel()
		_, err := js.CreateOrUpdateObjectStore(rctx, c)
		return err
	})
	return reconcile("objectstore "+c.Bucket, applyErr, func() ([]Drift, error) { return CheckObjectStore(ctx, js, c) })
}

// CheckObjectStore compares the running Object Store with c.
func CheckObjectStore(ctx context.Context, js jetstream.JetStream, c jetstream.ObjectStoreConfig) ([]Drift, error) {
	rctx, cancel := request(ctx)
	defer cancel()
	s, err := js.Stream(rctx, objStream(c.Bucket))
	if err != nil {
		return nil, fmt.Errorf("open objectstore %s: %w", c.Bucket, err)
	}
	have := s.CachedInfo().Config
	storage := c.Storage // the zero value is file storage, as nats.go creates it
	d := differ{asset: "objectstore " + c.Bucket}
	d.add("subjects", "$O."+c.Bucket+".C.>,$O."+c.Bucket+".M.>", strings.Join(have.Subjects, ","))
	d.add("storage", storage, have.Storage)
	d.add("ttl", c.TTL, have.MaxAge)
	d.add("num_replicas", max(c.Replicas, 1), have.Replicas)
	if c.MaxBytes > 0 {
		d.add("max_bytes", c.MaxBytes, have.MaxBytes)
	}
	return d.out, nil
}

func ensureConsumer(ctx context.Context, js jetstream.JetStream, c ConsumerDef) ([]Drift, error) {
	rctx, cancel := request(ctx)
	_, applyErr := js.CreateOrUpdateConsumer(rctx, c.Stream, c.Config)
	cancel()
	return reconcile("consumer "+c.Stream+"/"+c.Config.Durable, applyErr, func() ([]Drift, error) { return CheckConsumer(ctx, js, c) })
}

// CheckStream compares the running stream with c.
func CheckStream(ctx context.Context, js jetstream.JetStream, c jetstream.StreamConfig) ([]Drift, error) {
	rctx, cancel := request(ctx)
	defer cancel()
	s, err := js.Stream(rctx, c.Name)
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", c.Name, err)
	}
	have := s.CachedInfo().Config
	d := differ{asset: "stream " + c.Name}
	d.add("subjects", strings.Join(c.Subjects, ","), strings.Join(have.Subjects, ","))
	d.add("retention", c.Retention, have.Retention)
	d.add("storage", c.Storage, have.Storage)
	d.add("max_age", c.MaxAge, have.MaxAge)
	d.add("duplicate_window", c.Duplicates, have.Duplicates)
	d.add("num_replicas", max(c.Replicas, 1), have.Replicas)
	d.add("allow_msg_counter", c.AllowMsgCounter, have.AllowMsgCounter)
	if c.MaxMsgsPerSubject != 0 {
		d.add("max_msgs_per_subject", c.MaxMsgsPerSubject, have.MaxMsgsPerSubject)
	}
	if c.MaxBytes > 0 {
		d.add("max_bytes", c.MaxBytes, have.MaxBytes)
	}
	return d.out, nil
}

// CheckConsumer compares the running consumer with c.
func CheckConsumer(ctx context.Context, js jetstream.JetStream, c ConsumerDef) ([]Drift, error) {
	rctx, cancel := request(ctx)
	defer cancel()
	cons, err := js.Consumer(rctx, c.Stream, c.Config.Durable)
	if err != nil {
		return nil, fmt.Errorf("open consumer %s/%s: %w", c.Stream, c.Config.Durable, err)
	}
	have := cons.CachedInfo().Config
	d := differ{asset: "consumer " + c.Stream + "/" + c.Config.Durable}
	d.add("ack_policy", c.Config.AckPolicy, have.AckPolicy)
	d.add("ack_wait", c.Config.AckWait, have.AckWait)
	d.add("max_deliver", c.Config.MaxDeliver, have.MaxDeliver)
	d.add("max_ack_pending", c.Config.MaxAckPending, have.MaxAckPending)
	d.add("filter_subject", c.Config.FilterSubject, have.FilterSubject)
	return d.out, nil
}

type differ struct {
	asset string
	out   []Drift
}

func (d *differ) add(setting string, want, have any) {
	w, h := fmt.Sprint(want), fmt.Sprint(have)
	if w != h {
		d.out = append(d.out, Drift{Asset: d.asset, Setting: setting, Want: w, Have: h})
	}
}

func isAPIError(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr)
}

// CheckKV compares the running bucket with c.
func CheckKV(ctx context.Context, js jetstream.JetStream, c jetstream.KeyValueConfig) ([]Drift, error) {
	rctx, cancel := request(ctx)
	defer cancel()
	kv, err := js.KeyValue(rctx, c.Bucket)
	if err != nil {
		return nil, fmt.Errorf("open kv %s: %w", c.Bucket, err)
	}
	st, err := kv.Status(rctx)
	if err != nil {
		return nil, fmt.Errorf("kv %s status: %w", c.Bucket, err)
	}
	si := st.(*jetstream.KeyValueBucketStatus).StreamInfo()
	have := si.Config
	d := differ{asset: "kv " + c.Bucket}
	history := int64(c.History)
	if history == 0 {
		history = 1
	}
	d.add("history", history, have.MaxMsgsPerSubject)
	d.add("ttl", c.TTL, have.MaxAge)
	d.add("limit_marker_ttl", c.LimitMarkerTTL, have.SubjectDeleteMarkerTTL)
	d.add("storage", c.Storage, have.Storage)
	d.add("num_replicas", max(c.Replicas, 1), have.Replicas)
	if c.MaxBytes > 0 {
		d.add("max_bytes", c.MaxBytes, have.MaxBytes)
	}
	return d.out, nil
}

// OpenKV binds to a bucket, creating it from its definition only when it
// does not exist. Nodes that do not own the configuration (workers) use it,
// so two nodes with different flags never fight over settings.
func OpenKV(ctx context.Context, js jetstream.JetStream, d Definitions, name string, o Options) (jetstream.KeyValue, error) {
	rctx, cancel := request(ctx)
	kv, err := js.KeyValue(rctx, name)
	cancel()
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("open kv %s: %w", name, err)
	}
	c, ok := d.Bucket(name, o)
	if !ok {
		return nil, fmt.Errorf("kv %s: no definition in streams/", name)
	}
	err = newPlanner(js, o).apply(ctx, "kv "+name, kvStream(name), &c.Replicas, func() error {
		rctx, cancel := request(ctx)
		defer cancel()
		var err error
		kv, err = js.CreateKeyValue(rctx, c)
		return err
	})
	if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		rctx, cancel := request(ctx)
		defer cancel()
		return js.KeyValue(rctx, name) // another node created it meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("create kv %s: %w", name, err)
	}
	return kv, nil
}

// WaitKV binds to a bucket that a master creates. While it is missing the
// error is a *MissingError, which callers wait out instead of creating the
// bucket themselves.
func WaitKV(ctx context.Context, js jetstream.JetStream, name string) (jetstream.KeyValue, error) {
	rctx, cancel := request(ctx)
	defer cancel()
	kv, err := js.KeyValue(rctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, &MissingError{Asset: "kv " + name}
	}
	if err != nil {
		return nil, fmt.Errorf("open kv %s: %w", name, err)
	}
	return kv, nil
}

// MissingError is an asset a master has not created yet.
type MissingError struct{ Asset string }

func (e *MissingError) Error() string {
	return e.Asset + " does not exist yet: waiting for a master to create the mesh's assets"
}

// Names lists the assets, for messages and doctor.
func (d Definitions) Names() []string {
	var n []string
	for _, c := range d.KV {
		n = append(n, "kv "+c.Bucket)
	}
	for _, c := range d.Streams {
		n = append(n, "stream "+c.Name)
	}
	for _, c := range d.Consumers {
		n = append(n, "consumer "+c.Stream+"/"+c.Config.Durable)
	}
	for _, c := range d.ObjectStores {
		n = append(n, "objectstore "+c.Bucket)
	}
	slices.Sort(n)
	return n
}
