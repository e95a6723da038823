package image

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"banger/internal/api"
	"banger/internal/model"
)

// BuildParams describes an image built from a distribution's packages.
type BuildParams struct {
	// Distro is the distribution; only "debian" is supported.
	Distro string
	// Suite is the Debian suite (default "bookworm").
	Suite string
	// Include lists extra packages, on top of the base set (and, unless
	// Minimal, the development set).
	Include []string
	// Minimal leaves out the development set: git and ca-certificates only.
	Minimal   bool
	Name      string
	KernelRef string
	// SizeBytes, when > 0, is the exact filesystem size.
	SizeBytes int64
}

// baseIncludes are always installed in built images.
var baseIncludes = []string{"ca-certificates", "git"}

// DevPackages are installed too unless the build asks for a minimal image:
// what people and agent harnesses reach for first in a fresh VM (network
// tools, ps/free, curl, rsync for `rsync -e ssh`, a pager, python3 for editors'
// remote modes and most harnesses, an SSH client for git over SSH).
var DevPackages = []string{"iproute2", "iputils-ping", "procps", "curl", "rsync", "less",
	"python3", "openssh-client", "xz-utils"}

// packageSet is the --include list debootstrap gets for p.
func packageSet(p BuildParams) ([]string, error) {
	set := append([]string{}, baseIncludes...)
	if !p.Minimal {
		set = append(set, DevPackages...)
	}
	for _, pkg := range p.Include {
		if !packageRE.MatchString(pkg) {
			return nil, api.Errorf(api.ErrInvalid, "build image: invalid package name %q", pkg)
		}
		if !slices.Contains(set, pkg) {
			set = append(set, pkg)
		}
	}
	return set, nil
}

var (
	suiteRE   = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	packageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]{0,99}$`)
)

// Build runs debootstrap (minbase) against the host's configured Debian
// mirror and makes the result a managed ext4 image.
func (s *Service) Build(ctx context.Context, p BuildParams, caller Caller, progress func(api.ProgressEvent)) (model.Image, error) {
	if p.Distro != "debian" {
		return model.Image{}, api.Errorf(api.ErrInvalid, "build image: unsupported distribution %q (only debian)", p.Distro)
	}
	if p.Suite == "" {
		p.Suite = "bookworm"
	}
	if !suiteRE.MatchString(p.Suite) {
		return model.Image{}, api.Errorf(api.ErrInvalid, "build image: invalid suite %q", p.Suite)
	}
	include, err := packageSet(p)
	if err != nil {
		return model.Image{}, err
	}
	rec := model.Image{Name: p.Name, Source: "build", SourceRef: "debian:" + p.Suite, KernelRef: p.KernelRef}
	if rec.Name == "" {
		rec.Name = "debian-" + p.Suite
	}
	if err := s.checkRecord(ctx, &rec); err != nil {
		return model.Image{}, fmt.Errorf("build image: %w", err)
	}
	mirror, err := debianMirror("/etc/apt")
	if err != nil {
		return model.Image{}, fmt.Errorf("build image: %w", err)
	}
	fill := func(ctx context.Context, root string) error {
		return debootstrap(ctx, p.Suite, include, mirror, root, progress)
	}
	built, err := s.makeRootfs(ctx, p.SizeBytes, fill, progress)
	if err != nil {
		return model.Image{}, fmt.Errorf("build image: %w", err)
	}
	return s.record(ctx, rec, built, caller)
}

// debootstrap installs a minbase system into root, reporting its "I:" lines.
func debootstrap(ctx context.Context, suite string, include []string, mirror, root string, progress func(api.ProgressEvent)) error {
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase",
		"--include="+strings.Join(include, ","), suite, root, mirror)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("debootstrap: %w", err)
	}
	var tail []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			tail = append(tail, line)
			if len(tail) > 5 {
				tail = tail[1:]
			}
			if strings.HasPrefix(line, "I: ") {
				report(progress, api.ProgressEvent{Phase: "debootstrap", Detail: strings.TrimPrefix(line, "I: ")})
			}
		}
		io.Copy(io.Discard, pr)
	}()
	err := cmd.Wait()
	pw.Close()
	<-done
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("debootstrap: %w", ctx.Err())
		}
		return fmt.Errorf("debootstrap %s: %w: %s%s", suite, err, strings.Join(tail, " | "), logTail(root))
	}
	return nil
}

// logTail returns the end of debootstrap's own log, if it left one.
func logTail(root string) string {
	b, err := os.ReadFile(filepath.Join(root, "debootstrap", "debootstrap.log"))
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return " (log: " + strings.Join(lines[max(0, len(lines)-3):], " | ") + ")"
}
