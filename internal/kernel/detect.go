package kernel

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// imageInfo describes a kernel image file.
type imageInfo struct {
	format  string // "bzImage" or "elf"
	version string // uname -r; "" when the image does not say
	arch    string // x86_64, aarch64, ...
}

var releaseRE = regexp.MustCompile(`^[0-9]+\.[0-9]+[0-9A-Za-z._+~-]*$`)

// errNotKernel marks a file that is not a Linux kernel image.
var errNotKernel = errors.New("not a Linux kernel image (neither a bzImage nor an ELF vmlinux)")

// inspect reads the format, version and architecture of a kernel image.
// bzImage: the kernel_version string pointed to by the 16-bit field at
// 0x20E (+0x200). ELF vmlinux: the "Linux version " banner.
func inspect(file string) (imageInfo, error) {
	f, err := os.Open(file)
	if err != nil {
		return imageInfo{}, err
	}
	defer f.Close()
	head := make([]byte, 0x300)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return imageInfo{}, fmt.Errorf("%s: %w", file, errNotKernel)
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte(elf.ELFMAG)):
		return inspectELF(f, file)
	case len(head) >= 0x210 && string(head[0x202:0x206]) == "HdrS":
		return inspectBzImage(f, file, head)
	}
	return imageInfo{}, fmt.Errorf("%s: %w", file, errNotKernel)
}

func inspectBzImage(f *os.File, file string, head []byte) (imageInfo, error) {
	img := imageInfo{format: "bzImage", arch: "x86_64"}
	if binary.LittleEndian.Uint16(head[0x206:]) < 0x200 {
		return img, nil // boot protocol older than 2.00: no version pointer
	}
	off := int64(binary.LittleEndian.Uint16(head[0x20E:]))
	if off == 0 {
		return img, nil
	}
	buf := make([]byte, 256)
	n, err := f.ReadAt(buf, off+0x200)
	if n == 0 {
		return imageInfo{}, fmt.Errorf("%s: read kernel_version: %w", file, err)
	}
	s, _, _ := bytes.Cut(buf[:n], []byte{0})
	if f := strings.Fields(string(s)); len(f) > 0 && releaseRE.MatchString(f[0]) {
		img.version = f[0]
	}
	return img, nil
}

func inspectELF(f *os.File, file string) (imageInfo, error) {
	ef, err := elf.NewFile(f)
	if err != nil {
		return imageInfo{}, fmt.Errorf("%s: %w: %w", file, errNotKernel, err)
	}
	img := imageInfo{format: "elf", arch: elfArch(ef.Machine)}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return imageInfo{}, err
	}
	v, err := findBanner(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return imageInfo{}, fmt.Errorf("%s: %w", file, err)
	}
	if v == "" {
		return imageInfo{}, fmt.Errorf("%s: ELF file without a \"Linux version\" banner: %w", file, errNotKernel)
	}
	img.version = v
	return img, nil
}

// findBanner scans r for "Linux version X" with X a release string.
func findBanner(r io.Reader) (string, error) {
	const banner = "Linux version "
	buf := make([]byte, 0, 1<<20+256)
	chunk := make([]byte, 1<<20)
	for {
		n, err := r.Read(chunk)
		buf = append(buf, chunk[:n]...)
		for rest := buf; ; {
			i := bytes.Index(rest, []byte(banner))
			if i < 0 {
				break
			}
			rest = rest[i+len(banner):]
			word, _, _ := bytes.Cut(rest, []byte(" "))
			if len(word) < len(rest) && releaseRE.Match(word) {
				return string(word), nil
			}
		}
		if errors.Is(err, io.EOF) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		// Keep a tail in case the banner straddles two chunks.
		if len(buf) > 256 {
			buf = append(buf[:0], buf[len(buf)-256:]...)
		}
	}
}

func elfArch(m elf.Machine) string {
	switch m {
	case elf.EM_X86_64:
		return "x86_64"
	case elf.EM_AARCH64:
		return "aarch64"
	case elf.EM_RISCV:
		return "riscv64"
	}
	return strings.ToLower(strings.TrimPrefix(m.String(), "EM_"))
}

// tree is what a source folder holds, as paths inside it.
type tree struct {
	kernel    string
	initrd    string // "" if none
	modules   string // lib/modules/VERSION folder, "" if none
	img       imageInfo
	version   string
	systemMap string
	kconfig   string
}

// scan finds the kernel image, initrd and modules in dir and reads the
// kernel version.
func scan(dir string) (tree, error) {
	var t tree
	kernels, err := globAll(dir, "vmlinux", "vmlinuz", "bzImage", "boot/vmlinux", "boot/vmlinuz", "boot/bzImage")
	if err != nil {
		return t, err
	}
	kernels = filesOnly(kernels)
	if len(kernels) == 0 {
		if kernels, err = globAll(dir, "boot/vmlinuz-*", "boot/vmlinux-*"); err != nil {
			return t, err
		}
		kernels = filesOnly(kernels)
		if len(kernels) > 1 {
			return t, fmt.Errorf("%s: several kernels (%s): keep one", dir, strings.Join(rel(dir, kernels), ", "))
		}
	}
	if len(kernels) == 0 {
		return t, fmt.Errorf("%s: no kernel image (want vmlinux, vmlinuz, bzImage or boot/vmlinuz-VERSION)", dir)
	}
	t.kernel = kernels[0]
	if t.img, err = inspect(t.kernel); err != nil {
		return t, err
	}
	mods, err := globAll(dir, "lib/modules/*", "usr/lib/modules/*")
	if err != nil {
		return t, err
	}
	mods = dirsOnly(mods)
	t.version = t.img.version
	switch {
	case len(mods) == 0:
	case t.version != "":
		for _, m := range mods {
			if filepath.Base(m) == t.version {
				t.modules = m
			}
		}
		if t.modules == "" {
			return t, fmt.Errorf("%s: kernel is %s but modules are for %s", dir, t.version, strings.Join(baseNames(mods), ", "))
		}
	case len(mods) == 1:
		t.modules, t.version = mods[0], filepath.Base(mods[0])
	default:
		return t, fmt.Errorf("%s: kernel version unknown and several module folders (%s)", dir, strings.Join(baseNames(mods), ", "))
	}
	if t.version == "" {
		return t, fmt.Errorf("%s: cannot tell the kernel version (no version in the image, no lib/modules/VERSION)", t.kernel)
	}
	initrds, err := globAll(dir, "initrd.img", "initrd", "initramfs.img", "boot/initrd.img", "boot/initrd.img-"+t.version)
	if err != nil {
		return t, err
	}
	if initrds = filesOnly(initrds); len(initrds) > 0 {
		t.initrd = initrds[0]
	}
	t.systemMap = firstExisting(filepath.Join(dir, "boot/System.map-"+t.version), filepath.Join(dir, "System.map"))
	t.kconfig = firstExisting(filepath.Join(dir, "boot/config-"+t.version), filepath.Join(dir, "config"))
	return t, nil
}

// globAll returns the paths matching the patterns under dir, in pattern
// order.
func globAll(dir string, patterns ...string) ([]string, error) {
	var out []string
	for _, p := range patterns {
		ms, err := filepath.Glob(filepath.Join(dir, p))
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	return out, nil
}

func dirsOnly(paths []string) []string {
	var out []string
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			out = append(out, p)
		}
	}
	return out
}

func filesOnly(paths []string) []string {
	var out []string
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			out = append(out, p)
		}
	}
	return out
}

func firstExisting(paths ...string) string {
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}

func rel(dir string, paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i], _ = filepath.Rel(dir, p)
	}
	return out
}
