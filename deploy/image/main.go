// Command image builds adaptrec's container image without a Docker engine:
// it compiles the binary statically (CGO_ENABLED=0), puts it in one layer on
// an empty base with go-containerregistry, and writes the image as a tarball
// that `docker load`, `podman load`, `crane push` and `kind load
// image-archive` accept. `make image` runs it:
//
//	go run ./deploy/image -out bin/adaptrec-image.tar
//
// The image holds /adaptrec (the entrypoint), an empty world-writable /tmp
// and, when -ca-certs names one, the CA bundle at
// /etc/ssl/certs/ca-certificates.crt, which Go reads for kafka.tls.enable
// without kafka.tls.ca_file. Nothing else: no shell, no libc. It runs as
// 65532:65532 (non-root). Files carry a fixed time, so the same binary and
// bundle give the same image digest.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's layout and user.
const (
	entrypoint = "/adaptrec"
	user       = "65532:65532"
	workDir    = "/tmp"
	caPath     = "etc/ssl/certs/ca-certificates.crt"
)

// epoch is the time of every file and of the image, so builds are
// reproducible.
var epoch = time.Unix(0, 0).UTC()

func main() {
	var (
		out     = flag.String("out", "bin/adaptrec-image.tar", "image tarball to write")
		tag     = flag.String("tag", "adaptrec:latest", "image reference recorded in the tarball")
		module  = flag.String("module", ".", "root of the adaptrec module")
		binary  = flag.String("binary", "", "use this static binary instead of building ./cmd/adaptrec")
		caCerts = flag.String("ca-certs", "", "PEM CA bundle to install at /"+caPath+` ("": none)`)
	)
	flag.Parse()
	if err := run(*module, *binary, *caCerts, *tag, *out); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(module, binary, caCerts, tag, out string) error {
	if binary == "" {
		dir, err := os.MkdirTemp("", "adaptrec-image-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "adaptrec")
		if err := buildBinary(context.Background(), module, binary); err != nil {
			return err
		}
	}
	img, err := buildImage(binary, caCerts)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := writeImage(img, tag, out); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s: %s %s\n", out, tag, digest)
	return nil
}

// buildBinary compiles ./cmd/adaptrec of the module at dir into out,
// statically (CGO_ENABLED=0) for linux on this machine's architecture.
func buildBinary(ctx context.Context, dir, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./cmd/adaptrec")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building ./cmd/adaptrec in %s: %w\n%s", dir, err, b)
	}
	return nil
}

// errDynamic is returned for a binary that needs a dynamic loader, which
// the image does not have.
var errDynamic = errors.New("binary is dynamically linked (build it with CGO_ENABLED=0, or give the image its loader and libraries)")

// checkStatic fails unless path is a linux ELF executable without an
// interpreter (a dynamic loader the empty image lacks).
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("binary %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("binary %s: %w", path, errDynamic)
		}
	}
	return nil
}

// buildImage puts the static binary (and the CA bundle, when caCerts is
// not "") in one layer on an empty base and sets the entrypoint, user and
// working directory.
func buildImage(binary, caCerts string) (v1.Image, error) {
	if err := checkStatic(binary); err != nil {
		return nil, err
	}
	layerTar, err := rootfs(binary, caCerts)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		return nil, fmt.Errorf("appending the layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", runtime.GOARCH, v1.Time{Time: epoch}
	cf.Config = v1.Config{
		Entrypoint: []string{entrypoint},
		User:       user,
		WorkingDir: workDir,
		Labels:     map[string]string{"org.opencontainers.image.title": "adaptrec"},
	}
	return mutate.ConfigFile(img, cf)
}

// entry is one file or directory of the layer.
type entry struct {
	name string
	mode int64
	dir  bool
	src  string // file to copy; "" for a directory
}

// rootfs is the layer's tar: the binary, an empty /tmp (sticky,
// world-writable) and the CA bundle when caCerts is not "".
func rootfs(binary, caCerts string) ([]byte, error) {
	entries := []entry{
		{name: "adaptrec", mode: 0o755, src: binary},
		{name: "tmp/", mode: 0o1777, dir: true},
	}
	if caCerts != "" {
		entries = append(entries,
			entry{name: "etc/", mode: 0o755, dir: true},
			entry{name: "etc/ssl/", mode: 0o755, dir: true},
			entry{name: "etc/ssl/certs/", mode: 0o755, dir: true},
			entry{name: caPath, mode: 0o644, src: caCerts})
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if err := addEntry(tw, e); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func addEntry(tw *tar.Writer, e entry) error {
	h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: epoch, Format: tar.FormatPAX}
	if e.dir {
		h.Typeflag = tar.TypeDir
		return tw.WriteHeader(h)
	}
	b, err := os.ReadFile(e.src)
	if err != nil {
		return fmt.Errorf("/%s: %w", e.name, err)
	}
	h.Typeflag, h.Size = tar.TypeReg, int64(len(b))
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	_, err = tw.Write(b)
	return err
}

// writeImage writes img to the tarball out under tag.
func writeImage(img v1.Image, tag, out string) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("-tag %q: %w", tag, err)
	}
	if err := tarball.WriteToFile(out, ref, img); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return nil
}
