package image

import (
	"context"
	"errors"
	"slices"
	"testing"

	"banger/internal/api"
)

func TestBuildValidation(t *testing.T) {
	svc, _, state := newTestService(t)
	for _, p := range []BuildParams{
		{Distro: "fedora"},
		{Distro: "debian", Suite: "Bookworm"},
		{Distro: "debian", Include: []string{"git;rm -rf /"}},
		{Distro: "debian", Name: "Bad"},
	} {
		if _, err := svc.Build(context.Background(), p, Caller{}, nil); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("build %+v: err = %v, want ErrInvalid", p, err)
		}
	}
	assertClean(t, state)
}

func TestPackageSet(t *testing.T) {
	dev, err := packageSet(BuildParams{Include: []string{"vim", "curl"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"git", "ca-certificates", "iproute2", "iputils-ping", "procps", "curl", "rsync", "python3", "vim"} {
		if !slices.Contains(dev, want) {
			t.Errorf("default set %q lacks %s", dev, want)
		}
	}
	if n := len(dev); n != len(slices.Compact(slices.Sorted(slices.Values(dev)))) {
		t.Errorf("duplicates in %q", dev)
	}
	min, err := packageSet(BuildParams{Minimal: true, Include: []string{"less"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(min, []string{"ca-certificates", "git", "less"}) {
		t.Errorf("minimal set = %q", min)
	}
}

// TestBuildDebian runs debootstrap against the host's mirror (minutes).
func TestBuildDebian(t *testing.T) {
	if testing.Short() {
		t.Skip("short: debootstrap takes minutes")
	}
	requireRoot(t)
	requireTool(t, "debootstrap")
	requireTool(t, "mkfs.ext4")
	requireTool(t, "debugfs")
	if _, err := debianMirror("/etc/apt"); err != nil {
		t.Skipf("no Debian mirror configured: %v", err)
	}
	svc, _, state := newTestService(t)
	var lines int
	rec, err := svc.Build(context.Background(), BuildParams{Distro: "debian", Minimal: true, Include: []string{"less"}}, Caller{UID: 1}, func(ev api.ProgressEvent) {
		if ev.Phase == "debootstrap" {
			lines++
		}
	})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if rec.Name != "debian-bookworm" || rec.Source != "build" || !rec.Managed {
		t.Errorf("record = %+v", rec)
	}
	if lines == 0 {
		t.Error("no debootstrap progress")
	}
	for _, p := range []string{"/usr/bin/git", "/usr/bin/less", "/etc/ssl/certs/ca-certificates.crt"} {
		if !debugfsExists(t, rec.RootfsPath, p) {
			t.Errorf("%s missing from the built image", p)
		}
	}
	if got := debugfsCat(t, rec.RootfsPath, "/etc/debian_version"); len(got) == 0 || got[0] != '1' {
		t.Errorf("debian_version = %q", got)
	}
	if err := checkUserland(context.Background(), rec.RootfsPath); err != nil {
		t.Errorf("built image fails the register check: %v", err)
	}
	assertClean(t, state, rec.ID)
}
