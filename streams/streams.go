package streams

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

//go:embed kv/*.json
var files embed.FS

// Definitions are the parsed files.
type Definitions struct {
	KV []jetstream.KeyValueConfig
}

// Options override what an operator may tune per deployment.
type Options struct {
	// NodesTTL is the heartbeat TTL of bucket nodes; 0 keeps the file's.
	NodesTTL time.Duration
	// Replicas for every asset; 0 keeps the files'.
	Replicas int
}

// Load parses the embedded files, refusing unknown fields so a typo in a
// file is an error, not a silently dropped setting.
func Load() (Definitions, error) {
	var d Definitions
	err := fs.WalkDir(files, "kv", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		var c jetstream.KeyValueConfig
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return fmt.Errorf("streams/%s: %w", p, err)
		}
		if want := strings.TrimSuffix(path.Base(p), ".json"); c.Bucket != want {
			return fmt.Errorf("streams/%s: bucket %q must match the file name", p, c.Bucket)
		}
		d.KV = append(d.KV, c)
		return nil
	})
	return d, err
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

func applyKV(c jetstream.KeyValueConfig, o Options) jetstream.KeyValueConfig {
	if o.NodesTTL > 0 && c.Bucket == "nodes" {
		c.TTL = o.NodesTTL
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
func Ensure(ctx context.Context, js jetstream.JetStream, d Definitions, o Options) error {
	var drift []Drift
	for _, c := range d.KV {
		c = applyKV(c, o)
		_, applyErr := js.CreateOrUpdateKeyValue(ctx, c)
		if applyErr != nil && !isAPIError(applyErr) {
			return fmt.Errorf("apply kv %s: %w", c.Bucket, applyErr)
		}
		// An update the server refuses (storage type, say) is reported
		// setting by setting from the running config.
		dd, err := CheckKV(ctx, js, c)
		if err != nil {
			if applyErr != nil {
				return fmt.Errorf("apply kv %s: %w", c.Bucket, applyErr)
			}
			return err
		}
		if len(dd) == 0 && applyErr != nil {
			return fmt.Errorf("apply kv %s: %w", c.Bucket, applyErr)
		}
		drift = append(drift, dd...)
	}
	if len(drift) > 0 {
		return &DriftError{Drift: drift}
	}
	return nil
}

func isAPIError(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr)
}

// CheckKV compares the running bucket with c.
func CheckKV(ctx context.Context, js jetstream.JetStream, c jetstream.KeyValueConfig) ([]Drift, error) {
	kv, err := js.KeyValue(ctx, c.Bucket)
	if err != nil {
		return nil, fmt.Errorf("open kv %s: %w", c.Bucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("kv %s status: %w", c.Bucket, err)
	}
	si := st.(*jetstream.KeyValueBucketStatus).StreamInfo()
	have := si.Config
	asset := "kv " + c.Bucket
	var out []Drift
	add := func(setting string, want, have any) {
		w, h := fmt.Sprint(want), fmt.Sprint(have)
		if w != h {
			out = append(out, Drift{Asset: asset, Setting: setting, Want: w, Have: h})
		}
	}
	history := int64(c.History)
	if history == 0 {
		history = 1
	}
	add("history", history, have.MaxMsgsPerSubject)
	add("ttl", c.TTL, have.MaxAge)
	add("limit_marker_ttl", c.LimitMarkerTTL, have.SubjectDeleteMarkerTTL)
	add("storage", c.Storage, have.Storage)
	replicas := max(c.Replicas, 1)
	add("num_replicas", replicas, have.Replicas)
	if c.MaxBytes > 0 {
		add("max_bytes", c.MaxBytes, have.MaxBytes)
	}
	return out, nil
}

// OpenKV binds to a bucket, creating it from its definition only when it
// does not exist. Nodes that do not own the configuration (workers) use it,
// so two nodes with different flags never fight over settings.
func OpenKV(ctx context.Context, js jetstream.JetStream, d Definitions, name string, o Options) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, name)
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
	kv, err = js.CreateKeyValue(ctx, c)
	if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return js.KeyValue(ctx, name) // another node created it meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("create kv %s: %w", name, err)
	}
	return kv, nil
}

// Names lists the assets, for messages and doctor.
func (d Definitions) Names() []string {
	var n []string
	for _, c := range d.KV {
		n = append(n, "kv "+c.Bucket)
	}
	slices.Sort(n)
	return n
}
