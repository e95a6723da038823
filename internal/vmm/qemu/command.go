package qemu

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"banger/internal/vmm"
)

// Machine is the -M value: microvm, with ACPI (Debian's cloud kernel finds
// virtio-mmio devices only through ACPI), the PIT and an RTC.
const Machine = "microvm,acpi=on,pit=on,rtc=on"

// BalloonDevice is the virtio balloon with free page reporting every VM gets.
const BalloonDevice = "virtio-balloon-device,free-page-reporting=on"

// Command builds the argv of one QEMU run. Every With method returns a
// modified copy and leaves its receiver unchanged, so a partly configured
// Command can be shared. Start from NewCommand.
type Command struct {
	binary     string
	dataDir    string
	kvm        bool
	tscKHz     int
	kernelHZ   int
	vcpus      int
	memoryMiB  int
	kernel     string
	initrd     string
	cmdline    string
	diskCache  string
	disks      []vmm.Disk
	net        *vmm.Net
	serialLog  string
	serialSock string
	qmpSocket  string
	pidFile    string
	daemonize  bool
	paused     bool
	runAs      string
	chroot     string
	sandbox    bool
	tapFD      int
	balloon    bool
	mem        memFile
	ctlSock    string
	incoming   bool
}

// NewCommand starts a Command for the given QEMU binary (TCG, no devices).
func NewCommand(binary string) Command {
	return Command{binary: binary, diskCache: "writeback"}
}

// WithDataDir adds -L dir (QEMU's firmware directory); empty means none.
func (c Command) WithDataDir(dir string) Command { c.dataDir = dir; return c }

// WithKVM selects KVM (-accel kvm -cpu host) or TCG (-accel tcg,thread=multi -cpu max).
func (c Command) WithKVM(kvm bool) Command { c.kvm = kvm; return c }

// WithTSCKHz makes TCG runs append tsc_early_khz=khz to the kernel command
// line (unless it already sets it); 0, or KVM, adds nothing.
func (c Command) WithTSCKHz(khz int) Command { c.tscKHz = khz; return c }

// WithKernelHZ gives the kernel's CONFIG_HZ (0: unknown): TCG runs with a
// TSC frequency then preset the delay loop (lpj=).
func (c Command) WithKernelHZ(hz int) Command { c.kernelHZ = hz; return c }

// WithCPUs sets -smp; 0 leaves QEMU's default.
func (c Command) WithCPUs(n int) Command { c.vcpus = n; return c }

// WithMemoryMiB sets -m; 0 leaves QEMU's default.
func (c Command) WithMemoryMiB(mib int) Command { c.memoryMiB = mib; return c }

// WithKernel sets -kernel.
func (c Command) WithKernel(path string) Command { c.kernel = path; return c }

// WithInitrd sets -initrd; empty means none.
func (c Command) WithInitrd(path string) Command { c.initrd = path; return c }

// WithCmdline sets the kernel command line (-append).
func (c Command) WithCmdline(cmdline string) Command { c.cmdline = cmdline; return c }

// WithDiskCache sets the cache= mode of the disks.
func (c Command) WithDiskCache(mode string) Command { c.diskCache = mode; return c }

// WithDisk appends one raw virtio-blk disk; disks are numbered d0, d1, ... in order.
func (c Command) WithDisk(d vmm.Disk) Command {
	c.disks = append(slices.Clip(c.disks), d)
	return c
}

// WithNet attaches the guest's network interface: a tap device when n.Tap is
// set, user-mode networking otherwise.
func (c Command) WithNet(n vmm.Net) Command { c.net = &n; return c }

// WithSerialLog sends the guest's serial console to path; empty means no serial port.
func (c Command) WithSerialLog(path string) Command { c.serialLog = path; return c }

// WithTapFD makes the tap netdev use the already open descriptor fd
// (inherited by QEMU) instead of opening Net.Tap by name; 0 means by name.
func (c Command) WithTapFD(fd int) Command { c.tapFD = fd; return c }

// WithSerialSocket serves the guest's serial console on a unix socket at
// path (server, no wait): one reader at a time, and output is dropped while
// none is connected. It replaces WithSerialLog.
func (c Command) WithSerialSocket(path string) Command { c.serialSock = path; return c }

// WithQMPSocket serves QMP on a unix socket at path; empty means none.
func (c Command) WithQMPSocket(path string) Command { c.qmpSocket = path; return c }

// WithPIDFile makes QEMU write its pid to path; empty means none.
func (c Command) WithPIDFile(path string) Command { c.pidFile = path; return c }

// WithDaemonize adds -daemonize.
func (c Command) WithDaemonize(on bool) Command { c.daemonize = on; return c }

// WithPaused adds -S: the guest does not run until QMP cont.
func (c Command) WithPaused(on bool) Command { c.paused = on; return c }

// WithRunAs adds -runas uid:gid: QEMU drops to that user (and only that
// group) once it has opened its files, before the guest runs.
func (c Command) WithRunAs(uid, gid int) Command {
	c.runAs = strconv.Itoa(uid) + ":" + strconv.Itoa(gid)
	return c
}

// WithChroot adds -chroot dir: QEMU chroots there once set up, before it
// drops to the -runas user. Empty means none.
func (c Command) WithChroot(dir string) Command { c.chroot = dir; return c }

// SandboxArg is the -sandbox value: seccomp on, denying obsolete system
// calls, fork/exec and scheduler/affinity changes. QEMU 7.2 installs the
// filter before -runas drops privileges and before -daemonize forks, so
// elevateprivileges=deny (set*uid) would kill it at the drop: that one stays
// allowed, and banger does not use -daemonize (spawn=deny needs that).
const SandboxArg = "on,obsolete=deny,elevateprivileges=allow,spawn=deny,resourcecontrol=deny"

// WithBalloon adds BalloonDevice: the guest reports the pages it frees and
// QEMU drops them (free page reporting), so an idle guest holds host memory
// for what it uses, not for everything it touched while booting. The balloon
// is never inflated.
func (c Command) WithBalloon(on bool) Command { c.balloon = on; return c }

// WithSandbox adds -sandbox SandboxArg.
func (c Command) WithSandbox(on bool) Command { c.sandbox = on; return c }

// Cmdline is the kernel command line as passed to QEMU, including what TCG
// runs add: tsc_early_khz= and tsc=reliable, lpj= when the kernel's HZ is
// known, and maxcpus=1 for more than one vCPU.
func (c Command) Cmdline() string {
	if c.kvm {
		return c.cmdline
	}
	cl := c.cmdline
	if c.tscKHz > 0 && !hasKernelParam(cl, "tsc_early_khz") {
		// tsc=reliable keeps the guest on the TSC: under TCG the clocksource
		// watchdog otherwise often demotes it to jiffies, which lose time on a
		// busy host and break the health check's one-second clock bound.
		cl += " tsc_early_khz=" + strconv.Itoa(c.tscKHz) + " tsc=reliable"
	}
	if c.tscKHz > 0 && c.kernelHZ > 0 && !hasKernelParam(cl, "lpj") {
		// The value the boot vCPU computes from the TSC (tsc_khz*1000/HZ).
		// Preset, it also spares each vCPU banger's init starts the
		// kernel's delay-loop calibration: TCG's CPU has no constant-TSC
		// flag, so the kernel measures it again there, about 0.1 s of
		// emulated time during which CPU hotplug holds a lock the boot's
		// block device opens wait on.
		cl += " lpj=" + strconv.Itoa(c.tscKHz*1000/c.kernelHZ)
	}
	if c.vcpus > 1 && !hasKernelParam(cl, "maxcpus") {
		// The kernel boots on one vCPU and banger's init starts the others
		// (initsys.startOnliningCPUs): QEMU 7.2's multi-threaded TCG can
		// leave a vCPU running a stale translation of kernel code another
		// vCPU patched (a static key flipped late in boot), and the guest
		// then loops on an int3 forever. Booting on one also skips the
		// kernel's bring-up of the second (about 0.3 s under TCG).
		// no_ipi_broadcast=1: bringing the others up would otherwise flip
		// one more static key (IPI shorthands) with two vCPUs running.
		// noreplace-smp: the kernel keeps its SMP instructions while it
		// runs on one vCPU, instead of patching them out at boot and back
		// in (0.2-0.35 s under TCG) when the second one starts.
		cl += " maxcpus=1 no_ipi_broadcast=1 noreplace-smp"
	}
	return strings.TrimSpace(cl)
}

// Build returns the argv, binary first.
func (c Command) Build() []string {
	machine := Machine
	if c.mem.path != "" {
		machine += ",memory-backend=" + memID
	}
	a := []string{c.binary, "-M", machine,
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot"}
	if c.dataDir != "" {
		a = append(a, "-L", c.dataDir)
	}
	if c.kvm {
		a = append(a, "-accel", "kvm", "-cpu", "host")
	} else {
		a = append(a, "-accel", "tcg,thread=multi", "-cpu", "max")
	}
	if c.vcpus > 0 {
		a = append(a, "-smp", strconv.Itoa(c.vcpus))
	}
	if c.memoryMiB > 0 {
		a = append(a, "-m", strconv.Itoa(c.memoryMiB)+"M")
	}
	if c.mem.path != "" {
		a = append(a, "-object", c.mem.object(c.memoryMiB))
	}
	if c.kernel != "" {
		a = append(a, "-kernel", c.kernel)
	}
	if c.initrd != "" {
		a = append(a, "-initrd", c.initrd)
	}
	if cl := c.Cmdline(); cl != "" {
		a = append(a, "-append", cl)
	}
	for i, d := range c.disks {
		a = append(a, "-drive", fmt.Sprintf("if=none,id=d%d,file=%s,format=raw,readonly=%s,cache=%s,discard=unmap,auto-read-only=off",
			i, optValue(d.Path), onOff(d.ReadOnly), optValue(c.diskCache)))
		dev := fmt.Sprintf("virtio-blk-device,drive=d%d", i)
		if d.Serial != "" {
			dev += ",serial=" + optValue(d.Serial)
		}
		a = append(a, "-device", dev)
	}
	if c.net != nil {
		a = append(a, "-netdev", netdev(*c.net, c.tapFD))
		dev := "virtio-net-device,netdev=n0"
		if c.net.MAC != "" {
			dev += ",mac=" + c.net.MAC
		}
		a = append(a, "-device", dev)
	}
	if c.balloon {
		a = append(a, "-device", BalloonDevice)
	}
	switch {
	case c.serialSock != "":
		a = append(a, "-chardev", "socket,id=ser0,path="+optValue(c.serialSock)+",server=on,wait=off", "-serial", "chardev:ser0")
	case c.serialLog != "":
		a = append(a, "-chardev", "file,id=ser0,path="+optValue(c.serialLog), "-serial", "chardev:ser0")
	}
	if c.ctlSock != "" {
		a = append(a, controlArgs(c.ctlSock)...)
	}
	if c.incoming {
		a = append(a, "-incoming", "defer")
	}
	if c.qmpSocket != "" {
		a = append(a, "-qmp", "unix:"+optValue(c.qmpSocket)+",server=on,wait=off")
	}
	if c.pidFile != "" {
		a = append(a, "-pidfile", c.pidFile)
	}
	if c.daemonize {
		a = append(a, "-daemonize")
	}
	if c.paused {
		a = append(a, "-S")
	}
	if c.sandbox {
		a = append(a, "-sandbox", SandboxArg)
	}
	if c.chroot != "" {
		a = append(a, "-chroot", c.chroot)
	}
	if c.runAs != "" {
		a = append(a, "-runas", c.runAs)
	}
	return a
}

func netdev(n vmm.Net, tapFD int) string {
	if n.Tap != "" && tapFD > 0 {
		return "tap,id=n0,fd=" + strconv.Itoa(tapFD)
	}
	if n.Tap != "" {
		return "tap,id=n0,ifname=" + optValue(n.Tap) + ",script=no,downscript=no"
	}
	s := "user,id=n0"
	if n.Isolated {
		s += ",restrict=on"
	}
	if n.SSHHostPort > 0 {
		s += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:22", n.SSHHostPort)
	}
	return s
}

// optValue escapes a value inside a QEMU option list, where "," separates
// options and ",," stands for a literal comma.
func optValue(s string) string { return strings.ReplaceAll(s, ",", ",,") }

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// hasKernelParam reports whether cmdline sets name (as name or name=value).
func hasKernelParam(cmdline, name string) bool {
	for _, f := range strings.Fields(cmdline) {
		if f == name || strings.HasPrefix(f, name+"=") {
			return true
		}
	}
	return false
}
