#!/usr/bin/env bash
# Footprint of the shipping build, natively (x86-64) and under qemu-aarch64, with a connected
# (simulated) camera and one WebSocket client:
#   start time to the first 200 from /health, idle RSS, idle context switches per second of
#   the whole process (every thread, voluntary + nonvoluntary, from /proc), and per thread.
#
#   board/footprint.sh [--seconds N] [--native-only|--qemu-only] [--demo-only|--sim-only]
#                      [--no-camera] [--shots N]
#
# Two camera set-ups per target:
#   demo   `skylapse --demo`: the simulator runs inside the process, so its own threads
#          (camera-sim executor, SSDP NOTIFY) add to the figures.
#   sim    the simulator as a separate `camera-sim` process (native, holding event long polls
#          30 s like a real body) and `skylapse --camera <url> --camera-insecure`: the figures
#          are the service's alone (the simulator's are printed apart).
# --no-camera adds a run with no camera at all (issue 2's figure).
# With the simulator as a process, it also counts the camera requests per minute and the
# connections they came on while idle, and runs a session (--shots N, default 60, of 1 s) to
# count context switches and camera requests per shot (issue 13's figures: <= 8 switches/shot,
# idle <= 0.5 switches/s and <= 6 camera requests/min on one connection), and streams live
# view to 1 and 3 viewers (issue 11's figures: frames/s, RSS growth, CPU per frame, camera
# requests/s, live view off after the last viewer).
# Goals (issue 5): <= 8 MiB RSS, <= 1 wake-up/s averaged over a minute with a camera connected.
# Under qemu the figures are those of the emulator process running the aarch64 binary (RSS
# includes qemu itself and its translated-code cache, so it overstates the Pi); context
# switches still follow the guest's own wake-ups.
set -euo pipefail
BOARD_DIR=$(cd "$(dirname "$0")" && pwd)
REPO_DIR=$(cd "$BOARD_DIR/.." && pwd)
SECONDS_WINDOW=60 NATIVE=1 QEMU=1 DEMO=1 SIM=1 NOCAM=0 SHOTS=60
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) SECONDS_WINDOW="$2"; shift 2 ;;
        --native-only) QEMU=0; shift ;;
        --qemu-only) NATIVE=0; shift ;;
        --demo-only) SIM=0; shift ;;
        --sim-only) DEMO=0; shift ;;
        --no-camera) NOCAM=1; shift ;;
        --shots) SHOTS="$2"; shift 2 ;;
        -h|--help) sed -n '2,22s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
OUT="${CARGO_TARGET_DIR:-$REPO_DIR/target}"
cd "$REPO_DIR"

# The simulator always runs natively (it stands for the camera, not for the Pi).
cargo build --quiet --locked --profile ship -p skylapse-sim --bin camera-sim
SIM_CMD="$OUT/ship/camera-sim --long-poll-ms 30000 --short-poll-ms 30000"

probe() { # label probe-args... -- command...
    local label="$1"; shift
    echo "== $label"
    python3 "$BOARD_DIR/probe.py" footprint --label "$label" --seconds "$SECONDS_WINDOW" \
        --per-thread "$@"
}

measure() { # label command...
    local label="$1"; shift
    local st=0
    if [ "$DEMO" = 1 ]; then
        if "$@" --help 2>&1 | grep -q -- '--demo'; then
            probe "$label, --demo (simulator in-process)" --camera -- \
                "$@" --listen '127.0.0.1:{port}' --data-dir '{datadir}' --demo || st=1
        else
            echo "== $label: this build has no --demo"
        fi
    fi
    if [ "$SIM" = 1 ]; then
        probe "$label, camera-sim process" --sim "$SIM_CMD" -- \
            "$@" --listen '127.0.0.1:{port}' --data-dir '{datadir}' \
            --camera '{camera}' --camera-insecure || st=1
        # Issue 13's idle camera traffic: no client and no session (the client leaves once
        # the camera is connected).
        probe "$label, camera-sim process, no client" --no-client --sim "$SIM_CMD" -- \
            "$@" --listen '127.0.0.1:{port}' --data-dir '{datadir}' \
            --camera '{camera}' --camera-insecure || st=1
        for n in 1 3; do
            echo "== $label, camera-sim process, live view to $n viewer(s)"
            python3 "$BOARD_DIR/probe.py" liveview --label "$label" --viewers "$n" \
                --seconds 20 --settle 2 --sim "$SIM_CMD" -- "$@" --listen '127.0.0.1:{port}' \
                --data-dir '{datadir}' --camera '{camera}' --camera-insecure || st=1
        done
        if [ "$SHOTS" -gt 0 ]; then
            echo "== $label, camera-sim process, a session of $SHOTS x 1 s"
            python3 "$BOARD_DIR/probe.py" session --label "$label" --shots "$SHOTS" \
                --sim "$SIM_CMD" -- "$@" --listen '127.0.0.1:{port}' --data-dir '{datadir}' \
                --camera '{camera}' --camera-insecure || st=1
        fi
    fi
    if [ "$NOCAM" = 1 ]; then
        probe "$label, no camera" -- \
            "$@" --listen '127.0.0.1:{port}' --data-dir '{datadir}' || st=1
    fi
    return $st
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
