package store

import (
	"context"
	"fmt"

	"banger/internal/api"
	"banger/internal/model"
)

// InsertImage records an image; api.ErrExists when the name is taken.
func (s *Store) InsertImage(ctx context.Context, img model.Image) error {
	data, err := encode(img)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, "INSERT INTO images (id, name, kernel_ref, data) VALUES (?, ?, ?, ?)",
		img.ID, img.Name, img.KernelRef, data)
	if isUnique(err) {
		return api.Errorf(api.ErrExists, "image %q already exists", img.Name)
	}
	if err != nil {
		return fmt.Errorf("insert image %q: %w", img.Name, err)
	}
	return nil
}

// GetImage loads an image by exact id or name.
func (s *Store) GetImage(ctx context.Context, idOrName string) (model.Image, error) {
	var img model.Image
	err := s.getDoc(ctx, "image", idOrName, "SELECT data FROM images WHERE id = ? OR name = ? LIMIT 1",
		[]any{idOrName, idOrName}, &img)
	return img, err
}

// ListImages returns every image by name.
func (s *Store) ListImages(ctx context.Context) ([]model.Image, error) {
	return listDocs[model.Image](ctx, s.db, "SELECT data FROM images ORDER BY name")
}

// DeleteImage removes an image row.
func (s *Store) DeleteImage(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, "DELETE FROM images WHERE id = ?", id)
	if err != nil {
		return fmt.Errorf("delete image %q: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return api.Errorf(api.ErrNotFound, "image %q not found", id)
	}
	return nil
}

// ImageUsers names the VMs created from an image.
func (s *Store) ImageUsers(ctx context.Context, imageID string) ([]string, error) {
	return listStrings(ctx, s.db, "SELECT name FROM vms WHERE image_id = ? ORDER BY name", imageID)
}
