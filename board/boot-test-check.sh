#!/bin/bash
# Runs inside the container booted by board/boot-test.sh (as its boot-test.service), once the
# system is up; writes /var/log/boot-test.txt, last line "RESULT: PASS" or "RESULT: FAIL".
set -u
OUT=/var/log/boot-test.txt
: >"$OUT"
fails=0
ok() { echo "ok   $*" >>"$OUT"; }
bad() { echo "FAIL $*" >>"$OUT"; fails=$((fails + 1)); }
check() { # description, command...
    local what="$1"; shift
    if "$@" >>"$OUT.cmd" 2>&1; then ok "$what"; else bad "$what"; tail -5 "$OUT.cmd" | sed 's/^/     /' >>"$OUT"; fi
}
prop() { systemctl show skylapse -p "$1" --value; }
health() { curl -fsS --max-time 2 -H 'Host: localhost' http://127.0.0.1/health; }

# READY=1 (Type=notify: active only after it) and the port answers.
for _ in $(seq 60); do [ "$(systemctl is-active skylapse)" = active ] && break; sleep 0.5; done
check "skylapse active (READY=1 received)" test "$(systemctl is-active skylapse)" = active
check "/health answers on port 80" health

# First boot: the access point profile, private, loaded by NetworkManager.
P=/etc/NetworkManager/system-connections/skylapse-ap.nmconnection
check "first boot wrote the AP profile" test -f "$P"
check "AP profile mode 0600 root:root" test "$(stat -c '%a %U:%G' "$P")" = "600 root:root"
check "AP profile is an access point" grep -qx 'mode=ap' "$P"
for _ in $(seq 20); do nmcli -t -f NAME connection show 2>/dev/null | grep -qx skylapse-ap && break; sleep 0.5; done
check "NetworkManager loaded skylapse-ap" sh -c "nmcli -t -f NAME connection show | grep -qx skylapse-ap"
check "first boot journal has no Broken pipe" sh -c "! journalctl -b -u skylapse-firstboot -o cat | grep -q 'Broken pipe'"

# The sandbox as systemd applied it.
pid=$(prop MainPID)
check "runs as user skylapse" test "$(ps -o user= -p "$pid" | tr -d ' ')" = skylapse
check "NoNewPrivileges" test "$(prop NoNewPrivileges)" = yes
check "ProtectSystem=strict" test "$(prop ProtectSystem)" = strict
check "capabilities: bind 80 and set the clock only" sh -c \
    "grep CapEff /proc/$pid/status | awk '{print \$2}' | grep -qx 0000000002000400"
check "syscall filter in force (Seccomp: 2)" sh -c "grep -q '^Seccomp:[[:space:]]*2' /proc/$pid/status"
check "MemoryMax=96M" test "$(prop MemoryMax)" = 100663296
score=$(systemd-analyze security skylapse 2>/dev/null | sed -n 's/.*Overall exposure level for skylapse.service: \([0-9.]*\).*/\1/p')
echo "     systemd-analyze security: ${score:-?}" >>"$OUT"
check "systemd-analyze security exposure <= 3.0" awk -v s="${score:-99}" 'BEGIN { exit !(s <= 3.0) }'
check "data dir owned by skylapse" test "$(stat -c %U /var/lib/skylapse)" = skylapse

# Demo photos through the full syscall filter.
for _ in $(seq 60); do
    curl -fsS --max-time 2 -H 'Host: localhost' http://127.0.0.1/api/camera/status 2>/dev/null | grep -q '"connected":true' && break
    sleep 0.5
done
photos=0
for _ in 1 2 3; do
    if curl -fsS --max-time 20 -H 'Host: localhost' -H 'Content-Type: application/json' \
        -d '{}' http://127.0.0.1/api/camera/photo >>"$OUT.cmd" 2>&1; then photos=$((photos + 1)); fi
    sleep 1.5
done
check "3 demo photos under the syscall filter ($photos ok)" test "$photos" = 3
check "no SIGSYS/seccomp kill" sh -c "! journalctl -b -u skylapse -o cat | grep -qi 'SIGSYS\|seccomp'"

# Priorities: a foreign Host makes a warning; it is found at -p warning, info lines are not.
curl -s -o /dev/null -H 'Host: evil.example' http://127.0.0.1/health || true
sleep 1
check "warnings at priority warning" sh -c "journalctl -b -u skylapse -p warning -o cat | grep -q 'refused a request'"
check "info lines not at warning" sh -c "! journalctl -b -u skylapse -p warning -o cat | grep -q 'listening on'"
check "info lines at info" sh -c "journalctl -b -u skylapse -p info -o cat | grep -q 'listening on'"

# Watchdog: a frozen service is restarted (WatchdogSec=30s).
before=$(prop NRestarts)
kill -STOP "$pid"
for _ in $(seq 90); do [ "$(prop NRestarts)" != "$before" ] && break; sleep 0.5; done
for _ in $(seq 60); do [ "$(systemctl is-active skylapse)" = active ] && break; sleep 0.5; done
check "watchdog restarted a frozen service" test "$(prop NRestarts)" != "$before"
check "answers again after the restart" health

journalctl -b -u skylapse -p warning -o short-monotonic >>"$OUT" 2>&1
if [ "$fails" = 0 ]; then echo "RESULT: PASS" >>"$OUT"; else echo "RESULT: FAIL ($fails)" >>"$OUT"; fi
rm -f "$OUT.cmd"
