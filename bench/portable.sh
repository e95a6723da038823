#!/bin/sh
# Portable benchmark bundle: B1 (boot), B6 (memory) and B7 (density) on any
# x86-64 Linux machine, with no network and nothing installed.
#
#   bench/portable.sh build OUT.tar.gz   (in the banger tree, on Debian/Ubuntu
#                                         with Go, apt-get, dpkg-deb, depmod)
#   tar xzf OUT.tar.gz && sudo ./banger-bench/portable.sh run [RESULTS_DIR]
#
# The bundle holds static banger binaries, the benchmark runner, QEMU and
# e2fsprogs with every shared library they load (unpacked from Debian
# packages, run through the bundled dynamic loader, never the host's), the
# Debian cloud kernel and a busybox root filesystem. `run` uses KVM when
# /dev/kvm really boots a guest (probed with a timeout) and TCG otherwise,
# and says which. Settings: BENCH_RUNS, BENCH_B6_VMS, BENCH_B7_COUNT,
# BENCH_VM_MEMORY, BENCH_BRIDGE, BENCH_SUBNET (see docs/performance.md).
# Written for POSIX sh (busybox sh, dash, bash).
set -eu

die() { echo "portable.sh: $*" >&2; exit 1; }

build() {
	[ $# -eq 1 ] || die "usage: portable.sh build OUT.tar.gz"
	out=$1
	case $out in /*) ;; *) out=$(pwd)/$out ;; esac
	repo=$(cd "$(dirname "$0")/.." && pwd)
	for t in go apt-get apt-cache dpkg-deb dpkg depmod ldd tar gzip; do
		command -v "$t" >/dev/null || die "build needs $t"
	done
	stage=$(mktemp -d)
	trap 'rm -rf "$stage"' EXIT
	b=$stage/banger-bench
	mkdir -p "$b/bin" "$b/lib" "$b/root" "$b/kernel" "$b/image" "$stage/debs"

	echo "== static binaries" >&2
	(cd "$repo" && for c in banger bangerd banger-agent; do
		CGO_ENABLED=0 go build -trimpath -ldflags '-s -w -X banger/internal/buildinfo.Version=portable' -o "$b/bin/$c" "./cmd/$c"
	done && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$b/bin/banger-bench" ./bench/runner)
	for n in qemu-system-x86_64 mkfs.ext4 mke2fs e2fsck resize2fs debugfs depmod; do
		ln -s banger-bench "$b/bin/$n"
	done

	echo "== Debian packages (apt-get download)" >&2
	pkgs="qemu-system-x86 qemu-system-common qemu-system-data e2fsprogs kmod busybox-static libc6"
	for f in /usr/bin/qemu-system-x86_64 /usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so \
		/sbin/mke2fs /sbin/e2fsck /sbin/resize2fs /sbin/debugfs /sbin/depmod; do
		[ -e "$f" ] || die "build needs $f (run scripts/install-deps.sh)"
		for l in $(ldd "$f" | awk '/=> \// {print $3}'); do
			p=$(dpkg -S "*/$(basename "$l")" 2>/dev/null | grep -v -- '-dev' | head -n1 | cut -d: -f1)
			[ -n "$p" ] && pkgs="$pkgs $p"
		done
	done
	kpkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
	[ -n "$kpkg" ] || die "apt does not know linux-image-cloud-amd64 (apt-get update?)"
	pkgs=$(echo $pkgs | tr ' ' '\n' | sort -u)
	(cd "$stage/debs" && apt-get download -q -o APT::Sandbox::User=root $pkgs "$kpkg" >&2)
	for d in "$stage"/debs/*.deb; do
		case $(basename "$d") in
		linux-image-*) dpkg-deb -x "$d" "$stage/kernel-root" ;;
		*) dpkg-deb -x "$d" "$b/root" ;;
		esac
	done
	# Debian 12 is merged-/usr: its packages ship /lib and /usr/lib separately.
	cp -L "$b/root/lib64/ld-linux-x86-64.so.2" "$b/lib/qemu-ld-linux-x86-64.so.2" 2>/dev/null ||
		cp -L "$b/root/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" "$b/lib/qemu-ld-linux-x86-64.so.2"
	cp "$b/root/bin/busybox" "$b/bin/busybox"
	# QEMU's loadable modules: only the accelerators are used (TCG is one).
	find "$b/root/usr/lib/x86_64-linux-gnu/qemu" -name '*.so' ! -name 'accel-*' -delete
	rm -rf "$b/root/usr/share/doc" "$b/root/usr/share/man" "$b/root/usr/share/locale" "$b/root/usr/share/lintian"

	echo "== kernel $kpkg" >&2
	kver=$(ls "$stage/kernel-root/lib/modules")
	mods=$stage/kernel-root/lib/modules/$kver
	# Keep what a microVM guest can load (virtio, block, net, file systems).
	find "$mods/kernel" -mindepth 1 -maxdepth 1 ! -name drivers ! -name fs ! -name net ! -name lib ! -name crypto -exec rm -rf {} +
	find "$mods/kernel/drivers" -mindepth 1 -maxdepth 1 ! -name virtio ! -name block ! -name net ! -name char -exec rm -rf {} +
	depmod -b "$stage/kernel-root" "$kver"
	cp "$stage/kernel-root/boot/vmlinuz-$kver" "$b/kernel/vmlinuz"
	mkdir -p "$b/kernel/lib/modules"
	cp -a "$mods" "$b/kernel/lib/modules/"

	echo "== busybox image" >&2
	PATH=$b/root/bin:$PATH "$b/bin/banger-bench" make-image "$stage/img" 256M >/dev/null
	mv "$stage/img/busybox-256M.ext4" "$b/image/busybox.ext4"

	cp "$repo/bench/portable.sh" "$b/portable.sh"
	chmod 755 "$b/portable.sh"
	tar -C "$stage" -czf "$out" banger-bench
	echo "bundle: $out ($(du -h "$out" | cut -f1))" >&2
}

run() {
	b=$(cd "$(dirname "$0")" && pwd)
	[ -x "$b/bin/banger-bench" ] || die "run: $b is not an unpacked bundle (build one with 'portable.sh build OUT.tar.gz')"
	[ "$(id -u)" -eq 0 ] || die "run: needs root (bangerd creates taps and a bridge)"
	out=${1:-$b/results}
	export BANGER_BUNDLE="$b"
	# The bundle's tools come first: the host's QEMU, if any, is never used.
	export PATH="$b/bin:$PATH"
	export QEMU_MODULE_DIR="$b/root/usr/lib/x86_64-linux-gnu/qemu"
	export HOME="${HOME:-/root}"
	mkdir -p "$out"
	if [ -z "${BENCH_ACCEL:-}" ]; then
		if "$b/bin/banger-bench" probe-kvm "$b/kernel/vmlinuz" >"$out/kvm-probe.txt" 2>&1; then
			BENCH_ACCEL=kvm
		else
			BENCH_ACCEL=tcg
		fi
		echo "accelerator: $BENCH_ACCEL ($(cat "$out/kvm-probe.txt"))" >&2
	fi
	export BENCH_ACCEL BENCH_PORTABLE=1 BENCH_BIN="$b/bin" BENCH_KERNEL_DIR="$b/kernel" \
		BENCH_IMAGE="$b/image/busybox.ext4" BENCH_OUT="$out" BENCH_ONLY="${BENCH_ONLY:-B1,B6,B7}"
	exec "$b/bin/banger-bench"
}

case ${1:-} in
build) shift; build "$@" ;;
run) shift; run "$@" ;;
*) die "usage: portable.sh build OUT.tar.gz | portable.sh run [RESULTS_DIR]" ;;
esac
