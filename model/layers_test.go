package model_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// above are what no package under model may depend on: layers point down,
// so the model and its evaluation build without the Kafka client and
// without the layers that use it; nor on configs: the model owns its
// options, and the config keys are mapped onto them in configs/wire.
var above = []string{
	"github.com/adaptrec/adaptrec/configs",
	"github.com/segmentio/kafka-go",
	"github.com/adaptrec/adaptrec/pipeline",
	"github.com/adaptrec/adaptrec/sink",
	"github.com/adaptrec/adaptrec/cmd",
}

// TestModelImportsNoKafkaClient lists the dependencies of every package
// under model with the go command and fails, naming the import chain, if
// any of them is a package of the Kafka client or of a layer above model.
func TestModelImportsNoKafkaClient(t *testing.T) {
	out, err := exec.Command(goBinary(t), "list", "-deps",
		"-f", "{{.ImportPath}} {{.DepOnly}}{{range .Imports}} {{.}}{{end}}",
		"github.com/adaptrec/adaptrec/model/...").Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderrOf(err))
	}
	imports := map[string][]string{}
	var roots []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		imports[f[0]] = f[2:]
		if f[1] == "false" {
			roots = append(roots, f[0])
		}
	}
	if len(roots) == 0 {
		t.Fatalf("go list named no package under model:\n%s", out)
	}
	for _, root := range roots {
		for _, a := range above {
			if chain := chainTo(root, imports, under(a)); chain != nil {
				t.Errorf("%s depends on %s: %s", root, a, strings.Join(chain, " -> "))
			}
		}
	}
}

// under reports whether a package is path or one below it.
func under(path string) func(string) bool {
	return func(pkg string) bool { return pkg == path || strings.HasPrefix(pkg, path+"/") }
}

// chainTo returns the shortest import chain from root to a package for
// which match is true, or nil if there is none.
func chainTo(root string, imports map[string][]string, match func(string) bool) []string {
	parent := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if match(p) {
			var chain []string
			for ; p != ""; p = parent[p] {
				chain = append(chain, p)
			}
			slices.Reverse(chain)
			return chain
		}
		for _, q := range imports[p] {
			if _, seen := parent[q]; !seen {
				parent[q] = p
				queue = append(queue, q)
			}
		}
	}
	return nil
}

// goBinary is the go command: the one on PATH (go test puts its own first)
// or else the one of the toolchain that built the test.
func goBinary(t *testing.T) string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no go command on PATH nor in GOROOT: %v", err)
	}
	return p
}

func stderrOf(err error) []byte {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.Stderr
	}
	return nil
}
