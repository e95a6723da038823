package kernel

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"banger/internal/api"
	"banger/internal/authz"
)

// memStore is an in-memory Store.
type memStore struct {
	mu      sync.Mutex
	rows    map[string]api.KernelEntry
	images  map[string][]string
	vms     map[string][]string
	inserts int
}

func newMemStore() *memStore {
	return &memStore{rows: map[string]api.KernelEntry{}, images: map[string][]string{}, vms: map[string][]string{}}
}

func (m *memStore) InsertKernel(_ context.Context, e api.KernelEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.rows[e.Name]; ok {
		return api.ErrExists
	}
	m.rows[e.Name] = e
	m.inserts++
	return nil
}

func (m *memStore) GetKernel(_ context.Context, name string) (api.KernelEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.rows[name]
	if !ok {
		return e, api.ErrNotFound
	}
	return e, nil
}

func (m *memStore) ListKernels(context.Context) ([]api.KernelEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []api.KernelEntry
	for _, e := range m.rows {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (m *memStore) DeleteKernel(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.rows[name]; !ok {
		return api.ErrNotFound
	}
	delete(m.rows, name)
	return nil
}

func (m *memStore) KernelUsers(_ context.Context, name string) ([]string, []string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.images[name], m.vms[name], nil
}

// denyUnder refuses reads of paths under its prefix.
type denyUnder string

func (d denyUnder) Walk(ctx context.Context, dir string, include []string, fn func(authz.Entry) error) error {
	if strings.HasPrefix(dir, string(d)) {
		return api.Errorf(api.ErrPermission, "cannot read %s: permission denied", dir)
	}
	return authz.Walk(ctx, dir, include, func(e authz.Entry) error {
		if p := filepath.Join(dir, e.Path); strings.HasPrefix(p, string(d)) {
			return api.Errorf(api.ErrPermission, "cannot read %s: permission denied", p)
		}
		return fn(e)
	})
}

func newTestService(t *testing.T, authz Authorizer) (*Service, *memStore, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "kernels")
	st := newMemStore()
	return New(dir, st, authz, nil), st, dir
}

// assertEmpty checks that the store folder holds nothing but want (and the
// catalog override file) and that the store has no rows beyond rows.
func assertEmpty(t *testing.T, dir string, st *memStore, rows ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if e.Name() != CatalogFile {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	sort.Strings(rows)
	if strings.Join(names, ",") != strings.Join(rows, ",") {
		t.Errorf("store folder holds %q, want %q", names, rows)
	}
	got, _ := st.ListKernels(context.Background())
	if len(got) != len(rows) {
		t.Errorf("store has %d rows (%v), want %d", len(got), got, len(rows))
	}
}
