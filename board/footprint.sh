#!/usr/bin/env bash
# Footprint of the shipping build, natively (x86-64) and under qemu-aarch64:
#   start time to the first 200 from /health, idle RSS with one WebSocket client connected,
#   idle context switches per second of the whole process (all threads, from /proc).
#
#   board/footprint.sh [--seconds N] [--native-only|--qemu-only]
#
# With --demo support in the binary the in-process camera simulator is started and connected,
# so the figures include a connected (simulated) camera. Goals (issue 5): <= 8 MiB RSS,
# <= 1 wake-up/s over a minute. Under qemu the figures are those of the emulator process running
# the aarch64 binary (RSS includes qemu itself and its translated-code cache, so it overstates
# the Pi); context switches still follow the guest's own wake-ups.
set -euo pipefail
BOARD_DIR=$(cd "$(dirname "$0")" && pwd)
REPO_DIR=$(cd "$BOARD_DIR/.." && pwd)
SECONDS_WINDOW=60 NATIVE=1 QEMU=1
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) SECONDS_WINDOW="$2"; shift 2 ;;
        --native-only) QEMU=0; shift ;;
        --qemu-only) NATIVE=0; shift ;;
        -h|--help) sed -n '2,13s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
OUT="${CARGO_TARGET_DIR:-$REPO_DIR/target}"
cd "$REPO_DIR"

measure() { # label command...
    local label="$1"; shift
    local extra=()
    if "$@" --help 2>&1 | grep -q -- '--demo'; then extra+=(--demo); fi
    echo "== $label${extra[*]:+ (with ${extra[*]})}"
    python3 "$BOARD_DIR/probe.py" footprint --label "$label" --seconds "$SECONDS_WINDOW" -- \
        "$@" --listen '127.0.0.1:{port}' --data-dir '{datadir}' "${extra[@]}"
}

status=0
if [ "$NATIVE" = 1 ]; then
    cargo build --quiet --locked --profile ship --bin skylapse
    printf 'size x86_64 (ship): %d bytes\n' "$(stat -c %s "$OUT/ship/skylapse")"
    measure "x86_64" "$OUT/ship/skylapse" || status=1
fi
if [ "$QEMU" = 1 ]; then
    t=aarch64-unknown-linux-gnu
    cargo build --quiet --locked --profile ship --target "$t" --bin skylapse
    printf 'size aarch64 (ship): %d bytes\n' "$(stat -c %s "$OUT/$t/ship/skylapse")"
    measure "qemu-aarch64" qemu-aarch64-static -L /usr/aarch64-linux-gnu "$OUT/$t/ship/skylapse" \
        || status=1
fi
exit $status
