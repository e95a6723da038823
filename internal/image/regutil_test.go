package image

import (
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"banger/internal/model"

	"github.com/google/go-containerregistry/pkg/authn"
)

func nilLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func basicAuth(user, pass string) authn.Authenticator {
	return &authn.Basic{Username: user, Password: pass}
}

type modelImage = model.Image

func requireRootQuiet() bool { return os.Geteuid() == 0 }

func hasTool(tool string) bool {
	_, err := exec.LookPath(tool)
	return err == nil
}

func writeDockerConfig(t *testing.T, home, host, user, pass string) {
	t.Helper()
	dir := filepath.Join(home, ".docker")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	cfg := fmt.Sprintf(`{"auths":{"http://%s":{"auth":%q},"other.example:5000":{"auth":"eDp5"}}}`, host, auth)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}
