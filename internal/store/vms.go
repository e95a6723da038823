package store

import (
	"context"
	"fmt"

	"banger/internal/api"
	"banger/internal/model"
)

// InsertVM records a new VM; api.ErrExists when the name is taken.
func (s *Store) InsertVM(ctx context.Context, vm model.VMRecord) error {
	data, err := encodeVM(vm)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, "INSERT INTO vms (id, name, image_id, kernel_name, data) VALUES (?, ?, ?, ?, ?)",
		vm.ID, vm.Name, vm.ImageID, vm.KernelName, data)
	if isUnique(err) {
		return api.Errorf(api.ErrExists, "vm %q already exists", vm.Name)
	}
	if err != nil {
		return fmt.Errorf("insert vm %q: %w", vm.Name, err)
	}
	return nil
}

// UpdateVM rewrites a VM record (matched by id).
func (s *Store) UpdateVM(ctx context.Context, vm model.VMRecord) error {
	data, err := encodeVM(vm)
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, "UPDATE vms SET name = ?, image_id = ?, kernel_name = ?, data = ? WHERE id = ?",
		vm.Name, vm.ImageID, vm.KernelName, data, vm.ID)
	if err != nil {
		return fmt.Errorf("update vm %q: %w", vm.Name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return api.Errorf(api.ErrNotFound, "vm %q not found", vm.Name)
	}
	return nil
}

// encodeVM is the stored form of vm: without what reads fill in.
func encodeVM(vm model.VMRecord) (string, error) {
	vm.Forwards = nil
	return encode(vm)
}

// GetVM finds a VM by exact name, exact id, or unique id prefix.
func (s *Store) GetVM(ctx context.Context, ref string) (model.VMRecord, error) {
	var vm model.VMRecord
	err := s.getDoc(ctx, "vm", ref, "SELECT data FROM vms WHERE name = ? OR id = ? LIMIT 1", []any{ref, ref}, &vm)
	if err == nil || len(ref) < 4 {
		return vm, err
	}
	ids, lerr := listStrings(ctx, s.db, "SELECT id FROM vms WHERE substr(id, 1, ?) = ?", len(ref), ref)
	if lerr != nil {
		return vm, lerr
	}
	switch len(ids) {
	case 0:
		return vm, err
	case 1:
		return s.GetVM(ctx, ids[0])
	default:
		return vm, api.Errorf(api.ErrInvalid, "vm id prefix %q is ambiguous (%d matches)", ref, len(ids))
	}
}

// ListVMs returns every VM by name.
func (s *Store) ListVMs(ctx context.Context) ([]model.VMRecord, error) {
	return listDocs[model.VMRecord](ctx, s.db, "SELECT data FROM vms ORDER BY name")
}

// DeleteVM removes a VM row and its address allocation.
func (s *Store) DeleteVM(ctx context.Context, id string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "DELETE FROM ip_allocations WHERE vm_id = ?", id); err != nil {
		return fmt.Errorf("delete vm %q: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM vms WHERE id = ?", id); err != nil {
		return fmt.Errorf("delete vm %q: %w", id, err)
	}
	return tx.Commit()
}
