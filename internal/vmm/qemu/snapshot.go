package qemu

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"banger/internal/vmm"
	"banger/internal/vmm/vmmproc"
)

var _ vmm.Snapshotter = (*Backend)(nil)

// migrateTimeout bounds saving or loading a snapshot's device state (tens
// of KB: guest RAM is not in the stream, see memory.go).
const migrateTimeout = 60 * time.Second

// write sends data, with c.oob (a descriptor) when set.
func (c *QMP) write(data []byte) error {
	if c.oob == nil {
		_, err := c.conn.Write(data)
		return err
	}
	uc, ok := c.conn.(*net.UnixConn)
	if !ok {
		return errors.New("descriptor passing needs a unix socket")
	}
	_, _, err := uc.WriteMsgUnix(data, c.oob, nil)
	return err
}

// GetFD hands f to QEMU under name (QMP getfd), for a later "fd:name" URI.
func (c *QMP) GetFD(ctx context.Context, name string, f *os.File) error {
	c.oob = unix.UnixRights(int(f.Fd()))
	defer func() { c.oob = nil }()
	return c.Execute(ctx, "getfd", map[string]string{"fdname": name}, nil)
}

// ignoreShared turns on x-ignore-shared: RAM in a shared named file is
// left out of the migration stream.
func ignoreShared(ctx context.Context, c *QMP) error {
	caps := map[string]any{"capabilities": []map[string]any{{"capability": "x-ignore-shared", "state": true}}}
	return c.Execute(ctx, "migrate-set-capabilities", caps, nil)
}

type migrateInfo struct {
	Status    string `json:"status"`
	ErrorDesc string `json:"error-desc"`
}

// waitMigration polls query-migrate until the migration completed or failed.
func waitMigration(ctx context.Context, c *QMP) error {
	for {
		var mi migrateInfo
		if err := c.Execute(ctx, "query-migrate", nil, &mi); err != nil {
			return err
		}
		switch mi.Status {
		case "completed":
			return nil
		case "failed", "cancelled":
			return fmt.Errorf("migration %s: %s", mi.Status, mi.ErrorDesc)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Snapshot stops the guest of runDir and writes its device state and RAM
// into dir (0600 files). The guest stays stopped.
func (b *Backend) Snapshot(ctx context.Context, runDir, dir string) error {
	p, err := lookup(runDir)
	if err != nil {
		return fmt.Errorf("snapshot vm: %w", err)
	}
	state, err := os.OpenFile(filepath.Join(dir, vmm.SnapshotState), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("snapshot vm: %w", err)
	}
	defer state.Close()
	ctx, cancel := context.WithTimeout(ctx, migrateTimeout)
	defer cancel()
	c, err := DialQMP(ctx, filepath.Join(runDir, QMPSocket))
	if err != nil {
		return fmt.Errorf("snapshot vm: %w", err)
	}
	defer c.Close()
	steps := []func() error{
		func() error { return c.Execute(ctx, "stop", nil, nil) },
		func() error { return ignoreShared(ctx, c) },
		func() error { return c.GetFD(ctx, "snapshot", state) },
		func() error { return c.Execute(ctx, "migrate", map[string]string{"uri": "fd:snapshot"}, nil) },
		func() error { return waitMigration(ctx, c) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("snapshot vm: save device state: %w (log: %s)", err, vmmproc.LogTail(filepath.Join(runDir, LogFile)))
		}
	}
	if err := state.Sync(); err != nil {
		return fmt.Errorf("snapshot vm: %w", err)
	}
	ram, err := openMemFile(p.PID, b.memDir)
	if err != nil {
		return fmt.Errorf("snapshot vm: %w", err)
	}
	defer ram.Close()
	if err := copySparse(ram, filepath.Join(dir, vmm.SnapshotRAM)); err != nil {
		return fmt.Errorf("snapshot vm: copy ram: %w", err)
	}
	return nil
}

// Restore starts QEMU for spec waiting for an incoming migration, with its
// RAM mapping dir's RAM file privately (copy-on-write: the file is never
// written), loads dir's device state and leaves the guest stopped.
func (b *Backend) Restore(ctx context.Context, spec vmm.Spec, dir string) (vmm.Process, error) {
	l, err := b.prepareLaunch(&spec)
	if err != nil {
		return vmm.Process{}, fmt.Errorf("restore vm: %w", err)
	}
	defer l.close()
	runDir := l.runDir
	ok := false
	defer func() {
		if !ok {
			b.cleanupStart(runDir)
		}
	}()
	state, err := os.Open(filepath.Join(dir, vmm.SnapshotState))
	if err != nil {
		return vmm.Process{}, fmt.Errorf("restore vm: %w", err)
	}
	defer state.Close()
	argv := b.command(spec).WithMemFile(filepath.Join(dir, vmm.SnapshotRAM), false).WithIncoming(true).Build()
	pid, err := b.launch(ctx, argv, runDir, l.extra, l.clone)
	if err != nil {
		return vmm.Process{}, fmt.Errorf("restore vm: %w", err)
	}
	if err := b.launched(l, pid); err != nil {
		return vmm.Process{}, fmt.Errorf("restore vm: %w", err)
	}
	mctx, cancel := context.WithTimeout(ctx, migrateTimeout)
	defer cancel()
	c, err := DialQMP(mctx, filepath.Join(runDir, QMPSocket))
	if err != nil {
		return vmm.Process{}, fmt.Errorf("restore vm: %w", err)
	}
	defer c.Close()
	steps := []func() error{
		func() error { return ignoreShared(mctx, c) },
		func() error { return c.GetFD(mctx, "snapshot", state) },
		func() error {
			return c.Execute(mctx, "migrate-incoming", map[string]string{"uri": "fd:snapshot"}, nil)
		},
		func() error { return waitMigration(mctx, c) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return vmm.Process{}, fmt.Errorf("restore vm: load device state: %w (log: %s)", err, vmmproc.LogTail(filepath.Join(runDir, LogFile)))
		}
	}
	ok = true
	return vmm.Process{PID: pid, Backend: b.Name()}, nil
}

// Fingerprint is what a snapshot of spec's VM needs to be restorable here.
// The accelerator is the one spec's QEMU runs under when it is running (it
// may have started before UseKVM changed the backend's), else the
// backend's.
func (b *Backend) Fingerprint(spec vmm.Spec) (map[string]string, error) {
	kvm := b.mode().kvm
	if p, err := lookup(spec.RunDir); err == nil {
		kvm = backendName(p.Argv) == NameKVM
	}
	name := NameTCG
	if kvm {
		name = NameKVM
	}
	fp := map[string]string{
		"accelerator": name,
		"memory_mib":  strconv.Itoa(spec.MemoryMiB),
		"vcpus":       strconv.Itoa(spec.VCPUs),
	}
	if kvm {
		fp["cpu_model"] = "host"
	} else {
		fp["cpu_model"] = "max"
	}
	ver, err := exec.Command(b.binary, "-version").Output()
	if err != nil {
		return nil, fmt.Errorf("qemu version: %w", err)
	}
	fp["qemu_version"] = strings.TrimSpace(strings.SplitN(string(ver), "\n", 2)[0])
	for key, path := range map[string]string{"qemu_binary": b.binary, "kernel": spec.Kernel, "initrd": spec.Initrd} {
		if path == "" {
			continue
		}
		sum, err := fileSHA256(path)
		if err != nil {
			return nil, fmt.Errorf("fingerprint %s: %w", key, err)
		}
		fp[key] = sum
	}
	var layout []string
	for _, d := range spec.Disks {
		layout = append(layout, fmt.Sprintf("blk:%s:ro=%t", d.Serial, d.ReadOnly))
	}
	if spec.Net != nil {
		layout = append(layout, "net:"+map[bool]string{true: "tap", false: "user"}[spec.Net.Tap != ""])
	}
	layout = append(layout, "serial:"+strconv.FormatBool(spec.SerialLog != ""), "ctl:"+ControlPortName, "machine:"+Machine)
	fp["device_layout"] = strings.Join(layout, ",")
	return fp, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copySparse copies src to a new file dst (0600), leaving holes as holes.
func copySparse(src *os.File, dst string) error {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	var off int64
	for off < size {
		data, err := unix.Seek(int(src.Fd()), off, unix.SEEK_DATA)
		if err != nil {
			break // no more data (ENXIO)
		}
		hole, err := unix.Seek(int(src.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.NewOffsetWriter(out, data), io.NewSectionReader(src, data, hole-data)); err != nil {
			return err
		}
		off = hole
	}
	if err := out.Truncate(size); err != nil {
		return err
	}
	return out.Sync()
}
