#!/bin/sh
# Proves a portable bundle runs with nothing installed: unpacks BUNDLE.tar.gz
# in a scratch root holding only busybox-static (no libc, no QEMU, no
# e2fsprogs) and runs it there in its own mount, pid and network namespaces.
#   sudo bench/prove-portable.sh BUNDLE.tar.gz [SCRATCH_DIR]
# Results land in SCRATCH_DIR/root/results. Needs unshare, chroot, busybox.
set -eu
[ $# -ge 1 ] || { echo "usage: prove-portable.sh BUNDLE.tar.gz [SCRATCH_DIR]" >&2; exit 2; }
bundle=$1
R=${2:-$(mktemp -d /tmp/banger-scratch-XXXXXX)}
mkdir -p "$R/bin" "$R/dev" "$R/proc" "$R/sys" "$R/tmp" "$R/root" "$R/etc"
cp "$(command -v busybox)" "$R/bin/busybox"
for a in sh tar gzip mkdir ls cat id rm; do ln -sf busybox "$R/bin/$a"; done
cp "$bundle" "$R/root/bundle.tar.gz"
echo "scratch root: $R" >&2
exec unshare --mount --net --pid --fork --propagation private /bin/sh -c "
mount --rbind /dev '$R/dev' && mount -t proc proc '$R/proc' && mount -t sysfs sys '$R/sys' &&
exec chroot '$R' /bin/sh -c '
cd /root && tar xzf bundle.tar.gz &&
echo \"qemu on PATH before the bundle: \$(command -v qemu-system-x86_64 || echo none)\" &&
BENCH_RUNS=\${BENCH_RUNS:-3} BENCH_B6_VMS=\${BENCH_B6_VMS:-3} BENCH_B7_COUNT=\${BENCH_B7_COUNT:-2} /root/banger-bench/portable.sh run /root/results
'"
