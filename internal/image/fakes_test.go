package image

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"banger/internal/api"
	"banger/internal/authz"
	"banger/internal/model"
)

// memStore is an in-memory Store.
type memStore struct {
	mu     sync.Mutex
	images map[string]model.Image
	users  map[string][]string
}

func newMemStore() *memStore {
	return &memStore{images: map[string]model.Image{}, users: map[string][]string{}}
}

func (m *memStore) InsertImage(_ context.Context, img model.Image) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range m.images {
		if x.Name == img.Name {
			return api.Errorf(api.ErrExists, "image %q already exists", img.Name)
		}
	}
	m.images[img.ID] = img
	return nil
}

func (m *memStore) GetImage(_ context.Context, idOrName string) (model.Image, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range m.images {
		if x.ID == idOrName || x.Name == idOrName {
			return x, nil
		}
	}
	return model.Image{}, api.Errorf(api.ErrNotFound, "image %q not found", idOrName)
}

func (m *memStore) ListImages(context.Context) ([]model.Image, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []model.Image
	for _, x := range m.images {
		out = append(out, x)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (m *memStore) DeleteImage(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.images[id]; !ok {
		return api.Errorf(api.ErrNotFound, "image %q not found", id)
	}
	delete(m.images, id)
	return nil
}

func (m *memStore) ImageUsers(_ context.Context, id string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.users[id], nil
}

// denyUnder refuses reads below one directory (a stand-in for authz, which
// checks the caller's real permissions).
type denyUnder struct{ dir string }

func (d denyUnder) check(p string) error {
	if d.dir != "" && strings.HasPrefix(p, d.dir) {
		return api.Errorf(api.ErrPermission, "cannot read %s: permission denied", p)
	}
	return nil
}

func (d denyUnder) OpenRead(ctx context.Context, p string) (*os.File, error) {
	if err := d.check(p); err != nil {
		return nil, err
	}
	return authz.OpenRead(ctx, p)
}

func (d denyUnder) OpenDir(ctx context.Context, p string) (*os.File, error) {
	if err := d.check(p); err != nil {
		return nil, err
	}
	return authz.OpenDir(ctx, p)
}

func (d denyUnder) Walk(ctx context.Context, dir string, include []string, fn func(authz.Entry) error) error {
	if err := d.check(dir); err != nil {
		return err
	}
	return authz.Walk(ctx, dir, include, fn)
}

func newTestService(t *testing.T) (*Service, *memStore, string) {
	t.Helper()
	state := t.TempDir()
	st := newMemStore()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return New(state, st, denyUnder{}, log), st, state
}

// assertClean checks that no staging directory, image directory or temp
// blob was left in state, apart from the image ids in keep.
func assertClean(t *testing.T, state string, keep ...string) {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(state, "images"))
	for _, e := range entries {
		ok := false
		for _, k := range keep {
			ok = ok || e.Name() == k
		}
		if !ok {
			t.Errorf("left behind in images/: %s", e.Name())
		}
	}
	blobs, _ := os.ReadDir(filepath.Join(state, "blobs", "sha256"))
	for _, e := range blobs {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temp blob left behind: %s", e.Name())
		}
	}
	layouts, _ := filepath.Glob(filepath.Join(state, "blobs", ".layout-*"))
	if len(layouts) > 0 {
		t.Errorf("layout temp dirs left behind: %v", layouts)
	}
}
