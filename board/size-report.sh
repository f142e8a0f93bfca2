#!/usr/bin/env bash
# Shipping binary size per target, and what it is made of.
#
#   board/size-report.sh [--no-breakdown] [TARGET...]
#
# For each target (default: aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf) builds the
# `ship` profile and prints the stripped size against the 4 MiB budget. Then builds the
# `ship-symbols` profile (same code, symbols kept) for the first target and prints the section
# sizes and the biggest contributors per crate and per symbol (nm --size-sort, demangled): the
# same idea as `cargo bloat --crates`, without installing anything. Exits 1 when a binary is
# over budget. Needs the cross toolchains (board/ci-cross.sh installs them).
set -euo pipefail
BOARD_DIR=$(cd "$(dirname "$0")" && pwd)
REPO_DIR=$(cd "$BOARD_DIR/.." && pwd)
BUDGET=$((4 * 1024 * 1024))
BREAKDOWN=1 TARGETS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-breakdown) BREAKDOWN=0; shift ;;
        -h|--help) sed -n '2,11s/^# \{0,1\}//p' "$0"; exit 0 ;;
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

over=0
echo "target                          stripped size      budget"
for t in "${TARGETS[@]}"; do
    cargo build --quiet --locked --profile ship --target "$t" --bin skylapse
    size=$(stat -c %s "$OUT/$t/ship/skylapse")
    verdict=ok
    if [ "$size" -gt "$BUDGET" ]; then verdict="OVER 4 MiB"; over=1; fi
    awk -v t="$t" -v s="$size" -v v="$verdict" \
        'BEGIN { printf "%-30s %9d B %6.2f MiB  %s\n", t, s, s / 1048576, v }'
done
[ "$BREAKDOWN" = 1 ] || exit $over

t=${TARGETS[0]}
cargo build --quiet --locked --profile ship-symbols --target "$t" --bin skylapse
bin="$OUT/$t/ship-symbols/skylapse"
p=$(binutils_prefix "$t")
echo
echo "sections of $t (ship, before stripping):"
"${p}size" -A "$bin" | awk '$2 > 4096 && $1 ~ /^\./ && $1 !~ /^\.debug/ { printf "  %-20s %9d B\n", $1, $2 }'
echo
"${p}nm" --size-sort --print-size -C "$bin" | python3 -c '
import re, sys
from collections import Counter

by_crate, symbols = Counter(), []
for line in sys.stdin:
    parts = line.split(None, 3)
    if len(parts) < 4 or parts[2].lower() not in "tw":   # code only
        continue
    size, name = int(parts[1], 16), parts[3].strip()
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
'
exit $over
