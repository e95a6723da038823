package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// b3Layers is how many data layers the B3 image has (plus a busybox base).
const b3Layers = 6

// benchPull is B3: `image pull` of a multi-layer image from a local registry
// against skopeo copy + umoci unpack + mkfs.ext4 -d of the same image, cold
// (nothing cached) and cached (every blob already local).
func benchPull(ctx context.Context, e *env) ([]Row, error) {
	dir := filepath.Join(e.cfg.work, "b3")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	addr, stop, err := startRegistry(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer stop()
	ref := addr + "/bench/big:v1"
	if err := pushBenchImage(ctx, dir, ref, e.cfg.b3MB); err != nil {
		return nil, err
	}
	blobs := filepath.Join(e.d.state, "blobs")
	bangerPull := func(name string, cold bool) (float64, int64, error) {
		if cold {
			os.RemoveAll(blobs)
		}
		var img struct {
			SizeBytes int64 `json:"size_bytes"`
		}
		t0 := time.Now()
		err := e.d.cliJSON(ctx, &img, "image", "pull", ref, "--name", name)
		d := time.Since(t0).Seconds()
		if err == nil {
			_, err = e.d.cli(ctx, "image", "delete", name)
		}
		return d, img.SizeBytes, err
	}
	// First pull (not counted) learns the ext4 size banger picks, used by the peer too.
	_, size, err := bangerPull("b3-warm", true)
	if err != nil {
		return nil, err
	}
	layout := filepath.Join(dir, "oci")
	peer := func(cold bool) (float64, error) {
		if cold {
			os.RemoveAll(layout)
		}
		bundle, img := filepath.Join(dir, "bundle"), filepath.Join(dir, "peer.ext4")
		os.RemoveAll(bundle)
		os.Remove(img)
		t0 := time.Now()
		if err := runCmd(ctx, "", "skopeo", "copy", "--quiet", "--src-tls-verify=false", "docker://"+ref, "oci:"+layout+":v1"); err != nil {
			return 0, err
		}
		if err := runCmd(ctx, "", "umoci", "unpack", "--image", layout+":v1", bundle); err != nil {
			return 0, err
		}
		if err := runCmd(ctx, "", "mkfs.ext4", "-q", "-F", "-E", "root_owner=0:0", "-d", filepath.Join(bundle, "rootfs"), img,
			strconv.FormatInt(size>>10, 10)+"k"); err != nil {
			return 0, err
		}
		d := time.Since(t0).Seconds()
		os.RemoveAll(bundle)
		os.Remove(img)
		return d, nil
	}
	var rows []Row
	for _, cold := range []bool{true, false} {
		var b, p []float64
		for i := 0; i < e.cfg.runs; i++ {
			var tb, tp float64
			var errB, errP error
			name := fmt.Sprintf("b3-%v-%d", cold, i)
			if i%2 == 0 {
				tb, _, errB = bangerPull(name, cold)
				tp, errP = peer(cold)
			} else {
				tp, errP = peer(cold)
				tb, _, errB = bangerPull(name, cold)
			}
			if errB != nil {
				return nil, errB
			}
			if errP != nil {
				return nil, errP
			}
			b, p = append(b, tb), append(p, tp)
			e.cfg.log.Info("B3", "cold", cold, "run", i, "banger_s", tb, "peer_s", tp)
		}
		what := "cold: nothing cached"
		if !cold {
			what = "cached re-pull: every blob already local"
		}
		r := pairRow("B3", fmt.Sprintf("image pull, %d MB in %d layers, %s", e.cfg.b3MB, b3Layers+1, what), "s", b,
			"skopeo copy + umoci unpack + mkfs.ext4 -d", p)
		r.Goal = "ratio ≤ 1.0"
		r.Note = fmt.Sprintf("local docker-registry on loopback; ext4 of %d MiB for both", size>>20)
		rows = append(rows, r)
	}
	return rows, nil
}

// startRegistry runs Debian's docker-registry on a free loopback port.
func startRegistry(ctx context.Context, dir string) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(dir, "registry.yml")
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n",
		filepath.Join(dir, "registry"), addr)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return "", nil, err
	}
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return "", nil, fmt.Errorf("docker-registry not installed (apt-get install docker-registry): %w", err)
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return "", nil, err
	}
	stop := func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	}
	for i := 0; i < 100; i++ {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr, stop, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	out, _ := os.ReadFile(logf.Name())
	return "", nil, fmt.Errorf("docker-registry did not answer on %s: %s", addr, lastLines(string(out), 5))
}

// pushBenchImage builds the B3 image (a busybox base layer and b3Layers
// layers of incompressible files, totalMB in all) and pushes it to ref.
func pushBenchImage(ctx context.Context, dir, ref string, totalMB int) error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return err
	}
	var layers []v1.Layer
	base := filepath.Join(dir, "layer-base.tar.gz")
	if err := writeLayer(base, func(tw *tar.Writer) error {
		data, err := os.ReadFile(bb)
		if err != nil {
			return err
		}
		for _, d := range []string{"bin/", "etc/", "root/", "tmp/"} {
			tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755})
		}
		tw.WriteHeader(&tar.Header{Name: "bin/busybox", Mode: 0o755, Size: int64(len(data))})
		tw.Write(data)
		tw.WriteHeader(&tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
		passwd := []byte("root:x:0:0:root:/root:/bin/sh\n")
		tw.WriteHeader(&tar.Header{Name: "etc/passwd", Mode: 0o644, Size: int64(len(passwd))})
		_, err = tw.Write(passwd)
		return err
	}); err != nil {
		return err
	}
	paths := []string{base}
	per := int64(totalMB) * 1000 * 1000 / b3Layers
	src := rand.NewChaCha8([32]byte{'b', '3'})
	rng := rand.New(src)
	for l := 0; l < b3Layers; l++ {
		p := filepath.Join(dir, fmt.Sprintf("layer-%d.tar.gz", l))
		if err := writeLayer(p, func(tw *tar.Writer) error {
			d := fmt.Sprintf("data/l%d/", l)
			tw.WriteHeader(&tar.Header{Name: "data/", Typeflag: tar.TypeDir, Mode: 0o755})
			tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755})
			buf := make([]byte, 4<<20)
			for n, f := int64(0), 0; n < per; f++ {
				size := min(int64(64<<10+rng.IntN(4<<20-64<<10)), per-n)
				if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%sf%04d.bin", d, f), Mode: 0o644, Size: size}); err != nil {
					return err
				}
				src.Read(buf[:size])
				if _, err := tw.Write(buf[:size]); err != nil {
					return err
				}
				n += size
			}
			return nil
		}); err != nil {
			return err
		}
		paths = append(paths, p)
	}
	for _, p := range paths {
		layer, err := tarball.LayerFromFile(p)
		if err != nil {
			return fmt.Errorf("layer %s: %w", p, err)
		}
		layers = append(layers, layer)
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Cmd = []string{"/bin/sh"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}

// writeLayer writes a gzip-compressed tar layer (fastest level: the data is
// incompressible anyway).
func writeLayer(path string, fill func(*tar.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	err = fill(tw)
	for _, c := range []func() error{tw.Close, zw.Close, f.Close} {
		if cerr := c(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("write layer %s: %w", path, err)
	}
	return nil
}
