#!/usr/bin/env bash
# The main job, end to end: start bangerd, pull a kernel, build a Debian
# image, boot a VM, copy a git workspace in, change it inside the VM as root,
# and bring the change out as a patch that applies to the host repository.
set -euo pipefail
cd "$(dirname "$0")/.."
B="$PWD/bin/banger"
say() { printf '\n== %s\n' "$*" >&2; }

say "starting bangerd"
$B daemon start --bangerd "$PWD/bin/bangerd"

say "kernel: debian-12-cloud (Debian's cloud kernel through apt)"
$B kernel pull debian-12-cloud >/dev/null
$B kernel show debian-12-cloud

say "image: debian-bookworm (debootstrap from the host's Debian mirror; a few minutes the first time)"
if ! $B image show debian-bookworm >/dev/null 2>&1; then
  $B image build debian --suite bookworm --name debian-bookworm >/dev/null
fi
$B image list

say "a VM: demo"
$B vm delete --force demo >/dev/null 2>&1 || true
$B vm create --name demo --image debian-bookworm --memory 1024
$B vm list

say "a workspace in"
repo=$(mktemp -d /tmp/banger-demo-repo.XXXXXX)
git -C "$repo" init -q -b main
printf 'def greet(name):\n    return "hello " + name\n' > "$repo/greet.py"
printf '# demo\n' > "$repo/README.md"
printf '__pycache__/\n' > "$repo/.gitignore" # the run below leaves bytecode: ignored files stay out of the patch
git -C "$repo" add -A
git -C "$repo" -c user.name=demo -c user.email=demo@banger.invalid commit -qm "initial commit"
$B vm workspace prepare demo "$repo"

say "work inside the VM, as root"
$B vm exec demo -- sh -c 'cd /root/'"$(basename "$repo")"' &&
  sed -i "s/hello /hello, /" greet.py &&
  printf "print(__import__(\"greet\").greet(\"banger\"))\n" > main.py &&
  { ! command -v python3 >/dev/null || python3 main.py; } && git status --short && uname -sr'

say "the patch out"
patch="$repo.patch"
$B vm workspace export demo -o "$patch"
cat "$patch"
git -C "$repo" apply --check "$patch"
echo "the patch applies cleanly to $repo (git apply --check)" >&2

if [ "${KEEP:-0}" != 1 ]; then
  say "cleaning up the demo VM (KEEP=1 keeps it)"
  $B vm delete --force demo
fi
echo >&2
echo "demo done: $B vm create --image debian-bookworm, then $B vm ssh NAME" >&2
