#!/usr/bin/env bash
# Installs what corral needs to build and test, from Debian's packages (Debian 12).
# Idempotent: when everything is present it makes one dpkg-query call and returns.
#   scripts/deps.sh          build and test dependencies
#   scripts/deps.sh build    only what "make" needs
set -euo pipefail

build=(make gcc libc6-dev pkg-config clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev
	libseccomp-dev liburing-dev libnl-3-dev libnl-route-3-dev libsqlite3-dev
	libcurl4-openssl-dev libjansson-dev libsodium-dev libmicrohttpd-dev
	kconfig-frontends-nox libncurses-dev)
# Unit tests (criterion), format check, VM tests (qemu, busybox, cpio; the kernel itself is
# fetched with "apt-get download" by scripts/vmtest.sh, never installed), integration tests,
# the baselines of corral bench sandbox (bubblewrap, crun), and the API tests (curl, node and npm
# for the official TypeScript SDK, which the tests install from npm's registry, pinned).
test=(libcriterion-dev clang-format qemu-system-x86 busybox-static cpio kmod jq tmux file git util-linux
	iproute2 procps coreutils bubblewrap crun curl nodejs)

case "${1:-all}" in
build) want=("${build[@]}") ;;
all | test)
	want=("${build[@]}" "${test[@]}")
	# npm installs the pinned TypeScript SDK for the API tests. Debian's npm package only when
	# there is no npm: a nodejs from elsewhere (NodeSource's) brings its own and conflicts.
	command -v npm >/dev/null || want+=(npm)
	;;
*) echo "usage: scripts/deps.sh [build|all]" >&2; exit 2 ;;
esac

installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${want[@]}" 2>/dev/null |
	awk '$2 ~ /^ii/ { print $1 }' || true)
missing=()
for p in "${want[@]}"; do
	grep -qx "$p" <<<"$installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
sudo=
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null || { echo "deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
	sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
