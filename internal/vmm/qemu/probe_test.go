package qemu

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"banger/internal/agent/initsys"
	"banger/internal/vmm/vmmtest"
)

func TestProbeConstantsMatchAgent(t *testing.T) {
	if probeEnv != initsys.ProbeEnv || probeMarker != initsys.ProbeMarker {
		t.Fatalf("probe constants differ from the agent's: %q %q vs %q %q", probeEnv, probeMarker, initsys.ProbeEnv, initsys.ProbeMarker)
	}
}

func TestWatchProbeConsole(t *testing.T) {
	for _, c := range []struct {
		in    string
		found bool
		last  string
	}{
		{"", false, ""},
		{"Linux version\nPCI: Fatal: No config space access function found\n", false, "PCI: Fatal: No config space access function found"},
		{"Linux\r\nbanger-accel-probe: booted\r\n", true, "banger-accel-probe: booted"},
		{"Linux\nbanger-accel-probe: booted", true, "banger-accel-probe: booted"},
	} {
		found, last := watchProbeConsole(strings.NewReader(c.in))
		if found != c.found || last != c.last {
			t.Errorf("%q: found %v last %q, want %v %q", c.in, found, last, c.found, c.last)
		}
	}
}

// probeInputs builds the agent and finds qemu and a kernel, or skips.
func probeInputs(t *testing.T) (bin, kernel, agent string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs qemu; skipped with -short")
	}
	bin, err := exec.LookPath(DefaultBinary)
	if err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	kernel = vmmtest.Kernel(t)
	agent = filepath.Join(t.TempDir(), "banger-agent")
	cmd := exec.Command("go", "build", "-o", agent, "banger/cmd/banger-agent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the agent: %v\n%s", err, out)
	}
	return bin, kernel, agent
}

// The probe sees a guest that boots: the same tiny guest under TCG prints
// the marker and the probe succeeds.
func TestQEMUProbeSeesBootingGuest(t *testing.T) {
	bin, kernel, agent := probeInputs(t)
	khz, err := hostTSCKHz(cpuinfoPath, baseFrequencyPath)
	if err != nil {
		t.Skipf("host tsc frequency unknown: %v", err)
	}
	s := ProbeSpec{Binary: bin, Kernel: kernel, Agent: agent, Timeout: 2 * time.Minute,
		tcgCmdline: "tsc_early_khz=" + strconv.Itoa(khz) + " tsc=reliable"}
	if err := ProbeKVM(context.Background(), s); err != nil {
		t.Fatalf("probe under tcg: %v", err)
	}
}

// On this workplace's paravirtual nested KVM (kvm_pvm) guests do not boot
// (QEMU aborts setting MSR 0x10a with -cpu host; stock kernels hang with
// other CPU models): the probe must fail by its deadline with a reason, and
// leave nothing behind.
func TestQEMUProbeTimesOutOnParavirtualKVM(t *testing.T) {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		t.Skip("no /dev/kvm")
	}
	if _, err := os.Stat("/sys/module/kvm_pvm"); err != nil {
		t.Skip("/dev/kvm is not the paravirtual kvm_pvm")
	}
	bin, kernel, agent := probeInputs(t)
	before, _ := filepath.Glob(filepath.Join(os.TempDir(), "banger-accel-probe-*"))
	start := time.Now()
	err := ProbeKVM(context.Background(), ProbeSpec{Binary: bin, Kernel: kernel, Agent: agent, Timeout: 5 * time.Second})
	took := time.Since(start)
	if err == nil || !(strings.Contains(err.Error(), "did not boot within 5s") || strings.Contains(err.Error(), "qemu with kvm failed")) {
		t.Fatalf("probe on kvm_pvm: %v", err)
	}
	t.Logf("probe: %v (took %s)", err, took.Round(time.Millisecond))
	if took > 5*time.Second+5*time.Second {
		t.Fatalf("probe took %s, deadline 5s", took)
	}
	after, _ := filepath.Glob(filepath.Join(os.TempDir(), "banger-accel-probe-*"))
	if len(after) > len(before) {
		t.Fatalf("probe left temp dirs: %v", after)
	}
}

// A VMM whose guest prints early kernel lines and then hangs is killed at
// the deadline; the reason names the last line.
func TestProbeTimesOutOnHungGuest(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "qemu")
	os.WriteFile(fake, []byte("#!/bin/sh\necho 'Linux version 6.1'\necho 'PCI: Fatal: No config space access function found'\nexec sleep 600\n"), 0o755)
	agent := filepath.Join(dir, "agent")
	os.WriteFile(agent, []byte("x"), 0o755)
	err := ProbeKVM(context.Background(), ProbeSpec{Binary: fake, Kernel: "k", Agent: agent, Timeout: 500 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "did not boot within 500ms") || !strings.Contains(err.Error(), "PCI: Fatal") {
		t.Fatalf("probe of a hung guest: %v", err)
	}
}

func TestProbeStderr(t *testing.T) {
	for in, want := range map[string]string{
		"qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\nqemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.\n": "error: failed to set MSR 0x10a to 0x69",
		"\n  Could not access KVM kernel module: Permission denied\n": "Could not access KVM kernel module: Permission denied",
		"":                       "",
		strings.Repeat("x", 300): strings.Repeat("x", 200) + "…",
	} {
		if got := probeStderr(in); got != want {
			t.Errorf("probeStderr(%q) = %q, want %q", in, got, want)
		}
	}
}
