package store

import (
	"context"
	"fmt"
	"time"

	"banger/internal/api"
)

// PutOperation inserts or replaces a create operation.
func (s *Store) PutOperation(ctx context.Context, op api.VMCreateOperation) error {
	data, err := encode(op)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO operations (id, vm_id, done, updated_at, data) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET vm_id = excluded.vm_id, done = excluded.done, updated_at = excluded.updated_at, data = excluded.data`,
		op.ID, op.VMID, op.Done, op.UpdatedAt.UTC().Format(time.RFC3339Nano), data)
	if err != nil {
		return fmt.Errorf("save operation %s: %w", op.ID, err)
	}
	return nil
}

// GetOperation loads an operation by id.
func (s *Store) GetOperation(ctx context.Context, id string) (api.VMCreateOperation, error) {
	var op api.VMCreateOperation
	err := s.getDoc(ctx, "operation", id, "SELECT data FROM operations WHERE id = ?", []any{id}, &op)
	return op, err
}

// UnfinishedOperations returns operations not marked done (a daemon that died mid-create).
func (s *Store) UnfinishedOperations(ctx context.Context) ([]api.VMCreateOperation, error) {
	return listDocs[api.VMCreateOperation](ctx, s.db, "SELECT data FROM operations WHERE done = 0 ORDER BY updated_at")
}

// PruneOperations deletes finished operations older than before.
func (s *Store) PruneOperations(ctx context.Context, before time.Time) error {
	_, err := s.db.ExecContext(ctx, "DELETE FROM operations WHERE done = 1 AND updated_at < ?", before.UTC().Format(time.RFC3339Nano))
	return err
}
