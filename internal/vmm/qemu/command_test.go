package qemu

import (
	"slices"
	"strings"
	"testing"

	"banger/internal/vmm"
	"banger/internal/vmm/vmmproc"
)

var head = []string{"/usr/bin/qemu-system-x86_64", "-M", "microvm,acpi=on,pit=on,rtc=on",
	"-nodefaults", "-no-user-config", "-nographic", "-no-reboot"}

func argv(parts ...string) []string { return append(slices.Clone(head), parts...) }

func TestCommandBuild(t *testing.T) {
	base := NewCommand("/usr/bin/qemu-system-x86_64")
	tcg := []string{"-accel", "tcg,thread=multi", "-cpu", "max"}
	tests := []struct {
		name string
		cmd  Command
		want []string
	}{
		{"bare tcg", base, argv(tcg...)},
		{"kvm", base.WithKVM(true),
			argv("-accel", "kvm", "-cpu", "host")},
		{"data dir", base.WithDataDir("/opt/qemu/share"),
			argv(append([]string{"-L", "/opt/qemu/share"}, tcg...)...)},
		{"cpus memory kernel initrd cmdline", base.WithCPUs(2).WithMemoryMiB(512).
			WithKernel("/k/vmlinuz").WithInitrd("/k/initrd").WithCmdline("console=ttyS0 quiet"),
			argv(append(slices.Clone(tcg), "-smp", "2", "-m", "512M", "-kernel", "/k/vmlinuz",
				"-initrd", "/k/initrd", "-append", "console=ttyS0 quiet maxcpus=1 no_ipi_broadcast=1 noreplace-smp")...)},
		{"tcg boots on one of several vCPUs", base.WithCPUs(4).WithCmdline("console=ttyS0"),
			argv(append(slices.Clone(tcg), "-smp", "4", "-append", "console=ttyS0 maxcpus=1 no_ipi_broadcast=1 noreplace-smp")...)},
		{"tcg presets lpj from the tsc and the kernel's HZ", base.WithTSCKHz(2000000).WithKernelHZ(250).WithCmdline("console=ttyS0"),
			argv(append(slices.Clone(tcg), "-append", "console=ttyS0 tsc_early_khz=2000000 tsc=reliable lpj=8000000")...)},
		{"no lpj without the kernel's HZ", base.WithTSCKHz(2000000).WithCmdline("console=ttyS0"),
			argv(append(slices.Clone(tcg), "-append", "console=ttyS0 tsc_early_khz=2000000 tsc=reliable")...)},
		{"cmdline lpj wins", base.WithTSCKHz(2000000).WithKernelHZ(1000).WithCmdline("lpj=5"),
			argv(append(slices.Clone(tcg), "-append", "lpj=5 tsc_early_khz=2000000 tsc=reliable")...)},
		{"kvm: no lpj", base.WithKVM(true).WithTSCKHz(2000000).WithKernelHZ(250).WithCmdline("console=ttyS0"),
			argv("-accel", "kvm", "-cpu", "host", "-append", "console=ttyS0")},
		{"one vCPU: no maxcpus", base.WithCPUs(1).WithCmdline("console=ttyS0"),
			argv(append(slices.Clone(tcg), "-smp", "1", "-append", "console=ttyS0")...)},
		{"cmdline maxcpus wins", base.WithCPUs(2).WithCmdline("maxcpus=2"),
			argv(append(slices.Clone(tcg), "-smp", "2", "-append", "maxcpus=2")...)},
		{"kvm boots on every vCPU", base.WithKVM(true).WithCPUs(2).WithCmdline("console=ttyS0"),
			argv("-accel", "kvm", "-cpu", "host", "-smp", "2", "-append", "console=ttyS0")},
		{"tcg appends tsc_early_khz", base.WithTSCKHz(2300000).WithCmdline("console=ttyS0"),
			argv(append(slices.Clone(tcg), "-append", "console=ttyS0 tsc_early_khz=2300000 tsc=reliable")...)},
		{"tsc_early_khz alone", base.WithTSCKHz(2300000),
			argv(append(slices.Clone(tcg), "-append", "tsc_early_khz=2300000 tsc=reliable")...)},
		{"cmdline tsc_early_khz wins", base.WithTSCKHz(2300000).WithCmdline("tsc_early_khz=1000"),
			argv(append(slices.Clone(tcg), "-append", "tsc_early_khz=1000")...)},
		{"kvm ignores tsc", base.WithKVM(true).WithTSCKHz(2300000).WithCmdline("console=ttyS0"),
			argv("-accel", "kvm", "-cpu", "host", "-append", "console=ttyS0")},
		{"disks", base.WithDisk(vmm.Disk{Path: "/r/root.ext4", Serial: "banger-rootfs", ReadOnly: true}).
			WithDisk(vmm.Disk{Path: "/r/work,1.ext4", Serial: "banger-work"}).
			WithDisk(vmm.Disk{Path: "/r/x"}).WithDiskCache("none"),
			argv(append(slices.Clone(tcg),
				"-drive", "if=none,id=d0,file=/r/root.ext4,format=raw,readonly=on,cache=none,discard=unmap,auto-read-only=off",
				"-device", "virtio-blk-device,drive=d0,serial=banger-rootfs",
				"-drive", "if=none,id=d1,file=/r/work,,1.ext4,format=raw,readonly=off,cache=none,discard=unmap,auto-read-only=off",
				"-device", "virtio-blk-device,drive=d1,serial=banger-work",
				"-drive", "if=none,id=d2,file=/r/x,format=raw,readonly=off,cache=none,discard=unmap,auto-read-only=off",
				"-device", "virtio-blk-device,drive=d2")...)},
		{"tap", base.WithNet(vmm.Net{Tap: "bgtap0", MAC: "02:00:0a:00:00:02"}),
			argv(append(slices.Clone(tcg),
				"-netdev", "tap,id=n0,ifname=bgtap0,script=no,downscript=no",
				"-device", "virtio-net-device,netdev=n0,mac=02:00:0a:00:00:02")...)},
		{"user net with ssh forward", base.WithNet(vmm.Net{MAC: "02:00:0a:00:00:03", SSHHostPort: 2222}),
			argv(append(slices.Clone(tcg),
				"-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22",
				"-device", "virtio-net-device,netdev=n0,mac=02:00:0a:00:00:03")...)},
		{"user net isolated (no NAT)", base.WithNet(vmm.Net{SSHHostPort: 2222, Isolated: true}),
			argv(append(slices.Clone(tcg),
				"-netdev", "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22",
				"-device", "virtio-net-device,netdev=n0")...)},
		{"user net bare", base.WithNet(vmm.Net{}),
			argv(append(slices.Clone(tcg), "-netdev", "user,id=n0", "-device", "virtio-net-device,netdev=n0")...)},
		{"serial qmp pidfile daemonize", base.WithSerialLog("/run/vm,a/serial.log").
			WithQMPSocket("/run/vm,a/qmp.sock").WithPIDFile("/run/vm,a/vmm.pid").WithDaemonize(true),
			argv(append(slices.Clone(tcg),
				"-chardev", "file,id=ser0,path=/run/vm,,a/serial.log", "-serial", "chardev:ser0",
				"-qmp", "unix:/run/vm,,a/qmp.sock,server=on,wait=off",
				"-pidfile", "/run/vm,a/vmm.pid", "-daemonize")...)},
		{"daemonize off again", base.WithDaemonize(true).WithDaemonize(false), argv(tcg...)},
		{"serial socket paused confined", base.WithSerialSocket("/v/r,1/serial.sock").WithPaused(true).
			WithSandbox(true).WithChroot("/v/r,1").WithRunAs(999, 995),
			argv(append(slices.Clone(tcg),
				"-chardev", "socket,id=ser0,path=/v/r,,1/serial.sock,server=on,wait=off", "-serial", "chardev:ser0",
				"-S", "-sandbox", "on,obsolete=deny,elevateprivileges=allow,spawn=deny,resourcecontrol=deny",
				"-chroot", "/v/r,1", "-runas", "999:995")...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cmd.Build(); !slices.Equal(got, tt.want) {
				t.Errorf("argv:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestCommandImmutable(t *testing.T) {
	base := NewCommand("qemu").
		WithDisk(vmm.Disk{Path: "/a"}).WithDisk(vmm.Disk{Path: "/b"}).WithDisk(vmm.Disk{Path: "/c"}).
		WithNet(vmm.Net{Tap: "tap0"}).WithCmdline("quiet")
	before := base.Build()

	x := base.WithDisk(vmm.Disk{Path: "/x"}).WithNet(vmm.Net{Tap: "tapx"}).WithCmdline("x").WithKVM(true)
	y := base.WithDisk(vmm.Disk{Path: "/y"})

	if got := base.Build(); !slices.Equal(got, before) {
		t.Errorf("base changed by derived commands:\n got %q\nwant %q", got, before)
	}
	xs, ys := strings.Join(x.Build(), " "), strings.Join(y.Build(), " ")
	if !strings.Contains(xs, "file=/x,") || strings.Contains(xs, "file=/y,") {
		t.Errorf("x lost its own disk or got y's: %s", xs)
	}
	if !strings.Contains(ys, "file=/y,") || strings.Contains(ys, "file=/x,") {
		t.Errorf("y lost its own disk or got x's: %s", ys)
	}
	if !strings.Contains(ys, "ifname=tap0,") || strings.Contains(ys, "-accel kvm") {
		t.Errorf("y picked up x's settings: %s", ys)
	}
}

func TestBackendCommandFromSpec(t *testing.T) {
	b := &Backend{binary: "/usr/bin/qemu-system-x86_64", diskCache: "writeback"}
	b.accel.Store(&accelMode{tscKHz: 1800000})
	spec := vmm.Spec{RunDir: "/run/banger/vm1", Kernel: "/k", Cmdline: "console=ttyS0",
		VCPUs: 2, MemoryMiB: 1024, SerialLog: "/run/banger/vm1/serial.log",
		Disks: []vmm.Disk{{Path: "/img/root", Serial: "banger-rootfs", ReadOnly: true}},
		Net:   &vmm.Net{Tap: "tap1", MAC: "02:00:00:00:00:01"}}
	want := argv("-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2", "-m", "1024M",
		"-kernel", "/k", "-append", "console=ttyS0 tsc_early_khz=1800000 tsc=reliable maxcpus=1 no_ipi_broadcast=1 noreplace-smp",
		"-drive", "if=none,id=d0,file=/img/root,format=raw,readonly=on,cache=writeback,discard=unmap,auto-read-only=off",
		"-device", "virtio-blk-device,drive=d0,serial=banger-rootfs",
		"-netdev", "tap,id=n0,ifname=tap1,script=no,downscript=no",
		"-device", "virtio-net-device,netdev=n0,mac=02:00:00:00:00:01",
		"-device", BalloonDevice,
		"-chardev", "socket,id=ser0,path=/run/banger/vm1/serial.sock,server=on,wait=off", "-serial", "chardev:ser0",
		"-device", "virtio-serial-device,max_ports=2",
		"-chardev", "socket,id=ctl0,path=/run/banger/vm1/ctl.sock,server=on,wait=off",
		"-device", "virtserialport,chardev=ctl0,name=banger.ctl",
		"-qmp", "unix:/run/banger/vm1/qmp.sock,server=on,wait=off",
		"-pidfile", "/run/banger/vm1/vmm.pid", "-S")
	if got := b.command(spec).Build(); !slices.Equal(got, want) {
		t.Errorf("argv:\n got %q\nwant %q", got, want)
	}
	// Confined: the run dir is the chroot, the vmm user's uid:gid, seccomp.
	b.runAs, b.sandbox = &vmmproc.SysUser{Name: "banger-vmm", UID: 999, GID: 995}, true
	want = append(want, "-sandbox", SandboxArg, "-chroot", "/run/banger/vm1", "-runas", "999:995")
	want[slices.Index(want, "tap,id=n0,ifname=tap1,script=no,downscript=no")] = "tap,id=n0,fd=3"
	if got := b.command(spec).Build(); !slices.Equal(got, want) {
		t.Errorf("confined argv:\n got %q\nwant %q", got, want)
	}
}
