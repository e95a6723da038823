package initsys

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The host only ever extends the work disk's file (vm set --work-disk-size);
// the guest grows the filesystem to fill it, online, at boot. Host root never
// runs fsck or resize tools on a filesystem the guest wrote.

// ext4IocResizeFS is EXT4_IOC_RESIZE_FS, _IOW('f', 16, __u64).
const ext4IocResizeFS = 0x40086610

// ext4 superblock fields (the superblock is 1024 bytes at byte 1024).
const (
	sbOffset          = 1024
	sbSize            = 1024
	sbBlocksLo        = 0x04
	sbLogBlockSize    = 0x18
	sbMagic           = 0x38
	sbFeatureIncompat = 0x60
	sbBlocksHi        = 0x150
	ext4Magic         = 0xEF53
	incompat64Bit     = 0x80
)

// ext4Geometry is what growing needs from a superblock.
type ext4Geometry struct {
	Blocks    uint64 // filesystem size in blocks
	BlockSize uint64
	Is64Bit   bool
}

// parseSuperblock reads the block count and size from an ext4 superblock
// (the 1024 bytes at byte 1024 of the device).
func parseSuperblock(sb []byte) (ext4Geometry, error) {
	if len(sb) < sbSize {
		return ext4Geometry{}, errors.New("short superblock")
	}
	le := binary.LittleEndian
	if le.Uint16(sb[sbMagic:]) != ext4Magic {
		return ext4Geometry{}, errors.New("not an ext4 filesystem (no superblock magic)")
	}
	logBS := le.Uint32(sb[sbLogBlockSize:])
	if logBS > 6 { // 1 KiB << 6 = 64 KiB, ext4's largest block
		return ext4Geometry{}, fmt.Errorf("bad block size exponent %d", logBS)
	}
	g := ext4Geometry{BlockSize: 1024 << logBS, Blocks: uint64(le.Uint32(sb[sbBlocksLo:]))}
	if le.Uint32(sb[sbFeatureIncompat:])&incompat64Bit != 0 {
		g.Is64Bit = true
		g.Blocks |= uint64(le.Uint32(sb[sbBlocksHi:])) << 32
	}
	return g, nil
}

// growTarget is the block count that fills a device of devBytes, or 0 when
// the filesystem already fills it. Without the 64bit feature ext4 stops at
// 2^32-1 blocks.
func growTarget(g ext4Geometry, devBytes uint64) uint64 {
	if g.BlockSize == 0 {
		return 0
	}
	n := devBytes / g.BlockSize
	if !g.Is64Bit && n > 1<<32-1 {
		n = 1<<32 - 1
	}
	if n <= g.Blocks {
		return 0
	}
	return n
}

// readGeometry reads the superblock of the ext4 filesystem on dev.
func readGeometry(dev string) (ext4Geometry, error) {
	f, err := os.Open(dev)
	if err != nil {
		return ext4Geometry{}, err
	}
	defer f.Close()
	sb := make([]byte, sbSize)
	if _, err := f.ReadAt(sb, sbOffset); err != nil {
		return ext4Geometry{}, fmt.Errorf("read superblock of %s: %w", dev, err)
	}
	return parseSuperblock(sb)
}

// deviceBytes is the size of the block device dev (BLKGETSIZE64).
func deviceBytes(dev string) (uint64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dev, err)
	}
	return n, nil
}

// growMounted grows the ext4 filesystem of dev, mounted at mnt, to fill dev
// (EXT4_IOC_RESIZE_FS on the mount, as resize2fs does online). g is the
// geometry read before mounting. It returns the new block count, or 0 when
// there was nothing to grow.
func growMounted(dev, mnt string, g ext4Geometry) (uint64, error) {
	size, err := deviceBytes(dev)
	if err != nil {
		return 0, err
	}
	target := growTarget(g, size)
	if target == 0 {
		return 0, nil
	}
	f, err := os.Open(mnt)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := target
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), ext4IocResizeFS, uintptr(unsafe.Pointer(&n))); e != 0 {
		return 0, fmt.Errorf("grow %s from %d to %d blocks: %w", mnt, g.Blocks, target, e)
	}
	return target, nil
}
