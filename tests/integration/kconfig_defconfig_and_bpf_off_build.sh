#!/usr/bin/env bash
# In a copy of the source tree: "make defconfig" writes a .config with configs/defconfig's
# values; with the BPF options turned off (kconfig-tweak, then "make olddefconfig") the tree
# still builds, autoconf.h has no BPF symbols, the programs do not link libbpf, and that
# build's doctor reports the two BPF layers as not built, "disabled in this build".
# "make savedefconfig" then writes ./defconfig, which reproduces the configuration.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
for tool in make kconfig-conf kconfig-tweak jq; do
	command -v $tool >/dev/null || skip "$tool is not installed (scripts/deps.sh)"
done

src=$TMP/src
copy_tree "$src"
cd "$src"

# 1. defconfig
run -t 60 "${CLEAN_MAKE[@]}" defconfig
expect_rc 0 "make defconfig"
[ -f .config ] || fail "make defconfig wrote no .config"
n=0
while IFS= read -r line; do
	case $line in
	CONFIG_*=* | "# CONFIG_"*" is not set")
		grep -qxF -- "$line" .config || fail ".config lacks \"$line\" from configs/defconfig"
		n=$((n + 1))
		;;
	esac
done <configs/defconfig
[ $n -gt 0 ] || fail "configs/defconfig has no options"
grep -qx 'CONFIG_CORRAL_BPF_LSM=y' .config || fail ".config: CONFIG_CORRAL_BPF_LSM is not y"
echo ".config carries all $n options of configs/defconfig"

# 2. BPF off
kconfig-tweak --file .config --disable CORRAL_BPF
run -t 60 "${CLEAN_MAKE[@]}" olddefconfig
expect_rc 0 "make olddefconfig"
for sym in CORRAL_BPF CORRAL_BPF_LSM CORRAL_CGROUP_BPF CORRAL_REQUIRE_BPF_LSM CORRAL_REQUIRE_CGROUP_BPF; do
	expect_no_match "^CONFIG_$sym=" "$(cat .config)" ".config after olddefconfig ($sym)"
done
grep -qx '# CONFIG_CORRAL_BPF is not set' .config || fail ".config: CONFIG_CORRAL_BPF is not \"not set\""
# What does not depend on BPF is kept.
grep -qx 'CONFIG_CORRAL_SECCOMP=y' .config || fail ".config lost CONFIG_CORRAL_SECCOMP"

# 3. build
run -t 100 "${CLEAN_MAKE[@]}" -j2
if [ $rc != 0 ]; then
	printf '%s\n' "$OUT" "$ERR" | tail -n 40 >&2
	fail "make -j2 with BPF off: exit status $rc"
fi
for p in corral corrald corral-init libcorral.a; do
	[ -f "build/$p" ] || fail "build/$p was not built"
done
ah=include/generated/autoconf.h
[ -f $ah ] || fail "no $ah"
grep -q 'CONFIG_CORRAL_SECCOMP' $ah || fail "$ah lacks CONFIG_CORRAL_SECCOMP: is it the right file?"
for sym in CONFIG_CORRAL_BPF CONFIG_CORRAL_BPF_LSM CONFIG_CORRAL_CGROUP_BPF; do
	if grep -Eq "^#define $sym( |$)" $ah; then
		fail "$ah defines $sym"
	fi
done
[ ! -e build/bpf/opencount.skel.h ] || fail "a BPF skeleton was generated with BPF off"
if command -v ldd >/dev/null; then
	libs=$(ldd build/corral)
	expect_no_match 'libbpf' "$libs" "build/corral links libbpf with BPF off"
	expect_match 'libseccomp' "$libs" "build/corral still links libseccomp"
fi

run build/corral doctor --json
[ $rc = 0 ] || [ $rc = 1 ] || fail "doctor of the BPF-off build: exit status $rc: $ERR"
json=$OUT
jq -e . <<<"$json" >/dev/null || fail "doctor of the BPF-off build: not JSON"
for l in bpf_lsm cgroup_bpf; do
	[ "$(jq -r ".layers.$l.built" <<<"$json")" = false ] || fail ".layers.$l.built is not false"
	[ "$(jq -r ".layers.$l.present" <<<"$json")" = false ] || fail ".layers.$l.present is not false"
	expect_match 'disabled in this build' "$(jq -r ".layers.$l.detail" <<<"$json")" ".layers.$l.detail"
done
# The layers it still has are still probed.
[ "$(jq -r '.layers.seccomp.built' <<<"$json")" = true ] || fail ".layers.seccomp.built is not true"
# --require of a layer that is not built fails.
run build/corral doctor --require cgroup_bpf
expect_rc 1 "BPF-off build: doctor --require cgroup_bpf"
expect_match '^missing required layers:.* cgroup_bpf' "$OUT" "names cgroup_bpf"

# 4. savedefconfig
saved=$(grep -E '^(CONFIG_|# CONFIG_)' .config | LC_ALL=C sort)
rm -f defconfig
run -t 60 "${CLEAN_MAKE[@]}" savedefconfig
expect_rc 0 "make savedefconfig"
[ -f defconfig ] || fail "make savedefconfig did not write ./defconfig"
grep -qx '# CONFIG_CORRAL_BPF is not set' defconfig ||
	fail "./defconfig does not record that BPF is off: $(cat defconfig)"
# savedefconfig leaves .config alone ...
[ "$(grep -E '^(CONFIG_|# CONFIG_)' .config | LC_ALL=C sort)" = "$saved" ] || fail "savedefconfig changed .config"
# ... and ./defconfig gives back the same configuration.
run -t 60 env KCONFIG_CONFIG="$TMP/roundtrip.config" kconfig-conf --defconfig=defconfig Kconfig
expect_rc 0 "kconfig-conf --defconfig=defconfig"
[ "$(grep -E '^(CONFIG_|# CONFIG_)' "$TMP/roundtrip.config" | LC_ALL=C sort)" = "$saved" ] ||
	fail "./defconfig does not reproduce .config: $(diff <(echo "$saved") <(grep -E '^(CONFIG_|# CONFIG_)' "$TMP/roundtrip.config" | LC_ALL=C sort))"
