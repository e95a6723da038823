package image

import "banger/internal/api"

// InitLabel is the OCI image label with which an image asks to boot its own
// init ("image") instead of banger's.
const InitLabel = "dev.banger.init"

// checkInit accepts the init modes an image may ask for.
func checkInit(mode string) error {
	switch mode {
	case "", "banger", "image":
		return nil
	}
	return api.Errorf(api.ErrInvalid, "init %q: use image (boot the image's /sbin/init) or banger", mode)
}
