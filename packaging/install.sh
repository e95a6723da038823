#!/usr/bin/env bash
# Install banger system-wide: the binaries, the `banger` group and the
# bangerd systemd unit. Run as root from the repository after `make build`.
#
#   packaging/install.sh              install, create the group, enable and start bangerd
#   packaging/install.sh --no-start   install and create the group, do not touch systemd state
#   packaging/install.sh --uninstall  stop and remove the unit and binaries (state and group stay)
#
# Environment: BIN (built binaries, default ./bin), PREFIX (default /usr/local),
# DESTDIR (stage into a folder for packaging: no group, no systemctl).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$here/../bin}
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
SYSUSERS_DIR=${SYSUSERS_DIR:-/usr/lib/sysusers.d}
binaries=(banger bangerd banger-agent)

die() { echo "install.sh: $*" >&2; exit 1; }
have_systemd() { [[ -z $DESTDIR ]] && command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; }

start=yes
case "${1:-}" in
  "") ;;
  --no-start) start=no ;;
  --uninstall) mode=uninstall ;;
  -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
  *) die "unknown option $1 (try --help)" ;;
esac

if [[ -z $DESTDIR && $(id -u) != 0 ]]; then
  die "run as root (or set DESTDIR to stage the files)"
fi

if [[ ${mode:-} == uninstall ]]; then
  if have_systemd; then
    systemctl disable --now bangerd.service 2>/dev/null || true
  fi
  rm -f "$DESTDIR$UNIT_DIR/bangerd.service" "$DESTDIR$SYSUSERS_DIR/banger.conf"
  for b in "${binaries[@]}"; do rm -f "$DESTDIR$PREFIX/bin/$b"; done
  have_systemd && systemctl daemon-reload
  echo "removed bangerd; left in place: /var/lib/banger, the banger group, running VMs"
  exit 0
fi

for b in "${binaries[@]}"; do
  [[ -x $BIN/$b ]] || die "$BIN/$b missing: run 'make build' first (or set BIN)"
done

install -d -m 0755 "$DESTDIR$PREFIX/bin" "$DESTDIR$UNIT_DIR" "$DESTDIR$SYSUSERS_DIR"
for b in "${binaries[@]}"; do
  install -m 0755 "$BIN/$b" "$DESTDIR$PREFIX/bin/$b"
done
install -m 0644 "$here/banger.sysusers" "$DESTDIR$SYSUSERS_DIR/banger.conf"
sed "s|^ExecStart=/usr/local/bin/bangerd|ExecStart=$PREFIX/bin/bangerd|" "$here/bangerd.service" \
  > "$DESTDIR$UNIT_DIR/bangerd.service"
chmod 0644 "$DESTDIR$UNIT_DIR/bangerd.service"

if [[ -n $DESTDIR ]]; then
  echo "staged banger in $DESTDIR (create the banger group and enable bangerd.service at install time)"
  exit 0
fi

# The group that may use the socket, and the user QEMU runs as (bangerd
# would create that one at start anyway).
if ! getent group banger >/dev/null || ! getent passwd banger-vmm >/dev/null; then
  if command -v systemd-sysusers >/dev/null; then
    systemd-sysusers "$SYSUSERS_DIR/banger.conf"
  else
    getent group banger >/dev/null || groupadd --system banger
    getent passwd banger-vmm >/dev/null || useradd --system --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin --user-group --comment "banger VMMs" banger-vmm
  fi
fi

if have_systemd; then
  systemctl daemon-reload
  if [[ $start == yes ]]; then
    systemctl enable bangerd.service
    # restart, not start: a running bangerd must pick up the new binary and
    # the group. KillMode=process keeps running VMs alive across it.
    systemctl restart bangerd.service
    echo "bangerd is running: $(systemctl is-active bangerd.service)"
  fi
else
  echo "systemd is not running here: start the daemon with '$PREFIX/bin/banger daemon start'"
fi
echo "let a user run banger without sudo: usermod -aG banger USER (then log in again)"
