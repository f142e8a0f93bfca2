// skylapse field UI: one WebSocket to the Pi, commands correlated by `id`, status blocks from
// `welcome` / `status_update`, events from `event` / `timelapse_event` / `discovery_event` /
// `network_event`. Plain DOM, no dependencies. Nothing here logs to the console, so a Wi-Fi
// password typed into the form never ends up in a log.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const token = new URLSearchParams(location.search).get("token");
  const S = {}; // latest status blocks by name
  const seen = {}; // JSON of the last rendered block, to skip identical re-renders
  const pending = new Map(); // request id -> {resolve, reject, timer}
  let ws = null, seq = 0, delay = 1000, retryAt = 0, retryTimer = 0, watchdog = 0;
  let skewMs = 0; // server clock minus ours, from message timestamps
  let version = "", clientId = null, limits = null;

  // ---------- helpers ----------
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) {
      const v = attrs[k];
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of kids.flat()) if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
    return e;
  }
  function api(path) { return path + (token ? (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : ""); }
  const num = (v) => typeof v === "number" && isFinite(v);
  function fmtMs(ms) {
    if (!num(ms)) return "–";
    const a = Math.abs(ms);
    if (a < 0.0005) return "0 ms";
    if (a >= 1000) return (ms / 1000).toFixed(2) + " s";
    return (a >= 100 ? ms.toFixed(0) : a >= 10 ? ms.toFixed(1) : a >= 1 ? ms.toFixed(2) : ms.toFixed(3)) + " ms";
  }
  function fmtDur(sec) {
    if (!num(sec)) return "–";
    sec = Math.max(0, Math.round(sec));
    const d = Math.floor(sec / 86400), h = Math.floor(sec / 3600) % 24, m = Math.floor(sec / 60) % 60, s = sec % 60;
    if (d) return d + " d " + h + " h";
    if (h) return h + " h " + String(m).padStart(2, "0") + " m";
    if (m) return m + " m " + String(s).padStart(2, "0") + " s";
    return s + " s";
  }
  function fmtTime(iso) {
    const t = Date.parse(iso);
    return isNaN(t) ? "–" : new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }
  function fmtDate(iso) {
    const t = Date.parse(iso);
    return isNaN(t) ? "–" : new Date(t).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }
  function fmtMB(mb) { return !num(mb) ? "–" : mb >= 1024 ? (mb / 1024).toFixed(1) + " GB" : Math.round(mb) + " MB"; }
  const serverNow = () => Date.now() + skewMs;
  const show = (v) => v === null || v === undefined || v === "" ? "–" : typeof v === "object" ? JSON.stringify(v) : String(v);
  // rows: [label, value, class?]; rows with value undefined are skipped
  function kv(dl, rows) {
    dl.textContent = "";
    for (const r of rows) {
      if (!r || r[1] === undefined) continue;
      dl.append(el("dt", null, r[0]), el("dd", { class: r[2] }, show(r[1])));
    }
  }
  function changed(name, value) {
    const j = JSON.stringify(value === undefined ? null : value);
    if (seen[name] === j) return false;
    seen[name] = j;
    return true;
  }

  // ---------- toasts (shown in the card of the action that caused them) ----------
  function msgsFor(anchor) {
    const card = anchor && anchor.closest && anchor.closest(".card");
    return (card && card.querySelector(":scope > .msgs")) || $("toasts");
  }
  function toast(anchor, kind, text, detail, extra) {
    const box = msgsFor(anchor);
    const t = el("div", { class: "toast " + kind, role: kind === "err" ? "alert" : "status" },
      el("p", null, text, detail ? el("small", null, detail) : null), extra || null,
      el("button", { class: "small", "aria-label": "Dismiss", onclick: () => t.remove() }, "✕"));
    box.append(t);
    while (box.children.length > 3) box.firstChild.remove();
    if (kind === "ok") setTimeout(() => t.remove(), 4000);
    return t;
  }
  function errText(e) {
    if (!e) return ["Failed", ""];
    const msg = e.message || String(e);
    let detail = e.code || "";
    if (e.details && Array.isArray(e.details.attempts)) detail += " · " + e.details.attempts.map((a) => a.error).join("; ");
    else if (e.details && e.details.cameraMessage) detail += " · camera: " + e.details.cameraMessage;
    return [msg, detail];
  }
  function toastErr(anchor, e) { const [m, d] = errText(e); return toast(anchor, "err", m, d); }

  // ---------- connection ----------
  function wsUrl() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    return proto + "//" + location.host + "/ws" + (token ? "?token=" + encodeURIComponent(token) : "");
  }
  function setLink(state, text) {
    const l = $("link");
    l.textContent = text;
    l.className = "pill " + (state === "live" ? "ok" : state === "connecting" ? "warn" : "bad");
    document.body.dataset.link = state;
    $("offline").hidden = state !== "offline";
    $("main").classList.toggle("stale", state !== "live");
  }
  function connect() {
    clearTimeout(retryTimer);
    retryTimer = 0;
    if (ws) return;
    setLink("connecting", "connecting…");
    let sock;
    try { sock = new WebSocket(wsUrl()); } catch (_) { scheduleReconnect(); return; }
    ws = sock;
    sock.onopen = () => { delay = 1000; setLink("live", "live"); kick(); };
    sock.onmessage = (ev) => {
      if (sock !== ws) return;
      kick();
      let msg;
      try { msg = JSON.parse(ev.data); } catch (_) { return; }
      if (msg && typeof msg === "object") onMessage(msg);
    };
    sock.onclose = () => {
      if (sock !== ws) return;
      ws = null;
      clearTimeout(watchdog);
      for (const [, p] of pending) { clearTimeout(p.timer); p.reject({ code: "OFFLINE", message: "Connection to the Pi lost" }); }
      pending.clear();
      scheduleReconnect();
    };
  }
  // status_update comes every 10 s: 45 s of silence means the link is dead even if the
  // socket has not noticed (phone changed networks, Pi lost power).
  function kick() {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => { if (ws) { const s = ws; ws = null; s.close(); scheduleReconnect(); } }, 45000);
  }
  function scheduleReconnect() {
    clearTimeout(retryTimer);
    retryAt = Date.now() + delay;
    retryTimer = setTimeout(connect, delay);
    delay = Math.min(delay * 2, 30000);
    offlineTick();
  }
  function offlineTick() {
    if (ws || !retryTimer) return;
    const s = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
    setLink("offline", "offline");
    $("offline-text").textContent = "Pi unreachable · retry in " + s + " s";
    setTimeout(offlineTick, 1000);
  }
  $("retry").onclick = () => { delay = 1000; connect(); };
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && !ws) { delay = 1000; connect(); }
  });
  function send(obj) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(obj)); }
  // A command with an id; resolves with the reply's data, rejects with the error object.
  function cmd(type, data, timeoutMs) {
    return new Promise((resolve, reject) => {
      if (!ws || ws.readyState !== 1) { reject({ code: "OFFLINE", message: "Not connected to the Pi" }); return; }
      const id = "ui" + ++seq;
      const timer = setTimeout(() => { pending.delete(id); reject({ code: "TIMEOUT", message: "No answer from the Pi" }); }, timeoutMs || 30000);
      pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ type: type, id: id, data: data || {} }));
    });
  }
  // Runs a command for a button: busy while waiting, error toast next to it.
  // Camera commands retry a busy camera (it stays busy ~0.5 s after a shot; CCAPI says retry).
  const RETRY_BUSY = ["take_photo", "take_test_photo", "set_camera_setting"];
  async function cmdRetry(type, data, timeoutMs) {
    for (let wait = 500; ; wait *= 2) {
      try { return await cmd(type, data, timeoutMs); } catch (e) {
        if (!(e && e.code === "CAMERA_BUSY" && RETRY_BUSY.includes(type) && wait <= 2000)) throw e;
        await new Promise((res) => setTimeout(res, wait));
      }
    }
  }
  async function act(btn, type, data, okText, timeoutMs) {
    if (btn) { btn.disabled = true; btn.classList.add("busy"); }
    try {
      const r = await cmdRetry(type, data, timeoutMs);
      if (okText) toast(btn, "ok", typeof okText === "function" ? okText(r) : okText);
      return r || {};
    } catch (e) {
      toastErr(btn, e);
      return null;
    } finally {
      if (btn) { btn.disabled = false; btn.classList.remove("busy"); }
    }
  }

  function onMessage(msg) {
    const t = Date.parse(msg.timestamp);
    if (!isNaN(t)) skewMs = skewMs * 0.8 + (t - Date.now()) * 0.2;
    const id = msg.id || msg.requestId;
    if (id && pending.has(id)) {
      const p = pending.get(id);
      pending.delete(id);
      clearTimeout(p.timer);
      if (msg.type === "error") p.reject(msg.data || msg.error || {});
      else p.resolve(msg.data);
      return;
    }
    switch (msg.type) {
      case "welcome":
        version = msg.version || (msg.data && msg.data.version) || "";
        clientId = msg.clientId != null ? msg.clientId : msg.data && msg.data.clientId;
        limits = msg.limits || (msg.data && msg.data.limits);
        if (!isNaN(t)) skewMs = t - Date.now();
        status(msg.data || msg);
        if (currentTab === "reports") loadReports();
        break;
      case "status_update": case "status": status(msg.data || msg); break;
      case "time-sync-request": {
        const d = msg.data || msg;
        send({ type: "time-sync-response", data: { requestId: d.requestId, clientTime: Date.now(), serverTime: d.serverTime, timezone: Intl.DateTimeFormat().resolvedOptions().timeZone } });
        break;
      }
      case "error": { const [m, d] = errText(msg.data || msg.error); toast(null, "err", m, d); break; }
      case "event": onEvent(msg.eventType, msg.data || {}); break;
      case "timelapse_event": onTimelapseEvent(msg.eventType, msg.data || {}); break;
      case "discovery_event": onDiscoveryEvent(msg.eventType, msg.data || {}); break;
      case "network_event": onNetworkEvent(msg.eventType, msg.data || {}); break;
    }
  }

  const BLOCKS = ["camera", "discovery", "network", "power", "storage", "temperature", "intervalometer", "timesync"];
  function status(d) {
    for (const b of BLOCKS) if (b in d) S[b] = d[b];
    if (changed("cam", [S.camera, S.storage, S.temperature])) renderCamera();
    if (changed("disc", S.discovery)) renderDiscovery();
    if (changed("iv", S.intervalometer)) renderSession();
    if (changed("net", S.network)) renderNetwork();
    if (changed("time", S.timesync)) renderTime();
    if (changed("power", [S.power, S.intervalometer && S.intervalometer.running])) { renderPower(); sessionWarnings(); }
    renderAbout();
  }

  // ---------- camera ----------
  function renderCamera() {
    const c = S.camera || {};
    const st = c.state || (c.connected ? "connected" : "disconnected");
    const pill = $("cam-state");
    pill.textContent = st;
    pill.className = "pill " + (st === "connected" ? "ok" : st === "probing" ? "warn" : "bad");
    document.body.dataset.camera = st;
    const b = c.battery || {};
    const s = S.storage;
    const retry = c.nextRetryAt ? Math.max(0, Math.round((Date.parse(c.nextRetryAt) - serverNow()) / 1000)) : null;
    kv($("cam-kv"), [
      ["Model", c.model || undefined],
      ["Address", c.ip ? c.ip + (c.port ? ":" + c.port : "") : "–"],
      ["Battery", b.level != null ? b.level + (num(b.level) ? " %" : "") + (b.quality && b.quality !== "good" ? " · " + b.quality : "") : "–",
        b.level === "low" || b.level === "exhausted" || (num(b.level) && b.level < 20) ? "warn" : ""],
      ["Card", s ? (s.mounted === false ? "no card" : fmtMB(s.freeMB) + " free of " + fmtMB(s.totalMB)) : "–", s && s.percentUsed > 90 ? "warn" : ""],
      ["Temperature", S.temperature || "–", S.temperature && S.temperature !== "normal" ? "warn" : ""],
      ["Next retry", retry !== null && st !== "connected" ? (retry > 0 ? "in " + fmtDur(retry) : "now") : undefined],
    ]);
    const e = c.lastError;
    $("cam-error").hidden = !e || st === "connected";
    $("cam-error").textContent = e ? "Last error: " + (typeof e === "object" ? e.message || JSON.stringify(e) : e) : "";
  }
  $("take-photo").onclick = (ev) => act(ev.currentTarget, "take_photo", {}, (r) => r && r.success === false ? "Camera answered, no photo" : "Photo taken", 60000);
  let testPhotoId = null;
  $("test-photo").onclick = async (ev) => {
    const btn = ev.currentTarget;
    const bar = $("test-progress");
    bar.hidden = false;
    progress(bar, 0, "taking…");
    testPhotoId = null;
    const r = await act(btn, "take_test_photo", {}, null, 180000);
    bar.hidden = true;
    if (!r) return;
    const url = api(r.url || "/api/camera/photos/test/" + encodeURIComponent(r.id) + "/file");
    const box = $("test-preview");
    box.hidden = false;
    box.textContent = "";
    const note = el("p", { class: "dim" }, (r.filename || r.id) + (num(r.size) ? " · " + (r.size / 1e6).toFixed(1) + " MB" : ""));
    const img = el("img", { alt: "Test photo", src: url });
    img.onerror = () => { img.remove(); note.append(" · no preview (not a displayable JPEG)"); };
    box.append(img, note, el("a", { class: "button", href: url, download: r.filename || "test.jpg" }, "Save file"));
  };
  function progress(bar, pct, text) {
    bar.firstElementChild.style.width = Math.max(0, Math.min(100, pct)) + "%";
    bar.lastElementChild.textContent = text;
  }

  // Settings: a select for every list ability, a number for ranges, read-only otherwise.
  const MAIN_SETTINGS = ["shootingmodedial", "iso", "tv", "av", "wb", "colortemperature", "drive", "afoperation"];
  const LABELS = { shootingmodedial: "Mode", iso: "ISO", tv: "Shutter", av: "Aperture", wb: "White balance", colortemperature: "Colour temp (K)", drive: "Drive", afoperation: "Focus" };
  let settings = null;
  $("load-settings").onclick = async (ev) => {
    const r = await act(ev.currentTarget, "get_camera_settings", {});
    if (r) { settings = r; renderSettings(); ev.target.textContent = "Reload settings"; }
  };
  function renderSettings() {
    const main = $("settings"), more = $("settings-more");
    main.textContent = "";
    const moreBox = more.querySelector(".settings");
    moreBox.textContent = "";
    const names = Object.keys(settings).sort((a, b) => {
      const ia = MAIN_SETTINGS.indexOf(a), ib = MAIN_SETTINGS.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
    });
    for (const name of names) {
      const s = settings[name] || {};
      const field = settingField(name, s);
      if (!field) continue;
      (MAIN_SETTINGS.includes(name) ? main : moreBox).append(field);
    }
    more.hidden = !moreBox.children.length;
    if (!main.children.length) main.append(el("p", { class: "dim" }, "The camera reports no settings."));
  }
  function settingField(name, s) {
    const ab = s.ability;
    let input;
    if (Array.isArray(ab) && ab.length && typeof s.value !== "object") {
      input = el("select", { "data-setting": name });
      const opts = ab.includes(s.value) ? ab : [s.value].concat(ab);
      for (const o of opts) input.append(el("option", { value: o, selected: o === s.value }, o));
    } else if (ab && num(ab.min) && num(ab.max) && num(s.value)) {
      input = el("input", { type: "number", min: ab.min, max: ab.max, step: ab.step || 1, value: s.value, "data-setting": name, inputmode: "numeric" });
    } else return null;
    input.addEventListener("change", async () => {
      const value = input.type === "number" ? Number(input.value) : input.value;
      const before = s.value;
      input.disabled = true;
      try {
        await cmdRetry("set_camera_setting", { setting: name, value: value });
        s.value = value;
        toast(input, "ok", name + " = " + value);
      } catch (e) {
        input.value = before;
        const [m, d] = errText(e);
        toast(input, "err", name + ": " + m, d);
      } finally { input.disabled = false; }
    });
    return el("label", null, LABELS[name] || name, input);
  }
  // Shutter speed as Canon writes it ("1/125", "0\"5", "30\"") in seconds, for validation.
  function tvSeconds() {
    const v = settings && settings.tv && settings.tv.value;
    if (typeof v !== "string") return null;
    if (v.includes("/")) { const [a, b] = v.split("/").map(Number); return b ? a / b : null; }
    const m = /^(\d+)"(\d*)$/.exec(v);
    return m ? Number(m[1] + "." + (m[2] || "0")) : null;
  }

  // Discovery
  function renderDiscovery() {
    const d = S.discovery || {};
    const list = $("cameras");
    list.textContent = "";
    const cams = Object.values(d.cameras || {});
    if (!cams.length) list.append(el("li", { class: "dim" }, d.isDiscovering ? "Searching…" : "No camera found yet."));
    for (const c of cams) {
      const primary = c.isPrimary || (d.primaryCamera && d.primaryCamera.uuid === c.uuid);
      const use = primary ? el("span", { class: "pill ok" }, c.connected ? "in use" : "primary")
        : el("button", { class: "small", onclick: (ev) => act(ev.currentTarget, "set_primary_camera", { uuid: c.uuid }, "Switched camera") }, "Use");
      list.append(el("li", null, el("div", null, c.modelName || c.friendlyName || "Camera",
        el("small", null, (c.ipAddress || "?") + (c.online === false ? " · offline" : "") + (c.source ? " · " + c.source : ""))), use));
    }
  }
  $("discovery-scan").onclick = (ev) => act(ev.currentTarget, "discovery_scan", {}, "Searching the network…");
  $("connect-form").onsubmit = (ev) => {
    ev.preventDefault();
    const ip = $("connect-ip").value.trim();
    const port = $("connect-port").value.trim();
    const data = { ip: ip };
    if (port) data.port = Number(port);
    const btn = $("connect-btn");
    if (!ip) { toast(btn, "err", "Enter the camera's IP address"); return; }
    act(btn, "connect_to_ip", data, "Connected to " + ip, 60000);
  };

  // ---------- timelapse ----------
  let countdown = 0;
  // "scheduled": started or resumed, waiting for its first slot.
  const isLive = (s) => !!s && (s.running === true || ["running", "scheduled", "stopping"].includes(s.state));
  function renderSession() {
    const s = S.intervalometer;
    const card = $("session-card");
    const u = s && s.unsavedSession;
    // A session that just ended (saved at its end) keeps its card until the user acts on it.
    const keepEnded = !u && unsaved && unsaved.saved;
    renderUnsaved(s && "unsavedSession" in s && !keepEnded ? u || null : undefined);
    document.body.dataset.session = s ? s.state : "none";
    const live = isLive(s);
    card.hidden = !s || !s.sessionId || s.state === "idle" || (!live && !!u);
    $("tl-form").hidden = !!live;
    $("rec").hidden = !live;
    if (!s) { clearInterval(countdown); countdown = 0; return; }
    const st = s.stats || {}, o = s.options || {}, tm = st.timing || {};
    $("s-title").textContent = s.title || "Session";
    const pill = $("s-state");
    pill.textContent = s.state;
    pill.className = "pill " + (s.state === "running" ? "ok" : s.state === "error" ? "bad" : live ? "warn" : "");
    $("s-shots").textContent = (st.shotsTaken || 0) + (o.totalShots ? "/" + o.totalShots : "");
    const end = Date.parse(s.estimatedEndTime), start = Date.parse(st.startTime);
    let pct = null, label = "";
    if (o.totalShots) { pct = 100 * (st.shotsTaken || 0) / o.totalShots; label = (st.shotsTaken || 0) + " of " + o.totalShots; }
    else if (!isNaN(end) && !isNaN(start) && end > start) { pct = 100 * (serverNow() - start) / (end - start); label = "until " + fmtTime(s.estimatedEndTime); }
    if (!live && s.state === "completed") { pct = 100; label = "done"; }
    $("s-progress").hidden = pct === null;
    if (pct !== null) progress($("s-progress"), pct, label);
    kv($("s-kv"), [
      ["Interval", fmtDur(o.interval) + (o.bulb ? " · bulb " + o.bulb + " s" : "")],
      ["Stop", stopText(o)],
      ["Started", fmtTime(st.startTime)],
      ["Ends", live && s.estimatedEndTime ? fmtTime(s.estimatedEndTime) : undefined],
      ["Failed", st.shotsFailed || 0, st.shotsFailed ? "err" : ""],
      ["Skipped", st.shotsSkipped || 0, st.shotsSkipped ? "warn" : ""],
      ["Overtime", st.overtimeShots ? st.overtimeShots + " shots, max " + fmtDur(st.maxOvertimeSeconds) : "none", st.overtimeShots ? "warn" : ""],
      ["Timing error", num(tm.meanErrorMs) ? "mean " + fmtMs(tm.meanErrorMs) + " · p99 " + fmtMs(tm.p99ErrorMs) + " · max " + fmtMs(tm.maxErrorMs) : "–"],
      ["Shot takes", num(st.lastShotDuration) ? fmtMs(st.lastShotDuration * 1000) : undefined],
      ["Camera", s.cameraConnected === false ? "disconnected" : undefined, "err"],
      ["Ended", s.endReason || undefined],
    ]);
    sessionWarnings();
    $("stop").hidden = !live;
    $("stop").disabled = s.state === "stopping";
    if (live && !countdown) countdown = setInterval(tick, 250);
    if (!live) { clearInterval(countdown); countdown = 0; }
    tick();
  }
  // Power warnings and the battery/card estimate, where the photographer watches the session.
  function sessionWarnings() {
    const s = S.intervalometer, p = S.power || {}, est = p.estimate, ul = $("s-warnings");
    ul.textContent = "";
    if (!isLive(s)) return;
    for (const w of p.warnings || []) ul.append(el("li", { class: w.severity }, "⚠ " + (w.message || w.kind)));
    if (est && num(est.shotsLeft)) {
      const short = s.remainingShots != null && est.shotsLeft < s.remainingShots;
      ul.append(el("li", { class: short ? "error" : "dim" }, (short ? "⚠ " : "") + "The " + (est.limitedBy || "battery") + " lasts about " + est.shotsLeft + " more shots" + (num(est.timeLeftSeconds) ? " (" + fmtDur(est.timeLeftSeconds) + ")" : "")));
    }
  }
  function stopText(o) {
    switch (o.stopCondition) {
      case "stop-after": return "after " + o.totalShots + " shots";
      case "stop-at": return "at " + o.stopTime;
      case "duration": return "after " + fmtDur(o.duration);
      default: return "never (until stopped)";
    }
  }
  // The next-shot countdown is computed here from nextShotTime, so it needs no server traffic.
  function tick() {
    const s = S.intervalometer;
    const live = isLive(s);
    const st = (s && s.stats) || {};
    const next = Date.parse(st.nextShotTime);
    const left = isNaN(next) ? null : (next - serverNow()) / 1000;
    $("s-next").textContent = !live ? "–" : left === null ? "…" : left > 0 ? fmtDur(Math.ceil(left)) : "now";
    const endLeft = s && s.estimatedEndTime ? (Date.parse(s.estimatedEndTime) - serverNow()) / 1000 : null;
    const byShots = s && s.remainingShots != null;
    $("s-left").textContent = live ? (byShots ? s.remainingShots : endLeft !== null ? fmtDur(endLeft) : "∞") : "–";
    $("s-left-label").textContent = byShots ? "shots left" : "time left";
    if (live) $("rec").textContent = "● " + (st.shotsTaken || 0) + ((s.options || {}).totalShots ? "/" + s.options.totalShots : "") + " · next " + $("s-next").textContent;
  }
  // A gloved mis-tap must not end a night's session: confirm first.
  $("stop").onclick = async (ev) => {
    const btn = ev.currentTarget;
    if (await confirmSheet("Stop the timelapse now?", "Stop")) act(btn, "stop_intervalometer", {}, "Stopping…");
  };

  // Unsaved / interrupted session. `undefined` = leave as is, `null` = none.
  let unsaved = null;
  function renderUnsaved(u) {
    if (u === undefined) return;
    const card = $("unsaved-card");
    $("tabs").querySelector('[data-tab="timelapse"]').classList.toggle("badge", !!u);
    if (!u) { unsaved = null; card.hidden = true; return; }
    const fresh = !unsaved || unsaved.sessionId !== u.sessionId;
    unsaved = u;
    card.hidden = false;
    $("u-head").textContent = u.saved ? "Session ended — saved as a report" : u.interrupted ? "Interrupted session" : "Session finished — save it?";
    $("u-save").textContent = u.saved ? "Keep" : "Save report";
    kv($("u-kv"), [
      ["Status", u.status],
      ["Shots", (u.shotsSuccessful != null ? u.shotsSuccessful : u.shotsTaken) + " ok" + (u.shotsFailed ? ", " + u.shotsFailed + " failed" : "")],
      ["Started", fmtDate(u.startTime)],
      ["Ended", u.endTime ? fmtDate(u.endTime) : undefined],
    ]);
    if (fresh) $("u-title").value = u.title || "";
    const actions = u.actions || ["save", "discard"];
    $("u-resume").hidden = !(u.canResume || actions.includes("resume"));
  }
  $("u-save").onclick = async (ev) => {
    if (!unsaved) return;
    const title = $("u-title").value.trim();
    const r = unsaved.saved
      ? await act(ev.currentTarget, "update_report_title", { sessionId: unsaved.sessionId, title: title || unsaved.title })
      : await act(ev.currentTarget, "save_session_as_report", Object.assign({ sessionId: unsaved.sessionId }, title ? { title: title } : {}));
    if (r) { toast($("start"), "ok", "Report saved: " + (title || "untitled")); renderUnsaved(null); if (S.intervalometer) S.intervalometer.unsavedSession = null; seen.iv = null; renderSession(); loadReports(); }
  };
  $("u-discard").onclick = async (ev) => {
    if (!unsaved || !(await confirmSheet(unsaved.saved ? "Discard this session? Its report will be deleted." : "Discard this session? Its timing data will be lost.", "Discard"))) return;
    const r = await act(ev.currentTarget, "discard_session", { sessionId: unsaved.sessionId });
    if (r) { toast($("start"), "ok", "Session discarded"); renderUnsaved(null); }
  };
  $("u-resume").onclick = async (ev) => {
    if (!unsaved) return;
    const r = await act(ev.currentTarget, "resume_session", { sessionId: unsaved.sessionId });
    if (r) { toast($("stop"), "ok", "Session resumed"); renderUnsaved(null); }
  };

  // Form
  const form = $("tl-form");
  const stopCond = () => form.querySelector('input[name="stop"]:checked').value;
  function formData() {
    const d = { interval: Number($("f-interval").value), stopCondition: stopCond() };
    if (d.stopCondition === "stop-after") d.shots = Math.round(Number($("f-shots").value));
    if (d.stopCondition === "stop-at") d.stopTime = $("f-stoptime").value;
    if (d.stopCondition === "duration") d.duration = (Number($("f-hours").value) || 0) * 3600 + (Number($("f-minutes").value) || 0) * 60;
    const title = $("f-title").value.trim();
    if (title) d.title = title;
    const bulb = $("f-bulb").value.trim();
    if (bulb) d.bulb = Number(bulb);
    return d;
  }
  function formEstimate(d) {
    let shots = null;
    if (d.stopCondition === "stop-after") shots = d.shots;
    if (d.stopCondition === "duration" && d.interval > 0) shots = Math.floor(d.duration / d.interval);
    let secs = shots !== null ? shots * d.interval : null;
    if (d.stopCondition === "stop-at" && /^\d\d:\d\d$/.test(d.stopTime || "")) {
      const [h, m] = d.stopTime.split(":").map(Number);
      const now = new Date(), end = new Date(now);
      end.setHours(h, m, 0, 0);
      if (end <= now) end.setDate(end.getDate() + 1);
      secs = (end - now) / 1000;
      shots = d.interval > 0 ? Math.floor(secs / d.interval) : null;
    }
    $("f-estimate").textContent = shots !== null && num(shots) ? "≈ " + shots + " shots over " + fmtDur(secs) + (num(d.interval) && d.interval > 0 ? " · a 24 fps clip of " + fmtDur(shots / 24) : "") : "";
  }
  let validateTimer = 0, validSeq = 0, lastValid = null;
  const FORM_FIELDS = ["f-interval", "f-shots", "f-stoptime", "f-hours", "f-minutes", "f-title", "f-bulb"];
  function restoreForm() {
    let v = null;
    try { v = JSON.parse(localStorage.getItem("skylapse.form") || "null"); } catch (_) {}
    if (!v) return;
    for (const f of FORM_FIELDS) if (typeof v[f] === "string") $(f).value = v[f];
    const r = form.querySelector('input[name="stop"][value="' + CSS.escape(v.stop || "") + '"]');
    if (r) r.checked = true;
  }
  function onFormChange() {
    for (const n of form.querySelectorAll("[data-stop]")) n.hidden = n.dataset.stop !== stopCond();
    const keep = { stop: stopCond() };
    for (const f of FORM_FIELDS) keep[f] = $(f).value;
    try { localStorage.setItem("skylapse.form", JSON.stringify(keep)); } catch (_) {}
    const d = formData();
    formEstimate(d);
    clearTimeout(validateTimer);
    validateTimer = setTimeout(() => validate(d), 250);
  }
  async function validate(d) {
    const my = ++validSeq;
    const box = $("f-validation");
    if (!num(d.interval) || d.interval <= 0) { box.textContent = ""; box.append(el("p", { class: "err" }, "Enter an interval in seconds")); lastValid = false; return false; }
    const exposure = num(d.bulb) ? d.bulb : tvSeconds();
    let r;
    try { r = await cmd("validate_interval", Object.assign({ interval: d.interval }, num(exposure) ? { exposure: exposure } : {})); }
    catch (e) { if (my === validSeq) { box.textContent = ""; box.append(el("p", { class: "err" }, errText(e)[0])); } return null; }
    if (my !== validSeq) return r.valid;
    box.textContent = "";
    box.append(el("p", { class: r.valid ? "ok" : "err" }, r.valid ? "✓ Interval OK" + (num(r.minimumInterval) ? " (minimum " + r.minimumInterval + " s)" : "") : "✕ Interval too short" + (num(r.minimumInterval) ? ": minimum " + r.minimumInterval + " s" : "")));
    for (const w of r.warnings || []) box.append(el("p", { class: "warn" }, "⚠ " + w));
    lastValid = !!r.valid;
    // The photographer decides: an invalid interval turns the button into "Start anyway".
    $("start").textContent = r.valid ? "Start timelapse" : "Start anyway";
    $("start").className = "big " + (r.valid ? "primary" : "danger");
    return r.valid;
  }
  form.addEventListener("input", onFormChange);
  form.addEventListener("change", onFormChange);
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const btn = $("start");
    const d = formData();
    if (d.stopCondition === "stop-after" && !(d.shots > 0)) { toast(btn, "err", "Enter the number of shots"); return; }
    if (d.stopCondition === "duration" && !(d.duration > 0)) { toast(btn, "err", "Enter a duration"); return; }
    if (d.stopCondition === "stop-at" && !d.stopTime) { toast(btn, "err", "Enter a stop time"); return; }
    clearTimeout(validateTimer);
    const sawInvalid = lastValid === false;
    btn.disabled = true;
    const ok = await validate(d);
    btn.disabled = false;
    if (ok === false && !sawInvalid) { toast(btn, "err", "Check the interval; tap again to start anyway"); return; }
    const r = await act(btn, d.title ? "start_intervalometer_with_title" : "start_intervalometer", d, "Timelapse started");
    if (r && r.status) status({ intervalometer: r.status });
    if (r) { $("f-title").value = ""; onFormChange(); } // the next session gets its own title
  };

  // ---------- events ----------
  function onEvent(type, d) {
    switch (type) {
      case "photo_taken":
        if (d.sessionId && d.success === false) toast($("stop"), "err", "Shot " + (d.shotNumber || "?") + " failed", d.error && (d.error.message || d.error));
        break;
      case "test_photo_download_progress":
        if (!testPhotoId) testPhotoId = d.photoId;
        if (d.photoId === testPhotoId) progress($("test-progress"), d.percent || 0, "downloading " + (d.percent || 0) + " %");
        break;
      case "camera_setting_changed":
        if (settings && d.setting && settings[d.setting]) {
          settings[d.setting].value = d.value;
          const i = document.querySelector('[data-setting="' + CSS.escape(d.setting) + '"]');
          if (i && document.activeElement !== i) i.value = d.value;
        }
        break;
      case "camera-sync":
        toast($("camera-sync"), d.success === false ? "err" : "ok", d.success === false ? "Camera clock not set" : "Camera clock synced" + (num(d.offset) ? " (was off by " + fmtMs(d.offset) + ")" : ""));
        break;
      case "sync-failed":
        toast($("camera-sync"), "err", "Time sync failed" + (d.component ? " (" + d.component + ")" : ""), d.error && (d.error.message || d.error));
        break;
      case "reliability-lost":
        toast($("camera-sync"), "warn", "Time reliability lost", d.reason);
        break;
      case "power_warning":
        toast($("power-warnings"), d.severity === "critical" ? "err" : "warn", d.message || d.kind);
        break;
    }
  }
  // The end of a session (saved as a report at once): offer to name it, keep it or discard it.
  function sessionEnded(d) {
    if (!d.reportId) return;
    const st = d.stats || {};
    renderUnsaved({
      sessionId: d.sessionId, title: d.title, status: d.status && d.status.state || "", saved: true,
      shotsTaken: st.shotsTaken, shotsSuccessful: st.shotsSuccessful, shotsFailed: st.shotsFailed,
      startTime: st.startTime, endTime: st.endTime, actions: ["discard"],
    });
  }
  function onTimelapseEvent(type, d) {
    if (type === "session_completed" || type === "session_stopped" || type === "session_error") sessionEnded(d);
    switch (type) {
      case "session_completed": toast($("stop"), "ok", "Timelapse complete: " + (d.stats ? d.stats.shotsTaken : "") + " shots"); break;
      case "session_stopped": toast($("stop"), "ok", "Timelapse stopped"); break;
      case "session_error": toast($("stop"), "err", "Timelapse ended with an error", d.reason); break;
      case "photo_overtime": toast($("stop"), "warn", "Shot " + d.shotNumber + " took " + fmtDur(d.shotDuration) + ", longer than the interval"); break;
      case "unsaved_session_found":
        if (!unsaved || unsaved.sessionId !== d.sessionId) {
          renderUnsaved(d);
          if (currentTab !== "timelapse") toast(null, "warn", "A session is waiting to be saved", null, el("button", { class: "small", onclick: (e) => { e.currentTarget.closest(".toast").remove(); showTab("timelapse"); } }, "Review"));
        }
        break;
      case "session_discarded": case "report_saved":
        if (unsaved && unsaved.sessionId === d.sessionId && !(type === "report_saved" && unsaved.saved)) renderUnsaved(null);
        if (type === "report_saved" && currentTab === "reports") loadReports();
        break;
      case "report_updated": case "report_deleted":
        if (currentTab === "reports") loadReports();
        break;
    }
  }
  function onDiscoveryEvent(type, d) {
    if (type === "primary_camera_disconnected" || type === "camera_offline") toast($("cam-state"), "warn", "Camera went offline");
  }
  function onNetworkEvent(type, d) {
    const anchor = $("wifi-scan");
    if (type === "wifi_connected") toast(anchor, "ok", "Joined " + (d.ssid || "Wi-Fi") + (d.ip ? " · " + d.ip : ""));
    else if (type === "wifi_connection_failed") toast(anchor, "err", "Could not join " + (d.ssid || "Wi-Fi"), d.error && (d.error.message || d.error));
    else if (type === "wifi_connection_started") toast(anchor, "ok", "Joining " + (d.ssid || "Wi-Fi") + "…");
  }

  // ---------- reports ----------
  let reportId = null;
  async function loadReports(btn) {
    let r;
    try { r = await cmd("get_timelapse_reports"); } catch (e) { toastErr(btn || $("reports-refresh"), e); return; }
    const list = $("reports");
    list.textContent = "";
    const reports = (r.reports || []).slice().sort((a, b) => String(b.startTime).localeCompare(String(a.startTime)));
    if (!reports.length) list.append(el("li", { class: "dim" }, "No saved reports."));
    for (const rep of reports) {
      const res = rep.results || {};
      list.append(el("li", { class: "tap", "data-report": rep.id, onclick: () => openReport(rep.id) },
        el("div", null, rep.title || rep.id, el("small", null, fmtDate(rep.startTime) + " · " + (res.shotsTaken || 0) + " shots" + (res.shotsFailed ? " · " + res.shotsFailed + " failed" : "") + " · " + (rep.status || ""))),
        el("span", { class: "dim" }, "›")));
    }
    if (reportId && !reports.some((x) => x.id === reportId)) closeReport();
  }
  $("reports-refresh").onclick = (ev) => loadReports(ev.currentTarget);
  let openSeq = 0;
  async function openReport(id) {
    const my = ++openSeq;
    let r;
    try { r = await cmd("get_timelapse_report", { id: id }); } catch (e) { toastErr($("reports-refresh"), e); return; }
    if (my !== openSeq) return; // a later open superseded this one
    const rep = r.report || r;
    const same = reportId === id;
    reportId = id;
    $("report-card").hidden = false;
    $("reports-card").hidden = true;
    $("r-title").textContent = rep.title || id;
    if (!same || document.activeElement !== $("r-newtitle")) $("r-newtitle").value = rep.title || "";
    const res = rep.results || {}, sum = rep.summary || {}, o = rep.options || {};
    kv($("r-kv"), [
      ["Status", rep.status + (rep.endReason ? " · " + rep.endReason : "")],
      ["Started", fmtDate(rep.startTime)],
      ["Ended", fmtDate(rep.endTime)],
      ["Length", fmtDur((Date.parse(rep.endTime) - Date.parse(rep.startTime)) / 1000)],
      ["Interval", fmtDur(o.interval) + " · " + stopText(o)],
      ["Shots", (res.shotsSuccessful || 0) + " ok of " + (res.shotsTaken || 0) + (num(res.successRate) ? " (" + Math.round(res.successRate * 100) + " %)" : "")],
      ["Failed", res.shotsFailed || 0, res.shotsFailed ? "err" : ""],
      ["Skipped", res.shotsSkipped || 0, res.shotsSkipped ? "warn" : ""],
      ["Overtime", res.overtimeShots ? res.overtimeShots + " shots" : "none", res.overtimeShots ? "warn" : ""],
      ["Timing error", "mean " + fmtMs(sum.meanErrorMs) + " · p99 " + fmtMs(sum.p99ErrorMs) + " · max " + fmtMs(sum.maxErrorMs)],
      ["Drift", fmtMs(sum.driftMs)],
      ["Shot takes", fmtMs(sum.meanDurationMs) + " (mean)"],
      ["Errors", rep.errors && rep.errors.length ? rep.errors.length : undefined, "err"],
    ]);
    const base = "/api/timelapse/reports/" + encodeURIComponent(id);
    $("r-chart").src = api(base + "/chart.svg?v=" + encodeURIComponent(rep.savedAt || "") + encodeURIComponent(rep.title || ""));
    $("r-csv").href = api(base + "/csv");
    $("r-csv").setAttribute("download", (rep.title || id).replace(/[^\w.-]+/g, "_") + ".csv");
    if (!same) $("report-card").scrollIntoView({ block: "start" });
  }
  function closeReport() { reportId = null; $("report-card").hidden = true; $("reports-card").hidden = false; }
  $("r-close").onclick = closeReport;
  $("r-rename").onsubmit = async (ev) => {
    ev.preventDefault();
    const title = $("r-newtitle").value.trim();
    const btn = ev.currentTarget.querySelector("button");
    if (!title) { toast(btn, "err", "Enter a title"); return; }
    if (await act(btn, "update_report_title", { id: reportId, title: title }, "Renamed")) openReport(reportId);
  };
  $("r-delete").onclick = async (ev) => {
    const btn = ev.currentTarget;
    if (!reportId || !(await confirmSheet("Delete the report “" + $("r-title").textContent + "”? This cannot be undone.", "Delete"))) return;
    if (await act(btn, "delete_timelapse_report", { id: reportId })) { closeReport(); toast($("reports-refresh"), "ok", "Report deleted"); loadReports(); }
  };
  // A dark confirmation sheet instead of window.confirm (which is a bright white dialog).
  function confirmSheet(text, yes) {
    return new Promise((resolve) => {
      $("sheet-text").textContent = text;
      $("sheet-yes").textContent = yes;
      $("sheet").hidden = false;
      const done = (v) => { $("sheet").hidden = true; resolve(v); };
      $("sheet-yes").onclick = () => done(true);
      $("sheet-no").onclick = () => done(false);
    });
  }

  // ---------- network ----------
  function renderNetwork() {
    const n = S.network || {};
    const i = n.interfaces || {};
    const w = i.wlan0 || Object.values(i).find((x) => "network" in x) || {};
    const a = i.ap0 || Object.values(i).find((x) => "clients" in x) || {};
    const un = $("net-unavailable");
    un.hidden = n.available !== false;
    un.textContent = "";
    un.append(el("b", null, "Wi-Fi control unavailable"), " (SERVICE_UNAVAILABLE)", el("small", null, n.error || "NetworkManager is not running"));
    $("wifi-disconnect").disabled = n.available === false || !w.connected;
    kv($("wifi-kv"), [
      ["Status", w.connected ? "connected" : w.active ? "on, not connected" : "off", w.connected ? "ok" : ""],
      ["Network", w.network || "–"],
      ["IP", w.ip || "–"],
      ["Signal", num(w.signal) ? w.signal + " %" : "–"],
      ["Country", (n.wifiCountry && n.wifiCountry.country) || "–"],
    ]);
    kv($("ap-kv"), [
      ["Status", a.status || (a.active ? "active" : "off"), a.active ? "ok" : ""],
      ["SSID", a.ssid || "–"],
      ["Clients", (a.clients || []).length],
    ]);
    const cl = $("ap-clients");
    cl.textContent = "";
    for (const c of a.clients || []) cl.append(el("li", null, el("div", null, c.hostname || c.mac || "device", el("small", null, (c.ip || "") + (c.mac ? " · " + c.mac : "")))));
  }
  let joinSsid = null;
  $("wifi-scan").onclick = async (ev) => {
    const r = await act(ev.currentTarget, "network_scan", { refresh: true }, null, 45000);
    if (!r) return;
    const list = $("networks");
    list.textContent = "";
    const nets = (r.networks || []).slice().sort((a, b) => (b.signal || 0) - (a.signal || 0));
    if (!nets.length) list.append(el("li", { class: "dim" }, "No networks found."));
    for (const n of nets) {
      list.append(el("li", { class: "tap", onclick: () => openJoin(n) },
        el("div", null, n.ssid, el("small", null, (num(n.signal) ? n.signal + " %" : "") + " · " + (n.security || "open") + (n.known ? " · saved" : "") + (n.frequency ? " · " + (n.frequency > 4000 ? "5" : "2.4") + " GHz" : ""))),
        el("span", { class: "dim" }, bars(n.signal))));
    }
  };
  function bars(sig) { return !num(sig) ? "" : sig > 75 ? "▂▄▆█" : sig > 50 ? "▂▄▆" : sig > 25 ? "▂▄" : "▂"; }
  function openJoin(n) {
    joinSsid = n.ssid;
    $("wc-ssid").textContent = n.ssid;
    $("wc-password").value = "";
    $("wc-password").parentElement.hidden = !!n.known || !n.security || /^(open|none|--)$/i.test(n.security);
    $("wifi-connect").hidden = false;
    if (!$("wc-password").parentElement.hidden) $("wc-password").focus();
  }
  $("wc-cancel").onclick = () => { $("wifi-connect").hidden = true; $("wc-password").value = ""; };
  $("wifi-connect").onsubmit = async (ev) => {
    ev.preventDefault();
    const pw = $("wc-password");
    const data = { ssid: joinSsid };
    if (pw.value) data.password = pw.value;
    pw.value = ""; // never kept in the page longer than the send
    const r = await act(ev.currentTarget.querySelector("button"), "network_connect", data, null, 60000);
    if (r) $("wifi-connect").hidden = true;
  };
  $("wifi-disconnect").onclick = async (ev) => {
    const btn = ev.currentTarget;
    if (await confirmSheet("Disconnect the Pi from Wi-Fi? The camera stays on the Pi's own access point.", "Disconnect")) act(btn, "network_disconnect", {}, "Disconnected");
  };

  // ---------- system ----------
  function renderTime() {
    const t = S.timesync || {}, pi = t.pi || {}, cam = t.camera || {};
    kv($("time-kv"), [
      ["Pi clock", pi.isSynchronized ? "synced" : "not synced", pi.isSynchronized ? "ok" : "warn"],
      ["Reliability", pi.reliability || "–", pi.reliability === "high" ? "ok" : pi.reliability === "none" ? "warn" : ""],
      ["Source", pi.source || "–"],
      ["Pi offset", num(pi.offsetMs) ? fmtMs(pi.offsetMs) : "–"],
      ["Last sync", pi.lastSyncTime ? fmtTime(pi.lastSyncTime) : "never"],
      ["Camera clock", cam.isSynchronized ? "synced" : cam.connected === false ? "no camera" : "not synced", cam.isSynchronized ? "ok" : "warn"],
      ["Camera offset", num(cam.offsetMs) ? fmtMs(cam.offsetMs) : undefined],
      ["Camera sync", cam.lastSyncTime ? fmtTime(cam.lastSyncTime) : undefined],
      ["Timezone", t.clientTimezone || Intl.DateTimeFormat().resolvedOptions().timeZone],
      ["Phones", t.connectedClients],
    ]);
  }
  $("camera-sync").onclick = (ev) => act(ev.currentTarget, "manual_camera_sync", {}, "Syncing camera clock…");
  function renderPower() {
    const p = S.power || {}, th = p.thermal || {}, b = p.battery || {}, thr = p.throttled, est = p.estimate;
    const flags = thr && thr.current ? Object.keys(thr.current).filter((k) => thr.current[k]) : [];
    const past = thr && thr.sinceBoot ? Object.keys(thr.sinceBoot).filter((k) => thr.sinceBoot[k]) : [];
    kv($("power-kv"), [
      ["Board", p.model || (p.isRaspberryPi ? "Raspberry Pi" : "not a Raspberry Pi")],
      ["Temperature", num(th.temperature) ? th.temperature + " °" + (th.unit || "C") : "–", th.temperature >= 80 ? "err" : th.temperature >= 70 ? "warn" : ""],
      ["Throttling", thr ? (flags.length ? flags.join(", ") : "none") + (past.length ? " (since boot: " + past.join(", ") + ")" : "") : "–", flags.length ? "err" : past.length ? "warn" : ""],
      ["Battery", b.present ? (num(b.capacity) ? b.capacity + " %" : "present") + (b.status ? " · " + b.status : "") : "none", b.present && b.capacity < 20 ? "warn" : ""],
      ["Supplies", p.supplies && p.supplies.length ? p.supplies.map((s) => s.name + (s.online === false ? " (off)" : "")).join(", ") : undefined],
      ["Shots left", est && num(est.shotsLeft) ? est.shotsLeft + (est.limitedBy ? " (" + est.limitedBy + ")" : "") + (num(est.timeLeftSeconds) ? " · " + fmtDur(est.timeLeftSeconds) : "") : undefined],
      ["Uptime", fmtDur(p.uptime)],
    ]);
    const ul = $("power-warnings");
    ul.textContent = "";
    const warnings = p.warnings || [];
    for (const w of warnings) ul.append(el("li", { class: w.severity }, "⚠ " + (w.message || w.kind)));
    for (const r of p.recommendations || []) {
      const text = typeof r === "string" ? r : r.message || JSON.stringify(r);
      if (!warnings.some((w) => w.message === text)) ul.append(el("li", null, "• " + text));
    }
  }
  function renderAbout() {
    kv($("about-kv"), [
      ["Version", version || "–"],
      ["Client", clientId],
      ["Status every", limits && limits.statusIntervalMs ? fmtDur(limits.statusIntervalMs / 1000) : undefined],
      ["Clock skew", Math.abs(skewMs) > 1000 ? "phone is " + fmtMs(-skewMs) + " off the Pi" : "< 1 s"],
    ]);
  }

  // ---------- tabs, night mode ----------
  let currentTab = "camera";
  function showTab(name) {
    if (!$("tab-" + name)) name = "camera";
    currentTab = name;
    for (const s of document.querySelectorAll("main > .tab")) s.hidden = s.id !== "tab-" + name;
    for (const b of $("tabs").children) {
      if (b.dataset.tab === name) b.setAttribute("aria-current", "page"); else b.removeAttribute("aria-current");
    }
    try { localStorage.setItem("skylapse.tab", name); } catch (_) {}
    if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
    if (name === "reports" && ws) loadReports();
    if (name === "timelapse") onFormChange();
    scrollTo(0, 0);
  }
  $("tabs").onclick = (ev) => { const b = ev.target.closest("button"); if (b) showTab(b.dataset.tab); };
  function setRed(on) {
    document.documentElement.classList.toggle("red", on);
    $("night").setAttribute("aria-pressed", String(on));
    try { localStorage.setItem("skylapse.red", on ? "1" : "0"); } catch (_) {}
  }
  $("night").onclick = () => setRed(!document.documentElement.classList.contains("red"));
  $("night").setAttribute("aria-pressed", String(document.documentElement.classList.contains("red")));
  $("rec").onclick = () => showTab("timelapse");

  restoreForm();
  let saved = null;
  try { saved = localStorage.getItem("skylapse.tab"); } catch (_) {}
  showTab(location.hash.slice(1) || saved || "camera");
  addEventListener("hashchange", () => { if (location.hash.slice(1) !== currentTab) showTab(location.hash.slice(1)); });
  // The camera's "next retry" line counts down between status updates.
  setInterval(() => { if (S.camera && S.camera.state !== "connected" && S.camera.nextRetryAt) renderCamera(); }, 1000);
  window.skylapse = { state: S, cmd: cmd }; // for debugging from the console and for tests
  connect();
})();
