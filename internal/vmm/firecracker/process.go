package firecracker

import (
	"path/filepath"

	"banger/internal/vmm/vmmproc"
)

// match recognises the firecracker of runDir: a program named firecracker
// serving its API on runDir's socket (--api-sock).
func match(runDir string) vmmproc.Match {
	return vmmproc.Match{Program: "firecracker", Flag: "--api-sock", Path: apiSocket(runDir)}
}

// apiSocket is the API socket of runDir's firecracker.
func apiSocket(runDir string) string { return filepath.Join(runDir, APISocket) }

// rt finds the firecracker of a run directory by its pidfile.
var rt = vmmproc.Runtime{PIDFile: PIDFile, Match: match}

// lookup finds the live firecracker recorded in runDir's pidfile. When there
// is none, the error wraps vmm.ErrNotRunning and says why.
func lookup(runDir string) (vmmproc.Proc, error) { return rt.Lookup(runDir) }

// runtimeFiles are the files of a run directory that live as long as
// firecracker: the pidfile (and its temporary file, see
// vmmproc.WritePIDFile) and the API socket.
func runtimeFiles() []string { return []string{PIDFile, PIDFile + ".tmp", APISocket} }

// removeRuntimeFiles deletes the runtime files of runDir.
func removeRuntimeFiles(runDir string) error {
	return vmmproc.RemoveFiles(runDir, runtimeFiles()...)
}
