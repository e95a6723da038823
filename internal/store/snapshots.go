package store

import (
	"context"
	"fmt"

	"banger/internal/api"
	"banger/internal/model"
)

// InsertSnapshot records a new snapshot; api.ErrExists when the name is taken.
func (s *Store) InsertSnapshot(ctx context.Context, sn model.Snapshot) error {
	data, err := encode(sn)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, "INSERT INTO snapshots (id, name, data) VALUES (?, ?, ?)", sn.ID, sn.Name, data)
	if isUnique(err) {
		return api.Errorf(api.ErrExists, "snapshot %q already exists", sn.Name)
	}
	if err != nil {
		return fmt.Errorf("insert snapshot %q: %w", sn.Name, err)
	}
	return nil
}

// GetSnapshot finds a snapshot by exact name or id.
func (s *Store) GetSnapshot(ctx context.Context, ref string) (model.Snapshot, error) {
	var sn model.Snapshot
	err := s.getDoc(ctx, "snapshot", ref, "SELECT data FROM snapshots WHERE name = ? OR id = ? LIMIT 1", []any{ref, ref}, &sn)
	return sn, err
}

// ListSnapshots returns every snapshot by name.
func (s *Store) ListSnapshots(ctx context.Context) ([]model.Snapshot, error) {
	return listDocs[model.Snapshot](ctx, s.db, "SELECT data FROM snapshots ORDER BY name")
}

// DeleteSnapshot removes a snapshot row.
func (s *Store) DeleteSnapshot(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM snapshots WHERE id = ?", id); err != nil {
		return fmt.Errorf("delete snapshot %q: %w", id, err)
	}
	return nil
}
