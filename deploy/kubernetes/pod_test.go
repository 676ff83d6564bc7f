package kubernetes_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/adaptrec/adaptrec/configs"
)

// podConfig loads the configuration the worker of the StatefulSet's first
// pod starts with, as configs.Load does in the binary: the pod's ConfigMap
// and Secret volumes are written under a temporary directory (paths into
// them, in --config and the environment, are moved there), fieldRef
// metadata.name is the pod's name and secretKeyRef reads the rendered
// Secrets. A key the worker would refuse fails the test.
func podConfig(t *testing.T, r rendered) configs.Config {
	t.Helper()
	root := t.TempDir()
	spec := r.statefulSet.Spec.Template.Spec
	c := spec.Containers[0]
	mounts := map[string]string{}
	for _, vm := range c.VolumeMounts {
		dir := filepath.Join(root, vm.MountPath)
		for path, b := range volumeFiles(t, r, spec, vm.Name) {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, path)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, path), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		mounts[vm.MountPath] = dir
	}
	local := func(p string) string {
		for mount, dir := range mounts {
			if rel, ok := strings.CutPrefix(p, mount+"/"); ok {
				return filepath.Join(dir, rel)
			}
		}
		return p
	}
	file := ""
	for i, a := range c.Args {
		if a == "--config" && i+1 < len(c.Args) {
			file = local(c.Args[i+1])
		}
	}
	if file == "" {
		t.Fatalf("args %q: no --config", c.Args)
	}
	pod := r.statefulSet.Name + "-0"
	var env []string
	for _, e := range c.Env {
		v := e.Value
		switch from := e.ValueFrom; {
		case from == nil:
		case from.FieldRef != nil && from.FieldRef.FieldPath == "metadata.name":
			v = pod
		case from.SecretKeyRef != nil:
			v = string(secretValue(t, r, from.SecretKeyRef.Name, from.SecretKeyRef.Key))
		default:
			t.Fatalf("env %s: a source this test does not resolve", e.Name)
		}
		env = append(env, e.Name+"="+local(v))
	}
	cfg, err := configs.Load(configs.LoadOptions{File: file, Environ: env})
	if err != nil {
		t.Fatalf("the worker in pod %s would not start: %v", pod, err)
	}
	if cfg.Snapshot.Replica != pod {
		t.Errorf("snapshot.replica of pod %s is %q", pod, cfg.Snapshot.Replica)
	}
	return cfg
}

// volumeFiles lists the files of the pod's volume name (path in the volume
// to content), from the rendered ConfigMap or Secret it names.
func volumeFiles(t *testing.T, r rendered, spec corev1.PodSpec, name string) map[string][]byte {
	t.Helper()
	for _, v := range spec.Volumes {
		if v.Name != name {
			continue
		}
		switch {
		case v.ConfigMap != nil:
			for _, cm := range r.configMaps {
				if cm.Name == v.ConfigMap.Name {
					data := map[string][]byte{}
					for k, s := range cm.Data {
						data[k] = []byte(s)
					}
					return project(t, name, data, v.ConfigMap.Items)
				}
			}
			t.Fatalf("volume %s: no ConfigMap %s", name, v.ConfigMap.Name)
		case v.Secret != nil:
			for _, s := range r.secrets {
				if s.Name == v.Secret.SecretName {
					return project(t, name, secretData(s), v.Secret.Items)
				}
			}
			t.Fatalf("volume %s: no Secret %s", name, v.Secret.SecretName)
		case v.EmptyDir != nil:
			return nil
		default:
			t.Fatalf("volume %s: a kind this test does not resolve", name)
		}
	}
	t.Fatalf("no volume %s", name)
	return nil
}

// project keeps the keys items name, at their paths (all keys without
// items), as the kubelet does.
func project(t *testing.T, volume string, data map[string][]byte, items []corev1.KeyToPath) map[string][]byte {
	t.Helper()
	if len(items) == 0 {
		return data
	}
	out := map[string][]byte{}
	for _, it := range items {
		b, ok := data[it.Key]
		if !ok {
			t.Fatalf("volume %s: no key %s", volume, it.Key)
		}
		out[it.Path] = b
	}
	return out
}

func secretData(s *corev1.Secret) map[string][]byte {
	out := map[string][]byte{}
	for k, b := range s.Data {
		out[k] = b
	}
	for k, v := range s.StringData {
		out[k] = []byte(v)
	}
	return out
}

// secretValue is key of the rendered Secret name.
func secretValue(t *testing.T, r rendered, name, key string) []byte {
	t.Helper()
	for _, s := range r.secrets {
		if s.Name == name {
			if b, ok := secretData(s)[key]; ok {
				return b
			}
			t.Fatalf("Secret %s has no key %s", name, key)
		}
	}
	t.Fatalf("no Secret %s", name)
	return nil
}
