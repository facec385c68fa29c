package streams_test

import (
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/natstest"
	"github.com/crawlmesh/crawlmesh/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions()...) }

// assetFiles lists, as Definitions.Names spells them, the assets the JSON
// files on disk define: kv/NAME.json, stream/NAME.json,
// consumer/STREAM/NAME.json and objectstore/NAME.json. Load must have parsed every one.
func assetFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || filepath.Ext(p) != ".json" {
			return err
		}
		name := strings.TrimSuffix(filepath.Base(p), ".json")
		switch dir := filepath.ToSlash(filepath.Dir(p)); {
		case dir == "kv":
			out = append(out, "kv "+name)
		case dir == "stream":
			out = append(out, "stream "+name)
		case strings.HasPrefix(dir, "consumer/"):
			out = append(out, "consumer "+strings.TrimPrefix(dir, "consumer/")+"/"+name)
		case dir == "objectstore":
			out = append(out, "objectstore "+name)
		default:
			t.Errorf("unexpected file %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func load(t *testing.T) streams.Definitions {
	t.Helper()
	d, err := streams.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return d
}

func TestLoadParsesEveryFile(t *testing.T) {
	d := load(t)
	want := assetFiles(t)
	if len(want) == 0 {
		t.Fatal("no definition files found")
	}
	if got := d.Names(); !slices.Equal(got, want) {
		t.Errorf("Load parsed %v, want one asset per file: %v", got, want)
	}
	for _, name := range want {
		if b, ok := strings.CutPrefix(name, "kv "); ok {
			if _, ok := d.Bucket(b, streams.Options{}); !ok {
				t.Errorf("kv/%s.json not in the loaded definitions", b)
			}
		}
	}
	c, ok := d.Bucket(mesh.NodesBucket, streams.Options{})
	if !ok {
		t.Fatalf("no definition for bucket %q", mesh.NodesBucket)
	}
	if c.TTL != 3*time.Second || c.LimitMarkerTTL != time.Minute || c.History != 1 ||
		c.Storage != jetstream.FileStorage || c.Replicas != 1 {
		t.Errorf("nodes definition = %+v, want ttl 3s, limit_marker_ttl 1m, history 1, file storage, 1 replica", c)
	}
}

func TestBucketAppliesOptions(t *testing.T) {
	d := load(t)
	c, _ := d.Bucket(mesh.NodesBucket, streams.Options{NodesTTL: 5 * time.Second, Replicas: 3})
	if c.TTL != 5*time.Second || c.Replicas != 3 {
		t.Errorf("Bucket with options = ttl %v replicas %d, want 5s and 3", c.TTL, c.Replicas)
	}
	if _, ok := d.Bucket("nope", streams.Options{}); ok {
		t.Error("Bucket(\"nope\") found a definition")
	}
}

// status reads the running config of bucket nodes.
func status(t *testing.T, js jetstream.JetStream) jetstream.StreamConfig {
	t.Helper()
	kv, err := js.KeyValue(t.Context(), mesh.NodesBucket)
	if err != nil {
		t.Fatalf("open nodes: %v", err)
	}
	st, err := kv.Status(t.Context())
	if err != nil {
		t.Fatalf("nodes status: %v", err)
	}
	return st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config
}

func TestEnsureCreatesNodesFromFile(t *testing.T) {
	s := natstest.RunServer(t)
	_, js := natstest.Connect(t, s)
	d := load(t)
	if err := streams.Ensure(t.Context(), js, d, streams.Options{}); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	c := status(t, js)
	if c.MaxAge != 3*time.Second {
		t.Errorf("MaxAge = %v, want 3s (file's ttl)", c.MaxAge)
	}
	if c.SubjectDeleteMarkerTTL != time.Minute || !c.AllowMsgTTL {
		t.Errorf("SubjectDeleteMarkerTTL = %v AllowMsgTTL = %v, want 1m and true", c.SubjectDeleteMarkerTTL, c.AllowMsgTTL)
	}
	if c.MaxMsgsPerSubject != 1 {
		t.Errorf("MaxMsgsPerSubject = %d, want 1", c.MaxMsgsPerSubject)
	}
	if c.Storage != jetstream.FileStorage {
		t.Errorf("Storage = %v, want file", c.Storage)
	}
	if c.Replicas != 1 {
		t.Errorf("Replicas = %d, want 1", c.Replicas)
	}
	if !strings.Contains(c.Description, "heartbeat") {
		t.Errorf("Description = %q, want the file's", c.Description)
	}
	dd, err := streams.CheckKV(t.Context(), js, mustBucket(t, d, streams.Options{}))
	if err != nil || len(dd) != 0 {
		t.Errorf("CheckKV after Ensure = %v, %v; want no drift", dd, err)
	}
}

func mustBucket(t *testing.T, d streams.Definitions, o streams.Options) jetstream.KeyValueConfig {
	t.Helper()
	c, ok := d.Bucket(mesh.NodesBucket, o)
	if !ok {
		t.Fatal("no nodes definition")
	}
	return c
}

func TestEnsureIsIdempotent(t *testing.T) {
	s := natstest.RunServer(t)
	_, js := natstest.Connect(t, s)
	d := load(t)
	if err := streams.Ensure(t.Context(), js, d, streams.Options{}); err != nil {
		t.Fatalf("first Ensure: %v", err)
	}
	kv, err := js.KeyValue(t.Context(), mesh.NodesBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "w1", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := streams.Ensure(t.Context(), js, d, streams.Options{}); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	if c := status(t, js); c.MaxAge != 3*time.Second {
		t.Errorf("MaxAge after second Ensure = %v, want 3s", c.MaxAge)
	}
	if _, err := kv.Get(t.Context(), "w1"); err != nil {
		t.Errorf("key lost by the second Ensure: %v", err)
	}
}

func TestEnsureReconcilesTTL(t *testing.T) {
	s := natstest.RunServer(t)
	_, js := natstest.Connect(t, s)
	d := load(t)
	if err := streams.Ensure(t.Context(), js, d, streams.Options{NodesTTL: 3 * time.Second}); err != nil {
		t.Fatalf("Ensure 3s: %v", err)
	}
	if c := status(t, js); c.MaxAge != 3*time.Second {
		t.Fatalf("MaxAge = %v, want 3s", c.MaxAge)
	}
	if err := streams.Ensure(t.Context(), js, d, streams.Options{NodesTTL: 5 * time.Second}); err != nil {
		t.Fatalf("Ensure 5s: %v", err)
	}
	if c := status(t, js); c.MaxAge != 5*time.Second {
		t.Errorf("MaxAge after Ensure with NodesTTL 5s = %v, want 5s", c.MaxAge)
	}
}

func TestEnsureReportsDriftItCannotFix(t *testing.T) {
	s := natstest.RunServer(t)
	_, js := natstest.Connect(t, s)
	d := load(t)
	if _, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{
		Bucket: mesh.NodesBucket, TTL: 3 * time.Second, Storage: jetstream.MemoryStorage,
	}); err != nil {
		t.Fatalf("pre-create memory bucket: %v", err)
	}
	err := streams.Ensure(t.Context(), js, d, streams.Options{})
	var de *streams.DriftError
	if !errors.As(err, &de) {
		t.Fatalf("Ensure = %v (%T), want a *streams.DriftError", err, err)
	}
	if !strings.Contains(de.Error(), "storage") {
		t.Errorf("DriftError %q does not name storage", de.Error())
	}
	found := false
	for _, dr := range de.Drift {
		if dr.Setting == "storage" {
			found = true
			if dr.Asset != "kv nodes" {
				t.Errorf("drift asset = %q, want %q", dr.Asset, "kv nodes")
			}
		}
	}
	if !found {
		t.Errorf("Drift %v has no storage entry", de.Drift)
	}
	if c := status(t, js); c.Storage != jetstream.MemoryStorage {
		t.Errorf("storage changed to %v; the server cannot change it, so it must stay memory", c.Storage)
	}
}

func TestOpenKVCreatesMissingBucket(t *testing.T) {
	s := natstest.RunServer(t)
	_, js := natstest.Connect(t, s)
	d := load(t)
	kv, err := streams.OpenKV(t.Context(), js, d, mesh.NodesBucket, streams.Options{NodesTTL: 2 * time.Second})
	if err != nil {
		t.Fatalf("OpenKV: %v", err)
	}
	if kv.Bucket() != mesh.NodesBucket {
		t.Errorf("bucket = %q", kv.Bucket())
	}
	c := status(t, js)
	if c.MaxAge != 2*time.Second || c.SubjectDeleteMarkerTTL != time.Minute {
		t.Errorf("created bucket MaxAge %v marker TTL %v, want 2s and 1m", c.MaxAge, c.SubjectDeleteMarkerTTL)
	}
	if _, err := streams.OpenKV(t.Context(), js, d, "nope", streams.Options{}); err == nil {
		t.Error("OpenKV of a bucket with no definition succeeded")
	}
}

func TestOpenKVBindsExistingWithoutChangingIt(t *testing.T) {
	s := natstest.RunServer(t)
	_, js := natstest.Connect(t, s)
	d := load(t)
	if err := streams.Ensure(t.Context(), js, d, streams.Options{NodesTTL: 3 * time.Second}); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	kv, err := streams.OpenKV(t.Context(), js, d, mesh.NodesBucket, streams.Options{NodesTTL: 5 * time.Second})
	if err != nil {
		t.Fatalf("OpenKV: %v", err)
	}
	if _, err := kv.Put(t.Context(), "w1", []byte(`{}`)); err != nil {
		t.Fatalf("put through the bound handle: %v", err)
	}
	if c := status(t, js); c.MaxAge != 3*time.Second {
		t.Errorf("OpenKV changed MaxAge to %v; it must keep the existing 3s", c.MaxAge)
	}
}

// TestEnsureCreatesObjectStore: the Object Store of objectstore/files.json
// exists after Ensure as stream OBJ_files, checks clean, and a drift the
// server cannot change (storage) is reported.
func TestEnsureCreatesObjectStore(t *testing.T) {
	s := natstest.RunServer(t)
	_, js := natstest.Connect(t, s)
	d := load(t)
	c, ok := d.ObjectStore("files", streams.Options{})
	if !ok {
		t.Fatal("no definition for Object Store files")
	}
	if err := streams.Ensure(t.Context(), js, d, streams.Options{}); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	st, err := js.Stream(t.Context(), "OBJ_files")
	if err != nil {
		t.Fatalf("stream OBJ_files: %v", err)
	}
	if got := strings.Join(st.CachedInfo().Config.Subjects, ","); got != "$O.files.C.>,$O.files.M.>" {
		t.Errorf("OBJ_files subjects = %s", got)
	}
	if dd, err := streams.CheckObjectStore(t.Context(), js, c); err != nil || len(dd) != 0 {
		t.Errorf("CheckObjectStore after Ensure = %v, %v; want no drift", dd, err)
	}
	obs, err := js.ObjectStore(t.Context(), "files")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obs.PutBytes(t.Context(), "a.txt", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := streams.Ensure(t.Context(), js, d, streams.Options{}); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	if b, err := obs.GetBytes(t.Context(), "a.txt"); err != nil || string(b) != "hello" {
		t.Errorf("object after second Ensure = %q, %v", b, err)
	}
	if err := js.DeleteObjectStore(t.Context(), "files"); err != nil {
		t.Fatal(err)
	}
	mem := c
	mem.Storage = jetstream.MemoryStorage
	if _, err := js.CreateObjectStore(t.Context(), mem); err != nil {
		t.Fatal(err)
	}
	err = streams.Ensure(t.Context(), js, d, streams.Options{})
	var de *streams.DriftError
	if !errors.As(err, &de) || !strings.Contains(de.Error(), "objectstore files: storage") {
		t.Errorf("Ensure over a memory Object Store = %v, want drift naming objectstore files: storage", err)
	}
}
