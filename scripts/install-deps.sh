#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages banger and its tests use. Idempotent.
set -euo pipefail
pkgs=(qemu-system-x86 qemu-utils e2fsprogs kmod cpio busybox-static openssh-client git
      iproute2 nftables dnsutils debootstrap docker-registry skopeo umoci curl ca-certificates
      procps xz-utils gcc rsync)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The registry package starts a system service; tests start their own on loopback.
if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd=sudo
  $sudo_cmd systemctl stop docker-registry || true
fi
exit 0
