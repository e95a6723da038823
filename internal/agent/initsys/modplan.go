package initsys

import (
	"bytes"
	"debug/elf"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// modJob is one module to load: its path and the jobs it waits for.
type modJob struct {
	path string
	deps []int
}

// virtioTransports are the modules that find virtio devices. A virtio
// driver loaded after its transport probes its devices in its own load,
// in parallel with the other drivers; loaded before, its devices would be
// probed one after the other in the transport's load.
var virtioTransports = []string{"virtio_mmio", "virtio_pci"}

// planModules gives each module of mods (paths relative to root, in
// dependency order) the earlier modules it depends on, by name, as
// depsOf reads them from the module file, and makes virtio drivers wait
// for the virtio transports listed before them. Dependencies that are not
// listed (built into the kernel) are ignored; a module whose
// dependencies cannot be read depends on every module before it.
func planModules(root string, mods []string, depsOf func(path string) ([]string, error)) []modJob {
	index := map[string]int{}
	jobs := make([]modJob, len(mods))
	for i, m := range mods {
		jobs[i].path = filepath.Join(root, m)
		deps, err := depsOf(jobs[i].path)
		if err != nil {
			for j := 0; j < i; j++ {
				jobs[i].deps = append(jobs[i].deps, j)
			}
		}
		name := moduleName(m)
		for _, d := range deps {
			d = normModName(d)
			if j, ok := index[d]; ok {
				jobs[i].deps = append(jobs[i].deps, j)
			}
			if d == "virtio" && !slices.Contains(virtioTransports, name) {
				for _, t := range virtioTransports {
					if j, ok := index[t]; ok {
						jobs[i].deps = append(jobs[i].deps, j)
					}
				}
			}
		}
		index[name] = i
	}
	return jobs
}

// runModules runs load for every job once the jobs it depends on have
// finished (whatever their result), independent jobs at the same time,
// and returns each job's error and how long its load took.
func runModules(jobs []modJob, load func(path string) error) ([]error, []time.Duration) {
	errs := make([]error, len(jobs))
	took := make([]time.Duration, len(jobs))
	done := make([]chan struct{}, len(jobs))
	for i := range done {
		done[i] = make(chan struct{})
	}
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[i])
			for _, d := range j.deps {
				if d >= 0 && d < i { // only earlier jobs: no cycle can block
					<-done[d]
				}
			}
			t0 := time.Now()
			errs[i] = load(j.path)
			took[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	return errs, took
}

// modinfoDepends reads the "depends=" entry of a module's .modinfo
// section. Compressed modules are not read (an error: the caller then
// keeps the listed order).
func modinfoDepends(path string) ([]string, error) {
	if !strings.HasSuffix(path, ".ko") {
		return nil, fmt.Errorf("%s: not an uncompressed module", path)
	}
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("%s: no .modinfo section", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("%s: read .modinfo: %w", path, err)
	}
	return parseModinfoDepends(data)
}

// parseModinfoDepends finds "depends=a,b" in a .modinfo section (NUL
// separated key=value strings). A section without it is an error.
func parseModinfoDepends(data []byte) ([]string, error) {
	for _, kv := range bytes.Split(data, []byte{0}) {
		v, ok := bytes.CutPrefix(kv, []byte("depends="))
		if !ok {
			continue
		}
		var deps []string
		for _, d := range strings.Split(string(v), ",") {
			if d = strings.TrimSpace(d); d != "" {
				deps = append(deps, d)
			}
		}
		return deps, nil
	}
	return nil, fmt.Errorf("no depends= in .modinfo")
}

// moduleName is a module path's name: base without .ko[.xz|.zst|.gz],
// "-" as "_".
func moduleName(path string) string {
	base := filepath.Base(path)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		base = strings.TrimSuffix(base, ext)
	}
	return normModName(strings.TrimSuffix(base, ".ko"))
}

func normModName(n string) string { return strings.ReplaceAll(n, "-", "_") }
