// Package kubernetes_test renders the manifests under deploy/kubernetes with
// kustomize's Go API, decodes every object strictly into its Kubernetes
// type, and checks that the objects agree with each other and with
// configs/adaptrec.yaml as the worker in the pod would load it.
package kubernetes_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/adaptrec/adaptrec/configs"
)

// object is what every object has: its kind and metadata.
type object struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
}

// serviceMonitor is the part of monitoring.coreos.com/v1 ServiceMonitor
// the manifests use; any other field fails the strict decode.
type serviceMonitor struct {
	object `json:",inline"`
	Spec   struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// scaledObject is the part of keda.sh/v1alpha1 ScaledObject the manifests
// use.
type scaledObject struct {
	object `json:",inline"`
	Spec   struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		PollingInterval int `json:"pollingInterval"`
		MinReplicaCount int `json:"minReplicaCount"`
		MaxReplicaCount int `json:"maxReplicaCount"`
		Triggers        []struct {
			Type              string            `json:"type"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
			} `json:"authenticationRef"`
		} `json:"triggers"`
	} `json:"spec"`
}

// triggerAuthentication is the part of keda.sh/v1alpha1
// TriggerAuthentication the manifests use.
type triggerAuthentication struct {
	object `json:",inline"`
	Spec   struct {
		SecretTargetRef []struct {
			Parameter string `json:"parameter"`
			Name      string `json:"name"`
			Key       string `json:"key"`
		} `json:"secretTargetRef"`
	} `json:"spec"`
}

// rendered is one kustomization's output, each object decoded strictly.
type rendered struct {
	statefulSet  *appsv1.StatefulSet
	services     []*corev1.Service
	configMaps   []*corev1.ConfigMap
	secrets      []*corev1.Secret
	pdb          *policyv1.PodDisruptionBudget
	monitor      *serviceMonitor
	scaled       *scaledObject
	triggerAuths []*triggerAuthentication
}

// render builds the kustomization in dir as `kubectl apply -k` does
// (kustomize's default options: no file outside the kustomization's root)
// and decodes each object into its type, failing on an unknown kind or
// field.
func render(t *testing.T, dir string) rendered {
	t.Helper()
	opts := krusty.MakeDefaultOptions()
	m, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var r rendered
	for _, res := range m.Resources() {
		js, err := res.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if err := r.add(res.GetApiVersion(), res.GetKind(), js); err != nil {
			t.Errorf("%s: %s %s/%s: %v", dir, res.GetApiVersion(), res.GetKind(), res.GetName(), err)
		}
	}
	if r.statefulSet == nil || r.pdb == nil || r.monitor == nil || r.scaled == nil || len(r.services) == 0 || len(r.configMaps) == 0 {
		t.Fatalf("%s: missing a StatefulSet, PodDisruptionBudget, ServiceMonitor, ScaledObject, Service or ConfigMap", dir)
	}
	return r
}

// add decodes js, an object of kind in apiVersion, into its type.
func (r *rendered) add(apiVersion, kind string, js []byte) error {
	var into any
	switch apiVersion + " " + kind {
	case "apps/v1 StatefulSet":
		r.statefulSet = &appsv1.StatefulSet{}
		into = r.statefulSet
	case "v1 Service":
		r.services = append(r.services, &corev1.Service{})
		into = r.services[len(r.services)-1]
	case "v1 ConfigMap":
		r.configMaps = append(r.configMaps, &corev1.ConfigMap{})
		into = r.configMaps[len(r.configMaps)-1]
	case "v1 Secret":
		r.secrets = append(r.secrets, &corev1.Secret{})
		into = r.secrets[len(r.secrets)-1]
	case "policy/v1 PodDisruptionBudget":
		r.pdb = &policyv1.PodDisruptionBudget{}
		into = r.pdb
	case "monitoring.coreos.com/v1 ServiceMonitor":
		r.monitor = &serviceMonitor{}
		into = r.monitor
	case "keda.sh/v1alpha1 ScaledObject":
		r.scaled = &scaledObject{}
		into = r.scaled
	case "keda.sh/v1alpha1 TriggerAuthentication":
		r.triggerAuths = append(r.triggerAuths, &triggerAuthentication{})
		into = r.triggerAuths[len(r.triggerAuths)-1]
	default:
		return fmt.Errorf("no type known for this kind")
	}
	return strictJSON(js, into)
}

// strictJSON decodes js into v, failing on a field v's type does not have
// and on trailing data.
func strictJSON(js []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(js))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("trailing data after the object")
	}
	return nil
}

// The decode really is strict: a misspelt field of a typed object and of a
// minimal CRD struct both fail.
func TestStrictDecodeRefusesUnknownFields(t *testing.T) {
	var r rendered
	if err := r.add("apps/v1", "StatefulSet", []byte(`{"kind":"StatefulSet","spec":{"replica":2}}`)); err == nil {
		t.Error("a StatefulSet with spec.replica decoded")
	}
	if err := r.add("keda.sh/v1alpha1", "ScaledObject", []byte(`{"spec":{"maxReplicas":6}}`)); err == nil {
		t.Error("a ScaledObject with spec.maxReplicas decoded")
	}
	if err := r.add("v1", "Pod", []byte(`{}`)); err == nil {
		t.Error("an object of a kind without a type decoded")
	}
}

// TestManifests renders the base and the secured overlay and checks their
// wiring against the configuration the worker in the pod loads.
func TestManifests(t *testing.T) {
	for _, dir := range []string{"base", filepath.Join("overlays", "secured")} {
		t.Run(dir, func(t *testing.T) {
			r := render(t, dir)
			cfg := podConfig(t, r)
			checkConfigMap(t, r)
			checkPod(t, r, cfg)
			checkSelectors(t, r)
			checkScaling(t, r, cfg)
		})
	}
}

// checkConfigMap: the ConfigMap holds configs/adaptrec.yaml as it is.
func checkConfigMap(t *testing.T, r rendered) {
	want, err := os.ReadFile(filepath.Join("..", "..", "configs", "adaptrec.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range r.configMaps {
		if got, ok := cm.Data["adaptrec.yaml"]; ok && got == string(want) {
			return
		}
	}
	t.Error("no ConfigMap holds configs/adaptrec.yaml as its adaptrec.yaml: run make manifests (deploy/kubernetes/base/adaptrec.yaml is its copy)")
}

// checkPod: replica name from the pod name, probes on metrics.addr's port
// (the port of configs/adaptrec.yaml), a grace period longer than the
// drain, memory sized.
func checkPod(t *testing.T, r rendered, cfg configs.Config) {
	c := r.statefulSet.Spec.Template.Spec.Containers[0]
	replica := envVar(c, configs.EnvPrefix+"_SNAPSHOT_REPLICA")
	if replica == nil || replica.ValueFrom == nil || replica.ValueFrom.FieldRef == nil || replica.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("snapshot.replica does not come from the pod name (metadata.name): %+v", replica)
	}
	port := addrPort(t, "metrics.addr", cfg.Metrics.Addr)
	if file := addrPort(t, "metrics.addr of configs/adaptrec.yaml", configs.Default().Metrics.Addr); port != file {
		t.Errorf("the pod's metrics.addr port %d, configs/adaptrec.yaml's %d", port, file)
	}
	for path, p := range map[string]*corev1.Probe{"/readyz": c.ReadinessProbe, "/healthz": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("no HTTP probe on %s", path)
			continue
		}
		if p.HTTPGet.Path != path || containerPort(t, c, p.HTTPGet.Port.String()) != port {
			t.Errorf("probe %s:%s, want %s on metrics.addr's port %d", p.HTTPGet.Path, p.HTTPGet.Port.String(), path, port)
		}
	}
	grace := r.statefulSet.Spec.Template.Spec.TerminationGracePeriodSeconds
	if grace == nil || float64(*grace) <= cfg.Worker.ShutdownTimeout.Seconds() {
		t.Errorf("terminationGracePeriodSeconds %v is not longer than worker.shutdown_timeout %v", ptrString(grace), cfg.Worker.ShutdownTimeout)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().Cmp(*c.Resources.Requests.Memory()) < 0 {
		t.Errorf("memory request %v, limit %v: want a request and a limit at least as large", c.Resources.Requests.Memory(), c.Resources.Limits.Memory())
	}
	checkMemLimit(t, c)
}

// checkMemLimit: the Go runtime's soft limit (GOMEMLIMIT) is set, in a form
// the runtime reads, and leaves the collector room under the container's
// limit: at most 90% of it, and at least the request.
func checkMemLimit(t *testing.T, c corev1.Container) {
	e := envVar(c, "GOMEMLIMIT")
	if e == nil {
		t.Error("no GOMEMLIMIT: the Go runtime does not know the container's memory limit")
		return
	}
	soft, err := goMemLimit(e.Value)
	if err != nil {
		t.Errorf("GOMEMLIMIT %q: %v", e.Value, err)
		return
	}
	limit, request := c.Resources.Limits.Memory().Value(), c.Resources.Requests.Memory().Value()
	if soft > limit*9/10 || soft < request {
		t.Errorf("GOMEMLIMIT %s (%d bytes): want between the request (%d) and 90%% of the limit (%d)", e.Value, soft, request, limit*9/10)
	}
}

// goMemLimit parses GOMEMLIMIT as the Go runtime does: a number of bytes
// with an optional unit B, KiB, MiB, GiB or TiB.
func goMemLimit(s string) (int64, error) {
	units := []struct {
		suffix string
		scale  int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	scale := int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, scale = n, u.scale
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("not a positive number of bytes with a unit B, KiB, MiB, GiB or TiB")
	}
	return n * scale, nil
}

// checkSelectors: the Service, the PodDisruptionBudget and the
// ServiceMonitor select what they should, on the metrics port and path.
func checkSelectors(t *testing.T, r rendered) {
	pod := r.statefulSet.Spec.Template.Labels
	svc := r.services[0]
	if !subset(svc.Spec.Selector, pod) || svc.Name != r.statefulSet.Spec.ServiceName {
		t.Errorf("Service %s selects %v; the StatefulSet's service is %q, its pods %v", svc.Name, svc.Spec.Selector, r.statefulSet.Spec.ServiceName, pod)
	}
	if !subset(r.pdb.Spec.Selector.MatchLabels, pod) || !subset(r.statefulSet.Spec.Selector.MatchLabels, pod) {
		t.Errorf("the PodDisruptionBudget (%v) or the StatefulSet (%v) does not select its pods %v", r.pdb.Spec.Selector.MatchLabels, r.statefulSet.Spec.Selector.MatchLabels, pod)
	}
	if !subset(r.monitor.Spec.Selector.MatchLabels, svc.Labels) {
		t.Errorf("the ServiceMonitor selects %v, the Service has %v", r.monitor.Spec.Selector.MatchLabels, svc.Labels)
	}
	c := r.statefulSet.Spec.Template.Spec.Containers[0]
	for _, e := range r.monitor.Spec.Endpoints {
		i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == e.Port })
		if i < 0 || e.Path != "/metrics" {
			t.Errorf("ServiceMonitor endpoint %s%s: want /metrics on a port of the Service", e.Port, e.Path)
			continue
		}
		probe := c.ReadinessProbe.HTTPGet.Port.String()
		if got, want := containerPort(t, c, svc.Spec.Ports[i].TargetPort.String()), containerPort(t, c, probe); got != want {
			t.Errorf("the Service sends %s to port %d, metrics.addr is on %d", e.Port, got, want)
		}
	}
}

// checkScaling: KEDA scales the StatefulSet on the lag of the worker's
// group on its feedback topic, through the worker's brokers and security,
// up to the topic's partitions.
func checkScaling(t *testing.T, r rendered, cfg configs.Config) {
	s := r.scaled.Spec
	if s.ScaleTargetRef.Kind != "StatefulSet" || s.ScaleTargetRef.Name != r.statefulSet.Name {
		t.Errorf("the ScaledObject scales %s %s, not the StatefulSet %s", s.ScaleTargetRef.Kind, s.ScaleTargetRef.Name, r.statefulSet.Name)
	}
	if s.MaxReplicaCount != cfg.Topics.Partitions {
		t.Errorf("maxReplicaCount %d, the feedback topic has %d partitions (topics.partitions)", s.MaxReplicaCount, cfg.Topics.Partitions)
	}
	if len(s.Triggers) != 1 || s.Triggers[0].Type != "kafka" {
		t.Fatalf("triggers %+v: want one kafka trigger", s.Triggers)
	}
	m := s.Triggers[0].Metadata
	want := map[string]string{
		"bootstrapServers":  strings.Join(cfg.Kafka.Brokers, ","),
		"consumerGroup":     cfg.Kafka.Group,
		"topic":             cfg.Topics.Feedback,
		"offsetResetPolicy": cfg.Kafka.StartOffset,
		"sasl":              kedaSASL[cfg.Kafka.SASL.Mechanism],
		"tls":               map[bool]string{true: "enable"}[cfg.Kafka.TLS.Enable],
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("trigger %s %q, the worker's config says %q", k, m[k], v)
		}
	}
	if lag, err := strconv.Atoi(m["lagThreshold"]); err != nil || lag <= 0 {
		t.Errorf("lagThreshold %q: want a positive count", m["lagThreshold"])
	}
	checkTriggerAuth(t, r, cfg)
}

// kedaSASL maps kafka.sasl.mechanism to the Kafka scaler's sasl.
var kedaSASL = map[string]string{"plain": "plaintext", "scram-sha-256": "scram_sha256", "scram-sha-512": "scram_sha512"}

// checkTriggerAuth: with SASL or TLS, the trigger authenticates with the
// worker's user, password and CA, from the Secrets the pod mounts.
func checkTriggerAuth(t *testing.T, r rendered, cfg configs.Config) {
	ref := r.scaled.Spec.Triggers[0].AuthenticationRef
	if cfg.Kafka.SASL.Mechanism == "" && !cfg.Kafka.TLS.Enable {
		if ref != nil {
			t.Errorf("a plaintext cluster's trigger authenticates with %s", ref.Name)
		}
		return
	}
	if ref == nil {
		t.Fatal("the worker uses SASL or TLS, the trigger has no authenticationRef")
	}
	i := slices.IndexFunc(r.triggerAuths, func(a *triggerAuthentication) bool { return a.Metadata.Name == ref.Name })
	if i < 0 {
		t.Fatalf("no TriggerAuthentication %s", ref.Name)
	}
	got := map[string]string{}
	for _, s := range r.triggerAuths[i].Spec.SecretTargetRef {
		got[s.Parameter] = string(secretValue(t, r, s.Name, s.Key))
	}
	password, _ := os.ReadFile(cfg.Kafka.SASL.PasswordFile)
	ca, _ := os.ReadFile(cfg.Kafka.TLS.CAFile)
	want := map[string]string{"username": cfg.Kafka.SASL.Username, "password": string(password), "ca": string(ca)}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("TriggerAuthentication %s: %s %q, the worker's %q", ref.Name, k, got[k], v)
		}
	}
}

func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

func envVar(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// containerPort resolves a probe's or Service's port (a number or the name
// of one of c's ports).
func containerPort(t *testing.T, c corev1.Container, port string) int {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == port {
			return int(p.ContainerPort)
		}
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Errorf("port %q: neither a number nor a port of container %s", port, c.Name)
	}
	return n
}

func addrPort(t *testing.T, what, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	n, err2 := strconv.Atoi(p)
	if err != nil || err2 != nil {
		t.Fatalf("%s %q: no port", what, addr)
	}
	return n
}

func ptrString[V any](p *V) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}
