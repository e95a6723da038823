package store

import (
	"context"
	"fmt"

	"banger/internal/api"
)

// InsertKernel records a kernel; api.ErrExists when the name is taken.
func (s *Store) InsertKernel(ctx context.Context, e api.KernelEntry) error {
	data, err := encode(e)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, "INSERT INTO kernels (name, data) VALUES (?, ?)", e.Name, data)
	if isUnique(err) {
		return api.Errorf(api.ErrExists, "kernel %q already exists", e.Name)
	}
	if err != nil {
		return fmt.Errorf("insert kernel %q: %w", e.Name, err)
	}
	return nil
}

// GetKernel loads a kernel by name.
func (s *Store) GetKernel(ctx context.Context, name string) (api.KernelEntry, error) {
	var e api.KernelEntry
	err := s.getDoc(ctx, "kernel", name, "SELECT data FROM kernels WHERE name = ?", []any{name}, &e)
	return e, err
}

// ListKernels returns every kernel by name.
func (s *Store) ListKernels(ctx context.Context) ([]api.KernelEntry, error) {
	return listDocs[api.KernelEntry](ctx, s.db, "SELECT data FROM kernels ORDER BY name")
}

// DeleteKernel removes a kernel row.
func (s *Store) DeleteKernel(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, "DELETE FROM kernels WHERE name = ?", name)
	if err != nil {
		return fmt.Errorf("delete kernel %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return api.Errorf(api.ErrNotFound, "kernel %q not found", name)
	}
	return nil
}

// KernelUsers names the images and VMs that refer to a kernel.
func (s *Store) KernelUsers(ctx context.Context, name string) (images, vms []string, err error) {
	images, err = listStrings(ctx, s.db, "SELECT name FROM images WHERE kernel_ref = ? ORDER BY name", name)
	if err != nil {
		return nil, nil, err
	}
	vms, err = listStrings(ctx, s.db, "SELECT name FROM vms WHERE kernel_name = ? ORDER BY name", name)
	return images, vms, err
}
