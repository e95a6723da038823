package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"banger/internal/api"
	"banger/internal/testutil"
)

func allocatedBytes(t *testing.T, p string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// The hand-built archive really is a sparse member as archive/tar reads it.
func TestSparseTarFixture(t *testing.T) {
	data := testutil.SparseTar(testutil.SparseMember{Name: "big", RealSize: 1 << 30, Offset: 4096, Data: []byte("hello")})
	tr := tar.NewReader(bytes.NewReader(data))
	h, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if h.Name != "big" || h.Size != 1<<30 {
		t.Fatalf("header %q size %d", h.Name, h.Size)
	}
	head := make([]byte, 4101)
	if _, err := io.ReadFull(tr, head); err != nil {
		t.Fatal(err)
	}
	if string(head[4096:]) != "hello" || !bytes.Equal(head[:4096], make([]byte, 4096)) {
		t.Fatalf("content %q", head[4090:])
	}
}

// TestWriteSparse keeps zero blocks as holes and the exact size.
func TestWriteSparse(t *testing.T) {
	src := make([]byte, 10<<20+123)
	copy(src[5<<20:], "data in the middle")
	src[len(src)-1] = 'z'
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := WriteSparse(f, bytes.NewReader(src))
	if err != nil || n != int64(len(src)) {
		t.Fatalf("wrote %d, %v", n, err)
	}
	got, _ := os.ReadFile(f.Name())
	if !bytes.Equal(got, src) {
		t.Fatal("content differs")
	}
	if a := allocatedBytes(t, f.Name()); a > 64<<10 {
		t.Fatalf("%d bytes allocated for two small data blocks", a)
	}
	// Trailing zeros still make the size.
	g, _ := os.Create(filepath.Join(t.TempDir(), "zeros"))
	defer g.Close()
	if n, err := WriteSparse(g, bytes.NewReader(make([]byte, 3<<20))); err != nil || n != 3<<20 {
		t.Fatalf("zeros: %d, %v", n, err)
	}
	if fi, _ := g.Stat(); fi.Size() != 3<<20 {
		t.Fatalf("zeros: size %d", fi.Size())
	}
}

// TestUntarPlainSparseMember: an archive member stored sparse is counted at
// its real size against the limit and written sparse.
func TestUntarPlainSparseMember(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join(dir, "a.tar")
	os.WriteFile(archive, testutil.SparseTar(
		testutil.PlainMember{Name: "oci-layout", Body: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		testutil.SparseMember{Name: "blobs/sha256/big", RealSize: 3 << 30, Offset: 1 << 30, Data: bytes.Repeat([]byte("x"), 4096)},
	), 0o644)

	out := filepath.Join(dir, "limited")
	err := untarPlain(context.Background(), archive, out, 1<<30)
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "larger than the 1.0 GiB limit") {
		t.Fatalf("over the limit: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "blobs/sha256/big")); err == nil {
		t.Fatal("the refused member was written")
	}

	out = filepath.Join(dir, "full")
	if err := untarPlain(context.Background(), archive, out, 4<<30); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(out, "blobs/sha256/big")
	fi, err := os.Stat(big)
	if err != nil || fi.Size() != 3<<30 {
		t.Fatalf("member: %v, %v", fi, err)
	}
	if a := allocatedBytes(t, big); a > 1<<20 {
		t.Fatalf("a 3 GiB sparse member with 4 KiB of data took %d bytes on disk", a)
	}
	f, _ := os.Open(big)
	defer f.Close()
	got := make([]byte, 4096)
	f.ReadAt(got, 1<<30)
	if !bytes.Equal(got, bytes.Repeat([]byte("x"), 4096)) {
		t.Fatal("data block lost")
	}
}

// TestBlobCacheLimit refuses a blob over the limit, known size or not.
func TestBlobCacheLimit(t *testing.T) {
	c := &blobCache{dir: t.TempDir(), max: 1 << 20}
	data := make([]byte, 2<<20)
	h := hashOf(data)
	if err := c.write(h, int64(len(data)), bytes.NewReader(data), nil); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("known size over the limit: %v", err)
	}
	if err := c.write(h, -1, bytes.NewReader(data), nil); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "larger than the 1.0 MiB limit") {
		t.Fatalf("unknown size over the limit: %v", err)
	}
	if c.has(h) {
		t.Fatal("refused blob cached")
	}
	small := make([]byte, 512<<10)
	if err := c.write(hashOf(small), -1, bytes.NewReader(small), nil); err != nil {
		t.Fatal(err)
	}
}

func hashOf(data []byte) v1.Hash {
	sum := sha256.Sum256(data)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}
