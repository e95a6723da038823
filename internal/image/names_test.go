package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"banger/internal/api"
)

func TestDefaultName(t *testing.T) {
	for ref, want := range map[string]string{
		"alpine:3.19":                     "alpine-3.19",
		"docker.io/library/alpine:3.19":   "alpine-3.19",
		"ubuntu":                          "ubuntu-latest",
		"127.0.0.1:5000/team/Tool_X:v1.2": "tool_x-v1.2",
		"ghcr.io/o/r@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef": "r-0123456789ab",
	} {
		if got := DefaultName(ref); got != want {
			t.Errorf("DefaultName(%q) = %q, want %q", ref, got, want)
		}
		if err := ValidName(DefaultName(ref)); err != nil {
			t.Errorf("DefaultName(%q) is not valid: %v", ref, err)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "alpine-3.19", "x_y.z", "0abc"} {
		if err := ValidName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", ".a", "A", "a b", "a/b", string(make([]byte, 64))} {
		if err := ValidName(bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseSize(t *testing.T) {
	for s, want := range map[string]int64{"512M": 512 << 20, "10G": 10 << 30, "64K": 64 << 10, "1T": 1 << 40, "4096": 4096} {
		if got, err := ParseSize(s); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, bad := range []string{"", "M", "10g", "1.5G", "-1G", "10GB", "0", " 1G", "99999999999999T"} {
		if _, err := ParseSize(bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

func TestDebianMirror(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sources.list.d"), 0o755)
	if _, err := debianMirror(dir); err == nil {
		t.Error("no sources: want an error")
	}
	os.WriteFile(filepath.Join(dir, "sources.list.d", "a.sources"), []byte(
		"Types: deb\nURIs: http://mirror.test/debian-security\nSuites: bookworm-security\n\n"+
			"Types: deb-src\nURIs: http://src.test/debian\nSuites: bookworm\n\n"+
			"Types: deb\nURIs: http://mirror.test/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"), 0o644)
	if got, err := debianMirror(dir); err != nil || got != "http://mirror.test/debian" {
		t.Errorf("deb822: %q, %v", got, err)
	}
	os.WriteFile(filepath.Join(dir, "sources.list"), []byte(
		"# comment\ndeb http://sec.test/debian-security bookworm-security main\n"+
			"deb [arch=amd64 signed-by=/k.gpg] http://list.test/debian bookworm main\n"), 0o644)
	if got, err := debianMirror(dir); err != nil || got != "http://list.test/debian" {
		t.Errorf("sources.list: %q, %v", got, err)
	}
}

func TestPullSize(t *testing.T) {
	requireRoot(t)
	requireTool(t, "mkfs.ext4")
	reg := newTestRegistry(t)
	ref := reg.push(t, "sized/img:1", image(t, baseLayer, []entry{fileE("blob", string(make([]byte, 3<<20)), 0o644)}))
	svc, st, state := newTestService(t)
	ctx := context.Background()
	rec, err := svc.Pull(ctx, api.ImagePullParams{Ref: ref, Name: "exact", SizeBytes: 40 << 20}, Caller{}, nil)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if fi, err := os.Stat(rec.RootfsPath); err != nil || fi.Size() != 40<<20 || rec.SizeBytes != 40<<20 {
		t.Errorf("size: %v %v, record %d", fi.Size(), err, rec.SizeBytes)
	}
	auto, err := svc.Pull(ctx, api.ImagePullParams{Ref: ref, Name: "auto"}, Caller{}, nil)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if auto.SizeBytes < 64<<20+3<<20 || auto.SizeBytes > 128<<20 {
		t.Errorf("default size = %d, want content + 25%% + 64M", auto.SizeBytes)
	}
	_, err = svc.Pull(ctx, api.ImagePullParams{Ref: ref, Name: "tiny", SizeBytes: 2 << 20}, Caller{}, nil)
	if !errors.Is(err, api.ErrInvalid) {
		t.Errorf("too small: err = %v, want ErrInvalid", err)
	}
	if _, err := st.GetImage(ctx, "tiny"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("row for failed pull: %v", err)
	}
	assertClean(t, state, rec.ID, auto.ID)
}
