#!/usr/bin/env bash
# Boot test: install the .deb into a Debian root and boot it under a real systemd
# (systemd-nspawn, loopback only), then check what only a booted system shows:
#   board/boot-test.sh [--binary PATH] [--work DIR] [--suite bookworm] [--mirror URL] [--keep]
#
# Steps: debootstrap a Debian root once (cached in WORK/base.tar, ~300 MB; the only step that
# needs the network), build an amd64 .deb (board "pc") from PATH (default: cargo build
# --release), unpack a fresh copy of the root, dpkg -i the package, add a check unit, and boot
# with --private-network (the container sees only its own loopback). The check unit, run once
# the system is up, verifies inside the booted system:
#   - the first-boot unit wrote the access point profile (0600, root, loaded by NetworkManager)
#     and its journal has no "Broken pipe";
#   - skylapse is active (Type=notify: READY=1 was received) and answers /health on port 80
#     as the unprivileged user with only CAP_NET_BIND_SERVICE and CAP_SYS_TIME;
#   - its sandbox as systemd applied it (User, NoNewPrivileges, ProtectSystem=strict, the
#     syscall filter, MemoryMax) and `systemd-analyze security` scores it;
#   - in --demo it takes photos through the full syscall filter (the simulator runs in the
#     service's own process, on loopback);
#   - warnings reach the journal at priority warning (journalctl -p warning), not info;
#   - a frozen service (SIGSTOP) is restarted by the watchdog.
# Results are written to WORK/result.txt; the script exits 0 only if every check passed.
# Needs root, debootstrap and systemd-nspawn (apt-get install debootstrap systemd-container).
set -euo pipefail
usage() { sed -n '2,4s/^# \{0,1\}//p' "$0"; }
BOARD_DIR=$(cd "$(dirname "$0")" && pwd)
REPO_DIR=$(cd "$BOARD_DIR/.." && pwd)
die() { echo "boot-test: $*" >&2; exit 1; }
say() { echo "boot-test: $*" >&2; }

BINARY="" WORK="${CARGO_TARGET_DIR:-$REPO_DIR/target}/boot-test" SUITE=bookworm
MIRROR=http://deb.debian.org/debian KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) BINARY="$2"; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        --suite) SUITE="$2"; shift 2 ;;
        --mirror) MIRROR="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument $1" ;;
    esac
done
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, systemd-nspawn)"
command -v debootstrap >/dev/null || die "debootstrap missing (apt-get install debootstrap)"
command -v systemd-nspawn >/dev/null || die "systemd-nspawn missing (apt-get install systemd-container)"
[ "$(uname -m)" = x86_64 ] || die "runs on x86-64 (the root is amd64)"
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
start=$(date +%s)

# 1. The Debian root, once.
PACKAGES=systemd,systemd-sysv,dbus,network-manager,dnsmasq-base,iw,polkitd,curl,ca-certificates
if [ ! -f "$WORK/base.tar" ]; then
    say "debootstrap $SUITE (cached in $WORK/base.tar)"
    rm -rf "$WORK/base"
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$WORK/base" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
    tar -C "$WORK/base" -cf "$WORK/base.tar.tmp" .
    mv "$WORK/base.tar.tmp" "$WORK/base.tar"
    rm -rf "$WORK/base"
fi
t_root=$(date +%s)

# 2. The package.
if [ -z "$BINARY" ]; then
    (cd "$REPO_DIR" && cargo build --locked --release --bin skylapse) || die "build failed"
    BINARY="${CARGO_TARGET_DIR:-$REPO_DIR/target}/release/skylapse"
fi
"$BOARD_DIR/make-deb.sh" pc x86_64-unknown-linux-gnu --binary "$BINARY" --out "$WORK/deb" >/dev/null
DEB=$(ls "$WORK"/deb/skylapse_*_amd64.deb)

# 3. A fresh root with the package installed (as an image build would: no first boot yet).
ROOT="$WORK/root"
rm -rf "$ROOT"
mkdir -p "$ROOT"
tar -C "$ROOT" -xf "$WORK/base.tar"
cp "$DEB" "$ROOT/tmp/skylapse.deb"
systemd-nspawn -q -D "$ROOT" --private-network --register=no dpkg -i /tmp/skylapse.deb \
    >"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log" >&2; die "dpkg -i failed"; }
rm "$ROOT/tmp/skylapse.deb"
echo skylapse-boot >"$ROOT/etc/hostname"
# --demo: the simulated camera, so photos go through the real syscall filter.
sed -i 's/^SKYLAPSE_ARGS=.*/SKYLAPSE_ARGS=--demo/' "$ROOT/etc/default/skylapse"
install -m 0755 "$BOARD_DIR/boot-test-check.sh" "$ROOT/usr/local/sbin/boot-test-check"
cat >"$ROOT/etc/systemd/system/boot-test.service" <<'EOF'
[Unit]
Description=skylapse boot test checks
After=skylapse.service NetworkManager.service multi-user.target
Wants=skylapse.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/boot-test-check
ExecStopPost=/usr/bin/systemctl --no-block poweroff
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/boot-test.service "$ROOT/etc/systemd/system/multi-user.target.wants/boot-test.service"

# 4. Boot; the check unit powers the container off when done.
say "booting (systemd-nspawn --boot --private-network)"
t_boot=$(date +%s)
rm -f "$WORK/result.txt"
timeout 300 systemd-nspawn -q -D "$ROOT" --boot --private-network --register=no \
    --machine=skylapse-boot >"$WORK/console.log" 2>&1 || say "nspawn exited with $? (see $WORK/console.log)"
t_end=$(date +%s)
cp "$ROOT/var/log/boot-test.txt" "$WORK/result.txt" 2>/dev/null || die "no result: the check unit did not run (see $WORK/console.log)"
cat "$WORK/result.txt"
echo "times: root $((t_root - start)) s (cached after the first run), package+install $((t_boot - t_root)) s, boot+checks $((t_end - t_boot)) s, total $((t_end - start)) s" \
    | tee -a "$WORK/result.txt"
[ "$KEEP" = 1 ] || rm -rf "$ROOT"
grep -q '^RESULT: PASS' "$WORK/result.txt"
