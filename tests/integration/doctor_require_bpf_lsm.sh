#!/usr/bin/env bash
# corral doctor --require bpf_lsm (and the spelling bpf-lsm) exits 1 exactly when the BPF LSM
# layer is not present, else 0; the expectation comes from doctor's own JSON, not from what
# this host is known to have. A failing --require names the missing layer, and a refused
# program load (EPERM) is explained as "Operation not permitted".
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRAL"
command -v jq >/dev/null || fail "jq is not installed (scripts/deps.sh)"

run "$CORRAL" doctor --json
base_rc=$rc
json=$OUT
jq -e . <<<"$json" >/dev/null || fail "doctor --json output is not JSON"
present=$(jq -r '.layers.bpf_lsm.present' <<<"$json")
base_ok=$(jq -r '.ok' <<<"$json")
case $present in true | false) ;; *) fail ".layers.bpf_lsm.present is $present" ;; esac
[ "$base_ok" = true ] || [ "$base_rc" = 1 ] || fail "doctor exits $base_rc with .ok $base_ok"
if [ "$present" = true ] && [ "$base_ok" = true ]; then want=0; else want=1; fi
echo "bpf_lsm present: $present; build's required layers present: $base_ok; want exit $want"

for spelling in bpf_lsm bpf-lsm; do
	run "$CORRAL" doctor --require "$spelling"
	expect_rc $want "corral doctor --require $spelling"
	if [ "$present" = false ]; then
		expect_match '^missing required layers:.* bpf_lsm( |$)' "$OUT" "--require $spelling names the missing layer"
	else
		expect_no_match 'bpf_lsm' "$(grep '^missing required layers' <<<"$OUT" || true)" "--require $spelling"
	fi
	# The BPF LSM line is marked required.
	expect_match '^  BPF LSM +[A-Za-z]+ +\*' "$OUT" "--require $spelling marks BPF LSM required"
	text=$OUT

	run "$CORRAL" doctor --json --require "$spelling"
	expect_rc $want "corral doctor --json --require $spelling"
	[ "$(jq -r '.layers.bpf_lsm.required' <<<"$OUT")" = true ] ||
		fail "--require $spelling: .layers.bpf_lsm.required is not true"
	in_missing=$(jq -r '.missing_required | index("bpf_lsm") != null' <<<"$OUT")
	if [ "$present" = false ]; then
		[ "$in_missing" = true ] || fail "--require $spelling: bpf_lsm not in .missing_required"
		[ "$(jq -r .ok <<<"$OUT")" = false ] || fail "--require $spelling: .ok is not false"
	else
		[ "$in_missing" = false ] || fail "--require $spelling: bpf_lsm in .missing_required"
	fi
done

# On a kernel that refuses the LSM program with EPERM, the text says so in words.
if [ "$(jq -r '.layers.bpf_lsm.program_load' <<<"$json")" = EPERM ]; then
	expect_match '^  BPF LSM .*Operation not permitted' "$text" "EPERM explained in the text report"
fi

# Several layers at once: the expectation is the conjunction.
limits=$(jq -r '.layers.cgroup_limits.present' <<<"$json")
if [ "$present" = true ] && [ "$limits" = true ] && [ "$base_ok" = true ]; then want=0; else want=1; fi
run "$CORRAL" doctor --require cgroup_limits,bpf-lsm
expect_rc $want "corral doctor --require cgroup_limits,bpf-lsm"
if [ "$limits" = false ]; then
	expect_match '^missing required layers:.* cgroup_limits( |$)' "$OUT" "--require cgroup_limits,bpf-lsm"
fi
