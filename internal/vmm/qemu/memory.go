package qemu

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"banger/internal/iox"
)

// Guest RAM lives in a file (memory-backend-file) so that a snapshot can
// copy it without QEMU streaming it (the x-ignore-shared migration
// capability) and clones can map a snapshot's copy copy-on-write.
//
// A running VM's RAM file is created by the daemon in MemDir (a root-only
// folder on tmpfs), root's and 0600, mapped shared by QEMU (opened before
// it drops privileges) and unlinked as soon as QEMU is set up: the memory
// is freed when QEMU exits, whoever stops it, and no file is left behind.
// A snapshot reads it through QEMU's own descriptor (/proc/PID/fd).

// DefaultMemDir is where running VMs' RAM files are made.
const DefaultMemDir = "/dev/shm/banger"

// memID is the id of the RAM backend object.
const memID = "ram0"

// memFile is the RAM backend of a Command.
type memFile struct {
	path   string
	shared bool // MAP_SHARED (a running VM) or MAP_PRIVATE (a clone)
}

// object is the RAM backend's -object value. A clone's is never
// readonly=on: in QEMU 7.2 that makes guest RAM a ROM (the guest's writes
// are dropped and it crashes at once); a private mapping (share=off)
// already leaves the file unwritten.
func (m memFile) object(mib int) string {
	return "memory-backend-file,id=" + memID + ",size=" + strconv.Itoa(mib) + "M,mem-path=" + optValue(m.path) + ",share=" + onOff(m.shared)
}

// WithMemFile backs guest RAM by the file path, mapped shared (writes go to
// the file) or private (copy-on-write over it: the file is not written).
func (c Command) WithMemFile(path string, shared bool) Command {
	c.mem = memFile{path: path, shared: shared}
	return c
}

// WithIncoming adds -incoming defer: QEMU waits for migrate-incoming.
func (c Command) WithIncoming(on bool) Command { c.incoming = on; return c }

// memDir makes dir (root's, or the daemon user's, 0700), refusing one that
// is a symlink or belongs to someone else (/dev/shm is world-writable).
func memDir(dir string) error {
	if err := iox.OwnDir(dir); err != nil {
		return fmt.Errorf("ram folder: %w", err)
	}
	return nil
}

// createMemFile makes the RAM file of VM id (0600, mib MiB, sparse) and
// returns its path.
func (b *Backend) createMemFile(id string, mib int) (string, error) {
	if err := memDir(b.memDir); err != nil {
		return "", err
	}
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("ram file: %w", err)
	}
	path := filepath.Join(b.memDir, id+"-"+hex.EncodeToString(r[:])+".ram")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", fmt.Errorf("ram file: %w", err)
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		return "", fmt.Errorf("ram file: %w", err)
	}
	if err := f.Truncate(int64(mib) << 20); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("ram file: %w", err)
	}
	return path, nil
}

// openMemFile opens the RAM file QEMU pid maps (unlinked) through its
// descriptor table.
func openMemFile(pid int, memDir string) (*os.File, error) {
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, fmt.Errorf("find ram file: %w", err)
	}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err != nil || filepath.Dir(target) != memDir {
			continue
		}
		return os.Open(filepath.Join(fdDir, e.Name()))
	}
	return nil, errors.New("find ram file: qemu maps no file of " + memDir + " (a vm started before snapshots were supported: restart it)")
}
