#!/usr/bin/env python3
"""Start a skylapse binary, check it and measure it from the outside (standard library only).

  probe.py smoke     [--timeout S] -- CMD ...   start, 200 from /health, open /ws, read welcome
  probe.py footprint [--seconds N] -- CMD ...   the above, then idle RSS and context switches/s
                                                 with one WebSocket client connected

CMD may use {port} and {datadir}; they are replaced by a free loopback port and a fresh
temporary directory. CMD can be a qemu-user command line: the figures are then those of the
emulator process that runs the guest binary. Used by board/ci-cross.sh and board/footprint.sh.
Exit status 0 only when every check passed.
"""

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http_get(port, path, timeout=2.0):
    """One HTTP/1.1 GET; returns (status, body bytes)."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body


def wait_health(proc, port, timeout):
    """Poll /health until 200; returns seconds since `t0` stored on proc."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"FAIL: the service exited with status {proc.returncode} "
                             f"before /health answered")
        try:
            status, body = http_get(port, "/health", timeout=1.0)
            if status == 200:
                return time.monotonic() - proc.t0, body
            last = f"status {status}"
        except (OSError, ValueError, IndexError) as e:
            last = str(e)
        time.sleep(0.002)  # a poll loop in a measuring script, not in a test
    raise SystemExit(f"FAIL: no 200 from /health within {timeout} s ({last})")


class WsClient:
    """Minimal RFC 6455 client: handshake, masked sends, answers pings in a reader thread."""

    def __init__(self, port, timeout):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (f"GET /ws HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
             f"Sec-WebSocket-Version: 13\r\nOrigin: http://{HOST}:{port}\r\n\r\n").encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise SystemExit("FAIL: /ws closed during the handshake")
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise SystemExit(f"FAIL: /ws upgrade refused: {head.splitlines()[0]!r}")
        self.messages = []
        self.closed = None
        self.lock = threading.Lock()

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        with self.lock:
            self.sock.sendall(head + mask + masked)

    def recv_frame(self):
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._read(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._read(8))
        mask = self._read(4) if b1 & 0x80 else None
        payload = self._read(n)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return b0 & 0x0F, payload

    def recv_text(self):
        """Next text message (answering pings meanwhile)."""
        while True:
            op, payload = self.recv_frame()
            if op == 0x1:
                return payload.decode()
            if op == 0x9:
                self.send(0xA, payload)
            elif op == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise SystemExit(f"FAIL: server closed the WebSocket (code {code})")

    def keep_reading(self):
        """Background: stay a well-behaved idle client (pong pings, collect messages)."""
        def run():
            try:
                self.sock.settimeout(None)
                while True:
                    self.messages.append(self.recv_text())
            except (EOFError, OSError, SystemExit) as e:
                self.closed = str(e) or "EOF"
        threading.Thread(target=run, daemon=True).start()


def start(cmd_template):
    port = free_port()
    datadir = tempfile.mkdtemp(prefix="skylapse-probe-")
    cmd = [a.replace("{port}", str(port)).replace("{datadir}", datadir) for a in cmd_template]
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "warn")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL)
    proc.t0 = t0
    proc.datadir = datadir
    return proc, port


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    shutil.rmtree(proc.datadir, ignore_errors=True)


def smoke(proc, port, timeout):
    secs, body = wait_health(proc, port, timeout)
    t_ws = time.monotonic()
    ws = WsClient(port, timeout)
    text = ws.recv_text()
    welcome_ms = (time.monotonic() - t_ws) * 1000
    try:
        msg = json.loads(text)
    except ValueError:
        raise SystemExit(f"FAIL: first WebSocket message is not JSON: {text[:200]!r}")
    if msg.get("type") != "welcome":
        raise SystemExit(f"FAIL: first WebSocket message is {msg.get('type')!r}, not 'welcome'")
    data = msg.get("data", msg)
    print(f"ok: /health 200 after {secs * 1000:.0f} ms ({body[:80].decode(errors='replace')}); "
          f"welcome in {welcome_ms:.1f} ms (version {data.get('version')!r})")
    return secs, ws


def proc_tree(pid):
    """pid and its descendants (a qemu wrapper, or a shell, may sit in between)."""
    pids, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            for task in os.listdir(f"/proc/{parent}/task"):
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    kids = [int(x) for x in f.read().split()]
                pids += kids
                frontier += kids
        except OSError:
            pass
    return pids


def ctx_switches(pids):
    total = 0
    for pid in pids:
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/status") as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                            total += int(line.split()[1])
        except OSError:
            pass
    return total


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("mode", choices=["smoke", "footprint"])
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for /health")
    ap.add_argument("--seconds", type=float, default=60.0, help="idle window (footprint)")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds before the window")
    ap.add_argument("--label", default="", help="prefix for the figures")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = ap.parse_args(argv[:split])
    cmd = argv[split + 1:]
    if not cmd:
        ap.error("missing command after --")

    proc, port = start(cmd)
    try:
        secs, ws = smoke(proc, port, args.timeout)
        if args.mode == "smoke":
            return 0
        ws.keep_reading()
        time.sleep(args.settle)
        pids = proc_tree(proc.pid)
        c0, t0 = ctx_switches(pids), time.monotonic()
        time.sleep(args.seconds)
        pids = proc_tree(proc.pid)
        c1, t1 = ctx_switches(pids), time.monotonic()
        rss = rss_kib(pids)
        if proc.poll() is not None:
            raise SystemExit(f"FAIL: the service exited ({proc.returncode}) during the window")
        if ws.closed:
            raise SystemExit(f"FAIL: the WebSocket closed during the window: {ws.closed}")
        label = f"{args.label}: " if args.label else ""
        print(f"{label}start to /health 200: {secs * 1000:.1f} ms")
        print(f"{label}idle RSS with one WebSocket client: {rss / 1024:.2f} MiB ({rss} KiB)")
        print(f"{label}idle context switches: {(c1 - c0) / (t1 - t0):.2f}/s over {t1 - t0:.0f} s "
              f"({c1 - c0} switches, {len(ws.messages)} messages received)")
        return 0
    finally:
        stop(proc)


if __name__ == "__main__":
    sys.exit(main())
