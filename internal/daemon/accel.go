package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Accelerator choices for --accel.
const (
	AccelAuto = "auto"
	AccelKVM  = "kvm"
	AccelTCG  = "tcg"
)

// accelCacheFile, in the state dir, holds the last probe's result.
const accelCacheFile = "accel-probe.json"

// accelProber is what deciding --accel auto needs from the host (tests fake it).
type accelProber struct {
	// checkKVM says whether /dev/kvm is usable (vmmproc.CheckKVM).
	checkKVM func() error
	// kernel is the path of the kernel to probe with, "" when none is stored.
	kernel func(ctx context.Context) (string, error)
	// nested reports whether this host is itself a virtual machine (cpuinfo
	// flag "hypervisor"): what auto goes by until a probe can run.
	nested func() bool
	// probe boots a tiny guest under KVM: nil when it booted.
	probe func(ctx context.Context, kernel string) error
	// key names what the probe's answer depends on (host boot, QEMU binary,
	// kernel, agent); "" when it cannot be known (no caching then).
	key func(kernel string) string
	// cache is the cache file's path.
	cache string
}

// accelChoice is the accelerator VMs run under and why.
type accelChoice struct {
	KVM    bool   `json:"kvm"`
	Reason string `json:"reason"`
	// Provisional: made without a probe, for want of a stored kernel; it
	// is decided again once one is stored (accelState.kernelStored).
	Provisional bool `json:"-"`
}

// Name is "kvm" or "tcg".
func (c accelChoice) Name() string {
	if c.KVM {
		return AccelKVM
	}
	return AccelTCG
}

// decideAccel picks the accelerator. Explicit kvm or tcg are taken as
// given. auto uses KVM only when /dev/kvm works and a tiny guest booted
// under it (nested KVM is often paravirtual and stock kernels do not boot
// under it). The probe's answer is cached under a key of the host's boot and
// the binaries involved, so it runs once per host boot; without a stored
// kernel nothing can be probed yet: the choice is provisional, decided
// again when a kernel is stored.
func decideAccel(ctx context.Context, accel string, p accelProber) (accelChoice, error) {
	switch accel {
	case AccelTCG:
		return accelChoice{KVM: false, Reason: "--accel tcg"}, nil
	case AccelKVM:
		return accelChoice{KVM: true, Reason: "--accel kvm"}, nil
	case AccelAuto, "":
	default:
		return accelChoice{}, fmt.Errorf("--accel %q: use auto, kvm or tcg", accel)
	}
	if err := p.checkKVM(); err != nil {
		return accelChoice{Reason: fmt.Sprintf("kvm not usable: %v", err)}, nil
	}
	kernel, err := p.kernel(ctx)
	if err != nil {
		return accelChoice{Reason: fmt.Sprintf("no kernel to probe kvm with: %v", err)}, nil
	}
	if kernel == "" {
		// Nothing to probe with yet: trust KVM on a host that is not itself
		// a VM (the common bare-metal case), not on a nested one.
		if p.nested == nil || p.nested() {
			return accelChoice{Provisional: true, Reason: "no kernel to probe kvm with yet and this host is a virtual machine, where nested kvm often fails (probed when a kernel is stored)"}, nil
		}
		return accelChoice{KVM: true, Provisional: true, Reason: "no kernel to probe kvm with yet; this host is not a virtual machine, so kvm is used (probed when a kernel is stored)"}, nil
	}
	key := p.key(kernel)
	if c, ok := readAccelCache(p.cache, key); ok {
		return c, nil
	}
	var c accelChoice
	if err := p.probe(ctx, kernel); err != nil {
		c = accelChoice{Reason: fmt.Sprintf("kvm probe failed: %v", err)}
	} else {
		c = accelChoice{KVM: true, Reason: "kvm probe: a test guest booted under kvm"}
	}
	if ctx.Err() == nil && key != "" {
		writeAccelCache(p.cache, key, c)
	}
	return c, nil
}

type accelCache struct {
	Key string `json:"key"`
	accelChoice
}

func readAccelCache(path, key string) (accelChoice, bool) {
	if key == "" {
		return accelChoice{}, false
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return accelChoice{}, false
	}
	var c accelCache
	if json.Unmarshal(data, &c) != nil || c.Key != key || c.Reason == "" {
		return accelChoice{}, false
	}
	c.Reason += " (cached for this host boot)"
	return c.accelChoice, true
}

// writeAccelCache records a probe's result; a failure only costs a probe at
// the next start.
func writeAccelCache(path, key string, c accelChoice) {
	data, _ := json.Marshal(accelCache{Key: key, accelChoice: c})
	tmp := path + ".tmp"
	if os.WriteFile(tmp, data, 0o600) == nil {
		os.Rename(tmp, path)
	}
}

// probeKey is what a probe's answer depends on: the host's boot id, and the
// path, size and modification time of the QEMU binary, the kernel and the
// agent (the probe's /init). "" when any is unreadable.
func probeKey(bootIDPath string, files ...string) string {
	id, err := os.ReadFile(bootIDPath)
	if err != nil {
		return ""
	}
	h := sha256.New()
	fmt.Fprintf(h, "boot %s\n", strings.TrimSpace(string(id)))
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return ""
		}
		abs, _ := filepath.Abs(f)
		fmt.Fprintf(h, "%s %d %d\n", abs, fi.Size(), fi.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil))
}

// nestedHost reports whether the cpuinfo file shows the "hypervisor" flag:
// this host is itself a virtual machine.
func nestedHost(cpuinfo string) bool {
	data, err := os.ReadFile(cpuinfo)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "flags") {
			return slices.Contains(strings.Fields(line), "hypervisor")
		}
	}
	return false
}
