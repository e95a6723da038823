package image

import (
	"errors"
	"testing"

	"banger/internal/api"
)

func TestCheckInit(t *testing.T) {
	for _, ok := range []string{"", "banger", "image"} {
		if err := checkInit(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"systemd", "Image", "/sbin/init"} {
		if err := checkInit(bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%q accepted: %v", bad, err)
		}
	}
}
