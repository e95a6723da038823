package firecracker

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"

	"banger/internal/api"
)

// bzImageMagicOffset is where an x86 boot protocol header keeps "HdrS".
const bzImageMagicOffset = 0x202

// CatalogKernel is the kernel catalog entry built for Firecracker.
const CatalogKernel = "microvm-6.1"

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
