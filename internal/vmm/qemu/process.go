package qemu

import (
	"path/filepath"
	"strings"
	"time"

	"banger/internal/vmm/vmmproc"
)

// qmpTimeout bounds one QMP exchange made on behalf of a caller.
const qmpTimeout = 5 * time.Second

// match recognises the QEMU of runDir: a program named qemu started with
// -pidfile runDir/vmm.pid.
func match(runDir string) vmmproc.Match {
	return vmmproc.Match{Program: "qemu", Flag: "-pidfile", Path: filepath.Join(runDir, PIDFile)}
}

// rt finds the QEMU of a run directory by its pidfile.
var rt = vmmproc.Runtime{PIDFile: PIDFile, Match: match}

// lookup finds the live QEMU recorded in runDir's pidfile. When there is
// none, the error wraps vmm.ErrNotRunning and says why.
func lookup(runDir string) (vmmproc.Proc, error) { return rt.Lookup(runDir) }

// backendName tells KVM from TCG runs by their argv.
func backendName(argv []string) string {
	for i, a := range argv {
		if a == "-accel" && i+1 < len(argv) && strings.HasPrefix(argv[i+1], "kvm") {
			return NameKVM
		}
	}
	return NameTCG
}

// runtimeFiles are the files of a run directory that live as long as QEMU.
// QEMU cannot remove them itself once chrooted and unprivileged.
func runtimeFiles() []string { return []string{PIDFile, QMPSocket, SerialSocket, ControlSocket} }

// removeRuntimeFiles deletes the pidfile and sockets of runDir.
func removeRuntimeFiles(runDir string) error {
	return vmmproc.RemoveFiles(runDir, runtimeFiles()...)
}
