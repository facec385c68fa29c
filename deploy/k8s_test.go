package deploy

import (
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// The Kubernetes manifests (deploy/k8s) are checked without a cluster:
// kustomize's own library builds the kustomization as `kubectl apply -k`
// does, every object is decoded strictly (unknown or duplicate fields are
// errors) into the k8s.io/api types, and the objects are checked against
// each other, the compose file (images, ports, the NATS cluster, the
// masters' flags) and the real binaries' flags and variables.

const k8sDir = "k8s"

// k8sScheme knows every kind the manifests may use; another kind fails
// the decode until it is added here, with its checks.
func k8sScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = corev1.AddToScheme(s)
	_ = appsv1.AddToScheme(s)
	_ = networkingv1.AddToScheme(s)
	return s
}

// k8sObjects is the kustomization's output, decoded.
type k8sObjects struct {
	namespaces   map[string]*corev1.Namespace
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	services     map[string]*corev1.Service
	statefulSets map[string]*appsv1.StatefulSet
	deployments  map[string]*appsv1.Deployment
	policies     map[string]*networkingv1.NetworkPolicy
	namespaceOf  map[string]string // "Kind/name" -> namespace
}

// buildK8s runs kustomize on dir of fsys and decodes what it emits.
func buildK8s(fsys filesys.FileSystem, dir string) (*k8sObjects, error) {
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	scheme := k8sScheme()
	dec := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme,
		kjson.SerializerOptions{Yaml: true, Strict: true})
	o := &k8sObjects{namespaces: map[string]*corev1.Namespace{}, configMaps: map[string]*corev1.ConfigMap{},
		secrets: map[string]*corev1.Secret{}, services: map[string]*corev1.Service{},
		statefulSets: map[string]*appsv1.StatefulSet{}, deployments: map[string]*appsv1.Deployment{},
		policies: map[string]*networkingv1.NetworkPolicy{}, namespaceOf: map[string]string{}}
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return nil, err
		}
		obj, gvk, err := dec.Decode(y, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s %s: strict decode into k8s.io/api: %w", r.GetKind(), r.GetName(), err)
		}
		key := gvk.Kind + "/" + r.GetName()
		if _, dup := o.namespaceOf[key]; dup {
			return nil, fmt.Errorf("%s twice", key)
		}
		o.namespaceOf[key] = r.GetNamespace()
		switch v := obj.(type) {
		case *corev1.Namespace:
			o.namespaces[v.Name] = v
		case *corev1.ConfigMap:
			o.configMaps[v.Name] = v
		case *corev1.Secret:
			o.secrets[v.Name] = v
		case *corev1.Service:
			o.services[v.Name] = v
		case *appsv1.StatefulSet:
			o.statefulSets[v.Name] = v
		case *appsv1.Deployment:
			o.deployments[v.Name] = v
		case *networkingv1.NetworkPolicy:
			o.policies[v.Name] = v
		default:
			return nil, fmt.Errorf("%s: kind %s has no checks in deploy/k8s_test.go", key, gvk.Kind)
		}
	}
	return o, nil
}

// k8sFS copies deploy/k8s into memory, with edits (file -> old -> new)
// applied exactly once each.
func k8sFS(t *testing.T, edits map[string][2]string) filesys.FileSystem {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "deploy", k8sDir)
	mem := filesys.MakeFsInMemory()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if e, ok := edits[rel]; ok {
			b = mutate(t, b, e[0], e[1])
		}
		return mem.WriteFile(path.Join("/k8s", filepath.ToSlash(rel)), b)
	})
	if err != nil {
		t.Fatal(err)
	}
	return mem
}

// k8sChecker compares the objects with each other and with the compose
// file's checker (its NATS nodes, Dockerfile, crawlmesh services).
type k8sChecker struct {
	o       *k8sObjects
	compose *checker
	errs    []string
	// crawlmesh containers found, for the flag test.
	containers []k8sContainer
}

type k8sContainer struct {
	owner string // Deployment/worker
	pod   corev1.PodSpec
	meta  map[string]string // pod template annotations
	c     corev1.Container
	bin   string // master, worker, crawlmesh
}

func (k *k8sChecker) errorf(format string, a ...any) {
	k.errs = append(k.errs, fmt.Sprintf(format, a...))
}

func checkK8s(o *k8sObjects, compose *checker) []string {
	k := &k8sChecker{o: o, compose: compose}
	k.checkNamespace()
	k.checkNATS()
	k.checkCrawlmesh()
	k.checkNetworkPolicy()
	sort.Strings(k.errs)
	return k.errs
}

const k8sNamespace = "crawlmesh"

// checkNetworkPolicy: a NetworkPolicy guards the NATS pods' client and
// route ports, and lets exactly the mesh's pods (masters, workers, the
// other NATS servers) reach them: NATS runs without users here.
func (k *k8sChecker) checkNetworkPolicy() {
	ss, ok := k.o.statefulSets["nats"]
	if !ok {
		return
	}
	var guard *networkingv1.NetworkPolicy
	for _, p := range k.o.policies {
		if sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector); err == nil && sel.Matches(labels.Set(ss.Spec.Template.Labels)) {
			guard = p
		}
	}
	if guard == nil {
		k.errorf("no NetworkPolicy selects the NATS pods: any pod of the cluster can reach NATS, which has no users")
		return
	}
	pods := map[string]map[string]string{"nats": ss.Spec.Template.Labels}
	for name, d := range k.o.deployments {
		pods[name] = d.Spec.Template.Labels
	}
	for _, port := range []int{4222, 6222} {
		for _, rule := range guard.Spec.Ingress {
			if !slices.ContainsFunc(rule.Ports, func(p networkingv1.NetworkPolicyPort) bool { return p.Port != nil && p.Port.IntValue() == port }) {
				continue
			}
			if len(rule.From) == 0 {
				k.errorf("NetworkPolicy %s: port %d is open to every pod", guard.Name, port)
			}
			for name, lbl := range pods {
				if name == "nats" && port == 4222 {
					continue
				}
				reached := slices.ContainsFunc(rule.From, func(peer networkingv1.NetworkPolicyPeer) bool {
					if peer.PodSelector == nil || peer.NamespaceSelector != nil || peer.IPBlock != nil {
						return false
					}
					sel, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
					return err == nil && sel.Matches(labels.Set(lbl))
				})
				if !reached {
					k.errorf("NetworkPolicy %s: %s pods cannot reach NATS port %d", guard.Name, name, port)
				}
			}
		}
	}
}

func (k *k8sChecker) checkNamespace() {
	if _, ok := k.o.namespaces[k8sNamespace]; !ok {
		k.errorf("no Namespace %s", k8sNamespace)
	}
	for key, ns := range k.o.namespaceOf {
		if !strings.HasPrefix(key, "Namespace/") && ns != k8sNamespace {
			k.errorf("%s: namespace %q; want %s (kustomization namespace)", key, ns, k8sNamespace)
		}
	}
}

// headless returns the Service a StatefulSet names, checked to be headless
// and to select the set's pods.
func (k *k8sChecker) headless(owner string, name string, podLabels map[string]string) *corev1.Service {
	svc, ok := k.o.services[name]
	if !ok {
		k.errorf("%s: serviceName %s: no such Service", owner, name)
		return nil
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		k.errorf("%s: Service %s is not headless (clusterIP: None): the pods get no stable names", owner, name)
	}
	k.selects(owner, svc, podLabels)
	return svc
}

func (k *k8sChecker) selects(owner string, svc *corev1.Service, podLabels map[string]string) {
	if len(svc.Spec.Selector) == 0 {
		k.errorf("Service %s selects nothing", svc.Name)
	}
	for l, v := range svc.Spec.Selector {
		if podLabels[l] != v {
			k.errorf("Service %s selects %s=%s, which %s's pods do not have", svc.Name, l, v, owner)
		}
	}
}

// port resolves a probe's or Service's target port against a container.
func port(c corev1.Container, p intstr.IntOrString) int {
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	return -1
}

func containerNamed(spec corev1.PodSpec, name string) (corev1.Container, bool) {
	for _, c := range spec.Containers {
		if c.Name == name {
			return c, true
		}
	}
	return corev1.Container{}, false
}

// checkProbes: startup, readiness and liveness GET /healthz (with query
// for NATS) on wantPort.
func (k *k8sChecker) checkProbes(owner string, c corev1.Container, wantPort int) {
	for name, p := range map[string]*corev1.Probe{"startupProbe": c.StartupProbe, "readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
		switch {
		case p == nil:
			k.errorf("%s: container %s has no %s", owner, c.Name, name)
		case p.HTTPGet == nil:
			k.errorf("%s: container %s: %s is not an HTTP GET", owner, c.Name, name)
		case !strings.HasPrefix(p.HTTPGet.Path, "/healthz"):
			k.errorf("%s: container %s: %s GETs %s; want /healthz", owner, c.Name, name, p.HTTPGet.Path)
		case port(c, p.HTTPGet.Port) != wantPort:
			k.errorf("%s: container %s: %s on port %s (%d), but the process listens on %d", owner, c.Name, name, p.HTTPGet.Port.String(), port(c, p.HTTPGet.Port), wantPort)
		}
	}
}

// checkScrape: the pod template asks Prometheus to scrape /metrics on port.
func (k *k8sChecker) checkScrape(owner string, ann map[string]string, port int) {
	if ann["prometheus.io/scrape"] != "true" {
		k.errorf("%s: no prometheus.io/scrape \"true\" annotation on its pods", owner)
	}
	if ann["prometheus.io/port"] != strconv.Itoa(port) {
		k.errorf("%s: prometheus.io/port %q, but metrics are on %d", owner, ann["prometheus.io/port"], port)
	}
	if ann["prometheus.io/path"] != "/metrics" {
		k.errorf("%s: prometheus.io/path %q; want /metrics", owner, ann["prometheus.io/path"])
	}
}

func (k *k8sChecker) checkResources(owner string, spec corev1.PodSpec) {
	for _, c := range spec.Containers {
		r := c.Resources.Requests
		if r.Cpu().IsZero() || r.Memory().IsZero() {
			k.errorf("%s: container %s has no cpu and memory requests", owner, c.Name)
		}
		if c.Resources.Limits.Memory().IsZero() {
			k.errorf("%s: container %s has no memory limit", owner, c.Name)
		}
	}
}

// checkNATS: the StatefulSet is the compose file's cluster: the same image,
// ports and cluster name, JetStream on a volume claim, routes to every pod
// by the headless Service, probes on the monitoring port, and an exporter
// like compose's beside each server.
func (k *k8sChecker) checkNATS() {
	ss, ok := k.o.statefulSets["nats"]
	if !ok {
		k.errorf("no StatefulSet nats")
		return
	}
	owner := "StatefulSet/nats"
	if n := ss.Spec.Replicas; n == nil || int(*n) != len(k.compose.nats) {
		k.errorf("%s: replicas %v; want %d, the compose file's NATS servers", owner, ss.Spec.Replicas, len(k.compose.nats))
		return
	}
	replicas := int(*ss.Spec.Replicas)
	svc := k.headless(owner, ss.Spec.ServiceName, ss.Spec.Template.Labels)
	if svc != nil && !svc.Spec.PublishNotReadyAddresses {
		k.errorf("Service %s: publishNotReadyAddresses is off: routes would not resolve until a server is ready, which needs the cluster", svc.Name)
	}
	spec := ss.Spec.Template.Spec
	c, ok := containerNamed(spec, "nats")
	if !ok {
		k.errorf("%s: no container nats", owner)
		return
	}
	composeNATS := k.compose.nats[0]
	if c.Image != composeNATS.svc.Image {
		k.errorf("%s: image %s; compose runs %s", owner, c.Image, composeNATS.svc.Image)
	}
	conf, ok := flagValue(c.Args, "config")
	if !ok {
		k.errorf("%s: nats-server has no --config", owner)
		return
	}
	k.checkMemLimit(owner, c)
	text, ok := k.mountedConfig(owner, spec, c, conf)
	if !ok {
		return
	}
	opts, err := parseNATSConf(text, ss.Name+"-0", c)
	if err != nil {
		k.errorf("%s: %s: %v", owner, conf, err)
		return
	}
	co := composeNATS.opts
	for _, p := range []struct {
		what      string
		got, want int
		name      string
	}{{"client port", opts.Port, composeNATS.clientPort(), "client"}, {"cluster port", opts.Cluster.Port, co.Cluster.Port, "cluster"}, {"monitoring port", opts.HTTPPort, co.HTTPPort, "monitor"}} {
		if p.got != p.want {
			k.errorf("%s: %s %d; compose uses %d", owner, p.what, p.got, p.want)
		}
		if port(c, intstr.FromString(p.name)) != p.got {
			k.errorf("%s: container port %q is %d, but the server's %s is %d", owner, p.name, port(c, intstr.FromString(p.name)), p.what, p.got)
		}
	}
	if !opts.JetStream {
		k.errorf("%s: JetStream is off", owner)
	}
	if opts.Cluster.Name != co.Cluster.Name {
		k.errorf("%s: cluster name %q; compose's is %q", owner, opts.Cluster.Name, co.Cluster.Name)
	}
	if opts.ServerName == "" || opts.ServerName != ss.Name+"-0" {
		k.errorf("%s: server_name %q for pod %s-0; want the pod's name (unique per server)", owner, opts.ServerName, ss.Name)
	}
	claimed := false
	for _, m := range c.VolumeMounts {
		if opts.StoreDir == m.MountPath || strings.HasPrefix(opts.StoreDir, m.MountPath+"/") {
			for _, t := range ss.Spec.VolumeClaimTemplates {
				claimed = claimed || t.Name == m.Name
			}
		}
	}
	if !claimed {
		k.errorf("%s: JetStream store %s is not on a volume claim template: its data would die with the pod", owner, opts.StoreDir)
	}
	want := map[string]bool{}
	if svc != nil {
		for i := range replicas {
			want[net.JoinHostPort(fmt.Sprintf("%s-%d.%s", ss.Name, i, svc.Name), strconv.Itoa(opts.Cluster.Port))] = true
		}
	}
	have := map[string]bool{}
	for _, r := range opts.Routes {
		have[r.Host] = true
		if !want[r.Host] {
			k.errorf("%s: route %s is not a server's stable name and cluster port (want %v)", owner, r, keys(want))
		}
	}
	for w := range want {
		if !have[w] {
			k.errorf("%s: no route to %s", owner, w)
		}
	}
	k.checkProbes(owner, c, opts.HTTPPort)
	k.checkResources(owner, spec)

	// The exporter sidecar: compose's image, reading this server.
	exporterImage := ""
	for _, s := range k.compose.servicesOfImage("natsio/prometheus-nats-exporter") {
		exporterImage = s.Image
	}
	e, ok := containerNamed(spec, "exporter")
	if !ok {
		k.errorf("%s: no exporter container: nats-server has no /metrics of its own", owner)
		return
	}
	if e.Image != exporterImage {
		k.errorf("%s: exporter image %s; compose runs %s", owner, e.Image, exporterImage)
	}
	if len(e.Args) == 0 {
		k.errorf("%s: exporter reads no server", owner)
	} else if u, err := url.Parse(e.Args[len(e.Args)-1]); err != nil || u.Hostname() != "localhost" || u.Port() != strconv.Itoa(opts.HTTPPort) {
		k.errorf("%s: exporter reads %s, but the server's monitoring port is localhost:%d", owner, e.Args[len(e.Args)-1], opts.HTTPPort)
	}
	if len(e.Ports) != 1 {
		k.errorf("%s: exporter has %d ports; want its metrics port", owner, len(e.Ports))
	} else {
		k.checkScrape(owner, ss.Spec.Template.Annotations, int(e.Ports[0].ContainerPort))
	}
}

// mountedConfig returns the ConfigMap text mounted at file in container c.
func (k *k8sChecker) mountedConfig(owner string, spec corev1.PodSpec, c corev1.Container, file string) (string, bool) {
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(file, m.MountPath+"/")
		if !ok {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			cm, ok := k.o.configMaps[v.ConfigMap.Name]
			if !ok {
				k.errorf("%s: volume %s: no ConfigMap %s", owner, v.Name, v.ConfigMap.Name)
				return "", false
			}
			text, ok := cm.Data[rel]
			if !ok {
				k.errorf("%s: ConfigMap %s has no key %s (mounted as %s)", owner, cm.Name, rel, file)
			}
			return text, ok
		}
	}
	k.errorf("%s: %s is not in a mounted ConfigMap", owner, file)
	return "", false
}

// parseNATSConf parses a nats-server config with the server's own parser,
// with the environment variables the container sets from the pod (its
// name) as pod would have them.
func parseNATSConf(text, pod string, c corev1.Container) (*server.Options, error) {
	dir, err := os.MkdirTemp("", "crawlmesh-k8s-nats-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
			// The parser resolves $VAR from the process environment.
			if old, had := os.LookupEnv(e.Name); had {
				defer os.Setenv(e.Name, old)
			} else {
				defer os.Unsetenv(e.Name)
			}
			_ = os.Setenv(e.Name, pod)
		}
	}
	f := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		return nil, err
	}
	return server.ProcessConfigFile(f)
}

// checkCrawlmesh: masters and workers run the compose file's image and
// binaries with the compose masters' settings, take their node id from the
// pod's name, reach every NATS server, listen where the probes and
// Prometheus look, and have resource requests.
func (k *k8sChecker) checkCrawlmesh() {
	image := ""
	for _, s := range k.compose.services() {
		if s.Build != nil {
			image = s.Image
		}
	}
	type owner struct {
		name     string
		spec     corev1.PodTemplateSpec
		replicas *int32
		role     string
	}
	var owners []owner
	if ss, ok := k.o.statefulSets["master"]; ok {
		owners = append(owners, owner{"StatefulSet/master", ss.Spec.Template, ss.Spec.Replicas, "master"})
		k.headless("StatefulSet/master", ss.Spec.ServiceName, ss.Spec.Template.Labels)
	} else {
		k.errorf("no StatefulSet master: masters keep their node id across restarts")
	}
	if d, ok := k.o.deployments["worker"]; ok {
		owners = append(owners, owner{"Deployment/worker", d.Spec.Template, d.Spec.Replicas, "worker"})
	} else {
		k.errorf("no Deployment worker")
	}
	composeWorkers := k.compose.byRole["worker"]
	composeMasters := k.compose.byRole["master"]
	for _, o := range owners {
		var want int
		switch o.role {
		case "master":
			want = len(composeMasters)
		case "worker":
			if len(composeWorkers) > 0 && composeWorkers[0].svc.Deploy != nil && composeWorkers[0].svc.Deploy.Replicas != nil {
				want = *composeWorkers[0].svc.Deploy.Replicas
			}
		}
		if o.replicas == nil || int(*o.replicas) != want {
			k.errorf("%s: replicas %v; compose runs %d", o.name, o.replicas, want)
		}
		if len(o.spec.Spec.Containers) != 1 {
			k.errorf("%s: %d containers; want one", o.name, len(o.spec.Spec.Containers))
			continue
		}
		c := o.spec.Spec.Containers[0]
		if c.Image != image {
			k.errorf("%s: image %s; compose builds %s (deploy/Dockerfile)", o.name, c.Image, image)
		}
		bin := ""
		if len(c.Command) == 1 && path.Dir(c.Command[0]) == k.compose.docker.binDir {
			bin = path.Base(c.Command[0])
		}
		if !slices.Contains(k.compose.docker.binaries, bin) || bin != o.role {
			k.errorf("%s: command %v; want %s/%s, which the image has", o.name, c.Command, k.compose.docker.binDir, o.role)
			continue
		}
		k.containers = append(k.containers, k8sContainer{owner: o.name, pod: o.spec.Spec, meta: o.spec.Annotations, c: c, bin: bin})
		env := k.env(o.name, c)
		// The node id: the pod's name, set by the downward API.
		if _, given := flagValue(c.Args, "id"); given {
			k.errorf("%s: --id in args: every replica would claim the same node id", o.name)
		}
		idFromPod := false
		for _, e := range c.Env {
			if e.Name == "CRAWLMESH_ID" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
				idFromPod = true
			}
		}
		if !idFromPod {
			k.errorf("%s: CRAWLMESH_ID is not the pod's name (env valueFrom fieldRef metadata.name)", o.name)
		}
		k.checkNATSURL(o.name, env["CRAWLMESH_NATS_URL"])
		// --http: on every interface, where the probes and Prometheus look.
		addr, ok := flagValue(c.Args, "http")
		if !ok {
			addr = env["CRAWLMESH_HTTP"]
		}
		host, p, err := net.SplitHostPort(addr)
		if err != nil {
			k.errorf("%s: --http %q: %v", o.name, addr, err)
			continue
		}
		if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
			k.errorf("%s: --http %s listens on %s only: probes and Prometheus cannot reach it (use 0.0.0.0)", o.name, addr, host)
		}
		httpPort, _ := strconv.Atoi(p)
		k.checkProbes(o.name, c, httpPort)
		k.checkScrape(o.name, o.spec.Annotations, httpPort)
		k.checkResources(o.name, o.spec.Spec)
		if o.role == "master" {
			// The compose masters' settings, --id and --http aside.
			for _, f := range []string{"replicas", "lease"} {
				cv, _ := composeMasters[0].setting(f)
				if kv, _ := flagValue(c.Args, f); kv != cv {
					k.errorf("%s: --%s %q; the compose masters run %q", o.name, f, kv, cv)
				}
			}
		}
	}
}

// env is the container's CRAWLMESH_* environment: its envFrom ConfigMaps
// and Secrets (non-optional ones must exist), then env, as the kubelet
// builds it.
func (k *k8sChecker) env(owner string, c corev1.Container) map[string]string {
	out := map[string]string{}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm, ok := k.o.configMaps[ef.ConfigMapRef.Name]
			if !ok {
				if ef.ConfigMapRef.Optional == nil || !*ef.ConfigMapRef.Optional {
					k.errorf("%s: envFrom ConfigMap %s does not exist", owner, ef.ConfigMapRef.Name)
				}
				continue
			}
			for n, v := range cm.Data {
				out[n] = v
			}
		case ef.SecretRef != nil:
			s, ok := k.o.secrets[ef.SecretRef.Name]
			if !ok {
				if ef.SecretRef.Optional == nil || !*ef.SecretRef.Optional {
					k.errorf("%s: envFrom Secret %s does not exist", owner, ef.SecretRef.Name)
				}
				continue
			}
			for n, v := range s.StringData {
				out[n] = v
			}
			for n, v := range s.Data {
				out[n] = string(v)
			}
		}
	}
	for _, e := range c.Env {
		out[e.Name] = e.Value
	}
	return out
}

var goMemLimitRE = regexp.MustCompile(`^([0-9]+)(B|KiB|MiB|GiB|TiB)?$`)

// checkMemLimit: nats-server's GOMEMLIMIT is 80–95 % of its container's
// memory limit: above it the kernel kills the server before Go's GC works
// harder; far below, the GC works hard for memory the pod may use.
func (k *k8sChecker) checkMemLimit(owner string, c corev1.Container) {
	v := k.env(owner, c)["GOMEMLIMIT"]
	m := goMemLimitRE.FindStringSubmatch(v)
	if m == nil {
		k.errorf("%s: GOMEMLIMIT %q is not a size as Go reads it (say 3686MiB)", owner, v)
		return
	}
	n, _ := strconv.ParseFloat(m[1], 64)
	n *= map[string]float64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[m[2]]
	limit := float64(c.Resources.Limits.Memory().Value())
	if r := n / limit; limit == 0 || r < 0.8 || r > 0.95 {
		k.errorf("%s: GOMEMLIMIT %s is %.0f %% of the memory limit %s; want 80–95 %%", owner, v, 100*r, c.Resources.Limits.Memory())
	}
}

// checkNATSURL: the nodes reach every NATS server by its stable name and
// client port, as compose's reach its three.
func (k *k8sChecker) checkNATSURL(owner, v string) {
	ss, ok := k.o.statefulSets["nats"]
	if !ok || ss.Spec.Replicas == nil {
		return
	}
	var want []string
	for i := range int(*ss.Spec.Replicas) {
		want = append(want, fmt.Sprintf("nats://%s-%d.%s:%d", ss.Name, i, ss.Spec.ServiceName, k.compose.nats[0].clientPort()))
	}
	var got []string
	for _, u := range strings.Split(v, ",") {
		if u = strings.TrimSpace(u); u != "" {
			got = append(got, u)
		}
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		k.errorf("%s: NATS URLs %v; want every server, %v", owner, got, want)
	}
}

func composeChecker(t *testing.T) *checker {
	t.Helper()
	p, _ := loadFile(t)
	c := &checker{p: p, root: repoRoot(t), read: os.ReadFile, byRole: map[string][]cmService{}}
	c.checkDockerfile()
	c.checkNATS()
	c.checkCrawlmesh()
	if len(c.errs) > 0 {
		t.Fatalf("compose file inconsistent (see TestComposeFileIsConsistent): %v", c.errs)
	}
	return c
}

// TestK8sManifests: deploy/k8s builds with kustomize, decodes strictly into
// the Kubernetes API types, and agrees with itself and the compose file.
func TestK8sManifests(t *testing.T) {
	o, err := buildK8s(k8sFS(t, nil), "/k8s")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range checkK8s(o, composeChecker(t)) {
		t.Error(e)
	}
	if len(o.statefulSets)+len(o.deployments) != 3 {
		t.Errorf("%d StatefulSets and %d Deployments; want nats, master and worker", len(o.statefulSets), len(o.deployments))
	}
}

// The check must catch breakage: each case breaks one thing in a copy of
// deploy/k8s, and kustomize, the strict decode or the check must say so.
func TestK8sCheckCatchesBreakage(t *testing.T) {
	compose := composeChecker(t)
	for _, tt := range []struct {
		name, file, old, new, want string
	}{
		{"misspelt field", "worker.yaml", "readinessProbe:", "readinesProbe:", `unknown field "spec.template.spec.containers[0].readinesProbe"`},
		{"duplicate field", "master.yaml", "  replicas: 2\n", "  replicas: 2\n  replicas: 3\n", "already defined"},
		{"resource not listed", "kustomization.yaml", "  - worker.yaml\n", "", "no Deployment worker"},
		{"route to a wrong port", "nats.yaml", "nats://nats-1.nats-headless:6222", "nats://nats-1.nats-headless:6223", "route nats://nats-1.nats-headless:6223"},
		{"route missing", "nats.yaml", "        nats://nats-2.nats-headless:6222\n", "", "no route to nats-2.nats-headless:6222"},
		{"two replicas", "nats.yaml", "  replicas: 3\n", "  replicas: 2\n", "replicas"},
		{"other cluster name", "nats.yaml", "name: crawlmesh\n      port: 6222", "name: other\n      port: 6222", `cluster name "other"`},
		{"store off the volume", "nats.yaml", "store_dir: /data", "store_dir: /tmp/js", "JetStream store /tmp/js is not on a volume claim"},
		{"routes not resolvable early", "nats.yaml", "  publishNotReadyAddresses: true\n", "", "publishNotReadyAddresses is off"},
		{"NATS image off compose", "nats.yaml", "image: nats:2.15-alpine", "image: nats:2.10-alpine", "compose runs nats:2.15-alpine"},
		{"NATS probe on the client port", "nats.yaml", "httpGet: {path: /healthz, port: monitor}", "httpGet: {path: /healthz, port: client}", "but the process listens on 8222"},
		{"exporter on the client port", "nats.yaml", `"http://localhost:8222"`, `"http://localhost:4222"`, "exporter reads http://localhost:4222"},
		{"one NATS URL missing", "config.yaml", ",nats://nats-2.nats-headless:4222", "", "want every server"},
		{"worker with a fixed id", "worker.yaml", `args: ["--http", "0.0.0.0:8091"]`, `args: ["--http", "0.0.0.0:8091", "--id", "w"]`, "--id in args"},
		{"worker id not from the pod", "worker.yaml", "fieldRef: {fieldPath: metadata.name}", "fieldRef: {fieldPath: metadata.uid}", "CRAWLMESH_ID is not the pod's name"},
		{"worker on loopback", "worker.yaml", `args: ["--http", "0.0.0.0:8091"]`, `args: ["--http", "127.0.0.1:8091"]`, "listens on 127.0.0.1 only"},
		{"scrape on the wrong port", "worker.yaml", `prometheus.io/port: "8091"`, `prometheus.io/port: "9091"`, `prometheus.io/port "9091"`},
		{"probe on the wrong port", "master.yaml", "containerPort: 8090", "containerPort: 8091", "but the process listens on 8090"},
		{"worker binary not in the image", "worker.yaml", `command: ["/usr/local/bin/worker"]`, `command: ["/usr/bin/worker"]`, "which the image has"},
		{"crawlmesh image off compose", "master.yaml", "image: crawlmesh:dev", "image: crawlmesh:latest", "compose builds crawlmesh:dev"},
		{"master lease off compose", "master.yaml", `"--lease", "15s"`, `"--lease", "5s"`, `--lease "5s"; the compose masters run "15s"`},
		{"no requests", "worker.yaml", "requests: {cpu: 250m, memory: 64Mi}", "requests: {}", "no cpu and memory requests"},
		{"GOMEMLIMIT over the memory limit", "nats.yaml", "value: 3686MiB", "value: 5GiB", "GOMEMLIMIT 5GiB is 125 % of the memory limit 4Gi"},
		{"memory limit raised alone", "nats.yaml", "limits: {memory: 4Gi}\n        - name: exporter", "limits: {memory: 8Gi}\n        - name: exporter", "GOMEMLIMIT 3686MiB is 45 %"},
		{"GOMEMLIMIT misspelt", "nats.yaml", "value: 3686MiB", "value: 3686MB", `GOMEMLIMIT "3686MB" is not a size`},
		{"no NetworkPolicy", "kustomization.yaml", "  - networkpolicy.yaml\n", "", "no NetworkPolicy selects the NATS pods"},
		{"workers shut out of NATS", "networkpolicy.yaml", "values: [master, worker, nats]", "values: [master, nats]", "worker pods cannot reach NATS port 4222"},
		{"NATS open to all", "networkpolicy.yaml", "    - from:\n        - podSelector:\n            matchExpressions:\n              - {key: app.kubernetes.io/name, operator: In, values: [master, worker, nats]}\n      ports:", "    - ports:", "port 4222 is open to every pod"},
		{"missing Secret", "master.yaml", "secretRef: {name: crawlmesh-api-token, optional: true}", "secretRef: {name: crawlmesh-api-tokn}", "envFrom Secret crawlmesh-api-tokn does not exist"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, err := buildK8s(k8sFS(t, map[string][2]string{tt.file: {tt.old, tt.new}}), "/k8s")
			if err != nil {
				if !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("build or decode refuses the broken copy, but not for %q: %v", tt.want, err)
				}
				return
			}
			errs := checkK8s(o, compose)
			if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tt.want) }) {
				t.Errorf("no problem mentions %q; got:\n  %s", tt.want, strings.Join(errs, "\n  "))
			}
		})
	}
}

var envNameRE = regexp.MustCompile(`CRAWLMESH_[A-Z0-9_]+`)

// TestK8sUsesRealFlagsAndVariables: every flag in a container's args and
// every CRAWLMESH_* variable it gets (env, ConfigMap, Secret) is one the
// image's binary takes: a flag's variable (nodeconfig.EnvName) or one its
// -h names (CRAWLMESH_API_TOKEN). A typo would only show in a cluster.
func TestK8sUsesRealFlagsAndVariables(t *testing.T) {
	compose := composeChecker(t)
	o, err := buildK8s(k8sFS(t, nil), "/k8s")
	if err != nil {
		t.Fatal(err)
	}
	k := &k8sChecker{o: o, compose: compose}
	k.checkCrawlmesh()
	if len(k.containers) != 2 {
		t.Fatalf("%d crawlmesh containers found; want master and worker (%v)", len(k.containers), k.errs)
	}
	dir := built(t, compose.docker.binaries)
	for _, kc := range k.containers {
		cmd := exec.CommandContext(t.Context(), filepath.Join(dir, kc.bin), "-h")
		cmd.Env = cleanEnv()
		out, _ := cmd.CombinedOutput()
		known := map[string]bool{}
		vars := map[string]bool{}
		for _, m := range helpFlagRE.FindAllStringSubmatch(string(out), -1) {
			for _, name := range m[1:] {
				if name != "" {
					known[name] = true
					v := "CRAWLMESH_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
					if name == "nats" {
						v = "CRAWLMESH_NATS_URL"
					}
					vars[v] = true
				}
			}
		}
		for _, v := range envNameRE.FindAllString(string(out), -1) {
			vars[v] = true
		}
		if len(known) == 0 {
			t.Fatalf("%s -h lists no flags:\n%s", kc.bin, out)
		}
		for _, a := range kc.c.Args {
			if strings.HasPrefix(a, "-") {
				n, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
				if !known[n] {
					t.Errorf("%s: %s has no flag -%s; it has %v", kc.owner, kc.bin, n, keys(known))
				}
			}
		}
		for name := range k.env(kc.owner, kc.c) {
			if strings.HasPrefix(name, "CRAWLMESH_") && !vars[name] {
				t.Errorf("%s: %s reads no variable %s; it reads %v", kc.owner, kc.bin, name, keys(vars))
			}
		}
	}
}
