#!/usr/bin/env bash
# Shipping binary size per target, and what it is made of.
#
#   board/size-report.sh [--demo | --both] [--no-breakdown] [TARGET...]
#
# For each target (default: aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf) builds the
# `ship` profile as it ships (`--no-default-features`: no built-in camera simulator; `--demo`
# builds the simulator in, `--both` prints both) and prints the stripped size; the shipped one
# is checked against its budget (aarch64: 3 MiB, others: 4 MiB). Then builds `ship-symbols`
# (same code, symbols kept) for the first target in the first configuration and prints the
# section sizes and the biggest contributors per crate and per symbol (nm --size-sort,
# demangled): the idea of `cargo bloat --crates`, without installing anything. Exits 1 when a
# shipped binary is over budget. Needs the cross toolchains (board/ci-cross.sh installs them).
set -euo pipefail
BOARD_DIR=$(cd "$(dirname "$0")" && pwd)
REPO_DIR=$(cd "$BOARD_DIR/.." && pwd)
BREAKDOWN=1 CONFIGS=(ship) TARGETS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-breakdown) BREAKDOWN=0; shift ;;
        --demo) CONFIGS=(demo); shift ;;
        --both) CONFIGS=(ship demo); shift ;;
        -h|--help) sed -n '2,13s/^# \{0,1\}//p' "$0"; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) TARGETS+=("$1"); shift ;;
    esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
OUT="${CARGO_TARGET_DIR:-$REPO_DIR/target}"
cd "$REPO_DIR"

binutils_prefix() {
    case "$1" in
        aarch64-*) echo aarch64-linux-gnu- ;;
        armv7-*) echo arm-linux-gnueabihf- ;;
        *) echo "" ;;
    esac
}

# Cargo feature flags of a configuration: `ship` is what board/ci-cross.sh packages.
features_of() {
    case "$1" in
        ship) echo --no-default-features ;;
        demo) echo "" ;;
    esac
}
# The budget of the shipped binary (issue 13: 3 MiB on aarch64; issue 5: 4 MiB elsewhere).
# board/ci-cross.sh checks the same figures.
budget_mib() {
    case "$1" in
        aarch64-*) echo 3 ;;
        *) echo 4 ;;
    esac
}

over=0
echo "target                          build             stripped size      budget"
for c in "${CONFIGS[@]}"; do
    read -r -a features <<<"$(features_of "$c")"
    for t in "${TARGETS[@]}"; do
        cargo build --quiet --locked --profile ship --target "$t" --bin skylapse "${features[@]}"
        size=$(stat -c %s "$OUT/$t/ship/skylapse")
        mib=$(budget_mib "$t") verdict="-"
        if [ "$c" = ship ]; then
            verdict="ok (${mib} MiB)"
            if [ "$size" -gt $((mib * 1024 * 1024)) ]; then verdict="OVER ${mib} MiB"; over=1; fi
        fi
        label=$([ "$c" = ship ] && echo "no demo (ships)" || echo "with demo")
        awk -v t="$t" -v c="$label" -v s="$size" -v v="$verdict" \
            'BEGIN { printf "%-30s  %-16s %9d B %5.2f MiB  %s\n", t, c, s, s / 1048576, v }'
    done
done
[ "$BREAKDOWN" = 1 ] || exit $over

t=${TARGETS[0]}
read -r -a features <<<"$(features_of "${CONFIGS[0]}")"
cargo build --quiet --locked --profile ship-symbols --target "$t" --bin skylapse "${features[@]}"
bin="$OUT/$t/ship-symbols/skylapse"
p=$(binutils_prefix "$t")
echo
echo "sections of $t ($([ "${CONFIGS[0]}" = ship ] && echo "no demo" || echo "with demo"), ship-symbols: before stripping):"
"${p}size" -A "$bin" | awk '$2 > 4096 && $1 ~ /^\./ && $1 !~ /^\.debug/ { printf "  %-20s %9d B\n", $1, $2 }'
echo
"${p}nm" --size-sort --print-size -C "$bin" | python3 -c '
import re, sys
from collections import Counter

by_crate, symbols, data = Counter(), [], []
for line in sys.stdin:
    parts = line.split(None, 3)
    if len(parts) < 4:
        continue
    size, name = int(parts[1], 16), parts[3].strip()
    if parts[2].lower() in "rd":   # read-only and relocated data (tables, precomputed keys)
        data.append((size, name))
    if parts[2].lower() not in "tw":   # code only from here
        continue
    symbols.append((size, name))
    # Crate = first path segment, looking through "<T as Trait>" and generic wrappers.
    m = re.match(r"[<&*\s]*(?:mut |dyn |const )?([A-Za-z_][A-Za-z0-9_]*)::", name)
    if m:
        crate = m.group(1)
    elif name.startswith("ring_core_"):
        crate = "ring (C/asm)"
    else:
        crate = "[C, libc, compiler-rt]"
    by_crate[crate] += size
total = sum(by_crate.values())
print(f"code by crate (functions, {total} B in all):")
for crate, size in by_crate.most_common(20):
    print(f"  {size:9d} B {100 * size / total:5.1f}%  {crate}")
print()
print("biggest functions:")
for size, name in sorted(symbols, reverse=True)[:20]:
    print(f"  {size:9d} B  {name[:110]}")
print()
print("biggest data objects (the embedded web UI is in .rodata without a symbol):")
for size, name in sorted(data, reverse=True)[:8]:
    print(f"  {size:9d} B  {name[:110]}")
'
exit $over
