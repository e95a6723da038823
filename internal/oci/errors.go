package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"banger/internal/api"
)

// isFatalStatus reports a registry answer that retrying with GET cannot fix.
func isFatalStatus(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	switch te.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return true
	}
	return false
}

// registryError turns a registry or network failure into a user-facing error
// of the right kind.
func registryError(ref, step string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("pull %s: %s: %w", ref, step, err)
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return api.Errorf(api.ErrPermission, "pull %s: %s: registry refused the credentials (check docker login): %w", ref, step, err)
		case http.StatusNotFound:
			return api.Errorf(api.ErrNotFound, "pull %s: %s: not found in registry: %w", ref, step, err)
		}
		if te.StatusCode >= 500 {
			return api.Errorf(api.ErrUnavailable, "pull %s: %s: registry error: %w", ref, step, err)
		}
	}
	if strings.Contains(err.Error(), "error verifying sha256 checksum") || strings.Contains(err.Error(), "digest mismatch") {
		return fmt.Errorf("pull %s: %s: corrupt blob (digest mismatch): %w", ref, step, err)
	}
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("pull %s: %s: the disk holding banger's state is full: %w", ref, step, err)
	}
	var oe *net.OpError
	var ue *url.Error
	if errors.As(err, &oe) || errors.As(err, &ue) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return api.Errorf(api.ErrUnavailable, "pull %s: %s: connection to the registry failed: %w", ref, step, err)
	}
	return fmt.Errorf("pull %s: %s: %w", ref, step, err)
}

// fileSize returns the size of a regular file.
func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
