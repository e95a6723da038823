package daemon

import (
	"fmt"
	"os"
	"strings"
)

// Accelerator choices for --accel.
const (
	AccelAuto = "auto"
	AccelKVM  = "kvm"
	AccelTCG  = "tcg"
)

// forceTCG decides whether VMs run under TCG. "auto" uses KVM only on a host
// that is not itself a virtual machine: nested KVM (a /dev/kvm inside a
// guest) is often paravirtual and stock kernels hang early under it, so it is
// used only when asked for with --accel kvm.
func forceTCG(accel string) (bool, string, error) {
	switch accel {
	case AccelTCG:
		return true, "--accel tcg", nil
	case AccelKVM:
		return false, "--accel kvm", nil
	case AccelAuto, "":
		if nestedHost("/proc/cpuinfo") {
			return true, "this host is a virtual machine (cpuinfo flag 'hypervisor'): nested KVM is not trusted; pass --accel kvm to use it", nil
		}
		return false, "auto", nil
	}
	return false, "", fmt.Errorf("--accel %q: use auto, kvm or tcg", accel)
}

func nestedHost(cpuinfo string) bool {
	data, err := os.ReadFile(cpuinfo)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "flags") {
			for _, f := range strings.Fields(line) {
				if f == "hypervisor" {
					return true
				}
			}
			return false
		}
	}
	return false
}
