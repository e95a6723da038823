package firecracker

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"banger/internal/api"
)

const (
	kvmDevice        = "/dev/kvm"
	kvmGetAPIVersion = 0xAE00 // _IO(KVMIO, 0x00)
	kvmAPIVersion    = 12

	// bzImageMagicOffset is where an x86 boot protocol header keeps "HdrS".
	bzImageMagicOffset = 0x202
)

// CatalogKernel is the kernel catalog entry built for Firecracker.
const CatalogKernel = "microvm-6.1"

// checkKVM returns nil when dev opens and reports KVM API version 12.
func checkKVM(dev string) error {
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer unix.Close(fd)
	v, err := unix.IoctlRetInt(fd, kvmGetAPIVersion)
	if err != nil {
		return fmt.Errorf("%s: KVM_GET_API_VERSION: %w", dev, err)
	}
	if v != kvmAPIVersion {
		return fmt.Errorf("%s: kvm api version %d, want %d", dev, v, kvmAPIVersion)
	}
	return nil
}

// checkKernel accepts only what Firecracker boots on x86: an uncompressed
// 64-bit x86-64 ELF vmlinux. A bzImage or anything else is api.ErrInvalid,
// naming the catalog kernel to use instead.
func checkKernel(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	defer f.Close()
	hint := "firecracker boots only an uncompressed x86-64 ELF vmlinux; use the " + CatalogKernel +
		" catalog kernel (banger kernel pull " + CatalogKernel + ")"
	ef, err := elf.NewFile(f)
	if err != nil {
		var magic [4]byte
		_, rerr := f.ReadAt(magic[:], bzImageMagicOffset)
		switch {
		case rerr == nil && string(magic[:]) == "HdrS":
			return api.Errorf(api.ErrInvalid, "kernel %s is a bzImage: %s", path, hint)
		case rerr != nil && !errors.Is(rerr, io.EOF):
			return fmt.Errorf("kernel: %w", rerr)
		}
		return api.Errorf(api.ErrInvalid, "kernel %s is not an ELF file: %s", path, hint)
	}
	defer ef.Close()
	if ef.Class != elf.ELFCLASS64 || ef.Machine != elf.EM_X86_64 {
		return api.Errorf(api.ErrInvalid, "kernel %s is a %s %s ELF file: %s", path, ef.Class, ef.Machine, hint)
	}
	if ef.Type != elf.ET_EXEC {
		return api.Errorf(api.ErrInvalid, "kernel %s is an ELF file of type %s, not a vmlinux: %s", path, ef.Type, hint)
	}
	return nil
}
