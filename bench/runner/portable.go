package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"banger/internal/network"
)

// The portable bundle carries QEMU and e2fsprogs unpacked from Debian
// packages under $BANGER_BUNDLE/root, run through the bundled dynamic loader
// (copied as lib/qemu-ld-linux-x86-64.so.2: banger recognises its QEMU
// processes by "qemu" in argv[0]). bin/qemu-system-x86_64, bin/mkfs.ext4,
// ... are symlinks to this program, which execs the real binary that way.
var bundled = map[string]string{
	"qemu-system-x86_64": "usr/bin/qemu-system-x86_64",
	"mkfs.ext4":          "sbin/mkfs.ext4",
	"mke2fs":             "sbin/mke2fs",
	"e2fsck":             "sbin/e2fsck",
	"resize2fs":          "sbin/resize2fs",
	"debugfs":            "sbin/debugfs",
	"depmod":             "sbin/depmod",
}

// Loader is the bundled dynamic loader's file name.
const loaderName = "qemu-ld-linux-x86-64.so.2"

// multicall runs a bundled binary when this program is invoked under its
// name; ok is false otherwise.
func multicall(args []string) (int, bool) {
	base := filepath.Base(args[0])
	rel, ok := bundled[base]
	if !ok || base == "banger-bench" {
		return 0, false
	}
	root := os.Getenv("BANGER_BUNDLE")
	if root == "" {
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, "banger-bench:", err)
			return 127, true
		}
		root = filepath.Dir(filepath.Dir(self))
	}
	argv := bundledArgv(root, base, rel, args[1:])
	env := os.Environ()
	if base == "qemu-system-x86_64" {
		env = append(env, "QEMU_MODULE_DIR="+filepath.Join(root, "root/usr/lib/x86_64-linux-gnu/qemu"))
	}
	err := syscall.Exec(argv[0], argv, env)
	fmt.Fprintf(os.Stderr, "%s: exec bundled %s: %v\n", base, argv[0], err)
	return 127, true
}

// bundledArgv is the loader command line that runs root/rel as name.
func bundledArgv(root, name, rel string, args []string) []string {
	libs := []string{filepath.Join(root, "root/lib/x86_64-linux-gnu"), filepath.Join(root, "root/usr/lib/x86_64-linux-gnu")}
	argv := []string{filepath.Join(root, "lib", loaderName), "--library-path", strings.Join(libs, ":"),
		"--argv0", name, filepath.Join(root, "root", rel)}
	if name == "qemu-system-x86_64" {
		argv = append(argv, "-L", filepath.Join(root, "root/usr/share/qemu"))
	}
	return append(argv, args...)
}

// probeKVMMain is `banger-bench probe-kvm KERNEL`: it boots KERNEL under
// -accel kvm with an initramfs that only prints a line, and exits 0 when the
// line arrives within 60 s (KVM runs a guest), 1 otherwise.
func probeKVMMain(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: banger-bench probe-kvm KERNEL")
		return 2
	}
	if _, err := os.Stat("/dev/kvm"); err != nil {
		fmt.Println("no /dev/kvm")
		return 1
	}
	dir, err := os.MkdirTemp("", "kvm-probe-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(dir)
	initrd := filepath.Join(dir, "initrd.cpio")
	if err := idleInitramfs(initrd); err != nil {
		fmt.Println(err)
		return 1
	}
	argv := []string{"qemu-system-x86_64", "-M", "microvm,acpi=on,pit=on,rtc=on", "-nodefaults", "-no-user-config",
		"-nographic", "-no-reboot", "-accel", "kvm", "-cpu", "host", "-smp", "1", "-m", "256M",
		"-kernel", args[0], "-initrd", initrd, "-append", "console=ttyS0 reboot=t panic=-1 quiet"}
	argv = append(argv, "-chardev", "stdio,id=ser0,signal=off", "-serial", "chardev:ser0")
	vm, d, err := startBare(context.Background(), argv, "bench-idle-ready", 60*time.Second)
	vm.stop()
	if err != nil {
		fmt.Println("kvm cannot run a guest here:", strings.SplitN(err.Error(), "\n", 2)[0])
		return 1
	}
	fmt.Printf("kvm runs a guest (init after %.2fs)\n", d.Seconds())
	return 0
}

// removeNetwork deletes the benchmark daemon's bridge and nftables table
// (netlink, so no ip or nft binaries are needed).
func removeNetwork(bridge string) {
	if l, err := netlink.LinkByName(bridge); err == nil {
		netlink.LinkDel(l)
	}
	if c, err := nftables.New(); err == nil {
		// One batch each: deleting a table that does not exist fails its batch.
		for _, f := range []nftables.TableFamily{nftables.TableFamilyINet, nftables.TableFamilyNetdev} {
			c.DelTable(&nftables.Table{Name: network.TableName(bridge), Family: f})
			c.Flush()
		}
	}
}
