# Shared helpers for make-overlay.sh and make-deb.sh (sourced, not run).
# shellcheck shell=bash

BOARD_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BOARD_DIR/.." && pwd)

die() { echo "error: $*" >&2; exit 1; }

# Short architecture names: overlay file names use the CPU, .deb uses Debian's names.
target_cpu() {
    case "$1" in
        aarch64-*) echo aarch64 ;;
        armv7-*) echo armv7 ;;
        x86_64-*) echo x86_64 ;;
        *) die "unsupported target $1" ;;
    esac
}
target_debarch() {
    case "$1" in
        aarch64-*) echo arm64 ;;
        armv7-*) echo armhf ;;
        x86_64-*) echo amd64 ;;
        *) die "unsupported target $1" ;;
    esac
}

package_version() {
    sed -n 's/^version *= *"\(.*\)"/\1/p' "$REPO_DIR/Cargo.toml" | head -n 1
}

# Reproducible timestamps: the last commit's time unless the caller set SOURCE_DATE_EPOCH.
source_date_epoch() {
    if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
        echo "$SOURCE_DATE_EPOCH"
    else
        git -C "$REPO_DIR" log -1 --format=%ct 2>/dev/null || echo 0
    fi
}

# Parse the common arguments: BOARD [TARGET] [--binary PATH] [--out DIR].
# Without --binary the shipping build runs (cargo build --profile ship --target TARGET).
parse_args() {
    BOARD="" TARGET="" BINARY="" OUT_DIR=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --binary) BINARY="$2"; shift 2 ;;
            --out) OUT_DIR="$2"; shift 2 ;;
            -h|--help) usage; exit 0 ;;
            -*) die "unknown option $1" ;;
            *) if [ -z "$BOARD" ]; then BOARD="$1"; elif [ -z "$TARGET" ]; then TARGET="$1";
               else die "unexpected argument $1"; fi; shift ;;
        esac
    done
    [ -n "$BOARD" ] || { usage; exit 2; }
    [ -f "$BOARD_DIR/$BOARD/board.conf" ] || die "unknown board '$BOARD' (see board/*/board.conf)"
    # shellcheck source=/dev/null
    . "$BOARD_DIR/$BOARD/board.conf"
    [ -n "$TARGET" ] || TARGET=${BOARD_TARGETS%% *}
    case " $BOARD_TARGETS " in
        *" $TARGET "*) ;;
        *) die "$BOARD_NAME does not run $TARGET (supported: $BOARD_TARGETS)" ;;
    esac
    if [ -z "$BINARY" ]; then
        (cd "$REPO_DIR" && cargo build --locked --profile ship --target "$TARGET" --bin skylapse) \
            || die "build for $TARGET failed"
        BINARY="${CARGO_TARGET_DIR:-$REPO_DIR/target}/$TARGET/ship/skylapse"
    fi
    [ -x "$BINARY" ] || die "no executable at $BINARY"
    [ -n "$OUT_DIR" ] || OUT_DIR="${CARGO_TARGET_DIR:-$REPO_DIR/target}/board/$BOARD"
    mkdir -p "$OUT_DIR"
    OUT_DIR=$(cd "$OUT_DIR" && pwd)
}

# Install the files every package shares into staging root $1 (modes set explicitly; owners are
# set to root by the archivers).
stage_root() {
    local root="$1" c="$BOARD_DIR/common"
    install -D -m 0755 "$BINARY" "$root/usr/bin/skylapse"
    install -D -m 0644 "$c/skylapse.service" "$root/usr/lib/systemd/system/skylapse.service"
    install -D -m 0644 "$c/skylapse-firstboot.service" \
        "$root/usr/lib/systemd/system/skylapse-firstboot.service"
    install -D -m 0755 "$c/firstboot" "$root/usr/lib/skylapse/firstboot"
    install -D -m 0644 "$c/skylapse-ap.nmconnection.in" \
        "$root/usr/share/skylapse/skylapse-ap.nmconnection.in"
    install -D -m 0644 "$c/50-skylapse.rules" "$root/usr/share/polkit-1/rules.d/50-skylapse.rules"
    install -D -m 0644 "$c/sysusers.conf" "$root/usr/lib/sysusers.d/skylapse.conf"
    install -D -m 0644 "$c/tmpfiles.conf" "$root/usr/lib/tmpfiles.d/skylapse.conf"
    install -D -m 0644 "$BOARD_DIR/$BOARD/default" "$root/etc/default/skylapse"
    install -D -m 0644 "$BOARD_DIR/README-install.md" "$root/usr/share/doc/skylapse/README-install.md"
}

# Clamp every mtime in $1 to the reproducible timestamp.
clamp_mtimes() {
    find "$1" -exec touch -h -d "@$(source_date_epoch)" {} +
}
