#!/usr/bin/env bash
# Runs corral's kernel-enforcement tests in a VM booted from Debian's stock kernel (BPF LSM
# active, every cgroup2 controller), the kernel a bare-metal Debian user runs.
#
#   1. resolves linux-image-amd64 to its current linux-image-<abi>-amd64 package, fetches it
#      with "apt-get download" (never installed on the host) and unpacks it into a cache
#      ($CORRAL_VM_CACHE, default .cache/vm, git-ignored);
#   2. builds an initramfs: busybox-static, tests/vm/init.sh as /init, the built programs and
#      test binaries from $CORRAL_BUILD, their shared libraries, and kernel modules named in
#      $CORRAL_VM_MODULES with their dependencies;
#   3. boots it with qemu-system-x86_64 -accel tcg (KVM does not work on these machines),
#      bounded by $CORRAL_VM_TIMEOUT seconds; the console streams to stdout and to
#      $CORRAL_BUILD/vm/console.log;
#   4. passes when the VM's /init reports CORRAL-VM-EXIT=0. A VM that hangs, panics or stops
#      without that line is a failure, with the end of its console log shown.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${CORRAL_BUILD:-$top/build}
cache=${CORRAL_VM_CACHE:-$top/.cache/vm}
timeout_s=${CORRAL_VM_TIMEOUT:-600}
modules=${CORRAL_VM_MODULES-veth loop crc32c_generic ext4}
mem=${CORRAL_VM_MEM:-2G}

say() { printf 'vm: %s\n' "$*"; }
die() { say "$*"; say "0 passed, 1 failed"; exit 1; }

export PATH=$PATH:/usr/sbin:/sbin
for tool in qemu-system-x86_64 cpio busybox dpkg apt-get gzip depmod; do
	command -v "$tool" >/dev/null || die "$tool not found: run scripts/deps.sh"
done
for f in corral corrald corral-init tests/unit tests/escape-probe; do
	[ -x "$build/$f" ] || die "$build/$f not built: run make first"
done

# --- 1. the kernel ----------------------------------------------------------------------------
resolve_kernel() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}
pkg=$(resolve_kernel)
if [ -z "$pkg" ] && [ "$(id -u)" = 0 ]; then
	say "package lists lack linux-image-amd64; running apt-get update"
	apt-get update -q >/dev/null
	pkg=$(resolve_kernel)
fi
[ -n "$pkg" ] || die "cannot resolve linux-image-amd64 to a kernel package (apt-get update?)"
ver=$(apt-cache policy "$pkg" | awk '/Candidate:/ { print $2 }')
kdir=$cache/${pkg}_$ver
if [ ! -f "$kdir/.complete" ]; then
	say "fetching $pkg $ver (apt-get download; not installed on the host)"
	mkdir -p "$cache"
	tmp=$(mktemp -d "$cache/.dl.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver" >/dev/null) ||
		die "apt-get download $pkg=$ver failed"
	mkdir -p "$tmp/x"
	dpkg -x "$tmp"/*.deb "$tmp/x"
	rm -rf "$kdir" && mkdir -p "$kdir"
	mv "$tmp/x/boot" "$tmp/x/lib" "$kdir/"
	# The package's postinst would run depmod; here it is run on the unpacked tree.
	kv=$(basename "$(ls -d "$kdir"/lib/modules/*)")
	depmod -b "$kdir" "$kv" || die "depmod for $kv failed"
	touch "$kdir/.complete"
	rm -rf "$tmp"
	trap - EXIT
fi
vmlinuz=$(ls "$kdir"/boot/vmlinuz-* | head -1)
kver=${vmlinuz##*/vmlinuz-}

# --- 2. the initramfs -------------------------------------------------------------------------
work=$build/vm
root=$work/root
rm -rf "$root" && mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,run,etc,corral/tests,lib/modules}
cp "$(command -v busybox)" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
install -m 0755 "$top/tests/vm/init.sh" "$root/init"
for f in corral corrald corral-init tests/unit tests/escape-probe; do
	cp "$build/$f" "$root/corral/$f"
done
echo "root:x:0:0:root:/:/bin/sh" > "$root/etc/passwd"
echo "root:x:0:" > "$root/etc/group"

# Shared libraries of every dynamic binary, at the paths the loader expects.
for f in "$root"/corral/corral "$root"/corral/corrald "$root"/corral/tests/unit; do
	ldd "$f" 2>/dev/null | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }'
done | sort -u | while read -r lib; do
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done

# Kernel modules with their dependencies, in load order.
: > "$root/lib/modules/load"
if [ -n "$modules" ]; then
	mdir=$kdir/lib/modules/$kver
	declare -A seen=()
	add_module() { # name-or-path
		local rel
		rel=$(awk -F: -v m="$1" '{ n = $1; sub(/.*\//, "", n); sub(/\.ko.*$/, "", n);
			if (n == m || $1 == m) { print $1; exit } }' "$mdir/modules.dep")
		[ -n "$rel" ] || die "kernel module $1 not in $pkg"
		[ -n "${seen[$rel]:-}" ] && return 0
		seen[$rel]=1
		local dep
		for dep in $(awk -F: -v m="$rel" '$1 == m { print $2 }' "$mdir/modules.dep"); do
			add_module "$dep"
		done
		mkdir -p "$root/lib/modules/$(dirname "$rel")"
		cp "$mdir/$rel" "$root/lib/modules/$rel"
		echo "$rel" >> "$root/lib/modules/load"
	}
	for m in $modules; do add_module "$m"; done
fi

(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$work/initramfs.gz"
say "kernel $kver ($pkg $ver); initramfs $(du -h "$work/initramfs.gz" | cut -f1)"

# --- 3. boot ----------------------------------------------------------------------------------
log=$work/console.log
say "booting under TCG (bounded: ${timeout_s} s)"
set +e
timeout --kill-after=5 "$timeout_s" qemu-system-x86_64 -accel tcg -m "$mem" -smp 2 \
	-display none -monitor none -serial stdio -no-reboot \
	-kernel "$vmlinuz" -initrd "$work/initramfs.gz" \
	-append "console=ttyS0 panic=-1 quiet loglevel=3 CORRAL_SANITIZE=${CORRAL_SANITIZE:-}" \
	</dev/null 2>&1 | tr -d '\r' | tee "$log"
qrc=${PIPESTATUS[0]}
set -e

# --- 4. verdict -------------------------------------------------------------------------------
result=$(sed -n 's/^CORRAL-VM-EXIT=\([0-9]*\).*/\1/p' "$log" | tail -1)
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
	say "the VM did not finish within ${timeout_s} s and was killed; end of its console log ($log):"
	tail -n 40 "$log" | sed 's/^/  | /'
	die "timed out"
fi
if [ -z "$result" ]; then
	say "the VM stopped (qemu exit $qrc) without reporting a result; end of its console log ($log):"
	tail -n 40 "$log" | sed 's/^/  | /'
	die "no result"
fi
[ "$result" = 0 ] || { say "kernel tests failed in the VM (exit $result)"; exit 1; }
exit 0
