#!/usr/bin/env bash
# Build a root-filesystem overlay for a Raspberry Pi SD card:
#   board/make-overlay.sh BOARD [TARGET] [--binary PATH] [--out DIR]
#   -> DIR/skylapse-BOARD-CPU.tar.gz   (default DIR: $CARGO_TARGET_DIR/board/BOARD, else target/board/BOARD)
# Unpack it as root onto the SD card's root partition (see board/README-install.md):
#   sudo tar -xzf skylapse-pi4-aarch64.tar.gz -C /media/$USER/rootfs
# It holds the binary, the systemd units (enabled through their .wants/ links), the access point
# template, the first-boot script, polkit rule, sysusers.d/tmpfiles.d entries and
# /etc/default/skylapse. Only files and skylapse's own directories are archived, so unpacking
# never changes the owner or mode of an existing system directory. Reproducible: sorted
# entries, root:root, mtimes = SOURCE_DATE_EPOCH (last commit), gzip without a name/time.
set -euo pipefail
usage() { sed -n '2,4s/^# \{0,1\}//p' "$0"; }
. "$(dirname "$0")/lib.sh"
parse_args "$@"

CPU=$(target_cpu "$TARGET")
STAGE=$(mktemp -d)
chmod 0755 "$STAGE"
trap 'rm -rf "$STAGE"' EXIT
stage_root "$STAGE"

# Enable the units the way `systemctl enable` would (the overlay is unpacked offline).
mkdir -p "$STAGE/etc/systemd/system/multi-user.target.wants" \
         "$STAGE/etc/systemd/system/sysinit.target.wants"
ln -s /usr/lib/systemd/system/skylapse.service \
    "$STAGE/etc/systemd/system/multi-user.target.wants/skylapse.service"
ln -s /usr/lib/systemd/system/skylapse-firstboot.service \
    "$STAGE/etc/systemd/system/sysinit.target.wants/skylapse-firstboot.service"
clamp_mtimes "$STAGE"

OUT="$OUT_DIR/skylapse-$BOARD-$CPU.tar.gz"
(
    cd "$STAGE"
    { find . \( -type f -o -type l \) -print
      printf '%s\n' ./usr/lib/skylapse ./usr/share/skylapse ./usr/share/doc/skylapse; } \
        | LC_ALL=C sort \
        | tar --no-recursion --null --files-from <(tr '\n' '\0') \
              --owner=0 --group=0 --numeric-owner --mtime="@$(source_date_epoch)" \
              --format=gnu -cf -
) | gzip -9n >"$OUT.tmp"
mv -f "$OUT.tmp" "$OUT"
echo "$OUT"
