package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImageRuns builds the image as `make image` does (a static binary,
// one layer, written as a tarball), reads the tarball back, unpacks its
// layers into a directory and runs the image's own entrypoint there in a
// chroot as the image's user: --help works, and `worker --embedded` becomes
// ready on /readyz and exits 0 on SIGTERM.
func TestImageRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a worker")
	}
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root: the image is only checked where the test runs as root")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "adaptrec")
	if err := buildBinary(t.Context(), filepath.Join("..", ".."), bin); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := buildImage(bin, ca)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "image.tar")
	if err := writeImage(img, "adaptrec:test", out); err != nil {
		t.Fatal(err)
	}
	loaded, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := loaded.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "rootfs")
	unpack(t, loaded, root)
	for _, p := range []string{"tmp", caPath} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("the image has no /%s: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "bin", "sh")); err == nil {
		t.Error("the image has a shell")
	}
	help, err := inImage(t, root, cf.Config, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(help), "worker") {
		t.Fatalf("%v --help: %v\n%s", cf.Config.Entrypoint, err, help)
	}
	runWorker(t, root, cf.Config)
}

// runWorker starts `worker --embedded` in the image, waits for /readyz and
// stops it with SIGTERM.
func runWorker(t *testing.T, root string, cfg v1.Config) {
	cmd := inImage(t, root, cfg, "worker", "--embedded")
	cmd.Env = []string{"ADAPTREC_METRICS_ADDR=127.0.0.1:0", "ADAPTREC_LOG_FORMAT=json"}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var log bytes.Buffer
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.Write(append(sc.Bytes(), '\n'))
			var l struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Addr != "" && strings.Contains(l.Msg, "/metrics") {
				addr <- l.Addr
			}
		}
		close(addr)
	}()
	a, ok := <-addr
	if !ok {
		_ = cmd.Wait()
		t.Fatalf("the worker in the image ended without serving /metrics:\n%s", log.String())
	}
	waitReady(t, "http://"+a+"/readyz")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range addr {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the worker in the image after SIGTERM: %v\n%s", err, log.String())
	}
}

// inImage is the image's entrypoint with args, chrooted into root as the
// image's user in its working directory.
func inImage(t *testing.T, root string, cfg v1.Config, args ...string) *exec.Cmd {
	t.Helper()
	ids := strings.Split(cfg.User, ":")
	if len(ids) != 2 {
		t.Fatalf("image user %q is not UID:GID", cfg.User)
	}
	uid, err1 := strconv.ParseUint(ids[0], 10, 32)
	gid, err2 := strconv.ParseUint(ids[1], 10, 32)
	if err := errors.Join(err1, err2); err != nil || uid == 0 {
		t.Fatalf("image user %q: not a numeric non-root user (%v)", cfg.User, err)
	}
	argv := append(append([]string{}, cfg.Entrypoint...), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{}
	cmd.Dir = cfg.WorkingDir
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     root,
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
		Setpgid:    true,
	}
	return cmd
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	last := "no answer"
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s not ready within 3 minutes: %s", url, last)
}

// unpack writes the image's flattened filesystem under root, with the
// modes the layers give.
func unpack(t *testing.T, img v1.Image, root string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(root, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(path, 0o755)
		case tar.TypeReg:
			err = writeFile(path, tr)
		default:
			t.Fatalf("unexpected entry %s of type %c", h.Name, h.Typeflag)
		}
		if err == nil {
			err = os.Chmod(path, h.FileInfo().Mode())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(path string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// A dynamically linked binary is refused: the image has no loader.
func TestImageRefusesDynamicBinary(t *testing.T) {
	dynamic, err := exec.LookPath("ls")
	if err != nil {
		t.Skip("no ls to stand for a dynamic binary")
	}
	if _, err := buildImage(dynamic, ""); !errors.Is(err, errDynamic) {
		t.Fatalf("buildImage(%s): %v, want errDynamic", dynamic, err)
	}
}
