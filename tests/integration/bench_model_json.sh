#!/usr/bin/env bash
# corral bench model, as a short smoke run (8 streams, 16 per side and phase, 40 deltas): one
# JSON object with every figure the issue asks for (and the SDK's, measured in the same run)
# as a positive number and a "met" boolean per target; the table names both targets; without
# the SDK the baseline is null with the reason; bad options exit 2 with a message; nothing is
# left behind (the runner checks for processes and files).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
need_program "$CORRAL"
need_program "$CORRAL_BUILD/corral-fake-api"
command -v jq >/dev/null || fail "jq is not installed (scripts/deps.sh)"
need_sdk
small=(--streams 8 --total 16 --deltas 40)

run -t 100 "$CORRAL" bench model --json "${small[@]}" --sdk "$sdk"
expect_rc 0 "corral bench model --json: $ERR"
json=$OUT
[ "$(jq -s length <<<"$json")" = 1 ] || fail "output is not one JSON value: $json"
for k in streams client_overhead_p50_us client_overhead_p99_us client_overhead_max_us \
	cpu_ms_per_stream sdk_cpu_ms_per_stream streams_per_s sdk_streams_per_s \
	sdk_client_overhead_p50_us sdk_client_overhead_p99_us paced_cpu_ms_per_stream \
	sdk_paced_cpu_ms_per_stream flood_client_overhead_p50_us cpu_vs_sdk paced_cpu_vs_sdk \
	deltas_per_stream sdk_deltas_per_stream; do
	jq -e --arg k "$k" '.[$k] | type == "number" and . > 0' <<<"$json" >/dev/null ||
		fail ".$k is $(jq -c --arg k "$k" '.[$k]' <<<"$json"), want a positive number"
done
jq -e '.streams == 8 and .total == 16 and .deltas_per_stream == .sdk_deltas_per_stream
	and .deltas_per_stream >= 40' <<<"$json" >/dev/null ||
	fail "8 streams, 16 per side, the same reply on both sides: $json"
jq -e '.client_overhead_p50_us <= .client_overhead_p99_us and
	.client_overhead_p99_us <= .client_overhead_max_us' <<<"$json" >/dev/null ||
	fail "latencies are not p50 <= p99 <= max"
for t in client_overhead_p50_us cpu_vs_sdk; do
	jq -e --arg t "$t" '.targets[$t] | (.value | type == "number" and . > 0) and
		(.met | type == "boolean") and .at_most > 0' <<<"$json" >/dev/null ||
		fail ".targets.$t is $(jq -c --arg t "$t" '.targets[$t]' <<<"$json")"
done
jq -e '.targets_met | type == "boolean"' <<<"$json" >/dev/null || fail ".targets_met is not a boolean"
echo "smoke run: $(jq -c '{client_overhead_p50_us, cpu_ms_per_stream, sdk_cpu_ms_per_stream,
	streams_per_s, sdk_streams_per_s, targets_met}' <<<"$json")"

# the table, and a run without the SDK
mkdir "$TMP/empty"
run -t 100 "$CORRAL" bench model "${small[@]}" --sdk "$TMP/empty"
expect_rc 0 "corral bench model without the SDK: $ERR"
expect_match 'first delta delivery p50' "$OUT" "the table shows the delivery latency"
expect_match 'SDK: @anthropic-ai/sdk is not installed in' "$OUT" "the table says why there is no baseline"
expect_match 'CPU per stream vs the SDK.s +<= 0.2x +- +unknown' "$OUT" "the CPU target is unknown"
run -t 100 "$CORRAL" bench model --json --streams 2 --total 2 --deltas 10 --sdk "$TMP/empty"
expect_rc 0 "corral bench model --json without the SDK: $ERR"
jq -e '.sdk_cpu_ms_per_stream == null and .cpu_vs_sdk == null and .targets.cpu_vs_sdk.met == null
	and (.sdk_unavailable | type == "string") and .targets_met == null' <<<"$OUT" >/dev/null ||
	fail "without the SDK its figures are null: $OUT"

# bad usage
for bad in "--streams 0" "--streams 1025" "--total x" "--deltas 0" "--rate 0" "--sdk $TMP/none" \
	"--fake-api $TMP/none" "--node" "--bogus" "extra"; do
	# shellcheck disable=SC2086 # the words are the options
	run "$CORRAL" bench model $bad
	expect_rc 2 "corral bench model $bad"
	[ -n "$ERR" ] || fail "corral bench model $bad: no message"
done
run "$CORRAL" bench model --node /nonexistent/node --streams 1 --total 1 --deltas 5 --sdk "$sdk"
expect_rc 1 "a node that does not exist"
expect_match "the SDK's run failed|nonexistent" "$ERR" "the failure names the SDK's run"
exit 0
