#!/usr/bin/env bash
# corral doctor --json is valid JSON with a boolean .present (and .built, .required) for each
# of the eight layers, .ok true and .missing_required empty on this host, and .ok agreeing
# with the layers.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRAL"
command -v jq >/dev/null || fail "jq is not installed (scripts/deps.sh)"

run "$CORRAL" doctor --json
expect_rc 0 "corral doctor --json"
json=$OUT
jq -e . <<<"$json" >/dev/null || fail "output is not valid JSON: $json"
[ "$(jq -s length <<<"$json")" = 1 ] || fail "output is more than one JSON value"

layers=(namespaces seccomp cgroup2 cgroup_limits bpf_lsm cgroup_bpf io_uring landlock)
want=$(printf '%s\n' "${layers[@]}" | LC_ALL=C sort | paste -sd' ')
have=$(jq -r '.layers | keys[]' <<<"$json" | LC_ALL=C sort | paste -sd' ')
[ "$have" = "$want" ] || fail "layers are [$have], want [$want]"

for l in "${layers[@]}"; do
	for key in present built required; do
		t=$(jq -r --arg l "$l" --arg k "$key" '.layers[$l][$k] | type' <<<"$json")
		[ "$t" = boolean ] || fail ".layers.$l.$key is $t, want boolean"
	done
	t=$(jq -r --arg l "$l" '.layers[$l].detail | type' <<<"$json")
	[ "$t" = string ] || fail ".layers.$l.detail is $t, want string"
	# A layer that is not built cannot be present.
	jq -e --arg l "$l" '.layers[$l] | (.built or (.present | not))' <<<"$json" >/dev/null ||
		fail ".layers.$l is present but not built"
done

[ "$(jq -r '.ok' <<<"$json")" = true ] || fail ".ok is $(jq -c .ok <<<"$json"), want true"
[ "$(jq -c '.missing_required' <<<"$json")" = '[]' ] ||
	fail ".missing_required is $(jq -c .missing_required <<<"$json"), want []"
# .missing_required lists exactly the required layers that are not present.
computed=$(jq -c '[.layers | to_entries[] | select(.value.required and (.value.present | not)) | .key]' <<<"$json")
[ "$computed" = "$(jq -c '.missing_required' <<<"$json")" ] ||
	fail ".missing_required disagrees with the layers ($computed)"
jq -e '.kernel.release | type == "string" and length > 0' <<<"$json" >/dev/null ||
	fail ".kernel.release missing"
