package paths

import (
	"fmt"
	"os"
	"path/filepath"
)

// UserConfigDir is the invoking user's banger folder ($XDG_CONFIG_HOME/banger
// or ~/.config/banger): their SSH key and known_hosts, for the CLI and the
// MCP server alike.
func UserConfigDir() (string, error) {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "banger"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find home folder: %w", err)
	}
	return filepath.Join(home, ".config", "banger"), nil
}
