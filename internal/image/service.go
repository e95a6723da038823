// Package image manages banger's root filesystem images: pulled from a
// registry, imported from an archive, built with debootstrap, or registered
// from an existing ext4 file. Managed images live in STATE/images/<id>/.
package image

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"banger/internal/api"
	"banger/internal/authz"
	"banger/internal/model"
	"banger/internal/oci"
)

// Store is the part of banger's state the image service needs.
type Store interface {
	InsertImage(ctx context.Context, img model.Image) error
	GetImage(ctx context.Context, idOrName string) (model.Image, error)
	ListImages(ctx context.Context) ([]model.Image, error)
	DeleteImage(ctx context.Context, id string) error
	ImageUsers(ctx context.Context, imageID string) ([]string, error)
}

// Authorizer opens host paths as the caller (the daemon is root): each is
// opened once, by the caller's rights, and only the descriptor is used.
type Authorizer interface {
	OpenRead(ctx context.Context, path string) (*os.File, error)
	OpenDir(ctx context.Context, path string) (*os.File, error)
	Walk(ctx context.Context, dir string, include []string, fn func(authz.Entry) error) error
}

// Caller is who asked for an operation.
type Caller struct {
	UID, GID int
	// Home is the caller's home directory, where their docker config is.
	Home string
}

// Service creates, lists and deletes images.
type Service struct {
	stateDir string
	store    Store
	authz    Authorizer
	log      *slog.Logger
	oci      *oci.Client
	// maxImage bounds an image's expanded size (SetMaxImageBytes).
	maxImage int64
}

// New returns a Service keeping images under stateDir/images and blobs under
// stateDir/blobs. A nil authz allows every path; a nil log uses slog.Default.
func New(stateDir string, st Store, authz Authorizer, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	s := &Service{
		stateDir: stateDir,
		store:    st,
		authz:    authz,
		log:      log,
		oci:      oci.NewClient(filepath.Join(stateDir, "blobs"), oci.WithLogger(log)),
	}
	s.SetMaxImageBytes(DefaultMaxImageSize)
	return s
}

// OCI returns the service's registry client (shared blob cache), for other
// services that pull OCI artifacts (kernels).
func (s *Service) OCI() *oci.Client { return s.oci }

// List returns every image.
func (s *Service) List(ctx context.Context) ([]model.Image, error) {
	imgs, err := s.store.ListImages(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	return imgs, nil
}

// Show returns one image by id or name.
func (s *Service) Show(ctx context.Context, idOrName string) (model.Image, error) {
	if idOrName == "" {
		return model.Image{}, api.Errorf(api.ErrInvalid, "show image: id or name required")
	}
	return s.store.GetImage(ctx, idOrName)
}

// Delete removes an image. It refuses, naming them, while VMs use it. A
// managed image's directory goes with it; blobs stay in the cache, and a
// caller's original files are never touched.
func (s *Service) Delete(ctx context.Context, idOrName string) error {
	img, err := s.Show(ctx, idOrName)
	if err != nil {
		return err
	}
	users, err := s.store.ImageUsers(ctx, img.ID)
	if err != nil {
		return fmt.Errorf("delete image %s: %w", img.Name, err)
	}
	if len(users) > 0 {
		return api.Errorf(api.ErrConflict, "image %s is used by VMs: %s", img.Name, strings.Join(users, ", "))
	}
	if err := s.store.DeleteImage(ctx, img.ID); err != nil {
		return fmt.Errorf("delete image %s: %w", img.Name, err)
	}
	if img.Managed {
		dir := s.imageDir(img.ID)
		if filepath.Dir(img.RootfsPath) != dir {
			s.log.Warn("managed image outside its directory; files kept", "image", img.Name, "rootfs", img.RootfsPath)
			return nil
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("delete image %s: remove files: %w", img.Name, err)
		}
	}
	s.log.Info("image deleted", "image", img.Name, "id", img.ID)
	return nil
}

// imageDir is where a managed image's files live.
func (s *Service) imageDir(id string) string {
	return filepath.Join(s.stateDir, "images", id)
}

// checkNameFree fails with api.ErrExists when an image already has name.
func (s *Service) checkNameFree(ctx context.Context, name string) error {
	_, err := s.store.GetImage(ctx, name)
	if err == nil {
		return api.Errorf(api.ErrExists, "image %q already exists", name)
	}
	if !errors.Is(err, api.ErrNotFound) {
		return fmt.Errorf("look up image %q: %w", name, err)
	}
	return nil
}

// newID returns 12 random hex characters.
func newID() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
