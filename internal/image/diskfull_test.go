package image

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"banger/internal/api"
)

// TestPullDiskFull pulls into a state directory on a small tmpfs: whether
// the blob download, the layer apply or mkfs runs out of space, the pull
// fails with a clear error and leaves nothing behind.
func TestPullDiskFull(t *testing.T) {
	requireRoot(t)
	requireTool(t, "mkfs.ext4")
	noise := make([]byte, 3<<20)
	rand.Read(noise)
	reg := newTestRegistry(t)
	ref := reg.push(t, "full/img:1", image(t, baseLayer, []entry{fileE("noise", string(noise), 0o644)}))
	for _, size := range []string{"2m", "5m", "9m"} {
		t.Run(size, func(t *testing.T) {
			state := t.TempDir()
			if err := unix.Mount("tmpfs", state, "tmpfs", 0, "size="+size); err != nil {
				t.Skipf("cannot mount tmpfs (needs root): %v", err)
			}
			t.Cleanup(func() { unix.Unmount(state, unix.MNT_DETACH) })
			st := newMemStore()
			svc := New(state, st, denyUnder{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			_, err := svc.Pull(context.Background(), api.ImagePullParams{Ref: ref}, Caller{}, nil)
			if err == nil {
				t.Fatal("pull succeeded on a full disk")
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), "no space left") && !strings.Contains(err.Error(), "disk is full") {
				t.Errorf("error does not say the disk is full: %v", err)
			}
			if imgs, _ := st.ListImages(context.Background()); len(imgs) != 0 {
				t.Errorf("rows left: %v", imgs)
			}
			assertClean(t, state)
		})
	}
}
