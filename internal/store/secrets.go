package store

import (
	"context"
	"fmt"

	"banger/internal/api"
	"banger/internal/model"
)

// InsertSecret records a new secret's description (never its value);
// api.ErrExists when its owner already has one of that name.
func (s *Store) InsertSecret(ctx context.Context, sec model.Secret) error {
	data, err := encode(sec)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, "INSERT INTO secrets (id, owner_uid, name, data) VALUES (?, ?, ?, ?)",
		sec.ID, sec.OwnerUID, sec.Name, data)
	if isUnique(err) {
		return api.Errorf(api.ErrExists, "secret %q already exists", sec.Name)
	}
	if err != nil {
		return fmt.Errorf("insert secret %q: %w", sec.Name, err)
	}
	return nil
}

// GetSecret finds owner's secret name.
func (s *Store) GetSecret(ctx context.Context, owner int, name string) (model.Secret, error) {
	var sec model.Secret
	err := s.getDoc(ctx, "secret", name, "SELECT data FROM secrets WHERE owner_uid = ? AND name = ?", []any{owner, name}, &sec)
	return sec, err
}

// GetSecretByID finds a secret by id.
func (s *Store) GetSecretByID(ctx context.Context, id string) (model.Secret, error) {
	var sec model.Secret
	err := s.getDoc(ctx, "secret", id, "SELECT data FROM secrets WHERE id = ?", []any{id}, &sec)
	return sec, err
}

// SecretsNamed returns every owner's secret called name.
func (s *Store) SecretsNamed(ctx context.Context, name string) ([]model.Secret, error) {
	return listDocs[model.Secret](ctx, s.db, "SELECT data FROM secrets WHERE name = ? ORDER BY owner_uid", name)
}

// ListSecrets returns every secret by owner and name.
func (s *Store) ListSecrets(ctx context.Context) ([]model.Secret, error) {
	return listDocs[model.Secret](ctx, s.db, "SELECT data FROM secrets ORDER BY owner_uid, name")
}

// DeleteSecret removes a secret row.
func (s *Store) DeleteSecret(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM secrets WHERE id = ?", id); err != nil {
		return fmt.Errorf("delete secret %q: %w", id, err)
	}
	return nil
}
