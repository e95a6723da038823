// Package buildinfo holds the version stamped into the binaries at build time
// (go build -ldflags "-X banger/internal/buildinfo.Version=...").
package buildinfo

// Stamped at build time by the Makefile; the defaults mark a plain `go build`.
var (
	Version = "dev"
	Commit  = ""
	BuiltAt = ""
)
