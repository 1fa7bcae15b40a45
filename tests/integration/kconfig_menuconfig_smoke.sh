#!/usr/bin/env bash
# "make menuconfig" works: in a copy of the tree with a defconfig .config, run in a detached
# 120x40 tmux session, it shows the "corral configuration" menu, quits on Escape Escape
# (answering a save prompt, should one appear, with its default, Yes), and leaves .config
# with the same configuration.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib/common.bash
source "$(dirname "$0")/lib/common.bash"
for tool in make kconfig-conf kconfig-mconf tmux; do
	command -v $tool >/dev/null || skip "$tool is not installed (scripts/deps.sh)"
done

src=$TMP/src
copy_tree "$src"
run -t 60 "${CLEAN_MAKE[@]}" -C "$src" defconfig
expect_rc 0 "make defconfig"
cp "$src/.config" "$TMP/config.before"

# A tmux server of our own (its socket in $TMP, no user configuration), killed on exit.
sock=$TMP/tmux.sock
tm() { tmux -f /dev/null -S "$sock" "$@"; }
on_exit 'tmux -f /dev/null -S "$TMP/tmux.sock" kill-server 2>/dev/null'
printf '%q ' "${CLEAN_MAKE[@]}" -C "$src" menuconfig >"$TMP/cmd"
tm new-session -d -s menuconfig -x 120 -y 40 \
	"$(cat "$TMP/cmd") 2>'$TMP/menuconfig.err'; echo \$? >'$TMP/menuconfig.rc'"

screen() { tm capture-pane -p -t menuconfig 2>/dev/null; }
shows() { screen | grep -q -- "$1"; }
alive() { tm has-session -t menuconfig 2>/dev/null; }

wait_for 20 shows 'corral configuration' || {
	screen >&2 || true
	fail "menuconfig did not show \"corral configuration\" within 20 s"
}
shows 'Kernel enforcement layers' || fail "the main menu lacks \"Kernel enforcement layers\": $(screen)"
shows 'Required layers' || fail "the main menu lacks \"Required layers\""
echo "menuconfig is up"

# Escape Escape leaves the main menu. Keys sent before the dialog reads them are not lost, but
# if the first pair lands while it is still starting, send it again (bounded).
answered=no
for attempt in 1 2 3 4 5; do
	alive || break
	if shows 'save your new configuration'; then
		tm send-keys -t menuconfig Enter
		answered=yes
	else
		tm send-keys -t menuconfig Escape Escape
	fi
	wait_for 4 bash -c '! tmux -f /dev/null -S "$1" has-session -t menuconfig 2>/dev/null' sh "$sock" && break
	echo "still running after attempt $attempt"
done
if alive; then
	screen >&2 || true
	fail "menuconfig did not quit on Escape Escape"
fi
wait_for 5 test -s "$TMP/menuconfig.rc" || fail "menuconfig's exit status was not recorded"
[ "$(cat "$TMP/menuconfig.rc")" = 0 ] ||
	fail "make menuconfig exited $(cat "$TMP/menuconfig.rc"): $(cat "$TMP/menuconfig.err")"
echo "menuconfig quit (save prompt answered: $answered)"

[ -f "$src/.config" ] || fail ".config is gone"
if [ $answered = no ]; then
	cmp -s "$TMP/config.before" "$src/.config" || fail ".config changed: $(diff "$TMP/config.before" "$src/.config")"
else
	diff <(grep -E '^(CONFIG_|# CONFIG_)' "$TMP/config.before" | LC_ALL=C sort) \
		<(grep -E '^(CONFIG_|# CONFIG_)' "$src/.config" | LC_ALL=C sort) >&2 ||
		fail ".config's options changed"
fi
grep -qx 'CONFIG_CORRAL_BPF_LSM=y' "$src/.config" || fail ".config lost CONFIG_CORRAL_BPF_LSM=y"
