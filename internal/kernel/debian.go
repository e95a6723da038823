package kernel

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"banger/internal/api"
)

// debPackage is a package as apt-cache shows it.
type debPackage struct {
	name, version, sha256 string
	size                  int64
	depends               []string // package names only
}

// aptShow returns the candidate version of pkg from the host's apt lists.
func aptShow(ctx context.Context, pkg string) (debPackage, error) {
	out, err := output(ctx, "apt-cache", "show", "--no-all-versions", pkg)
	if err != nil {
		return debPackage{}, fmt.Errorf("apt does not know %s (apt-get update?): %w", pkg, err)
	}
	p := debPackage{name: pkg}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Version":
			p.version = v
		case "SHA256":
			p.sha256 = v
		case "Size":
			p.size, _ = strconv.ParseInt(v, 10, 64)
		case "Depends", "Pre-Depends":
			for _, d := range strings.Split(v, ",") {
				alt, _, _ := strings.Cut(d, "|")
				if f := strings.Fields(alt); len(f) > 0 {
					p.depends = append(p.depends, f[0])
				}
			}
		}
	}
	if p.version == "" {
		return debPackage{}, fmt.Errorf("apt-cache show %s: no Version", pkg)
	}
	return p, nil
}

var versionedImage = regexp.MustCompile(`^linux-image-[0-9]`)

// resolveKernelPackage turns a metapackage such as linux-image-cloud-amd64
// into the real versioned, unsigned package
// (linux-image-6.1.0-56-cloud-amd64-unsigned).
func resolveKernelPackage(ctx context.Context, pkg string) (debPackage, error) {
	name := pkg
	if !versionedImage.MatchString(pkg) {
		meta, err := aptShow(ctx, pkg)
		if err != nil {
			return debPackage{}, err
		}
		name = ""
		for _, d := range meta.depends {
			if versionedImage.MatchString(d) {
				name = d
				break
			}
		}
		if name == "" {
			return debPackage{}, fmt.Errorf("%s depends on no linux-image-VERSION package", pkg)
		}
	}
	if !strings.HasSuffix(name, "-unsigned") {
		name += "-unsigned"
	}
	return aptShow(ctx, name)
}

// fetchDebian downloads the entry's kernel package with the host's apt into
// dir and unpacks it there; it returns the unpacked tree.
func fetchDebian(ctx context.Context, e catalogEntry, dir string, progress func(api.ProgressEvent)) (tree, string, error) {
	progress(api.ProgressEvent{Phase: "resolve", Detail: e.Package})
	pkg, err := resolveKernelPackage(ctx, e.Package)
	if err != nil {
		return tree{}, "", err
	}
	source := fmt.Sprintf("debian:%s=%s", pkg.name, pkg.version)
	debDir := filepath.Join(dir, "deb")
	if err := os.Mkdir(debDir, 0o755); err != nil {
		return tree{}, "", err
	}
	progress(api.ProgressEvent{Phase: "download", Detail: pkg.name + " " + pkg.version, Total: pkg.size})
	stop := watchSize(debDir, pkg.size, pkg.name, progress)
	err = command(ctx, debDir, nil, "apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", pkg.name+"="+pkg.version)
	stop()
	if err != nil {
		return tree{}, "", fmt.Errorf("download %s: %w", pkg.name, err)
	}
	debs, _ := filepath.Glob(filepath.Join(debDir, "*.deb"))
	if len(debs) != 1 {
		return tree{}, "", fmt.Errorf("download %s: apt-get left %d .deb files", pkg.name, len(debs))
	}
	if fi, err := os.Stat(debs[0]); err == nil {
		progress(api.ProgressEvent{Phase: "download", Detail: pkg.name, Current: fi.Size(), Total: pkg.size})
	}
	if pkg.sha256 != "" {
		progress(api.ProgressEvent{Phase: "verify", Detail: filepath.Base(debs[0])})
		sum, err := fileSHA256(debs[0])
		if err != nil {
			return tree{}, "", err
		}
		if sum != pkg.sha256 {
			return tree{}, "", fmt.Errorf("download %s: sha256 %s, apt lists %s", pkg.name, sum, pkg.sha256)
		}
	}
	progress(api.ProgressEvent{Phase: "unpack", Detail: filepath.Base(debs[0])})
	root := filepath.Join(dir, "root")
	if err := command(ctx, dir, nil, "dpkg-deb", "-x", debs[0], root); err != nil {
		return tree{}, "", fmt.Errorf("unpack %s: %w", pkg.name, err)
	}
	if err := os.Remove(debs[0]); err != nil {
		return tree{}, "", err
	}
	t, err := scan(root)
	if err != nil {
		return tree{}, "", fmt.Errorf("unpacked %s: %w", pkg.name, err)
	}
	return t, source, nil
}

// watchSize reports the bytes in dir every second until stop is called.
func watchSize(dir string, total int64, what string, progress func(api.ProgressEvent)) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				var n int64
				_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
					if err == nil && fi.Mode().IsRegular() {
						n += fi.Size()
					}
					return nil
				})
				progress(api.ProgressEvent{Phase: "download", Detail: what, Current: n, Total: total})
			}
		}
	}()
	return func() { close(done); <-finished }
}
