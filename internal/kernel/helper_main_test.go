package kernel

import (
	"os"
	"testing"

	"banger/internal/authz"
)

// The test binary doubles as the helper that opens paths as the caller, as
// bangerd does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == authz.HelperArg {
		os.Exit(authz.RunHelper(os.Args[2:]))
	}
	os.Exit(m.Run())
}
