#!/usr/bin/env bash
# Build a Debian package for a Raspberry Pi board:
#   board/make-deb.sh BOARD [TARGET] [--binary PATH] [--out DIR]
#   -> DIR/skylapse_VERSION_DEBARCH.deb   (default DIR: $CARGO_TARGET_DIR/board/BOARD, else target/board/BOARD)
# Install on the Pi with: sudo apt install ./skylapse_*.deb
# Same files as make-overlay.sh. postinst creates the user, enables the units and, on a running
# system only, writes the access point profile (in an image build / chroot it is left to the
# first boot, so no two SD cards ever share a passphrase). Reproducible: files owned by root,
# mtimes = SOURCE_DATE_EPOCH (last commit), which dpkg-deb also uses for the archive members.
set -euo pipefail
usage() { sed -n '2,4s/^# \{0,1\}//p' "$0"; }
. "$(dirname "$0")/lib.sh"
parse_args "$@"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (apt-get install dpkg)"

VERSION=$(package_version)
DEBARCH=$(target_debarch "$TARGET")
STAGE=$(mktemp -d)
chmod 0755 "$STAGE"
trap 'rm -rf "$STAGE"' EXIT
stage_root "$STAGE"

# Lowest glibc the binary needs, from its versioned symbol references.
glibc_min() {
    local objdump=objdump
    case "$TARGET" in
        aarch64-*) command -v aarch64-linux-gnu-objdump >/dev/null && objdump=aarch64-linux-gnu-objdump ;;
        armv7-*) command -v arm-linux-gnueabihf-objdump >/dev/null && objdump=arm-linux-gnueabihf-objdump ;;
    esac
    {
        "$objdump" -T "$BINARY" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//'
        # Packed relative relocations (DT_RELR, see build.rs) need glibc 2.36 to load.
        if "$objdump" -p "$BINARY" 2>/dev/null | grep -q 'GLIBC_ABI_DT_RELR'; then echo 2.36; fi
    } | sort -t. -k1,1n -k2,2n -k3,3n | tail -n 1
}
LIBC=$(glibc_min || true)
DEPENDS="network-manager, dnsmasq-base, iw, polkitd | policykit-1, systemd (>= 247)"
[ -z "$LIBC" ] || DEPENDS="libc6 (>= $LIBC), $DEPENDS"

mkdir -p "$STAGE/DEBIAN"
cat >"$STAGE/DEBIAN/control" <<CONTROL
Package: skylapse
Version: $VERSION
Architecture: $DEBARCH
Maintainer: skylapse maintainers <skylapse@users.noreply.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
Depends: $DEPENDS
Section: graphics
Priority: optional
Homepage: https://github.com/skylapse/skylapse
Description: Canon camera field controller for a Raspberry Pi ($BOARD_NAME)
 skylapse runs drift-free timelapse sessions on a Canon camera over its Wi-Fi
 control API (CCAPI), keeps the camera's and the Pi's clocks in sync with your
 phone, and serves a mobile web page. The Pi opens its own Wi-Fi network for
 the camera and the phone; SSID and passphrase are made on first start.
CONTROL
echo /etc/default/skylapse >"$STAGE/DEBIAN/conffiles"

cat >"$STAGE/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    systemd-sysusers skylapse.conf
    systemd-tmpfiles --create skylapse.conf || true
    systemctl enable skylapse-firstboot.service skylapse.service >/dev/null 2>&1 || true
    if [ -d /run/systemd/system ]; then
        # Live system: make the access point profile now (once) and start the service.
        /usr/lib/skylapse/firstboot
        systemctl daemon-reload
        systemctl restart skylapse.service || true
    fi
fi
exit 0
SCRIPT
cat >"$STAGE/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop skylapse.service || true
fi
exit 0
SCRIPT
cat >"$STAGE/DEBIAN/postrm" <<'SCRIPT'
#!/bin/sh
set -e
case "$1" in
    remove)
        systemctl disable skylapse.service skylapse-firstboot.service >/dev/null 2>&1 || true
        [ ! -d /run/systemd/system ] || systemctl daemon-reload || true
        ;;
    purge)
        # The generated access point profile and the photographer's data go with a purge.
        # The skylapse user stays (Debian policy: its uid may still own files elsewhere).
        rm -f /etc/NetworkManager/system-connections/skylapse-ap.nmconnection
        rm -rf /var/lib/skylapse /etc/skylapse
        ;;
esac
exit 0
SCRIPT
chmod 0755 "$STAGE/DEBIAN/postinst" "$STAGE/DEBIAN/prerm" "$STAGE/DEBIAN/postrm"
chmod 0644 "$STAGE/DEBIAN/control" "$STAGE/DEBIAN/conffiles"
clamp_mtimes "$STAGE"

OUT="$OUT_DIR/skylapse_${VERSION}_${DEBARCH}.deb"
SOURCE_DATE_EPOCH=$(source_date_epoch) \
    dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$OUT.tmp" >/dev/null
mv -f "$OUT.tmp" "$OUT"
echo "$OUT"
