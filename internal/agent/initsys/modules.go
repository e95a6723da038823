package initsys

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ModulesOrder is the list of kernel modules in the initramfs, one path per
// line relative to the archive root, dependencies first.
const ModulesOrder = "/banger/modules.order"

// ParseModulesOrder reads a modules.order list; blank lines and # comments are
// skipped. Paths must stay inside the archive.
func ParseModulesOrder(r io.Reader) ([]string, error) {
	var mods []string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		rel := strings.TrimPrefix(filepath.Clean(line), "/")
		if !filepath.IsLocal(rel) {
			return nil, fmt.Errorf("modules.order line %d: path %q leaves the archive", n, line)
		}
		mods = append(mods, rel)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read modules.order: %w", err)
	}
	return mods, nil
}

// LoadModules loads the modules listed in root+ModulesOrder. Each module
// loads as soon as the listed modules it depends on are in (its .modinfo
// "depends="), so independent drivers load, and probe their devices, in
// parallel; a module whose dependencies cannot be read waits for every
// module listed before it. A missing list means the kernel has its drivers
// built in. Failures of single modules are logged and returned joined;
// loading goes on with the rest.
func LoadModules(root string, log *slog.Logger) error {
	f, err := os.Open(filepath.Join(root, ModulesOrder))
	if errors.Is(err, os.ErrNotExist) {
		log.Info("no modules.order: using built-in drivers")
		return nil
	}
	if err != nil {
		return fmt.Errorf("load modules: %w", err)
	}
	mods, err := ParseModulesOrder(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("load modules: %w", err)
	}
	jobs := planModules(root, mods, modinfoDepends)
	results, took := runModules(jobs, loadModule)
	var errs []error
	loaded, slowest := 0, 0
	for i, err := range results {
		if took[i] > took[slowest] {
			slowest = i
		}
		switch {
		case err == nil:
			loaded++
		case errors.Is(err, unix.EEXIST):
		default:
			log.Warn("module not loaded", "module", mods[i], "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", filepath.Base(mods[i]), err))
		}
	}
	if len(mods) == 0 {
		log.Info("modules loaded", "count", 0, "listed", 0)
		return nil
	}
	log.Info("modules loaded", "count", loaded, "listed", len(mods),
		"slowest", moduleName(mods[slowest]), "slowest_took", took[slowest].Round(time.Millisecond))
	return errors.Join(errs...)
}

// asyncProbe are the modules loaded with the kernel's async_probe
// parameter: their devices (the four disks) are probed at the same time, in
// the background; FindDisks waits for them.
var asyncProbe = []string{"virtio_blk"}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if strings.HasSuffix(path, ".xz") || strings.HasSuffix(path, ".zst") || strings.HasSuffix(path, ".gz") {
		flags |= unix.MODULE_INIT_COMPRESSED_FILE
	}
	params := ""
	if slices.Contains(asyncProbe, moduleName(path)) {
		params = "async_probe"
	}
	if err := unix.FinitModule(int(f.Fd()), params, flags); err != nil {
		return fmt.Errorf("finit_module: %w", err)
	}
	return nil
}
