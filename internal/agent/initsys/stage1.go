package initsys

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"banger/internal/bootcfg"
)

// NewRoot is where stage 1 assembles the VM's root before switching to it.
const NewRoot = "/newroot"

// diskWait bounds the wait for virtio disks to appear.
const diskWait = 10 * time.Second

// Stage1 runs as /init in the initramfs: it mounts the VM's disks, prepares
// the new root and makes it "/". It returns nil once it has switched root:
// the caller then runs Stage2 in the same process (no exec: the Go runtime
// does not start twice).
func Stage1(log *slog.Logger) error {
	if err := mountFS("devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"); err != nil {
		return err
	}
	if err := mountFS("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	if err := mountFS("sysfs", "/sys", "sysfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	log.Info("stage 1 started", "kernel", kernelRelease())

	// Opened before the modules load: no device event is missed.
	wake, stopEvents, err := watchUevents()
	if err != nil {
		log.Warn("no device events: disks are looked for every 100 ms", "err", err)
		stopEvents = func() {}
	}
	modErr := LoadModules("/", log)
	tunePageReporting(log)
	// After the modules: bringing a CPU up holds the hotplug lock, which
	// loading a module also takes.
	startOnliningCPUs(log)

	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("read /proc/cmdline: %w", err)
	}
	override, err := ParseDiskMap(string(cmdline))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), diskWait)
	disks, err := FindDisks(ctx, "/sys/block", "/dev", override, wake)
	cancel()
	stopEvents()
	if err != nil {
		if modErr != nil {
			err = fmt.Errorf("%w (module errors: %v)", err, modErr)
		}
		return err
	}
	for role, dev := range disks {
		log.Info("disk found", "role", role, "dev", dev)
	}

	cfg, err := ReadConfigDisk(disks[bootcfg.SerialConfig])
	if err != nil {
		return err
	}
	log.Info("boot config read", "vm", cfg.VMID, "hostname", cfg.Hostname, "init_mode", cfg.InitMode)

	if err := assembleRoot(disks, log); err != nil {
		return err
	}
	if err := installAgent(cfg); err != nil {
		return err
	}
	if err := WriteEtc(NewRoot, cfg); err != nil {
		return err
	}
	freeInitramfs(log)
	if err := switchRoot(NewRoot); err != nil {
		return err
	}
	log.Info("switched root; starting stage 2")
	return nil
}

// assembleRoot mounts rootfs (read-only), the overlay disk and the work
// disk at once, joins rootfs and the overlay disk with overlayfs at
// NewRoot, mounts /run (tmpfs) and moves the disks under /run/banger, then
// moves the work disk to /root.
func assembleRoot(disks Disks, log *slog.Logger) error {
	lower, upperDisk, workMnt := "/mnt/lower", "/mnt/overlay", "/mnt/work"
	rootDev := disks[bootcfg.SerialRootfs]
	workDev, hasWork := disks[bootcfg.SerialWork]
	var geo ext4Geometry
	var geoErr error
	// Each mount reads its disk's superblock and journal: the three disks
	// are read at the same time.
	var g errgroup.Group
	g.Go(func() error { return mountRootfs(rootDev, lower, log) })
	g.Go(func() error {
		if dev, ok := disks[bootcfg.SerialOverlay]; ok {
			if err := mountFS(dev, upperDisk, "ext4", 0, vmDiskOptions); err != nil {
				return fmt.Errorf("mount overlay disk: %w", err)
			}
		} else {
			log.Warn("no overlay disk: changes to / will not persist")
			if err := mountFS("tmpfs", upperDisk, "tmpfs", 0, "mode=0755"); err != nil {
				return err
			}
		}
		for _, d := range []string{"upper", "work"} {
			if err := os.MkdirAll(filepath.Join(upperDisk, d), 0o755); err != nil {
				return fmt.Errorf("prepare overlay disk: %w", err)
			}
		}
		return nil
	})
	if hasWork {
		g.Go(func() error {
			geo, geoErr = readGeometry(workDev)
			if err := mountFS(workDev, workMnt, "ext4", 0, vmDiskOptions); err != nil {
				return fmt.Errorf("mount work disk: %w", err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s/upper,workdir=%s/work", lower, upperDisk, upperDisk)
	if err := mountFS("overlay", NewRoot, "overlay", 0, opts); err != nil {
		return err
	}
	log.Info("root assembled", "lower", rootDev, "upper", upperDisk)

	run := filepath.Join(NewRoot, "run")
	if err := mountFS("tmpfs", run, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return err
	}
	if err := moveMount(lower, filepath.Join(NewRoot, LowerDir)); err != nil {
		return err
	}
	if err := moveMount(upperDisk, filepath.Join(NewRoot, OverlayDir)); err != nil {
		return err
	}

	if hasWork {
		home := filepath.Join(NewRoot, "root")
		if err := moveMount(workMnt, home); err != nil {
			return fmt.Errorf("mount work disk: %w", err)
		}
		growWorkDisk(workDev, home, geo, geoErr, log)
		if err := os.Chmod(home, 0o700); err != nil {
			return fmt.Errorf("mount work disk: %w", err)
		}
	} else {
		log.Warn("no work disk: /root lives on the overlay")
	}
	return nil
}

// mountRootfs mounts the image read-only at dir.
func mountRootfs(dev, dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mount rootfs: %w", err)
	}
	if err := unix.Mount(dev, dir, "ext4", unix.MS_RDONLY, ""); err != nil {
		// A read-only device cannot replay a journal; try without it.
		if err2 := unix.Mount(dev, dir, "ext4", unix.MS_RDONLY, "noload"); err2 != nil {
			return fmt.Errorf("mount rootfs %s read-only at %s: %w", dev, dir, err)
		}
		log.Warn("rootfs mounted without its journal (noload)", "dev", dev)
	}
	return nil
}

// growWorkDisk grows the mounted work disk's filesystem to fill its device
// (the host extended the file). A failure is logged: the VM still boots,
// with /root at its old size.
func growWorkDisk(dev, mnt string, geo ext4Geometry, geoErr error, log *slog.Logger) {
	if geoErr != nil {
		log.Warn("work disk not grown", "dev", dev, "err", geoErr)
		return
	}
	blocks, err := growMounted(dev, mnt, geo)
	switch {
	case err != nil:
		log.Warn("work disk not grown", "dev", dev, "err", err)
	case blocks > 0:
		log.Info("work disk grown", "dev", dev, "from_bytes", geo.Blocks*geo.BlockSize, "to_bytes", blocks*geo.BlockSize)
	}
}

// installAgent makes this binary, which goes on running as stage 2,
// visible at the new root's AgentPath (a bind mount: no copy, and the
// initramfs's other files can still be freed), and writes the config into
// the new root's /run.
func installAgent(cfg *bootcfg.Config) error {
	self, err := os.Executable()
	if err != nil {
		self = "/init"
	}
	dst := filepath.Join(NewRoot, AgentPath)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("install agent: %w", err)
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return fmt.Errorf("install agent: %w", err)
	}
	f.Close()
	if err := unix.Mount(self, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("install agent: bind %s on %s: %w", self, dst, err)
	}
	if err := unix.Mount("", dst, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("install agent: make %s read-only: %w", dst, err)
	}
	return WriteConfigFile(filepath.Join(NewRoot, ConfigPath), cfg)
}

// switchRoot moves the API filesystems into newRoot and makes it "/".
func switchRoot(newRoot string) error {
	for _, d := range []string{"/dev", "/proc", "/sys"} {
		if err := moveMount(d, filepath.Join(newRoot, d)); err != nil {
			return err
		}
	}
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("switch root: %w", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("switch root: move %s to /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("switch root: chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("switch root: %w", err)
	}
	return nil
}

// vmDiskOptions mount the VM's own ext4 disks (overlay and work). banger
// makes them with lazy inode-table init so that creating a VM writes only a
// few MiB whatever the disk size; noinit_itable stops the kernel from
// zeroing those tables in the background (ext4lazyinit), which would cost
// guest CPU at boot and turn the sparse host files dense. Uninitialised
// tables are tracked per block group, so this is safe. discard gives the
// space of deleted files back to the host: freed blocks are discarded at each
// journal commit, and QEMU (discard=unmap) punches them out of the sparse
// disk file. A device without discard (Firecracker's) only logs a warning.
const vmDiskOptions = "noinit_itable,discard"

// freeInitramfs deletes the initramfs files (modules, this binary) to give
// their memory back. Only files on the initramfs itself are removed.
func freeInitramfs(log *slog.Logger) {
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil || (st.Type != unix.RAMFS_MAGIC && st.Type != unix.TMPFS_MAGIC) {
		return
	}
	var root unix.Stat_t
	if err := unix.Lstat("/", &root); err != nil {
		return
	}
	entries, err := os.ReadDir("/")
	if err != nil {
		return
	}
	for _, e := range entries {
		removeSameDev(filepath.Join("/", e.Name()), root.Dev)
	}
	log.Info("initramfs freed")
}

// removeSameDev removes path and its children that live on device dev; it
// never crosses into another mount.
func removeSameDev(path string, dev uint64) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil || st.Dev != dev {
		return
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		entries, err := os.ReadDir(path)
		if err != nil {
			return
		}
		for _, e := range entries {
			removeSameDev(filepath.Join(path, e.Name()), dev)
		}
	}
	_ = os.Remove(path) // a directory holding a mount point stays
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}
