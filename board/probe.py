#!/usr/bin/env python3
"""Start a skylapse binary, check it and measure it from the outside (standard library only).

  probe.py smoke     [--timeout S] -- CMD ...   start, 200 from /health, open /ws, read welcome
  probe.py footprint [--seconds N] [--camera] [--sim SIMCMD] [--no-client] -- CMD ...
                                                 the above, then idle RSS and context switches/s
                                                 with one WebSocket client connected (with --sim:
                                                 also camera requests/min and connections);
                                                 --no-client: the client leaves before the window
  probe.py liveview  [--viewers N] [--seconds S] --sim SIMCMD -- CMD ...
                                                 N viewers of the live-view stream for S seconds:
                                                 frames/s per viewer, RSS growth, CPU per frame,
                                                 camera requests/s, live view off after the last
  probe.py session   [--shots N] [--interval S] --sim SIMCMD -- CMD ...
                                                 a session of N shots (default 60 x 1 s) with one
                                                 WebSocket client: context switches per shot,
                                                 camera requests per shot

CMD may use {port}, {datadir} and {camera}; they are replaced by a free loopback port, a fresh
temporary directory and the CCAPI URL of the camera simulator started with --sim (a command
line, e.g. "target/ship/camera-sim --long-poll-ms 30000": its `access_url` line is read). With
--camera (implied by --sim) the idle window starts only once the WebSocket client has seen
`camera.connected: true`. CMD can be a qemu-user command line: the figures are then those of
the emulator process that runs the guest binary. Context switches are summed over every thread
(/proc/PID/task/*/status, voluntary + nonvoluntary) and also listed per thread, busiest first.
A thread that starts and exits inside the window is not seen (skylapse samples power on a
short-lived thread every 30 s: a few switches per sample, ~0.1/s, missing from the sum).
The simulator process is not counted in the service's figures (its own are printed apart).
Used by board/ci-cross.sh and board/footprint.sh. Exit status 0 only when every check passed.
"""

import argparse
import base64
import json
import os
import shlex
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


def start_sim(sim_cmd, timeout):
    """Starts the camera simulator process; returns (proc, CCAPI access URL). The address of
    its control plane (the `control` line, printed after `access_url`) lands in proc.control."""
    proc = subprocess.Popen(shlex.split(sim_cmd), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"FAIL: the camera simulator exited ({proc.wait()}) before "
                             "printing its address")
        if line.startswith("access_url"):
            url = line.split(None, 1)[1].strip()
            proc.control = None
            while True:
                line = proc.stdout.readline()
                if not line or line.startswith("control"):
                    break
            if line.startswith("control"):
                addr = line.split(None, 1)[1].strip()
                proc.control = None if addr == "off" else addr
            # Keep draining its stdout so it never blocks on a full pipe.
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, url
    raise SystemExit("FAIL: the camera simulator printed no access_url")


def start(cmd_template, camera=""):
    port = free_port()
    datadir = tempfile.mkdtemp(prefix="skylapse-probe-")
    cmd = [a.replace("{port}", str(port)).replace("{datadir}", datadir)
           .replace("{camera}", camera) for a in cmd_template]
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "warn")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL)
    proc.t0 = t0
    proc.datadir = datadir
    return proc, port


def stop(proc):
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if getattr(proc, "datadir", None):
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
    return secs, ws, msg


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


def task_switches(pids):
    """{(pid, tid): (thread name, voluntary + nonvoluntary context switches)}"""
    out = {}
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                n, name = 0, "?"
                with open(f"/proc/{pid}/task/{task}/status") as f:
                    for line in f:
                        if line.startswith("Name:"):
                            name = line.split(None, 1)[1].strip()
                        elif line.startswith(("voluntary_ctxt_switches",
                                              "nonvoluntary_ctxt_switches")):
                            n += int(line.split()[1])
                out[(pid, int(task))] = (name, n)
            except OSError:
                pass
    return out


def voluntary_switches(pids):
    """Voluntary context switches summed over every thread: the process's own wake-ups,
    without the preemptions a loaded machine adds (nonvoluntary)."""
    n = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches"):
                            n += int(line.split()[1])
            except OSError:
                pass
    return n


def ctx_switches(pids):
    return sum(n for _, n in task_switches(pids).values())


def per_task_report(before, after, secs, label):
    """Per-thread context switches/s over the window, busiest first (threads that came or
    went during the window are counted from 0 / up to their last reading)."""
    rows = []
    for key, (name, n1) in after.items():
        n0 = before.get(key, (name, 0))[1]
        rows.append(((n1 - n0) / secs, name, key[1]))
    for key, (name, n0) in before.items():
        if key not in after:
            rows.append((0.0, name + " (exited)", key[1]))
    rows.sort(reverse=True)
    print(f"{label}per thread (context switches/s): " + ", ".join(
        f"{name}[{tid}] {rate:.2f}" for rate, name, tid in rows))


def wait_camera_connected(ws, welcome, timeout):
    """True once the client has seen camera.connected (welcome or a status_update)."""
    def connected(msg):
        data = msg.get("data", msg)
        cam = data.get("camera") or msg.get("camera") or {}
        return isinstance(cam, dict) and cam.get("connected") is True
    if connected(welcome):
        return True
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        msgs = ws.messages[seen:]
        seen += len(msgs)
        for text in msgs:
            try:
                if connected(json.loads(text)):
                    return True
            except ValueError:
                pass
        if ws.closed:
            return False
        time.sleep(0.05)  # polling a list filled by the reader thread
    return False


def control_get(sim, path):
    """GET `path` from the simulator's control plane; the JSON body."""
    host, port = sim.control.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as c:
        c.sendall(f"GET {path} HTTP/1.1\r\nHost: {sim.control}\r\n"
                  "Connection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data.partition(b"\r\n\r\n")[2])


def sim_requests(sim, since=0):
    """The simulator's request log after sequence number `since` (its control plane)."""
    if sim is None or not getattr(sim, "control", None):
        return []
    # The control plane's own requests (these) are logged too: only the camera's count.
    return [r for r in control_get(sim, f"/_sim/requests?since={since}").get("requests", [])
            if not r.get("path", "").startswith("/_sim")]


def last_seq(reqs, default=0):
    return max((r.get("seq", 0) for r in reqs), default=default)


def camera_traffic(reqs, secs):
    """'N requests/min over M connections (paths…)' for a window of the request log."""
    peers = {r.get("peer") for r in reqs}
    paths = {}
    for r in reqs:
        key = f"{r.get('method')} {r.get('path', '').split('?')[0].replace('/ccapi/', '')}"
        paths[key] = paths.get(key, 0) + 1
    top = ", ".join(f"{k} {v}" for k, v in sorted(paths.items(), key=lambda kv: -kv[1])[:6])
    return (f"{len(reqs) * 60 / secs:.1f} camera requests/min over {len(peers)} connection(s) "
            f"({top})")


def run_session(ws, proc, sim, shots, interval, timeout):
    """Starts a session of `shots` shots over the WebSocket and waits for its end; returns
    (seconds, context switches of the service, requests the camera saw, end event)."""
    seen = len(ws.messages)
    seq0 = last_seq(sim_requests(sim))
    pids = proc_tree(proc.pid)
    b0, t0 = task_switches(pids), time.monotonic()
    v0 = voluntary_switches(pids)
    msg = {"type": "start_intervalometer", "requestId": "probe-1",
           "data": {"interval": interval, "stopCondition": "stop-after", "shots": shots,
                    "title": "probe"}}
    ws.send(0x1, json.dumps(msg).encode())
    deadline = t0 + shots * interval + timeout
    end = None
    while end is None and time.monotonic() < deadline:
        msgs = ws.messages[seen:]
        seen += len(msgs)
        for text in msgs:
            try:
                m = json.loads(text)
            except ValueError:
                continue
            if m.get("type") == "error" and m.get("requestId") == "probe-1":
                raise SystemExit(f"FAIL: start_intervalometer refused: {text[:300]}")
            kind = m.get("eventType") or m.get("type")
            if kind in ("session_completed", "session_stopped", "session_error"):
                end = m
        if ws.closed:
            raise SystemExit(f"FAIL: the WebSocket closed during the session: {ws.closed}")
        time.sleep(0.05)  # polling a list filled by the reader thread
    if end is None:
        raise SystemExit("FAIL: the session did not end in time")
    b1, t1 = task_switches(proc_tree(proc.pid)), time.monotonic()
    run_session.voluntary = voluntary_switches(proc_tree(proc.pid)) - v0
    reqs = [r for r in sim_requests(sim, seq0) if r.get("seq", 0) > seq0]
    return t1 - t0, (b0, b1), reqs, end


def cpu_ticks(pid):
    """utime + stime of a process (clock ticks), every thread."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def sim_state(sim):
    return control_get(sim, "/_sim/state")


class StreamViewer:
    """Reads GET /api/camera/liveview/stream in a thread, counting JPEG parts."""

    def __init__(self, port):
        self.frames, self.bytes, self.error = 0, 0, None
        self.sock = socket.create_connection((HOST, port), timeout=30)
        self.sock.sendall(f"GET /api/camera/liveview/stream?size=medium HTTP/1.1\r\n"
                          f"Host: {HOST}:{port}\r\n\r\n".encode())
        self.stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        f = self.sock.makefile("rb")
        try:
            status = f.readline()
            if b" 200 " not in status:
                self.error = status.decode(errors="replace").strip()
                return
            while f.readline() not in (b"\r\n", b""):
                pass
            while not self.stop:
                length = None
                while True:
                    line = f.readline()
                    if not line:
                        return
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                    if line == b"\r\n" and length is not None:
                        break
                f.read(length + 2)
                self.frames += 1
                self.bytes += length
        except (OSError, ValueError) as e:
            self.error = self.error or str(e)

    def close(self):
        self.stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def run_liveview(proc, port, sim, viewers, secs, label):
    pids = proc_tree(proc.pid)
    rss0, cpu0 = rss_kib(pids), cpu_ticks(proc.pid)
    seq0 = last_seq(sim_requests(sim))
    vs = [StreamViewer(port) for _ in range(viewers)]
    t0 = time.monotonic()
    peak = rss0
    while time.monotonic() - t0 < secs:
        time.sleep(0.2)  # sampling RSS while the viewers read
        peak = max(peak, rss_kib(pids))
    t1 = time.monotonic()
    cpu1 = cpu_ticks(proc.pid)
    reqs = [r for r in sim_requests(sim, seq0) if r.get("seq", 0) > seq0]
    _, body = http_get(port, "/api/camera/liveview/status")
    lv = json.loads(body)
    lv = lv.get("data", lv)
    # What the viewers saw, before closing them (a closed socket reads as an error).
    frames = [v.frames for v in vs]
    errors = [v.error for v in vs if v.error]
    for v in vs:
        v.close()
    closed = time.monotonic()
    off_after = None
    while time.monotonic() - closed < 30:
        if (sim_state(sim).get("liveview") or {}).get("liveviewsize") == "off":
            off_after = time.monotonic() - closed
            break
        time.sleep(0.1)  # polling the simulator's state
    if errors or min(frames) == 0:
        raise SystemExit(f"FAIL: a viewer got no frames: {frames} {errors}")
    hz = os.sysconf("SC_CLK_TCK")
    total = sum(frames)
    distinct = max(frames)
    flips = sum(1 for r in reqs if r.get("path", "").endswith("/liveview/flip"))
    kb = sum(v.bytes for v in vs) / max(1, total) / 1024
    print(f"{label}{viewers} viewer(s) for {t1 - t0:.0f} s: "
          + ", ".join(f"{n / (t1 - t0):.1f}" for n in frames)
          + f" frames/s (mean frame {kb:.0f} KiB)")
    print(f"{label}RSS growth with {viewers} viewer(s): {(peak - rss0) / 1024:.2f} MiB "
          f"({rss0} → peak {peak} KiB)")
    print(f"{label}CPU per relayed frame: {(cpu1 - cpu0) / hz / max(1, distinct) * 1000:.2f} ms "
          f"({(cpu1 - cpu0) / hz:.2f} s CPU for {distinct} camera frames to {viewers} viewer(s))")
    print(f"{label}relay's added latency per frame (camera frame received → written to the "
          f"viewer's socket): p50 {lv.get('relayLatencyP50Ms')} ms, "
          f"p99 {lv.get('relayLatencyP99Ms')} ms")
    print(f"{label}camera requests while streaming: {len(reqs) / (t1 - t0):.1f}/s "
          f"({flips} flips; " + camera_traffic(reqs, t1 - t0) + ")")
    print(f"{label}live view off on the camera "
          + (f"{off_after:.1f} s after the last viewer left" if off_after is not None
             else "NOT within 30 s of the last viewer leaving"))
    return 0 if off_after is not None and off_after <= 10 else 1


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
    ap.add_argument("mode", choices=["smoke", "footprint", "session", "liveview"])
    ap.add_argument("--viewers", type=int, default=1, help="liveview: number of viewers")
    ap.add_argument("--shots", type=int, default=60, help="session: number of shots")
    ap.add_argument("--interval", type=float, default=1.0, help="session: interval (s)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for /health")
    ap.add_argument("--seconds", type=float, default=60.0, help="idle window (footprint)")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds before the window")
    ap.add_argument("--label", default="", help="prefix for the figures")
    ap.add_argument("--camera", action="store_true",
                    help="wait for camera.connected before the window (fail if it never is)")
    ap.add_argument("--sim", default=None,
                    help="camera simulator command line, started first; {camera} in CMD "
                         "becomes its CCAPI URL")
    ap.add_argument("--no-client", action="store_true",
                    help="footprint: close the WebSocket client (once the camera is connected) "
                         "before the window: idle with nobody watching")
    ap.add_argument("--per-thread", action="store_true",
                    help="also list context switches per thread")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = ap.parse_args(argv[:split])
    cmd = argv[split + 1:]
    if not cmd:
        ap.error("missing command after --")

    sim, camera = None, ""
    proc = None
    try:
        if args.sim:
            sim, camera = start_sim(args.sim, args.timeout)
            args.camera = True
        proc, port = start(cmd, camera)
        secs, ws, welcome = smoke(proc, port, args.timeout)
        if args.mode == "smoke":
            return 0
        ws.keep_reading()
        cam_note = ""
        if args.camera:
            if not wait_camera_connected(ws, welcome, args.timeout):
                raise SystemExit(f"FAIL: camera not connected within {args.timeout} s")
            cam_note = (f" and a connected camera (connected {time.monotonic() - proc.t0:.2f} s "
                        f"after start)")
        if args.no_client and args.mode == "footprint":
            ws.send(0x8, struct.pack("!H", 1000))
            ws.sock.close()
        time.sleep(args.settle)
        label = f"{args.label}: " if args.label else ""
        if args.mode == "liveview":
            if not sim:
                ap.error("liveview needs --sim")
            return run_liveview(proc, port, sim, args.viewers, args.seconds, label)
        if args.mode == "session":
            if not sim:
                ap.error("session needs --sim")
            secs, (b0, b1), reqs, end = run_session(ws, proc, sim, args.shots, args.interval,
                                                    args.timeout)
            n = sum(v for _, v in b1.values()) - sum(v for _, v in b0.values())
            stats = (end.get("data") or {}).get("stats") or end.get("stats") or {}
            taken = stats.get("shotsSuccessful", stats.get("shotsTaken", "?"))
            print(f"{label}session of {args.shots} x {args.interval:g} s: {taken} taken in "
                  f"{secs:.1f} s")
            print(f"{label}context switches per shot (whole service, one WebSocket client): "
                  f"{n / args.shots:.1f} ({n} in {secs:.1f} s; voluntary only: "
                  f"{run_session.voluntary / args.shots:.1f})")
            print(f"{label}camera during the session: {len(reqs) / args.shots:.1f} requests/shot; "
                  + camera_traffic(reqs, secs))
            if args.per_thread:
                per_task_report(b0, b1, secs, label)
            return 0
        pids = proc_tree(proc.pid)
        sim_pids = proc_tree(sim.pid) if sim else []
        seq0 = last_seq(sim_requests(sim)) if sim else 0
        b0, s0, t0 = task_switches(pids), ctx_switches(sim_pids), time.monotonic()
        v0 = voluntary_switches(pids)
        time.sleep(args.seconds)
        pids = proc_tree(proc.pid)
        b1, s1, t1 = task_switches(pids), ctx_switches(sim_pids), time.monotonic()
        v1 = voluntary_switches(pids)
        reqs = [r for r in sim_requests(sim, seq0) if r.get("seq", 0) > seq0] if sim else None
        rss = rss_kib(pids)
        if proc.poll() is not None:
            raise SystemExit(f"FAIL: the service exited ({proc.returncode}) during the window")
        if ws.closed and not args.no_client:
            raise SystemExit(f"FAIL: the WebSocket closed during the window: {ws.closed}")
        c0 = sum(n for _, n in b0.values())
        c1 = sum(n for _, n in b1.values())
        print(f"{label}start to /health 200: {secs * 1000:.1f} ms")
        who = "no WebSocket client" if args.no_client else "one WebSocket client"
        print(f"{label}idle RSS with {who}{cam_note}: {rss / 1024:.2f} MiB "
              f"({rss} KiB)")
        print(f"{label}idle context switches: {(c1 - c0) / (t1 - t0):.2f}/s over {t1 - t0:.0f} s "
              f"({c1 - c0} switches in {len(b1)} threads, {len(ws.messages)} messages "
              f"received; voluntary only: {(v1 - v0) / (t1 - t0):.2f}/s)")
        if args.per_thread:
            per_task_report(b0, b1, t1 - t0, label)
        if reqs is not None:
            print(f"{label}idle camera traffic: " + camera_traffic(reqs, t1 - t0))
        if sim:
            print(f"{label}(camera simulator process, not counted above: "
                  f"{(s1 - s0) / (t1 - t0):.2f} switches/s)")
        return 0
    finally:
        stop(proc)
        stop(sim)


if __name__ == "__main__":
    sys.exit(main())
