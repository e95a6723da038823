package initramfs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// OrderFile is the archive path of the list of modules the guest init loads,
// one archive-relative path per line, dependencies first.
const OrderFile = "banger/modules.order"

// Root is a module a guest needs, by name (as in modules.dep, "-" and "_"
// equivalent).
type Root struct {
	Name     string
	Required bool
}

// Roots returns the modules a banger guest needs to reach its disks and
// network, plus the balloon driver that hands the memory the guest frees back
// to the host (free page reporting). Required ones must be present (as a
// module or built in). Nothing in banger uses vsock, so its three modules are
// not loaded.
func Roots() []Root {
	return []Root{
		{Name: "virtio_mmio", Required: true},
		{Name: "virtio_blk", Required: true},
		{Name: "virtio_net"},
		{Name: "ext4", Required: true},
		{Name: "overlay", Required: true},
		{Name: "virtio_balloon"},
		{Name: "virtio_console"}, // the control port (vm fork, resume)
	}
}

// ErrNoModulesDep means the modules tree has no modules.dep (run depmod).
var ErrNoModulesDep = errors.New("no modules.dep (run depmod -b ROOT VERSION)")

// Closure resolves roots through modDir/modules.dep (depmod output) and
// returns the module files to load, as paths relative to modDir,
// dependencies first. Roots built into the kernel (modules.builtin) are
// skipped, as are missing optional roots; a missing required root is an
// error. An empty result means the kernel needs no modules.
func Closure(modDir string, roots []Root) ([]string, error) {
	deps, err := readDeps(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	builtin, err := readBuiltin(filepath.Join(modDir, "modules.builtin"))
	if err != nil {
		return nil, err
	}
	byName := map[string]string{}
	for p := range deps {
		byName[moduleName(p)] = p
	}
	var order []string
	seen := map[string]bool{}
	var visit func(p string, stack []string) error
	visit = func(p string, stack []string) error {
		if seen[p] {
			return nil
		}
		for _, s := range stack {
			if s == p {
				return fmt.Errorf("dependency cycle through %s", p)
			}
		}
		for _, d := range deps[p] {
			if _, ok := deps[d]; !ok {
				return fmt.Errorf("%s depends on %s, which modules.dep does not list", p, d)
			}
			if err := visit(d, append(stack, p)); err != nil {
				return err
			}
		}
		seen[p] = true
		order = append(order, p)
		return nil
	}
	for _, r := range roots {
		name := normName(r.Name)
		if builtin[name] {
			continue
		}
		p, ok := byName[name]
		if !ok {
			if r.Required {
				return nil, fmt.Errorf("module %s is neither built in nor in modules.dep", r.Name)
			}
			continue
		}
		if err := visit(p, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// ModulesArchive writes a newc cpio holding the closure of Roots() from modDir
// (a lib/modules/VERSION folder) as lib/modules/VERSION/<path>, plus
// OrderFile. Compressed modules (.ko.xz, .ko.zst) are kept as they are: the
// guest loads them with MODULE_INIT_COMPRESSED_FILE. It returns the archive
// paths in load order; when that is empty (everything built in) nothing is
// written and the caller needs no archive.
func ModulesArchive(w io.Writer, modDir, version string) ([]string, error) {
	mods, err := Closure(modDir, Roots())
	if err != nil {
		return nil, fmt.Errorf("resolve modules in %s: %w", modDir, err)
	}
	if len(mods) == 0 {
		return nil, nil
	}
	a := newArchive(w)
	var paths []string
	for _, m := range mods {
		name := path.Join("lib/modules", version, m)
		if err := a.hostFile(name, filepath.Join(modDir, filepath.FromSlash(m))); err != nil {
			return nil, fmt.Errorf("add module %s: %w", m, err)
		}
		paths = append(paths, name)
	}
	if err := a.file(OrderFile, 0o644, []byte(strings.Join(paths, "\n")+"\n")); err != nil {
		return nil, err
	}
	if err := a.close(); err != nil {
		return nil, fmt.Errorf("close modules archive: %w", err)
	}
	return paths, nil
}

// readDeps parses modules.dep: "path: dep dep ...", one module a line.
func readDeps(file string) (map[string][]string, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoModulesDep
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	deps := map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%s: bad line %q", file, line)
		}
		deps[strings.TrimSpace(mod)] = strings.Fields(rest)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return deps, nil
}

// readBuiltin returns the names of the modules built into the kernel. A
// missing modules.builtin means none.
func readBuiltin(file string) (map[string]bool, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, line := range strings.Fields(string(data)) {
		out[moduleName(line)] = true
	}
	return out, nil
}

// moduleName turns "kernel/fs/ext4/ext4.ko.xz" into "ext4".
func moduleName(p string) string {
	base := path.Base(p)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		base = strings.TrimSuffix(base, ext)
	}
	return normName(strings.TrimSuffix(base, ".ko"))
}

func normName(s string) string { return strings.ReplaceAll(s, "-", "_") }
