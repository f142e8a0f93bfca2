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
  let ws = null, seq = 0, delay = 1000, retryAt = 0, retryTimer = 0, connectTimer = 0;
  let lastMsgAt = 0; // when the Pi last said anything (pong included)
  let skewMs = 0; // server clock minus ours, from message timestamps
  let version = "", clientId = null, limits = null;
  const PING_EVERY = 5000, STALE_AFTER = 12000, DEAD_AFTER = 20000, CONNECT_TIMEOUT = 8000;

  // ---------- words: CCAPI values and error codes in a photographer's language ----------
  // One table: raw CCAPI value -> what the camera's own screen says.
  const WORDS = {
    mode: { m: "M", av: "Av", tv: "Tv", p: "P", bulb: "B", fv: "Fv", a: "A+", auto: "A+", scn: "SCN", ca: "CA", flexible: "Fv",
      c1: "C1", c2: "C2", c3: "C3", custom1: "C1", custom2: "C2", custom3: "C3", movie: "Movie" },
    wb: { auto: "Auto", awb: "Auto", awbwhite: "Auto (white)", awbambience: "Auto (ambience)", daylight: "Daylight", shade: "Shade",
      cloudy: "Cloudy", tungsten: "Tungsten", whitefluorescent: "Fluorescent", flash: "Flash", custom: "Custom", colortemp: "Kelvin" },
    drive: { single: "Single", highspeedcontinuous: "Continuous H", highspeedcontinuousplus: "Continuous H+", lowspeedcontinuous: "Continuous L",
      silentsingle: "Silent single", self_10sec: "Self-timer 10 s", self_2sec: "Self-timer 2 s", self_continuous: "Self-timer, continuous" },
    afoperation: { oneshot: "One Shot", servo: "Servo", aifocus: "AI Focus", manual: "Manual focus" },
  };
  const SETTING_NAMES = { mode: "Mode", tv: "Shutter", av: "Aperture", iso: "ISO", exposure: "Exp. comp.", wb: "White balance", drive: "Drive", afoperation: "Focus" };
  // status block key -> CCAPI setting name (for changing it)
  const CCAPI_NAME = { mode: "shootingmodedial", tv: "tv", av: "av", iso: "iso", exposure: "exposure", wb: "wb", drive: "drive", afoperation: "afoperation" };
  function word(key, raw) {
    if (raw === null || raw === undefined || raw === "") return "–";
    const v = String(raw);
    switch (key) {
      case "tv": {
        if (/^bulb$/i.test(v)) return "Bulb";
        const m = /^(\d+)"(\d*)$/.exec(v); // 20" , 0"5
        return m ? (m[2] ? m[1] + "." + m[2] : m[1]) + "\"" : v;
      }
      case "av": { const m = /^f?(\d+(?:\.\d+)?)$/i.exec(v); return m ? "f/" + String(Number(m[1])) : v; }
      case "iso": return /^auto$/i.test(v) ? "ISO Auto" : "ISO " + v;
      case "exposure": {
        const m = /^([+-])?(\d+)(?:_(\d)\/3)?$/.exec(v.replace(/\.0$/, ""));
        if (!m) return v;
        const thirds = { 1: "⅓", 2: "⅔" }[m[3]] || "";
        const whole = m[2] === "0" && thirds ? "" : m[2];
        return (whole === "0" && !thirds) ? "±0" : (m[1] || "+") + whole + thirds;
      }
      default: return (WORDS[key] && WORDS[key][v.toLowerCase()]) || v;
    }
  }
  // Shutter speed as Canon writes it ("1/125", "0\"5", "30\"") in seconds.
  function tvSeconds(v) {
    if (typeof v !== "string") return null;
    if (v.includes("/")) { const [a, b] = v.split("/").map(Number); return b ? a / b : null; }
    const m = /^(\d+)"(\d*)$/.exec(v);
    return m ? Number(m[1] + "." + (m[2] || "0")) : null;
  }
  // One table: error code -> a sentence a photographer understands. `null`: the server's own
  // message is already written for people (refusals with their reason).
  const ERRORS = {
    CAMERA_OFFLINE: "The camera is not connected. Check that it is on and its Wi-Fi is enabled.",
    CAMERA_BUSY: "The camera is busy (exposing or writing). Try again in a moment.",
    PHOTO_FAILED: "The camera did not take the photo.",
    CAMERA_TIMEOUT: "The camera did not answer in time.",
    NETWORK_ERROR: "The connection to the camera broke off.",
    CONNECTION_FAILED: "No camera answered at that address.",
    WIFI_SCAN_FAILED: "The Wi-Fi scan did not work. Try again.",
    PERMISSION_DENIED: "The Pi is not allowed to do that.",
    SERVICE_UNAVAILABLE: "That part of the Pi is not available right now.",
    SYSTEM_ERROR: "Something went wrong on the Pi.",
    SESSION_NOT_FOUND: "No timelapse is running.",
    RATE_LIMITED: "Too many requests; wait a moment.",
    NOT_FOUND: "It is not there any more.",
    CERTIFICATE_CHANGED: "The camera's certificate changed: make sure it is your camera.",
    PAYLOAD_TOO_LARGE: "The file is too large.",
    OFFLINE: "Not connected to the Pi.",
    TIMEOUT: "The Pi did not answer.",
    VALIDATION_FAILED: null, INVALID_PARAMETER: null, MISSING_PARAMETER: null,
  };
  // Raw reasons (OS errors, link states) as plain words.
  const REASONS = [
    [/os error 111|connection refused/i, "the camera refused the connection"],
    [/os error 113|no route/i, "no route to the camera"],
    [/os error 101|network is unreachable/i, "the network is unreachable"],
    [/os error 104|reset by peer|connection reset/i, "the connection was cut"],
    [/timed out|timeout|no reply/i, "no answer in time"],
    [/busy/i, "the camera was busy"],
    [/backoff/i, "waiting before the next try"],
    [/d-?bus/i, "the Pi's network service is not available"],
    [/not connected|camera offline|not available/i, "camera not connected"],
  ];
  function plain(reason) {
    if (!reason) return "";
    const s = typeof reason === "object" ? reason.message || JSON.stringify(reason) : String(reason);
    for (const [re, text] of REASONS) if (re.test(s)) return text;
    return s;
  }
  // [headline, details] of an error reply.
  function errText(e) {
    if (!e) return ["That did not work.", ""];
    const msg = e.message || String(e);
    const table = e.code in ERRORS ? ERRORS[e.code] : undefined;
    let detail = (e.code ? e.code + ": " : "") + msg;
    if (e.details && Array.isArray(e.details.attempts)) detail += " · " + e.details.attempts.map((a) => a.error).join("; ");
    else if (e.details && e.details.cameraMessage) detail += " · camera: " + e.details.cameraMessage;
    return [table || msg, table ? detail : ""];
  }

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
  const count = (n) => !num(n) ? "–" : n >= 100000 ? Math.round(n / 1000) + "k" : n >= 10000 ? (n / 1000).toFixed(1) + "k" : n.toLocaleString("en-US");
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
  // m:ss for intervals and countdowns (fractions kept below 10 s).
  function mmss(sec) {
    if (!num(sec)) return "–";
    if (sec < 10 && sec % 1) return sec.toFixed(1) + " s";
    sec = Math.round(sec);
    return Math.floor(sec / 60) + ":" + String(sec % 60).padStart(2, "0");
  }
  const clock = (t) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  const hhmm = (t) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
  function fmtTime(iso) { const t = Date.parse(iso); return isNaN(t) ? "–" : clock(t); }
  function fmtDate(iso) {
    const t = Date.parse(iso);
    return isNaN(t) ? "–" : new Date(t).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false });
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
  const SEV = { err: "sev-err", warn: "sev-warn", ok: "sev-ok", info: "" };

  // ---------- messages: toasts by their action (they expire), lifecycle in the header ----------
  function msgsFor(anchor) {
    const card = anchor && anchor.closest && anchor.closest(".card");
    return (card && card.querySelector(":scope > .msgs")) || $("toasts");
  }
  const TOAST_LIFE = { ok: 4000, info: 6000, warn: 10000, err: 15000 };
  function toast(anchor, kind, text, detail, extra) {
    const box = msgsFor(anchor);
    const t = el("div", { class: "toast " + (SEV[kind] || ""), role: kind === "err" ? "alert" : "status" },
      el("div", null, el("p", null, text), detail ? el("details", null, el("summary", null, "Details"), detail) : null, extra || null),
      el("button", { class: "small", "aria-label": "Dismiss", onclick: () => t.remove() }, "✕"));
    box.append(t);
    while (box.children.length > 3) box.firstChild.remove();
    setTimeout(() => t.remove(), TOAST_LIFE[kind] || 8000);
    return t;
  }
  function toastErr(anchor, e) { const [m, d] = errText(e); return toast(anchor, "err", m, d); }
  function clearToasts() { for (const t of document.querySelectorAll(".toast")) t.remove(); }
  let lifeTimer = 0;
  function life(text, kind, ms) {
    const p = $("life");
    p.className = "life " + (SEV[kind] || "");
    p.textContent = text;
    p.hidden = false;
    clearTimeout(lifeTimer);
    lifeTimer = setTimeout(() => { p.hidden = true; }, ms || 10000);
    layout();
  }
  // The header's height, so an opened card scrolls to just below it.
  function layout() { document.documentElement.style.setProperty("--hdr", $("hdr").offsetHeight + "px"); }

  // ---------- connection: an application-level ping, honest about stale data ----------
  function wsUrl() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    return proto + "//" + location.host + "/ws" + (token ? "?token=" + encodeURIComponent(token) : "");
  }
  function setLink(state, text) {
    const l = $("link");
    l.textContent = text;
    l.className = "pill " + (state === "live" ? "ok" : state === "stale" || state === "connecting" ? "warn" : "bad");
    document.body.dataset.link = state;
    $("offline").hidden = state !== "offline";
    $("main").classList.toggle("stale", state !== "live");
    $("strip").classList.toggle("stale", state !== "live");
    $("rec").hidden = state !== "live" || !isLive(S.intervalometer);
    layout();
  }
  function connect() {
    clearTimeout(retryTimer);
    retryTimer = 0;
    if (ws) return;
    setLink("connecting", "connecting…");
    let sock;
    try { sock = new WebSocket(wsUrl()); } catch (_) { scheduleReconnect(); return; }
    ws = sock;
    // A connect that hangs (phone between networks) is given up, then retried.
    connectTimer = setTimeout(() => { if (sock === ws && sock.readyState !== 1) drop(); }, CONNECT_TIMEOUT);
    sock.onopen = () => { clearTimeout(connectTimer); delay = 1000; lastMsgAt = Date.now(); setLink("live", "live"); };
    sock.onmessage = (ev) => {
      if (sock !== ws) return;
      lastMsgAt = Date.now();
      if (document.body.dataset.link !== "live") setLink("live", "live");
      let msg;
      try { msg = JSON.parse(ev.data); } catch (_) { return; }
      if (msg && typeof msg === "object") onMessage(msg);
    };
    sock.onclose = () => { if (sock === ws) drop(); };
  }
  // Forget the socket (closing it if still open), fail what waits on it, retry later.
  function drop() {
    const s = ws;
    ws = null;
    clearTimeout(connectTimer);
    if (s) { s.onclose = null; try { s.close(); } catch (_) {} }
    for (const [, p] of pending) { clearTimeout(p.timer); p.reject({ code: "OFFLINE", message: "Connection to the Pi lost" }); }
    pending.clear();
    awayFrom(lastMsgAt || Date.now());
    scheduleReconnect();
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
    const shooting = isLive(S.intervalometer);
    $("offline-text").textContent = "Pi unreachable" + (shooting ? " · the Pi keeps shooting" : "") + " · retry in " + s + " s";
  }
  // Every second: ping, tell how old the data is, give up on a silent socket.
  let pingAt = 0;
  setInterval(() => {
    offlineTick();
    if (!ws || ws.readyState !== 1) return;
    const now = Date.now(), age = now - lastMsgAt;
    if (now - pingAt >= PING_EVERY) { pingAt = now; send({ type: "ping", id: "ping" + ++seq }); }
    if (age > DEAD_AFTER) { drop(); return; }
    if (age > STALE_AFTER) setLink("stale", "last update " + Math.round(age / 1000) + " s ago");
    $("rec").hidden = !isLive(S.intervalometer) || document.body.dataset.link !== "live";
    tick();
  }, 1000);
  $("retry").onclick = () => { delay = 1000; if (ws) drop(); clearTimeout(retryTimer); retryTimer = 0; connect(); };
  // Back to the page: reconnect at once if the data is stale; then tell what happened meanwhile.
  let away = null; // {at, stats} when the phone stopped hearing from the Pi
  function awayFrom(at) {
    if (away) return;
    const s = S.intervalometer;
    away = { at: at, id: s && s.sessionId, stats: s && s.stats ? Object.assign({}, s.stats) : null };
  }
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") { awayFrom(Date.now()); return; }
    if (!ws || Date.now() - lastMsgAt > STALE_AFTER / 2) { delay = 1000; if (ws) drop(); clearTimeout(retryTimer); retryTimer = 0; connect(); }
    else if (away && Date.now() - away.at < 15000) away = null; // a short glance away: nothing to tell
  });
  // Called on fresh status: one line about what the Pi did while the phone was away.
  function backFromAway() {
    if (!away) return;
    const a = away, s = S.intervalometer;
    away = null;
    const mins = (Date.now() - a.at) / 1000;
    if (mins < 20 || !a.stats || !s || s.sessionId !== a.id || !s.stats) return;
    const d = (k) => Math.max(0, (s.stats[k] || 0) - (a.stats[k] || 0));
    const ended = !isLive(s) ? " · the session " + (s.state === "completed" ? "completed" : s.state) : "";
    life("While you were away (" + fmtDur(mins) + "): " + d("shotsSuccessful") + " taken, " + d("shotsFailed") + " failed, " + d("shotsSkipped") + " skipped" + ended,
      d("shotsFailed") ? "warn" : "ok", 20000);
  }
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
  // Camera commands retry a busy camera (it stays busy ~0.5 s after a shot; CCAPI says retry).
  const RETRY_BUSY = ["take_photo", "set_camera_setting"];
  async function cmdRetry(type, data, timeoutMs) {
    for (let wait = 500; ; wait *= 2) {
      try { return await cmd(type, data, timeoutMs); } catch (e) {
        if (!(e && e.code === "CAMERA_BUSY" && RETRY_BUSY.includes(type) && wait <= 2000)) throw e;
        await new Promise((res) => setTimeout(res, wait));
      }
    }
  }
  // Runs a command for a button: busy while waiting, error toast next to it.
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
      renderShootButtons();
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
        loadSun();
        backFromAway();
        break;
      case "status_update": case "status": status(msg.data || msg); backFromAway(); break;
      case "time-sync-request": {
        const d = msg.data || msg;
        send({ type: "time-sync-response", data: { requestId: d.requestId, clientTime: Date.now(), serverTime: d.serverTime, timezone: Intl.DateTimeFormat().resolvedOptions().timeZone } });
        break;
      }
      case "error": { if (!id || !String(id).startsWith("ping")) { const [m, d] = errText(msg.data || msg.error); toast(null, "err", m, d); } break; }
      case "event": onEvent(msg.eventType, msg.data || {}); break;
      case "timelapse_event": onTimelapseEvent(msg.eventType, msg.data || {}); break;
      case "discovery_event": break; // the camera block says it (banner, strip)
      case "network_event": onNetworkEvent(msg.eventType, msg.data || {}); break;
    }
  }

  const BLOCKS = ["camera", "discovery", "network", "power", "storage", "temperature", "intervalometer", "timesync"];
  function status(d) {
    for (const b of BLOCKS) if (b in d) S[b] = d[b];
    if (changed("cam", [S.camera, S.storage, S.temperature, S.power && S.power.estimate])) { renderCamera(); renderStrip(); renderSettings(); }
    if (changed("disc", S.discovery)) renderDiscovery();
    if (changed("iv", S.intervalometer)) renderSession();
    if (changed("net", S.network)) renderNetwork();
    if (changed("time", S.timesync)) renderTime();
    if (changed("power", [S.power, S.intervalometer && S.intervalometer.running])) { renderPower(); sessionWarnings(); }
    if (changed("plan", [S.camera && S.camera.settings && S.camera.settings.tv, S.camera && S.camera.connected, S.power && S.power.estimate, S.storage, S.camera && S.camera.battery])) onFormChange();
    renderBanner();
    renderAbout();
  }

  // ---------- the strip and the camera banner ----------
  const camOk = () => !!(S.camera && S.camera.connected && (!S.camera.state || S.camera.state === "connected"));
  function battText(b) {
    if (!b || b.level === null || b.level === undefined) return "–";
    if (b.kind === "ac_adapter" || b.kind === "dc") return "mains";
    return num(b.level) || /^\d+$/.test(b.level) ? b.level + " %" : String(b.level);
  }
  function cardText() {
    const s = S.storage, est = S.power && S.power.estimate;
    if (!s) return "no card info";
    if (s.mounted === false) return "no card";
    if (est && num(est.shotsByCard)) return "≈" + count(est.shotsByCard) + " shots";
    return fmtMB(s.freeMB) + " free";
  }
  function renderStrip() {
    const c = S.camera || {}, st = c.settings || {};
    const strip = $("strip");
    const ok = camOk();
    strip.classList.toggle("bad", !!S.camera && !ok);
    $("st-exp").textContent = !S.camera ? "–" : !ok && !st.tv ? "Camera not responding"
      : [word("mode", st.mode), word("tv", st.tv), word("av", st.av), word("iso", st.iso)].join(" · ") + (ok ? "" : " (not responding)");
    strip.querySelector(".st-more").hidden = !S.camera;
    $("st-batt").textContent = "▮ " + battText(c.battery);
    $("st-card").textContent = cardText();
  }
  // The full-width banner: the camera stopped answering (since when, how many frames missed),
  // and a while after it came back.
  let camLostAt = null, backShown = null;
  function renderBanner() {
    const b = $("banner"), s = S.intervalometer, live = isLive(s);
    const o = live && s.outage, lo = s && s.lastOutage;
    const ok = camOk();
    if (!S.camera || ok) camLostAt = null; else if (!camLostAt) camLostAt = serverNow();
    let text = null, kind = "err";
    if (o && (o.framesMissed >= 2 || s.cameraConnected === false || !ok)) {
      text = "Camera not answering since " + fmtTime(o.since) + " · " + o.framesMissed + " frame" + (o.framesMissed === 1 ? "" : "s") + " missed · retrying";
    } else if (S.camera && !ok) {
      text = "Camera not answering since " + clock(camLostAt) + " · " + (live ? "the session keeps its schedule" : "retrying");
    } else if (live && lo && lo.until && serverNow() - Date.parse(lo.until) < 60000) {
      text = "Camera back at " + fmtTime(lo.until) + " · " + lo.framesMissed + " frame" + (lo.framesMissed === 1 ? "" : "s") + " missed (" + fmtTime(lo.since) + "–" + fmtTime(lo.until) + ")";
      kind = "ok";
      if (backShown !== lo.until) { backShown = lo.until; buzz(100); }
    }
    const was = b.hidden ? null : b.textContent;
    b.hidden = !text;
    if (text) { b.textContent = text; b.className = "banner " + SEV[kind]; }
    document.body.dataset.banner = text ? kind : "none";
    if (was !== (text || null)) layout();
  }

  // ---------- camera ----------
  const CAM_STATE = { connected: "connected", probing: "connecting…", backoff: "retrying", disconnected: "not connected" };
  function renderCamera() {
    const c = S.camera || {};
    const st = c.state || (c.connected ? "connected" : "disconnected");
    const pill = $("cam-state");
    pill.textContent = CAM_STATE[st] || st;
    pill.className = "pill " + (st === "connected" ? "ok" : st === "probing" ? "warn" : "bad");
    document.body.dataset.camera = st;
    const b = c.battery || {};
    const s = S.storage, est = S.power && S.power.estimate;
    const retry = c.nextRetryAt ? Math.max(0, Math.round((Date.parse(c.nextRetryAt) - serverNow()) / 1000)) : null;
    kv($("cam-kv"), [
      ["Model", c.model || undefined],
      ["Address", c.ip ? c.ip + (c.port ? ":" + c.port : "") : "–"],
      ["Battery", battText(b) + (b.quality && b.quality !== "good" ? " · " + b.quality : ""),
        b.level === "low" || b.level === "exhausted" || (num(b.level) && b.level < 20) ? "warn" : ""],
      ["Card", s ? (s.mounted === false ? "no card" : fmtMB(s.freeMB) + " free of " + fmtMB(s.totalMB)) : "–", s && s.percentUsed > 90 ? "warn" : ""],
      ["Shots left", est && num(est.shotsByCard) ? "≈" + count(est.shotsByCard) + " (" + (est.bytesPerShot / 1048576).toFixed(1) + " MB each, measured)" : undefined],
      ["Temperature", S.temperature || "–", S.temperature && S.temperature !== "normal" ? "warn" : ""],
      ["Next try", retry !== null && st !== "connected" ? (retry > 0 ? "in " + fmtDur(retry) : "now") : undefined],
    ]);
    const e = c.lastError, box = $("cam-error");
    box.hidden = !e || st === "connected";
    box.textContent = "";
    if (e) box.append("Last problem: " + plain(e), el("details", null, el("summary", null, "Details"), typeof e === "object" ? e.message || JSON.stringify(e) : String(e)));
    renderShootButtons();
  }
  // During a session: no photo by hand; a test photo waits for a gap between frames.
  function renderShootButtons() {
    const live = isLive(S.intervalometer);
    const take = $("take-photo"), test = $("test-photo");
    if (!take.classList.contains("busy")) take.disabled = live || !camOk();
    if (!test.classList.contains("busy")) test.disabled = !camOk();
    const note = $("shoot-note");
    note.hidden = !live;
    note.textContent = live ? "A timelapse is running: Take photo is off. A test photo waits for a gap between frames, or is refused if no gap is long enough." : "";
  }
  $("take-photo").onclick = (ev) => act(ev.currentTarget, "take_photo", {}, (r) => r && r.success === false ? "Camera answered, no photo" : "Photo taken", 60000);
  let testPhotoId = null;
  $("test-photo").onclick = async (ev) => {
    const btn = ev.currentTarget;
    const bar = $("test-progress");
    bar.hidden = false;
    progress(bar, 0, isLive(S.intervalometer) ? "waiting for a gap between frames…" : "taking…");
    testPhotoId = null;
    const settings = Object.assign({}, (S.camera && S.camera.settings) || {});
    const r = await act(btn, "take_test_photo", {}, null, 180000);
    bar.hidden = true;
    if (!r) return;
    const url = api(r.fileUrl || "/api/camera/photos/test/" + encodeURIComponent(r.id) + "/file");
    showPhoto($("test-preview"), url, r.settings || settings, (r.filename || r.id) + (r.preview === "display" ? " · display size" : "") + (num(r.size) ? " · " + (r.size >= 1e6 ? (r.size / 1e6).toFixed(1) + " MB" : Math.max(1, Math.round(r.size / 1e3)) + " kB") : ""), r.filename);
  };
  function progress(bar, pct, text) {
    bar.firstElementChild.style.width = Math.max(0, Math.min(100, pct)) + "%";
    bar.lastElementChild.textContent = text;
  }

  // ---------- photos: truthful, with exposure, histogram and clipping; tap for 100 % ----------
  function showPhoto(box, url, settings, note, filename) {
    box.hidden = false;
    box.textContent = "";
    const img = el("img", { alt: "Photo " + (filename || ""), src: url });
    const canvas = el("canvas", { width: 256, height: 56, "aria-label": "Histogram" });
    const st = settings || {};
    const exp = el("b", null, [word("tv", st.tv), word("av", st.av), word("iso", st.iso)].join(" · "));
    const clip = el("span", { class: "dim" }, "");
    const cap = el("figcaption", null, exp, " ", clip, el("br"), el("small", { class: "dim" }, note || ""));
    img.onload = () => { const h = histogram(img); canvas._h = h; drawHistogram(canvas, h); clip.textContent = "· clipped " + pct(h.high) + " bright, " + pct(h.low) + " dark"; };
    img.onerror = () => { img.remove(); canvas.remove(); cap.append(" · no preview (not a displayable JPEG)"); };
    img.onclick = (e) => zoom(img, e);
    box.append(el("div", { class: "frame" }, img), canvas, cap);
    if (filename) box.append(el("a", { class: "button", href: url, download: filename }, "Save preview"));
  }
  const pct = (x) => (x * 100 < 0.1 && x > 0 ? "<0.1" : (x * 100).toFixed(x * 100 < 10 ? 1 : 0)) + " %";
  // Luminance histogram (64 bins) and the share of clipped pixels, from a downscaled copy.
  function histogram(img) {
    const w = Math.min(320, img.naturalWidth || 1), h = Math.max(1, Math.round(w * (img.naturalHeight || 1) / (img.naturalWidth || 1)));
    const c = document.createElement("canvas");
    c.width = w; c.height = h;
    const g = c.getContext("2d", { willReadFrequently: true });
    g.drawImage(img, 0, 0, w, h);
    let data;
    try { data = g.getImageData(0, 0, w, h).data; } catch (_) { return { bins: new Array(64).fill(0), high: 0, low: 0 }; }
    const bins = new Array(64).fill(0);
    let high = 0, low = 0;
    for (let i = 0; i < data.length; i += 4) {
      const r = data[i], gg = data[i + 1], b = data[i + 2];
      bins[Math.min(63, (0.2126 * r + 0.7152 * gg + 0.0722 * b) >> 2)]++;
      if (r >= 250 || gg >= 250 || b >= 250) high++;
      if (r <= 3 && gg <= 3 && b <= 3) low++;
    }
    const n = data.length / 4;
    return { bins: bins, high: high / n, low: low / n };
  }
  function drawHistogram(canvas, h) {
    const g = canvas.getContext("2d");
    const max = Math.max(1, ...h.bins);
    g.clearRect(0, 0, canvas.width, canvas.height);
    g.fillStyle = getComputedStyle(canvas).color;
    const bw = canvas.width / h.bins.length;
    h.bins.forEach((v, i) => { const bh = Math.max(v ? 1 : 0, Math.round((Math.sqrt(v / max)) * (canvas.height - 2))); g.fillRect(i * bw, canvas.height - bh, bw - 1, bh); });
  }
  function zoom(img, e) {
    const z = $("zoom");
    z.textContent = "";
    const big = el("img", { src: img.src, alt: img.alt });
    // 100 %: one image pixel per screen pixel.
    big.style.width = (img.naturalWidth / (window.devicePixelRatio || 1)) + "px";
    z.append(big);
    z.hidden = false;
    const r = img.getBoundingClientRect();
    const fx = (e.clientX - r.left) / r.width, fy = (e.clientY - r.top) / r.height;
    requestAnimationFrame(() => { z.scrollLeft = fx * z.scrollWidth - z.clientWidth / 2; z.scrollTop = fy * z.scrollHeight - z.clientHeight / 2; });
    z.onclick = () => { z.hidden = true; z.textContent = ""; };
  }

  // ---------- settings: from the status block, changed through our own picker ----------
  let abilities = null; // CCAPI settings with their abilities, fetched on the first change
  // Tiles are made once and then only their text changes: a tile replaced under a finger
  // (status arrives with every frame) would swallow the tap.
  function renderSettings() {
    const box = $("settings"), st = (S.camera && S.camera.settings) || null;
    const keys = st ? ["mode", "tv", "av", "iso", "exposure", "wb", "drive", "afoperation"].filter((k) => st[k] || k !== "exposure") : [];
    if (!st || !Object.values(st).some((v) => v)) {
      box.textContent = "";
      box.dataset.keys = "";
      box.append(el("p", { class: "dim" }, camOk() ? "The camera has not reported its settings yet." : "No camera."));
      return;
    }
    if (box.dataset.keys !== keys.join()) {
      box.textContent = "";
      box.dataset.keys = keys.join();
      for (const key of keys) box.append(el("button", { class: "tile", type: "button", "data-setting": key, onclick: (e) => changeSetting(key, e.currentTarget) },
        el("small", null, SETTING_NAMES[key]), el("span", null, "")));
    }
    for (const key of keys) {
      const span = box.querySelector('[data-setting="' + key + '"] span');
      const text = word(key, st[key]);
      if (span.textContent !== text) span.textContent = text;
    }
  }
  async function changeSetting(key, tile) {
    const name = CCAPI_NAME[key];
    if (!abilities || !abilities[name]) {
      tile.classList.add("busy");
      try { abilities = await cmd("get_camera_settings"); } catch (e) { toastErr(tile, e); return; } finally { tile.classList.remove("busy"); }
    }
    const s = abilities[name] || (key === "mode" && abilities.shootingmode);
    const list = s && Array.isArray(s.ability) ? s.ability : null;
    if (!list || !list.length) { toast(tile, "warn", SETTING_NAMES[key] + " cannot be changed from here (set it on the camera)."); return; }
    const current = S.camera && S.camera.settings ? S.camera.settings[key] : s.value;
    const value = await pick(SETTING_NAMES[key], list.map((v) => [v, word(key, v)]), current);
    if (value === null || value === current) return;
    if (isLive(S.intervalometer) && !(await confirmSheet("A timelapse is running. Changing " + SETTING_NAMES[key].toLowerCase() + " to " + word(key, value) + " makes a visible jump in the sequence. Change it now?", "Change"))) return;
    tile.disabled = true;
    try {
      await cmdRetry("set_camera_setting", { setting: s === abilities.shootingmode ? "shootingmode" : name, value: value });
      s.value = value;
      toast(tile, "ok", SETTING_NAMES[key] + ": " + word(key, value));
    } catch (e) {
      const [m, d] = errText(e);
      toast(tile, "err", SETTING_NAMES[key] + ": " + m, d);
    } finally { tile.disabled = false; }
  }
  // A list of choices in a sheet; resolves with the value, or null.
  function pick(title, choices, current) {
    return new Promise((resolve) => {
      $("picker-title").textContent = title;
      const list = $("picker-list");
      list.textContent = "";
      const done = (v) => { $("picker").hidden = true; resolve(v); };
      for (const [v, label] of choices) list.append(el("button", { type: "button", "data-value": v, "aria-pressed": String(v === current), onclick: () => done(v) }, label));
      $("picker-cancel").onclick = () => done(null);
      $("picker").hidden = false;
      const cur = list.querySelector('[aria-pressed="true"]');
      if (cur) cur.scrollIntoView({ block: "center" });
    });
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
        el("small", null, (c.ipAddress || "?") + (c.online === false ? " · offline" : ""))), use));
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

  // ---------- the monitor ----------
  // "scheduled": started or resumed, waiting for its first slot.
  const isLive = (s) => !!s && (s.running === true || ["running", "scheduled", "stopping"].includes(s.state));
  let vibrate = false;
  try { vibrate = localStorage.getItem("skylapse.vibrate") === "1"; } catch (_) {}
  function buzz(pattern) { if (vibrate && navigator.vibrate) try { navigator.vibrate(pattern); } catch (_) {} }
  let wasLive = false, frameOf = null;
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
    if (wasLive && !live && currentTab === "timelapse") scrollTo(0, 0); // the outcome is at the top
    if (s && s.sessionId !== frameOf) { frameOf = s.sessionId; $("s-frame").hidden = true; $("s-frame").textContent = ""; drawLive(); }
    wasLive = live;
    $("tl-form").hidden = !!live;
    $("rec").hidden = !live || document.body.dataset.link !== "live";
    renderShootButtons();
    if (!s) return;
    const st = s.stats || {}, o = s.options || {}, tm = st.timing || {};
    $("s-title").textContent = s.title || "Session";
    const pill = $("s-state");
    pill.textContent = s.state;
    pill.className = "pill " + (s.state === "running" ? "ok" : s.state === "error" ? "bad" : live ? "warn" : "");
    $("s-ok").textContent = count(st.shotsSuccessful || 0) + (o.totalShots ? "/" + count(o.totalShots) : "");
    $("s-failed").textContent = count(st.shotsFailed || 0);
    $("s-failed").className = st.shotsFailed ? "err" : "";
    $("s-skipped").textContent = count(st.shotsSkipped || 0);
    $("s-skipped").className = st.shotsSkipped ? "warn" : "";
    const end = Date.parse(s.estimatedEndTime), start = Date.parse(st.startTime);
    let p = null, label = "";
    if (o.totalShots) { p = 100 * (st.shotsTaken || 0) / o.totalShots; label = (st.shotsTaken || 0) + " of " + o.totalShots + " frames"; }
    else if (!isNaN(end) && !isNaN(start) && end > start) { p = 100 * (serverNow() - start) / (end - start); label = "until " + fmtTime(s.estimatedEndTime); }
    if (!live && s.state === "completed") { p = 100; label = "done"; }
    $("s-progress").hidden = p === null;
    if (p !== null) progress($("s-progress"), p, label);
    kv($("s-kv"), [
      ["Interval", mmss(o.interval) + (o.bulb ? " · bulb " + o.bulb + " s" : "")],
      ["Stop", stopText(o)],
      ["Started", fmtTime(st.startTime)],
      ["Ends", live && s.estimatedEndTime ? fmtTime(s.estimatedEndTime) : undefined],
      ["Timing", num(tm.meanErrorMs) ? "mean " + fmtMs(tm.meanErrorMs) + " · p99 " + fmtMs(tm.p99ErrorMs) : "–"],
      ["Overtime", st.overtimeShots ? st.overtimeShots + " frames, max " + fmtDur(st.maxOvertimeSeconds) : undefined, "warn"],
      ["Ended", s.endReason ? plain(s.endReason) : undefined],
    ]);
    sessionWarnings();
    $("stop").hidden = !live;
    $("stop").disabled = s.state === "stopping";
    tick();
  }
  // Card and battery against what the session still needs, for every stop condition.
  function sessionWarnings() {
    const s = S.intervalometer, ul = $("s-warnings");
    ul.textContent = "";
    if (!isLive(s)) return;
    const p = S.power || {};
    for (const w of p.warnings || []) ul.append(el("li", { class: w.severity === "critical" ? "sev-err" : "sev-warn" }, w.message || w.kind));
    const o = s.options || {}, st = s.stats || {};
    // Frames still to come for every bounded stop condition (server: framesLeft).
    let left = num(s.framesLeft) ? s.framesLeft : s.remainingShots;
    if (left == null && s.estimatedEndTime && num(o.interval) && o.interval > 0) left = Math.max(0, Math.ceil((Date.parse(s.estimatedEndTime) - Date.parse(st.nextShotTime || s.estimatedEndTime)) / 1000 / o.interval));
    for (const line of supplyLines(left, o.interval, true)) ul.append(el("li", { class: SEV[line[0]] }, line[1]));
  }
  // [[kind, text]] for the card and the camera battery against `frames` (null: until stopped).
  function supplyLines(frames, interval, during) {
    const out = [];
    const est = (S.power && S.power.estimate) || {}, s = S.storage, b = (S.camera && S.camera.battery) || {};
    const need = num(frames) ? frames : null;
    const lasts = (n) => num(interval) && interval > 0 ? " (" + fmtDur(n * interval) + ")" : "";
    if (s && s.mounted === false) out.push(["err", "No card in the camera"]);
    else if (num(est.shotsByCard)) {
      if (need === null) out.push(["info", "Card: room for ≈" + count(est.shotsByCard) + " frames" + lasts(est.shotsByCard)]);
      else if (est.shotsByCard < need) out.push(["err", "Card: room for ≈" + count(est.shotsByCard) + " frames, " + (during ? "the session needs " : "the plan needs ") + count(need) + " — it fills up after" + lasts(est.shotsByCard)]);
      else out.push(["ok", "Card: room for ≈" + count(est.shotsByCard) + " frames, enough for " + count(need)]);
    } else if (s) out.push(["info", "Card: " + fmtMB(s.freeMB) + " free (size per frame not measured yet; a test photo measures it)"]);
    const bl = b.level;
    if (num(est.shotsByBattery)) {
      if (need !== null && est.shotsByBattery < need) out.push(["err", "Camera battery: lasts ≈" + count(est.shotsByBattery) + " frames, " + (during ? "the session needs " : "the plan needs ") + count(need)]);
      else out.push([need === null ? "info" : "ok", "Camera battery: lasts ≈" + count(est.shotsByBattery) + " frames" + lasts(est.shotsByBattery)]);
    } else if (bl !== undefined && bl !== null) {
      const low = bl === "low" || bl === "exhausted" || (num(Number(bl)) && Number(bl) < 20);
      out.push([low ? "warn" : "info", "Camera battery: " + battText(b) + (low ? " — low for a long session" : need !== null && need > 300 ? " (use per frame not measured yet)" : "")]);
    }
    return out;
  }
  function stopText(o) {
    switch (o.stopCondition) {
      case "stop-after": return "after " + o.totalShots + " frames";
      case "stop-at": return "at " + (o.stopTimeOfDay || (/^\d\d:\d\d$/.test(o.stopTime || "") ? o.stopTime : fmtTime(o.stopTime)));
      case "duration": return "after " + fmtDur(o.duration);
      default: return "never (until stopped)";
    }
  }
  // Once a second, from nextShotTime and the exposure (no server traffic): the countdown, or
  // "Exposing… 14 s" while a long exposure is open.
  function tick() {
    const s = S.intervalometer;
    const live = isLive(s);
    const st = (s && s.stats) || {}, o = (s && s.options) || {};
    const next = Date.parse(st.nextShotTime), now = serverNow();
    const exposure = num(o.bulb) ? o.bulb : tvSeconds(S.camera && S.camera.settings && S.camera.settings.tv);
    const lastFired = isNaN(next) || !num(o.interval) ? NaN : next - o.interval * 1000;
    let text = "–", label = "next frame";
    if (live && s.state === "scheduled" && !isNaN(next)) { text = mmss(Math.max(0, (next - now) / 1000)); label = "until the first frame"; }
    // The frame before `next` has been fired once its slot is not before the session's start.
    let exposing = null;
    if (live && num(exposure) && exposure >= 1 && lastFired >= Date.parse(st.startTime) - 1 && now >= lastFired && now < lastFired + exposure * 1000) exposing = Math.ceil((lastFired + exposure * 1000 - now) / 1000);
    if (exposing !== null) { text = "Exposing… " + exposing + " s"; label = ""; }
    else if (live && s.state !== "scheduled") text = isNaN(next) ? "…" : next - now > 0 ? mmss(Math.ceil((next - now) / 1000)) : "now";
    $("s-next").textContent = text;
    $("s-next-label").textContent = label;
    if (live) $("rec").textContent = "● " + count(st.shotsSuccessful || 0) + (st.shotsFailed ? " ✕" + count(st.shotsFailed) : "") + " · " + (exposing !== null ? "exp. " + exposing + " s" : text);
    if (S.camera && !camOk()) renderBanner();
    if (S.camera && S.camera.state !== "connected" && S.camera.nextRetryAt) renderCamera();
  }
  // A gloved mis-tap must not end a night's session: confirm first.
  $("stop").onclick = async (ev) => {
    const btn = ev.currentTarget;
    if (await confirmSheet("Stop the timelapse now?", "Stop")) act(btn, "stop_intervalometer", {});
  };
  $("rec").onclick = () => showTab("timelapse");

  // Unsaved / interrupted session. `undefined` = leave as is, `null` = none. A finished one
  // folds into one line; an interrupted one stays open (it needs a decision).
  let unsaved = null;
  function renderUnsaved(u) {
    if (u === undefined) return;
    const card = $("unsaved-card");
    $("tabs").querySelector('[data-tab="timelapse"]').classList.toggle("badge", !!u);
    if (!u) { unsaved = null; card.hidden = true; return; }
    const fresh = !unsaved || unsaved.sessionId !== u.sessionId;
    unsaved = u;
    card.hidden = false;
    const ok = u.shotsSuccessful != null ? u.shotsSuccessful : u.shotsTaken;
    // Text changed in place: the line is tapped while status keeps arriving.
    const line = $("u-line");
    if (line.children.length !== 2) { line.textContent = ""; line.append(el("span"), el("span", { class: "dim" })); }
    line.children[0].className = u.interrupted ? "sev-warn" : "";
    line.children[0].textContent = (u.interrupted ? "Interrupted: " : "✓ Finished: ") + (u.title || "") + " · " + count(ok) + " taken" + (u.shotsFailed ? " · " + count(u.shotsFailed) + " failed" : "");
    line.children[1].textContent = u.saved ? "Saved ▸" : "Save ▸";
    if (fresh) {
      const open = !!u.interrupted;
      $("u-body").hidden = !open;
      line.setAttribute("aria-expanded", String(open));
      $("u-title").value = u.title || "";
    }
    // Reports are saved when a session ends: the card then names it, keeps it or discards it.
    $("u-head").textContent = u.saved ? "Saved as a report" : u.interrupted ? "Interrupted session" : "Save this session?";
    $("u-save").textContent = u.saved ? "Keep" : "Save report";
    kv($("u-kv"), [
      ["Status", u.status],
      ["Frames", count(ok) + " taken" + (u.shotsFailed ? ", " + count(u.shotsFailed) + " failed" : "")],
      ["Started", fmtDate(u.startTime)],
      ["Ended", u.endTime ? fmtDate(u.endTime) : undefined],
    ]);
    const actions = u.actions || ["save", "discard"];
    $("u-resume").hidden = !(u.canResume || actions.includes("resume"));
  }
  $("u-line").onclick = () => {
    const open = $("u-body").hidden;
    $("u-body").hidden = !open;
    $("u-line").setAttribute("aria-expanded", String(open));
  };
  $("u-save").onclick = async (ev) => {
    if (!unsaved) return;
    const title = $("u-title").value.trim();
    const r = unsaved.saved
      ? await act(ev.currentTarget, "update_report_title", { sessionId: unsaved.sessionId, title: title || unsaved.title })
      : await act(ev.currentTarget, "save_session_as_report", Object.assign({ sessionId: unsaved.sessionId }, title ? { title: title } : {}));
    if (r) { life("Report saved: " + (title || unsaved.title || "untitled"), "ok"); renderUnsaved(null); if (S.intervalometer) S.intervalometer.unsavedSession = null; seen.iv = null; renderSession(); if (currentTab === "reports") loadReports(); }
  };
  $("u-discard").onclick = async (ev) => {
    if (!unsaved || !(await confirmSheet(unsaved.saved ? "Discard this session? Its report will be deleted." : "Discard this session? Its timing data will be lost.", "Discard"))) return;
    const r = await act(ev.currentTarget, "discard_session", { sessionId: unsaved.sessionId });
    if (r) { life("Session discarded", "ok"); renderUnsaved(null); }
  };
  $("u-resume").onclick = async (ev) => {
    if (!unsaved) return;
    const r = await act(ev.currentTarget, "resume_session", { sessionId: unsaved.sessionId });
    if (r) { life("Session resumed", "ok"); renderUnsaved(null); }
  };

  // ---------- the plan ----------
  const form = $("tl-form");
  const radio = (name) => form.querySelector('input[name="' + name + '"]:checked').value;
  // "1:30" / "90" / "2.5" -> seconds
  function parseSecs(v) {
    v = String(v).trim().replace(/\s*s$/, "");
    const m = /^(\d+):(\d{1,2}(?:\.\d+)?)$/.exec(v);
    if (m) return Number(m[1]) * 60 + Number(m[2]);
    return v === "" ? NaN : Number(v);
  }
  // "HH:MM" -> minutes of the day
  function parseHHMM(v) {
    const m = /^(\d{1,2}):?(\d{2})$/.exec(String(v).trim());
    return m && Number(m[1]) < 24 && Number(m[2]) < 60 ? Number(m[1]) * 60 + Number(m[2]) : null;
  }
  const fmtHHMM = (min) => String(Math.floor(min / 60) % 24).padStart(2, "0") + ":" + String(min % 60).padStart(2, "0");
  // "h:mm" -> minutes
  function parseHM(v) {
    const m = /^(\d+):(\d{2})$/.exec(String(v).trim());
    if (m) return Number(m[1]) * 60 + Number(m[2]);
    const n = Number(String(v).trim().replace(/\s*min$/, ""));
    return isFinite(n) ? n : null;
  }
  const STEPS = {
    "f-interval": (v, d) => { const s = parseSecs(v) || 0; const st = s < 5 ? 0.5 : s < 60 ? 1 : s < 300 ? 5 : 15; return mmss(Math.max(0.5, Math.round((s + d * st) / st) * st)); },
    "f-startat": (v, d) => fmtHHMM(((parseHHMM(v) || 0) + d + 1440) % 1440),
    "f-startin": (v, d) => Math.max(1, (parseInt(v, 10) || 0) + d) + " min",
    "f-stoptime": (v, d) => fmtHHMM(((parseHHMM(v) || 0) + d + 1440) % 1440),
    "f-shots": (v, d) => String(Math.max(1, (parseInt(v, 10) || 0) + d)),
    "f-duration": (v, d) => { const m = Math.max(5, (parseHM(v) || 0) + d); return Math.floor(m / 60) + ":" + String(m % 60).padStart(2, "0"); },
    "f-startsun-off": (v, d) => fmtOff(Math.max(-720, Math.min(720, (parseOff(v) || 0) + d))),
    "f-stopsun-off": (v, d) => fmtOff(Math.max(-720, Math.min(720, (parseOff(v) || 0) + d))),
    "f-auto-step": (v, d) => { const i = AUTO_STEPS.findIndex((s) => s[1] === v); return AUTO_STEPS[Math.max(0, Math.min(AUTO_STEPS.length - 1, (i < 0 ? 1 : i) + d))][1]; },
    "f-auto-bias": (v, d) => fmtEV(Math.max(-2, Math.min(6, autoBias() + d * 0.5))),
  };
  form.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-step], #f-presets button");
    if (!b) return;
    if (b.dataset.s) $("f-interval").value = mmss(Number(b.dataset.s));
    else { const [id, d] = b.dataset.step.split(":"); $(id).value = STEPS[id]($(id).value, Number(d)); }
    onFormChange();
  });
  function formData() {
    syncKF();
    const d = { interval: parseSecs($("f-interval").value), stopCondition: radio("stop") };
    if (d.stopCondition === "sun") { d.stopCondition = "stop-at"; d.stopAt = { event: $("f-stopsun-event").dataset.event, offsetMinutes: parseOff($("f-stopsun-off").value) }; }
    if (d.stopCondition === "stop-after") d.shots = Math.round(Number($("f-shots").value));
    if (d.stopCondition === "stop-at") { const m = parseHHMM($("f-stoptime").value); d.stopTime = m === null ? "" : fmtHHMM(m); }
    if (d.stopCondition === "duration") d.duration = (parseHM($("f-duration").value) || 0) * 60;
    const start = radio("start");
    if (start === "at") { const m = parseHHMM($("f-startat").value); d.startAt = m === null ? "" : fmtHHMM(m); }
    if (start === "in") { const n = parseInt($("f-startin").value, 10); d.startAt = n > 0 ? new Date(serverNow() + n * 60000).toISOString() : ""; }
    if (start === "sun") d.startAt = { event: $("f-startsun-event").dataset.event, offsetMinutes: parseOff($("f-startsun-off").value) };
    const ramp = radio("ramp");
    if (ramp === "keyframes") d.keyframes = keyframesPayload();
    if (ramp === "auto") {
      d.autoRamp = { maxStepEv: Math.round(autoStep() * 1000) / 1000, nightBiasEv: autoBias(), maxIso: Number($("f-auto-iso").dataset.value) || 6400 };
      // The aperture moves (last, after shutter and ISO) only between two chosen f-numbers.
      const lo = $("f-auto-avmin").dataset.value, hi = $("f-auto-avmax").dataset.value;
      if (lo && hi) { d.autoRamp.minAv = lo; d.autoRamp.maxAv = hi; }
    }
    const title = $("f-title").value.trim();
    if (title) d.title = title;
    const bulb = $("f-bulb").value.trim();
    if (bulb) d.bulb = Number(bulb);
    return d;
  }
  // The next wall time (ms) at local "HH:MM" after `from`.
  function nextAt(hm, from) {
    const t = new Date(from);
    t.setHours(Math.floor(hm / 60), hm % 60, 0, 0);
    if (t.getTime() <= from) t.setDate(t.getDate() + 1);
    return t.getTime();
  }
  // What the server would refuse, in plain words (null: nothing).
  function refusal(d) { return refusalLocal(d) || previewRefusal(); }
  function refusalLocal(d) {
    if (!ws) return "Not connected to the Pi";
    if (!num(d.interval) || d.interval <= 0) return "Enter an interval, like 0:20 for 20 seconds";
    if (d.stopCondition === "stop-after" && !(d.shots >= 1)) return "Enter how many frames to take";
    if (d.stopCondition === "duration" && !(d.duration > 0)) return "Enter how long to shoot (h:mm)";
    if (d.stopCondition === "stop-at" && !d.stopTime && !d.stopAt) return "Enter the stop time as HH:MM";
    for (const [t, what] of [[d.startAt, "start"], [d.stopAt, "stop"]]) {
      if (!t || typeof t !== "object") continue;
      if (t.offsetMinutes === null) return "Enter the minutes from the sun event for the " + what + ", like -30";
      if (!sunTimes) return "A sun-based " + what + " needs the location: set it under Sun today";
    }
    if (d.keyframes) { const why = kfRefusal(); if (why) return why; }
    if (d.autoRamp && !sunTimes) return "Auto follows the sun: set the location under Sun today";
    if (d.startAt === "") return radio("start") === "at" ? "Enter the start time as HH:MM" : "Enter in how many minutes to start";
    if ("bulb" in d && !(d.bulb > 0)) return "Enter the bulb time in seconds, or leave it empty";
    if (!d.startAt && !camOk()) return "The camera is not connected: connect it, or start at a later time";
    if (lastValid && lastValid.interval === d.interval && lastValid.valid === false) return lastValid.reason;
    return null;
  }
  function plan(d) {
    const ul = $("f-plan");
    ul.textContent = "";
    const now = serverNow();
    let start = now;
    if (d.startAt && /^\d\d:\d\d$/.test(d.startAt)) start = nextAt(parseHHMM(d.startAt), now);
    else if (d.startAt) start = Date.parse(d.startAt);
    let frames = null, end = null;
    if (num(d.interval) && d.interval > 0) {
      if (d.stopCondition === "stop-after" && d.shots > 0) { frames = d.shots; end = start + (frames - 1) * d.interval * 1000; }
      if (d.stopCondition === "duration" && d.duration > 0) { frames = Math.ceil(d.duration / d.interval); end = start + d.duration * 1000; }
      if (d.stopCondition === "stop-at" && d.stopTime) { end = nextAt(parseHHMM(d.stopTime), start); frames = Math.ceil((end - start) / 1000 / d.interval); }
    }
    // The Pi's plan when it is there (sun-relative times resolve only there).
    const p = fresh();
    if (p) {
      frames = num(p.frames) ? p.frames : null;
      start = Date.parse(p.startTime);
      end = p.stopTime ? Date.parse(p.stopTime) : p.endTime ? Date.parse(p.endTime) : null;
    } else if (d.stopAt) { end = null; frames = null; }
    const sunStart = d.startAt && typeof d.startAt === "object";
    const add = (kind, text) => ul.append(el("li", { class: SEV[kind] }, text));
    add("info", (sunStart && !p ? "Starts at " + offWords(d.startAt.event, d.startAt.offsetMinutes) : d.startAt ? "Starts " + hhmm(start) + " (in " + fmtDur((start - now) / 1000) + ")" : "Starts now")
      + (end ? " · ends " + hhmm(end) + " (" + fmtDur((end - start) / 1000) + ")" : d.stopAt && !p ? " · ends at " + offWords(d.stopAt.event, d.stopAt.offsetMinutes) : " · runs until you stop it"));
    if (frames !== null) add("info", "≈" + count(frames) + " frames · clip " + mmss(frames / 24) + " at 24 fps, " + mmss(frames / 30) + " at 30 fps");
    for (const line of supplyLines(frames, d.interval, false)) add(line[0], line[1]);
  }
  let validateTimer = 0, validSeq = 0, lastValid = null;
  const FORM_FIELDS = ["f-interval", "f-shots", "f-stoptime", "f-duration", "f-startat", "f-startin", "f-title", "f-bulb", "f-startsun-off", "f-stopsun-off", "f-auto-step", "f-auto-bias"];
  let formKey = "";
  function restoreForm() {
    let v = null;
    try { v = JSON.parse(localStorage.getItem("skylapse.form") || "null"); } catch (_) {}
    if (!v) return;
    for (const f of FORM_FIELDS) if (typeof v[f] === "string") $(f).value = v[f];
    for (const name of ["stop", "start", "ramp"]) {
      const r = form.querySelector('input[name="' + name + '"][value="' + CSS.escape(v[name] || "") + '"]');
      if (r) r.checked = true;
    }
    if (v.startEvent) setEvent($("f-startsun-event"), v.startEvent);
    if (v.stopEvent) setEvent($("f-stopsun-event"), v.stopEvent);
    if (v.autoIso && /^\d+$/.test(v.autoIso)) { $("f-auto-iso").dataset.value = v.autoIso; $("f-auto-iso").textContent = word("iso", v.autoIso); }
    for (const [id, key] of [["f-auto-avmin", "autoAvMin"], ["f-auto-avmax", "autoAvMax"]]) {
      if (typeof v[key] === "string" && /^(f[\d.]+)?$/.test(v[key])) { $(id).dataset.value = v[key]; $(id).textContent = v[key] ? word("av", v[key]) : "stays"; }
    }
    if (Array.isArray(v.kf)) KF = v.kf.filter((k) => k && typeof k === "object" && WHEN.some((w) => w[0] === k.when)).slice(0, 64);
    renderKF();
  }
  function onFormChange() {
    for (const n of form.querySelectorAll("[data-stop]")) n.hidden = n.dataset.stop !== radio("stop");
    for (const n of form.querySelectorAll("[data-start]")) n.hidden = n.dataset.start !== radio("start");
    for (const n of form.querySelectorAll("[data-ramp]")) n.hidden = n.dataset.ramp !== radio("ramp");
    syncKF();
    const keep = { stop: radio("stop"), start: radio("start"), ramp: radio("ramp"), startEvent: $("f-startsun-event").dataset.event, stopEvent: $("f-stopsun-event").dataset.event, autoIso: $("f-auto-iso").dataset.value, autoAvMin: $("f-auto-avmin").dataset.value, autoAvMax: $("f-auto-avmax").dataset.value,
      kf: KF.map((k) => ({ when: k.when, elapsed: k.elapsed, clock: k.clock, event: k.event, off: k.off, tv: k.tv, iso: k.iso, av: k.av })) };
    for (const f of FORM_FIELDS) keep[f] = $(f).value;
    try { localStorage.setItem("skylapse.form", JSON.stringify(keep)); } catch (_) {}
    const d = formData();
    formKey = JSON.stringify([keep, S.camera && S.camera.settings && S.camera.settings.tv, !!sunTimes]);
    renderAutoLimits(d);
    resolvedLines(fresh());
    drawCurve(fresh());
    // Not while a session runs (the form is hidden, and a ramp's plan reads the camera).
    if (!refusalLocal(d) && !isLive(S.intervalometer)) wantPreview(d, formKey);
    for (const b of $("f-presets").children) b.setAttribute("aria-pressed", String(Number(b.dataset.s) === d.interval));
    plan(d);
    judge(d);
    clearTimeout(validateTimer);
    validateTimer = setTimeout(() => validate(d), 200);
  }
  // Start is enabled only for what the server would accept; the reason shows otherwise.
  function judge(d) {
    const why = refusal(d);
    $("start").disabled = !!why;
    $("f-reason").hidden = !why;
    $("f-reason").textContent = why ? "Can't start: " + why : "";
  }
  // Always against the camera's current Tv (from the status block; bulb when given).
  async function validate(d) {
    const my = ++validSeq;
    const box = $("f-validation");
    if (!num(d.interval) || d.interval <= 0) { box.textContent = ""; lastValid = null; return; }
    const tv = S.camera && S.camera.settings && S.camera.settings.tv;
    const exposure = num(d.bulb) ? d.bulb : tvSeconds(tv);
    let r;
    try { r = await cmd("validate_interval", Object.assign({ interval: d.interval }, num(exposure) ? { exposure: exposure } : {})); }
    catch (e) { if (my === validSeq) { box.textContent = ""; } return; }
    if (my !== validSeq) return;
    box.textContent = "";
    const forTv = num(exposure) ? " for " + (num(d.bulb) ? "bulb " + d.bulb + " s" : word("tv", tv)) : "";
    const reason = "Interval " + mmss(d.interval) + " is too short" + forTv + ": at least " + mmss(r.minimumInterval) + (num(r.recommendedInterval) ? ", " + mmss(r.recommendedInterval) + " recommended" : "");
    box.append(el("p", { class: r.valid ? "sev-ok" : "sev-err" }, r.valid ? "Interval " + mmss(d.interval) + " fits" + forTv + (num(r.recommendedInterval) && d.interval < r.recommendedInterval ? " (tight: " + mmss(r.recommendedInterval) + " recommended)" : "") : reason));
    for (const w of r.valid ? r.warnings || [] : []) box.append(el("p", { class: "sev-warn" }, w));
    lastValid = { interval: d.interval, valid: !!r.valid, reason: reason };
    judge(formData());
  }
  form.addEventListener("input", onFormChange);
  form.addEventListener("change", onFormChange);
  for (const id of ["f-interval", "f-startat", "f-stoptime", "f-duration"]) $(id).addEventListener("blur", () => {
    const v = $(id).value;
    if (id === "f-interval" && num(parseSecs(v))) $(id).value = mmss(parseSecs(v));
    if ((id === "f-startat" || id === "f-stoptime") && parseHHMM(v) !== null) $(id).value = fmtHHMM(parseHHMM(v));
  });
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const btn = $("start");
    const d = formData();
    const why = refusal(d);
    if (why) { judge(d); return; }
    const r = await act(btn, d.title ? "start_intervalometer_with_title" : "start_intervalometer", d);
    if (r) {
      clearToasts();
      life("Timelapse started" + (d.startAt ? ", first frame at " + fmtTime(r.status && r.status.stats && r.status.stats.nextShotTime) : ""), "ok");
      if (r.status) status({ intervalometer: r.status });
      $("f-title").value = ""; // the next session gets its own title
      onFormChange();
    }
  };

  // ---------- follow the light: sun times, sun-relative start/stop, ramps, the plan's curve ----------
  const SUN_EVENTS = [["astronomicalDawn", "Astronomical dawn"], ["nauticalDawn", "Nautical dawn"], ["civilDawn", "Civil dawn"], ["sunrise", "Sunrise"],
    ["solarNoon", "Solar noon"], ["sunset", "Sunset"], ["civilDusk", "Civil dusk"], ["nauticalDusk", "Nautical dusk"], ["astronomicalDusk", "Astronomical dusk"]];
  const SUN_WORD = Object.fromEntries(SUN_EVENTS);
  let sunTimes = null, sunMissing = false, sunAt = 0;
  async function loadSun() {
    sunAt = Date.now();
    try { sunTimes = await cmd("get_sun_times"); sunMissing = false; }
    catch (e) { sunTimes = null; sunMissing = e && e.code === "MISSING_PARAMETER"; if (!sunMissing && e && e.code !== "OFFLINE") toastErr($("sun-gps"), e); }
    renderSun();
    onFormChange();
  }
  // Why an event does not happen that day, as the server gives it.
  function noEventText(key, why) {
    const twilight = /Dawn|Dusk/.test(key);
    if (why === "alwaysAbove") return twilight ? "none: it never gets that dark (white night)" : "none: the sun stays up all day (polar day)";
    if (why === "alwaysBelow") return twilight ? "none: it never gets that light (polar night)" : "none: the sun stays down all day (polar night)";
    return "–";
  }
  const place = (lat, lon) => Math.abs(lat).toFixed(3) + "° " + (lat >= 0 ? "N" : "S") + ", " + Math.abs(lon).toFixed(3) + "° " + (lon >= 0 ? "E" : "W");
  function renderSun() {
    const r = sunTimes;
    $("sun-none").hidden = !!r || !sunMissing;
    if (!r) {
      $("sun-kv").textContent = "";
      $("sun-where").textContent = "";
      if (sunMissing) $("sun-form").hidden = false;
      return;
    }
    $("sun-where").textContent = place(r.lat, r.lon) + " · " + (r.locationSource === "gps" ? "from a phone's GPS" : "set by hand") + " · " + r.date;
    const rows = SUN_EVENTS.map(([k, w]) => [w, r[k] ? hhmm(Date.parse(r[k])) : noEventText(k, r.reasons && r.reasons[k]), r[k] ? "" : "warn"]);
    if (r.now && num(r.now.altitudeDeg)) rows.push(["Sun now", Math.abs(r.now.altitudeDeg).toFixed(1) + "° " + (r.now.altitudeDeg >= 0 ? "above" : "below") + " the horizon"]);
    kv($("sun-kv"), rows);
    for (const [i, [k]] of SUN_EVENTS.entries()) { const dd = $("sun-kv").querySelectorAll("dd")[i]; if (dd) dd.dataset.event = k; }
  }
  $("sun-gps").onclick = (ev) => {
    const btn = ev.currentTarget;
    const byHand = (why) => { toast(btn, "warn", why + " Set the place by hand."); $("sun-form").hidden = false; };
    if (!navigator.geolocation || !window.isSecureContext) { byHand("This browser gives no location over this connection."); return; }
    btn.disabled = true; btn.classList.add("busy");
    const done = () => { btn.disabled = false; btn.classList.remove("busy"); };
    navigator.geolocation.getCurrentPosition(async (p) => {
      done();
      const r = await act(btn, "gps-response", { timestamp: p.timestamp, latitude: p.coords.latitude, longitude: p.coords.longitude, accuracy: p.coords.accuracy, source: "browser" }, "Location from this phone saved");
      if (r) loadSun();
    }, (e) => { done(); byHand("No location from this phone (" + (e && e.message ? e.message : "refused") + ")."); }, { timeout: 20000, maximumAge: 600000 });
  };
  $("sun-edit").onclick = () => {
    const f = $("sun-form");
    f.hidden = !f.hidden;
    $("sun-edit").setAttribute("aria-expanded", String(!f.hidden));
    if (!f.hidden && sunTimes) { $("sun-lat").value = String(sunTimes.lat); $("sun-lon").value = String(sunTimes.lon); }
  };
  // "47.37", "-33.9", "33.9 S", "8,54°E" -> degrees (south and west negative).
  function parseCoord(v) {
    const m = /^([+-]?\d+(?:[.,]\d+)?)\s*°?\s*([NSEW])?$/i.exec(String(v).trim().replace("−", "-"));
    if (!m) return null;
    let n = Number(m[1].replace(",", "."));
    if (m[2] && /[SW]/i.test(m[2])) n = -Math.abs(n);
    return isFinite(n) ? n : null;
  }
  $("sun-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const btn = $("sun-save");
    const lat = parseCoord($("sun-lat").value), lon = parseCoord($("sun-lon").value);
    if (lat === null || Math.abs(lat) > 90) { toast(btn, "err", "Latitude: degrees from -90 (south) to 90 (north), like 47.37"); return; }
    if (lon === null || Math.abs(lon) > 180) { toast(btn, "err", "Longitude: degrees from -180 (west) to 180 (east), like 8.54"); return; }
    const r = await act(btn, "set_location", { lat: lat, lon: lon }, "Place saved");
    if (r) { $("sun-form").hidden = true; $("sun-edit").setAttribute("aria-expanded", "false"); loadSun(); }
  };
  // A sun event's button (start or stop): our own picker.
  for (const id of ["f-startsun-event", "f-stopsun-event"]) $(id).onclick = async (ev) => {
    const b = ev.currentTarget;
    const v = await pick(id === "f-startsun-event" ? "Start at" : "Stop at", SUN_EVENTS, b.dataset.event);
    if (v) { setEvent(b, v); onFormChange(); }
  };
  function setEvent(b, v) { if (SUN_WORD[v]) { b.dataset.event = v; b.textContent = SUN_WORD[v]; } }
  // "-30 min" -> -30; shown with its sign.
  const parseOff = (v) => { const n = parseInt(String(v).replace("−", "-").replace(/^\+/, ""), 10); return isFinite(n) ? n : null; };
  const fmtOff = (n) => (n > 0 ? "+" : "") + n + " min";
  const offWords = (ev, n) => SUN_WORD[ev] + (n ? " " + (n < 0 ? "−" : "+") + Math.abs(n) + " min" : "");

  // Keyframes: when (after the start, a clock time, a sun event ± minutes) and what they set.
  let KF = [];
  const WHEN = [["elapsed", "After the start"], ["clock", "At a clock time"], ["sun", "At a sun event"]];
  const KF_KEYS = [["tv", "Shutter"], ["iso", "ISO"], ["av", "Aperture"]];
  function renderKF() {
    const ol = $("kf-list");
    ol.textContent = "";
    KF.forEach((k, i) => {
      const stepper = (field, value, label) => el("div", { class: "stepper" },
        el("button", { type: "button", "data-kf": "step", "data-d": "-1", "aria-label": "Earlier" }, "−"),
        el("input", { "data-kfin": field, autocomplete: "off", inputmode: field === "clock" ? "numeric" : "text", value: value, "aria-label": label }),
        el("button", { type: "button", "data-kf": "step", "data-d": "1", "aria-label": "Later" }, "+"));
      const when = k.when === "clock" ? stepper("clock", k.clock, "Clock time (HH:MM)")
        : k.when === "sun" ? el("div", null, el("button", { type: "button", class: "pickbtn", "data-kf": "event" }, SUN_WORD[k.event]), stepper("off", fmtOff(k.off), "Minutes from the sun event"))
        : stepper("elapsed", Math.floor(k.elapsed / 60) + ":" + String(k.elapsed % 60).padStart(2, "0"), "After the start (h:mm)");
      ol.append(el("li", { class: "kf", "data-i": i },
        el("div", { class: "kf-head" }, el("b", null, "Keyframe " + (i + 1)),
          el("button", { type: "button", class: "small danger", "data-kf": "remove", "aria-label": "Remove keyframe " + (i + 1) }, "Remove")),
        el("button", { type: "button", class: "pickbtn", "data-kf": "when" }, WHEN.find((w) => w[0] === k.when)[1] + (k.when === "elapsed" ? " (h:mm)" : "")),
        when,
        el("div", { class: "kf-vals" }, KF_KEYS.map(([key, name]) => el("button", { type: "button", class: "tile", "data-kf": key },
          el("small", null, name), el("span", null, k[key] ? word(key, k[key]) : "keep"))))));
    });
    if (!KF.length) ol.append(el("li", { class: "dim" }, "No keyframe yet."));
  }
  // Typed values into the model (before every read of the form).
  function syncKF() {
    for (const inp of $("kf-list").querySelectorAll("[data-kfin]")) {
      const k = KF[Number(inp.closest("li").dataset.i)];
      if (!k) continue;
      const f = inp.dataset.kfin;
      if (f === "elapsed") { const m = parseHM(inp.value); k.elapsed = m === null ? NaN : Math.round(m); }
      if (f === "clock") { const m = parseHHMM(inp.value); k.clock = m === null ? "" : fmtHHMM(m); k.clockText = inp.value; }
      if (f === "off") { const n = parseOff(inp.value); k.off = n === null ? NaN : n; }
    }
  }
  function kfStep(k, d) {
    if (k.when === "elapsed") k.elapsed = Math.max(0, (num(k.elapsed) ? k.elapsed : 0) + d * 5);
    if (k.when === "clock") k.clock = fmtHHMM(((parseHHMM(k.clock) || 0) + d * 5 + 1440) % 1440);
    if (k.when === "sun") k.off = Math.max(-720, Math.min(720, (num(k.off) ? k.off : 0) + d * 5));
  }
  // The camera's own values for a setting (its abilities), for the pickers.
  async function abilityList(name, anchor) {
    if (!abilities || !abilities[name]) {
      try { abilities = await cmd("get_camera_settings"); } catch (e) { toastErr(anchor, e); return null; }
    }
    const s = abilities[name];
    return s && Array.isArray(s.ability) ? s.ability : null;
  }
  async function pickRampValue(key, current, anchor) {
    let list = await abilityList(key, anchor);
    if (!list) { toast(anchor, "warn", "The camera offers no " + SETTING_NAMES[key].toLowerCase() + " values (set the mode dial to M)."); return null; }
    const interval = parseSecs($("f-interval").value);
    // A ramp's shutter must leave the camera 1 s to write; ISO numbers only.
    if (key === "tv") list = list.filter((v) => { const t = tvSeconds(v); return num(t) && (!num(interval) || t <= interval - 1 + 1e-9); });
    if (key === "iso") list = list.filter((v) => /^\d+$/.test(v));
    const v = await pick(SETTING_NAMES[key], [["", "Keep as the camera has it"]].concat(list.map((x) => [x, word(key, x)])), current || "");
    return v;
  }
  $("kf-list").addEventListener("click", async (ev) => {
    const b = ev.target.closest("[data-kf]");
    if (!b) return;
    syncKF();
    const i = Number(b.closest("li").dataset.i), k = KF[i];
    if (!k) return;
    const what = b.dataset.kf;
    if (what === "remove") KF.splice(i, 1);
    else if (what === "when") { const v = await pick("Keyframe " + (i + 1) + ": when", WHEN, k.when); if (!v) return; k.when = v; }
    else if (what === "event") { const v = await pick("Keyframe " + (i + 1) + ": sun event", SUN_EVENTS, k.event); if (!v) return; k.event = v; }
    else if (what === "step") kfStep(k, Number(b.dataset.d));
    else if (k.hasOwnProperty(what)) { const v = await pickRampValue(what, k[what], b); if (v === null) return; k[what] = v || null; }
    renderKF();
    onFormChange();
  });
  $("kf-add").onclick = () => {
    syncKF();
    const st = (S.camera && S.camera.settings) || {};
    const last = KF[KF.length - 1];
    KF.push(last ? Object.assign({}, last, { elapsed: (num(last.elapsed) ? last.elapsed : 0) + 30 })
      : { when: "elapsed", elapsed: 0, clock: "18:00", event: "sunset", off: 0, tv: st.tv && tvSeconds(st.tv) ? st.tv : null, iso: st.iso && /^\d+$/.test(st.iso) ? st.iso : null, av: null });
    renderKF();
    onFormChange();
  };
  function keyframesPayload() {
    return KF.map((k) => {
      const o = {};
      if (k.when === "elapsed") o.elapsedSeconds = k.elapsed * 60;
      if (k.when === "clock") o.at = k.clock;
      if (k.when === "sun") o.at = { event: k.event, offsetMinutes: k.off };
      for (const [key] of KF_KEYS) if (k[key]) o[key] = k[key];
      return o;
    });
  }
  function kfRefusal() {
    if (!KF.length) return "Add a keyframe (or choose Fixed)";
    for (const [i, k] of KF.entries()) {
      const n = "Keyframe " + (i + 1) + ": ";
      if (!k.tv && !k.iso && !k.av) return n + "pick a shutter speed, ISO or aperture";
      if (k.when === "elapsed" && !num(k.elapsed)) return n + "enter the time after the start as h:mm";
      if (k.when === "clock" && !k.clock) return n + "enter the clock time as HH:MM";
      if (k.when === "sun" && !num(k.off)) return n + "enter the minutes from the sun event, like -30";
      if (k.when === "sun" && !sunTimes) return n + "a sun event needs the location (Sun today, above)";
    }
    return null;
  }

  // Auto-ramp knobs.
  const AUTO_STEPS = [[1 / 6, "⅙ EV"], [1 / 3, "⅓ EV"], [0.5, "½ EV"], [2 / 3, "⅔ EV"], [1, "1 EV"]];
  const autoStep = () => { const i = AUTO_STEPS.findIndex((s) => s[1] === $("f-auto-step").value); return AUTO_STEPS[i < 0 ? 1 : i][0]; };
  const autoBias = () => { const n = Number(String($("f-auto-bias").value).replace("−", "-").replace(/\s*EV$/, "")); return isFinite(n) ? n : 2; };
  const fmtEV = (n) => (n < 0 ? "−" : "") + Math.abs(n) + " EV";
  $("f-auto-iso").onclick = async (ev) => {
    const b = ev.currentTarget;
    let list = await abilityList("iso", b);
    list = (list || []).filter((v) => /^\d+$/.test(v) && Number(v) >= 100);
    if (!list.length) { toast(b, "warn", "The camera offers no ISO values here."); return; }
    const v = await pick("Highest ISO", list.map((x) => [x, word("iso", x)]), b.dataset.value);
    if (v) { b.dataset.value = v; b.textContent = word("iso", v); onFormChange(); }
  };
  const fNumber = (v) => Number(String(v || "").replace(/^f/, ""));
  for (const [id, title] of [["f-auto-avmin", "Widest aperture"], ["f-auto-avmax", "Narrowest aperture"]]) {
    $(id).onclick = async (ev) => {
      const b = ev.currentTarget;
      let list = await abilityList("av", b);
      list = (list || []).filter((v) => fNumber(v) > 0);
      if (!list.length) { toast(b, "warn", "The camera offers no aperture values here."); return; }
      const v = await pick(title, [["", "stays (not moved)"]].concat(list.map((x) => [x, word("av", x)])), b.dataset.value);
      if (v === null || v === undefined) return;
      b.dataset.value = v; b.textContent = v ? word("av", v) : "stays";
      onFormChange();
    };
  }
  function renderAutoLimits(d) {
    const st = (S.camera && S.camera.settings) || {};
    const longest = num(d.interval) ? d.interval - 1 : NaN;
    $("f-auto-limits").textContent = (longest > 0 ? "Longest shutter: " + (longest >= 1 ? (Math.round(longest * 10) / 10) + " s" : "shorter than the interval allows") + " (the interval minus 1 s for the camera to write)" : "Auto needs an interval over 1 s")
      + (d.autoRamp && d.autoRamp.minAv
        ? (fNumber(d.autoRamp.minAv) > fNumber(d.autoRamp.maxAv) ? " · the widest aperture must be the smaller f-number." : " · aperture moves last, between " + word("av", d.autoRamp.minAv) + " and " + word("av", d.autoRamp.maxAv) + ".")
        : " · aperture stays at " + word("av", st.av) + " (set it on the camera; choose both limits above to let it move).");
  }

  // The plan from the Pi: the same planning code as a start (plan_session).
  let preview = null, previewErr = null, previewKey = null, previewWant = null, previewAt = 0, previewSeq = 0, previewTimer = 0;
  function wantPreview(d, key) {
    if (key === previewWant && Date.now() - previewAt < 60000) return;
    previewWant = key;
    clearTimeout(previewTimer);
    previewTimer = setTimeout(async () => {
      const my = ++previewSeq;
      let r = null, err = null;
      try { r = await cmd("plan_session", d, 15000); } catch (e) { err = e; }
      if (my !== previewSeq) return;
      preview = r; previewErr = err; previewKey = key; previewAt = Date.now();
      const now = formData();
      plan(now); judge(now);
      resolvedLines(fresh());
      drawCurve(fresh());
    }, 250);
  }
  const fresh = () => preview && previewKey === formKey ? preview : null;
  function previewRefusal() {
    const e = previewKey === formKey ? previewErr : null;
    if (!e || e.code === "OFFLINE" || e.code === "TIMEOUT") return null;
    return e.message || errText(e)[0];
  }
  function resolvedLines(p) {
    const now = serverNow();
    const s = $("f-startsun-at"), t = $("f-stopsun-at");
    s.textContent = ""; t.textContent = "";
    if (!p) { if (radio("start") === "sun") s.textContent = sunTimes ? "…" : "Needs the location (Sun today, above)"; if (radio("stop") === "sun") t.textContent = sunTimes ? "…" : "Needs the location (Sun today, above)"; return; }
    const st = Date.parse(p.startTime);
    s.textContent = "First frame at " + hhmm(st) + " (" + fmtDate(p.startTime) + ", in " + fmtDur((st - now) / 1000) + ")";
    if (p.stopTime) t.textContent = "Stops at " + hhmm(Date.parse(p.stopTime)) + " (" + fmtDate(p.stopTime) + "), " + fmtDur((Date.parse(p.stopTime) - st) / 1000) + " after the first frame";
  }
  // Exposure (keyframes) or target brightness (auto) and the sun's altitude, for the width.
  function drawCurve(p) {
    const box = $("f-curve"), note = $("f-curve-note");
    const pts = p && p.points || [];
    const main = p && p.ramp === "keyframes" ? pts.filter((q) => num(q.exposureEv)).map((q) => [Date.parse(q.time), q.exposureEv])
      : p && p.ramp === "auto" ? pts.filter((q) => num(q.targetBrightness)).map((q) => [Date.parse(q.time), Math.log2(q.targetBrightness / pts[0].targetBrightness)]) : [];
    const sun = pts.filter((q) => num(q.sunAltitude)).map((q) => [Date.parse(q.time), q.sunAltitude]);
    box.hidden = !main.length && !sun.length;
    note.hidden = box.hidden;
    if (box.hidden) { box.textContent = ""; return; }
    const series = [];
    if (main.length) series.push({ name: p.ramp === "auto" ? "target" : "exposure", pts: main, axis: "left" });
    if (sun.length) series.push({ name: "sun", pts: sun, axis: "right", dash: true });
    lineChart(box, series, {
      leftUnit: " EV", rightUnit: "°", x: (t) => hhmm(t),
      legend: [main.length ? (p.ramp === "auto" ? "— target brightness, stops from the day's" : "— exposure, stops (brighter ↑)") : null, sun.length ? "- - sun altitude, °" : null].filter(Boolean).join("   "),
    });
    const kf = p.ramp === "keyframes" && main.length ? pts.filter((q) => num(q.exposureEv)) : [];
    note.textContent = kf.length ? word("tv", kf[0].tv) + " · " + word("av", kf[0].av) + " · " + word("iso", kf[0].iso) + " → " + word("tv", kf[kf.length - 1].tv) + " · " + word("av", kf[kf.length - 1].av) + " · " + word("iso", kf[kf.length - 1].iso)
        + " (" + signed(kf[kf.length - 1].exposureEv - kf[0].exposureEv) + " EV)"
      : p.ramp === "auto" ? "Auto aims for these brightnesses; the exposure follows what each frame measures."
      : "Sun altitude over the session" + (p.horizonSeconds ? " (first " + fmtDur(p.horizonSeconds) + ")" : "") + ".";
  }
  const signed = (v) => (v >= 0 ? "+" : "−") + Math.abs(Math.round(v * 3) / 3).toFixed(1).replace(/\.0$/, "");
  // A small line chart: series [{name, pts: [[x, y]], axis: left|right, dash}] drawn as SVG
  // for the box's width; each series' path carries data-series and data-n (its points).
  function lineChart(box, series, o) {
    const W = Math.max(260, box.clientWidth || 300), H = 170, L = 44, R = 44, T = 10, B = 28;
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("width", W); svg.setAttribute("height", H);
    const add = (tag, attrs, text) => { const e = document.createElementNS(ns, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); if (text !== undefined) e.textContent = text; svg.append(e); return e; };
    const xs = series.flatMap((s) => s.pts.map((p) => p[0]));
    const x0 = Math.min(...xs), x1 = Math.max(x0 + 1, ...xs);
    const x = (v) => L + (v - x0) / (x1 - x0) * (W - L - R);
    const range = (axis) => {
      const ys = series.filter((s) => s.axis === axis).flatMap((s) => s.pts.map((p) => p[1]));
      if (!ys.length) return null;
      let lo = Math.floor(Math.min(...ys)), hi = Math.ceil(Math.max(...ys));
      if (hi - lo < 2) { lo -= 1; hi += 1; }
      return [lo, hi];
    };
    const ranges = { left: range("left"), right: range("right") };
    const y = (axis, v) => { const [lo, hi] = ranges[axis]; return T + (1 - (v - lo) / (hi - lo)) * (H - T - B); };
    add("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "currentColor", "stroke-opacity": ".3" });
    for (const axis of ["left", "right"]) {
      const r = ranges[axis];
      if (!r) continue;
      // The unit on the top label only ("EV", "°"): the chart stays narrow at 320 px.
      const unit = (axis === "left" ? o.leftUnit : o.rightUnit) || "";
      for (const v of [r[0], r[1]]) add("text", { x: axis === "left" ? L - 4 : W - R + 4, y: y(axis, v) + 5, "text-anchor": axis === "left" ? "end" : "start", "data-axis": axis }, String(v).replace("-", "−") + (v === r[1] ? unit : ""));
      if (axis === "right" && r[0] < 0 && r[1] > 0) add("line", { x1: L, x2: W - R, y1: y(axis, 0), y2: y(axis, 0), stroke: "currentColor", "stroke-opacity": ".25", "stroke-dasharray": "2 4" });
    }
    for (const s of series) {
      let d = "";
      for (const p of s.pts) d += (d ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(s.axis, p[1]).toFixed(1);
      const attrs = { d: d, fill: "none", stroke: "currentColor", "stroke-width": s.dash ? "1.5" : "2.5", "data-series": s.name, "data-n": String(s.pts.length) };
      if (s.dash) attrs["stroke-dasharray"] = "5 4";
      if (s.faint) attrs["stroke-opacity"] = ".55";
      add("path", attrs);
    }
    add("text", { x: L, y: H - B + 18, "text-anchor": "start", "data-axis": "x" }, o.x(x0));
    add("text", { x: W - R, y: H - B + 18, "text-anchor": "end", "data-axis": "x" }, o.x(x1));
    box.textContent = "";
    box.append(svg, el("p", { class: "legend dim" }, o.legend));
  }

  // The live chart: each frame's exposure (ramped sessions, from photo_taken) and, with
  // auto-ramp, its measured brightness against the target (frame_measured). The last
  // LIVE_MAX frames only.
  const LIVE_MAX = 240;
  const live = { id: null, pts: new Map() };
  function livePoint(id, slot, patch) {
    if (!id || !num(slot)) return;
    if (live.id !== id) { live.id = id; live.pts.clear(); }
    const p = live.pts.get(slot) || { slot: slot };
    for (const k in patch) if (num(patch[k])) p[k] = patch[k];
    live.pts.set(slot, p);
    while (live.pts.size > LIVE_MAX) live.pts.delete(live.pts.keys().next().value);
    drawLive();
  }
  function drawLive() {
    const box = $("s-chart"), s = S.intervalometer;
    const mine = s && s.sessionId === live.id;
    const pts = mine ? [...live.pts.values()].sort((a, b) => a.slot - b.slot) : [];
    const ev = pts.filter((p) => num(p.ev)).map((p) => [p.slot + 1, p.ev]);
    // A black frame measures 0: drawn at the floor (12 stops under white).
    const br = pts.filter((p) => num(p.b)).map((p) => [p.slot + 1, Math.log2(Math.max(p.b, 1 / 4096))]);
    const tg = pts.filter((p) => p.target > 0).map((p) => [p.slot + 1, Math.log2(p.target)]);
    box.dataset.points = String(pts.length);
    box.dataset.measured = String(br.length);
    box.hidden = !ev.length && !br.length;
    if (box.hidden) { box.textContent = ""; return; }
    const series = [];
    if (ev.length) series.push({ name: "exposure", pts: ev, axis: "left" });
    if (br.length) series.push({ name: "brightness", pts: br, axis: "right", faint: true });
    if (tg.length) series.push({ name: "target", pts: tg, axis: "right", dash: true });
    lineChart(box, series, { leftUnit: ev.length ? " EV" : "", x: (n) => "frame " + Math.round(n),
      legend: [ev.length ? "— exposure, stops" : null, br.length ? "— measured brightness" : null, tg.length ? "- - target (stops, right)" : null].filter(Boolean).join("   ") });
  }

  // ---------- events ----------
  function onEvent(type, d) {
    switch (type) {
      case "photo_taken":
        if (d.sessionId && d.success === false) buzz([200, 100, 200]);
        if (d.sessionId && num(d.exposureEv)) livePoint(d.sessionId, d.slot, { ev: d.exposureEv });
        // Per-shot progress comes with the shot, not in a status_update.
        if (d.sessionId && d.stats && S.intervalometer && S.intervalometer.sessionId === d.sessionId) {
          S.intervalometer.stats = d.stats;
          if ("remainingShots" in d) S.intervalometer.remainingShots = d.remainingShots;
          seen.iv = null;
          renderSession();
        }
        break;
      case "test_photo_scheduled":
        progress($("test-progress"), 0, "between frames: in " + (num(d.inSeconds) ? d.inSeconds.toFixed(1) : "?") + " s");
        break;
      case "test_photo_download_progress":
        if (!testPhotoId) testPhotoId = d.photoId;
        if (d.photoId === testPhotoId) progress($("test-progress"), d.percent || 0, "downloading " + (d.percent || 0) + " %");
        break;
      case "session_frame":
        showPhoto($("s-frame"), api(d.url), (S.camera && S.camera.settings) || {}, "Last frame " + (d.fileName || "") + " · " + fmtTime(d.timestamp), null);
        break;
      case "camera-sync":
        toast($("camera-sync"), d.success === false ? "err" : "ok", d.success === false ? "Camera clock not set" : "Camera clock synced" + (num(d.offset) ? " (was off by " + fmtMs(d.offset) + ")" : ""));
        break;
      case "sync-failed":
        toast($("camera-sync"), "err", "Time sync did not work" + (d.component ? " (" + d.component + ")" : ""), plain(d.error));
        break;
      case "reliability-lost":
        toast($("camera-sync"), "warn", "The phone's time is not reliable enough to set the clocks", plain(d.reason));
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
    const st = d.stats || {};
    const tally = () => (st.shotsSuccessful || 0) + " taken" + (st.shotsFailed ? ", " + st.shotsFailed + " failed" : "") + (st.shotsSkipped ? ", " + st.shotsSkipped + " skipped" : "");
    switch (type) {
      case "session_started": clearToasts(); break;
      case "session_completed": life("Timelapse complete: " + tally(), st.shotsFailed ? "warn" : "ok", 30000); buzz([400, 200, 400]); break;
      case "session_stopped": life("Timelapse stopped: " + tally(), "ok", 30000); buzz(300); break;
      case "session_error": life("Timelapse ended with an error: " + plain(d.reason), "err", 60000); buzz([400, 200, 400, 200, 400]); break;
      case "session_warning": life(plain(d.message), "warn", 30000); break;
      case "shot_recovered": life(d.message || "A frame was taken after all", "ok"); break;
      case "photo_overtime": break; // counted in the monitor (overtime row)
      case "frame_measured": livePoint(d.sessionId, d.slot, { b: d.brightness, target: d.targetBrightness, ev: d.exposureEv }); break;
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
  function onNetworkEvent(type, d) {
    const anchor = $("wifi-scan");
    if (type === "wifi_connected") toast(anchor, "ok", "Joined " + (d.ssid || "Wi-Fi") + (d.ip ? " · " + d.ip : ""));
    else if (type === "wifi_connection_failed") toast(anchor, "err", "Could not join " + (d.ssid || "Wi-Fi"), plain(d.error));
    else if (type === "wifi_connection_started") toast(anchor, "info", "Joining " + (d.ssid || "Wi-Fi") + "…");
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
        el("div", null, rep.title || rep.id, el("small", null, fmtDate(rep.startTime) + " · " + count(res.shotsSuccessful || 0) + " taken" + (res.shotsFailed ? " · " + count(res.shotsFailed) + " failed" : "") + (res.shotsSkipped ? " · " + count(res.shotsSkipped) + " skipped" : "") + " · " + (rep.status || ""))),
        el("span", { class: "dim" }, "›")));
    }
    if (reportId && !reports.some((x) => x.id === reportId)) closeReport();
  }
  $("reports-refresh").onclick = (ev) => loadReports(ev.currentTarget);
  let openSeq = 0, openRep = null;
  async function openReport(id) {
    const my = ++openSeq;
    let r;
    try { r = await cmd("get_timelapse_report", { id: id }); } catch (e) { toastErr($("reports-refresh"), e); return; }
    if (my !== openSeq) return; // a later open superseded this one
    const rep = r.report || r;
    const same = reportId === id;
    reportId = id;
    openRep = rep;
    $("report-card").hidden = false;
    $("reports-card").hidden = true;
    $("r-title").textContent = rep.title || id;
    if (!same || document.activeElement !== $("r-newtitle")) $("r-newtitle").value = rep.title || "";
    const res = rep.results || {}, sum = rep.summary || {}, o = rep.options || {};
    kv($("r-kv"), [
      ["Status", rep.status + (rep.endReason ? " · " + plain(rep.endReason) : "")],
      ["Started", fmtDate(rep.startTime)],
      ["Ended", fmtDate(rep.endTime)],
      ["Length", fmtDur((Date.parse(rep.endTime) - Date.parse(rep.startTime)) / 1000)],
      ["Interval", mmss(o.interval) + " · " + stopText(o)],
      ["Taken", count(res.shotsSuccessful || 0), "ok"],
      ["Failed", count(res.shotsFailed || 0), res.shotsFailed ? "err" : ""],
      ["Skipped", count(res.shotsSkipped || 0), res.shotsSkipped ? "warn" : ""],
      ["Overtime", res.overtimeShots ? res.overtimeShots + " frames" : "none", res.overtimeShots ? "warn" : ""],
      ["Timing", "mean " + fmtMs(sum.meanErrorMs) + " · p99 " + fmtMs(sum.p99ErrorMs) + " · max " + fmtMs(sum.maxErrorMs)],
      ["Drift", fmtMs(sum.driftMs)],
    ]);
    drawChart(rep);
    renderGaps(rep);
    const base = "/api/timelapse/reports/" + encodeURIComponent(id);
    $("r-csv").href = api(base + "/csv");
    $("r-csv").setAttribute("download", (rep.title || id).replace(/[^\w.-]+/g, "_") + ".csv");
    if (!same) { layout(); $("report-card").scrollIntoView({ block: "start" }); }
  }
  function closeReport() { reportId = null; openRep = null; $("report-card").hidden = true; $("reports-card").hidden = false; }
  $("r-close").onclick = closeReport;
  $("r-back").onclick = (ev) => { ev.preventDefault(); closeReport(); scrollTo(0, 0); };
  addEventListener("resize", () => { if (openRep) drawChart(openRep); drawCurve(fresh()); drawLive(); layout(); });
  // Timing error of every frame against the grid, drawn for this screen's width; failed
  // frames as marks on the floor, gaps shaded.
  function drawChart(rep) {
    const box = $("r-chart"), shots = rep.shots || [];
    const W = Math.max(280, box.clientWidth || 320), H = 220, L = 60, R = 8, T = 12, B = 38;
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("width", W); svg.setAttribute("height", H);
    const add = (tag, attrs, text) => { const e = document.createElementNS(ns, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); if (text !== undefined) e.textContent = text; svg.append(e); return e; };
    box.textContent = "";
    if (!shots.length) { box.append(el("p", { class: "dim" }, "No frames.")); return; }
    const t0 = shots[0].scheduledMs, t1 = Math.max(t0 + 1, shots[shots.length - 1].scheduledMs);
    const errs = shots.filter((s) => s.ok && num(s.errorMs)).map((s) => Math.abs(s.errorMs));
    const top = Math.max(1, niceCeil(Math.max(0, ...errs)));
    const x = (t) => L + (t - t0) / (t1 - t0) * (W - L - R), y = (v) => T + (1 - v / top) * (H - T - B);
    for (const g of gaps(rep)) add("rect", { x: x(g.from), y: T, width: Math.max(2, x(g.to) - x(g.from)), height: H - T - B, fill: "currentColor", "fill-opacity": ".15" });
    for (const v of [0, top / 2, top]) {
      add("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "currentColor", "stroke-opacity": ".25" });
      add("text", { x: L - 6, y: y(v) + 5, "text-anchor": "end" }, fmtMs(v).replace(" ms", "") + (v === top ? " ms" : ""));
    }
    let path = "";
    for (const s of shots) if (s.ok && num(s.errorMs)) path += (path ? "L" : "M") + x(s.scheduledMs).toFixed(1) + " " + y(Math.abs(s.errorMs)).toFixed(1);
    if (path) add("path", { d: path, fill: "none", stroke: "currentColor", "stroke-width": "1.5" });
    for (const s of shots) if (!s.ok) add("path", { d: "M" + (x(s.scheduledMs) - 4) + " " + (H - B - 8) + "l8 8m0 -8l-8 8", stroke: "currentColor", "stroke-width": "2" });
    const label = t1 - t0 < 600000 ? clock : hhmm;
    for (const [t, anchor] of [[t0, "start"], [(t0 + t1) / 2, "middle"], [t1, "end"]]) add("text", { x: x(t), y: H - 12, "text-anchor": anchor }, label(t));
    box.append(svg);
  }
  function niceCeil(v) { if (v <= 0) return 1; const p = Math.pow(10, Math.floor(Math.log10(v))); for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p; return 10 * p; }
  // Runs of failed or skipped frames (one entry when they touch): when, why, which frames,
  // where the sequence of files jumps.
  function gaps(rep) {
    const shots = rep.shots || [], out = [];
    const iv = ((rep.options || {}).interval || 0) * 1000;
    const file = (s) => s && s.files && s.files.length ? s.files[0].split("/").pop().replace(/\.[^.]+$/, "") : null;
    const push = (g) => {
      const prev = out[out.length - 1];
      if (prev && g.from <= prev.to + 1) {
        prev.to = Math.max(prev.to, g.to);
        prev.failed += g.failed; prev.skipped += g.skipped;
        prev.first = prev.first || g.first; prev.last = g.last || prev.last;
        prev.after = g.after;
        if (!prev.reason) prev.reason = g.reason;
      } else out.push(g);
    };
    let i = 0;
    while (i < shots.length) {
      const s = shots[i];
      if (s.skippedBefore > 0) push({ from: s.scheduledMs - s.skippedBefore * iv, to: s.scheduledMs, reason: "", failed: 0, skipped: s.skippedBefore, first: null, last: null, before: file(shots[i - 1]), after: file(s) });
      if (s.ok) { i++; continue; }
      let j = i;
      while (j + 1 < shots.length && !shots[j + 1].ok) j++;
      const next = shots[j + 1];
      push({ from: s.scheduledMs, to: next ? next.scheduledMs : shots[j].scheduledMs + iv, reason: plain(s.error) || "failed", failed: j - i + 1, skipped: 0, first: s.shot, last: shots[j].shot, before: file(shots[i - 1]), after: file(next) });
      i = j + 1;
    }
    return out;
  }
  function renderGaps(rep) {
    const ul = $("r-gaps");
    ul.textContent = "";
    const list = gaps(rep);
    if (!list.length) { ul.append(el("li", { class: "sev-ok" }, "No gaps: every frame was taken on its slot.")); return; }
    for (const g of list) {
      const what = [];
      if (g.failed) what.push((g.first === g.last ? "frame " + g.first : "frames " + g.first + "–" + g.last) + " failed");
      if (g.skipped) what.push(g.skipped + " skipped");
      const jump = g.before && g.after ? " · the sequence jumps between " + g.before + " and " + g.after : g.after ? " · resumes at " + g.after : "";
      ul.append(el("li", { class: "sev-warn" }, clock(g.from) + "–" + clock(g.to) + " " + (g.reason || "no time to shoot on the grid") + " · " + what.join(", ") + jump));
    }
  }
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
    un.append("Wi-Fi control is not available on this Pi.", el("details", null, el("summary", null, "Details"), "SERVICE_UNAVAILABLE: " + (n.error || "NetworkManager is not running")));
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
      ["Pi clock", pi.isSynchronized ? "set" : "not set", pi.isSynchronized ? "ok" : "warn"],
      ["Reliability", pi.reliability || "–", pi.reliability === "high" ? "ok" : pi.reliability === "none" ? "warn" : ""],
      ["Source", pi.source || "–"],
      ["Pi offset", num(pi.offsetMs) ? fmtMs(pi.offsetMs) : "–"],
      ["Last sync", pi.lastSyncTime ? fmtTime(pi.lastSyncTime) : "never"],
      ["Camera clock", cam.isSynchronized ? "set" : cam.connected === false ? "no camera" : "not set", cam.isSynchronized ? "ok" : "warn"],
      ["Camera offset", num(cam.offsetMs) ? fmtMs(cam.offsetMs) : undefined],
      ["Camera sync", cam.lastSyncTime ? fmtTime(cam.lastSyncTime) : undefined],
      ["Timezone", t.clientTimezone || Intl.DateTimeFormat().resolvedOptions().timeZone],
      ["Phones", t.connectedClients],
    ]);
  }
  $("camera-sync").onclick = (ev) => act(ev.currentTarget, "manual_camera_sync", {}, "Setting the camera clock…");
  function renderPower() {
    const p = S.power || {}, th = p.thermal || {}, b = p.battery || {}, thr = p.throttled, est = p.estimate;
    const flags = thr && thr.current ? Object.keys(thr.current).filter((k) => thr.current[k]) : [];
    const past = thr && thr.sinceBoot ? Object.keys(thr.sinceBoot).filter((k) => thr.sinceBoot[k]) : [];
    kv($("power-kv"), [
      ["Board", p.model || (p.isRaspberryPi ? "Raspberry Pi" : "not a Raspberry Pi")],
      ["Temperature", num(th.temperature) ? th.temperature + " °" + (th.unit || "C") : "–", th.temperature >= 80 ? "err" : th.temperature >= 70 ? "warn" : ""],
      ["Throttling", thr ? (flags.length ? flags.join(", ") : "none") + (past.length ? " (since boot: " + past.join(", ") + ")" : "") : "–", flags.length ? "err" : past.length ? "warn" : ""],
      ["Battery", b.present ? (num(b.capacity) ? b.capacity + " %" : "present") + (b.status ? " · " + b.status : "") : "none", b.present && b.capacity < 20 ? "warn" : ""],
      ["Frames left", est && num(est.shotsLeft) ? count(est.shotsLeft) + (est.limitedBy ? " (" + est.limitedBy + ")" : "") + (num(est.timeLeftSeconds) ? " · " + fmtDur(est.timeLeftSeconds) : "") : undefined],
      ["Uptime", fmtDur(p.uptime)],
    ]);
    const ul = $("power-warnings");
    ul.textContent = "";
    const warnings = p.warnings || [];
    for (const w of warnings) ul.append(el("li", { class: w.severity === "critical" ? "sev-err" : "sev-warn" }, w.message || w.kind));
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
  function renderVibrate() {
    const b = $("vibrate");
    b.setAttribute("aria-pressed", String(vibrate));
    b.textContent = "Vibrate on failed frames and at the end: " + (vibrate ? "on" : "off") + (navigator.vibrate ? "" : " (this browser cannot)");
  }
  $("vibrate").onclick = () => { vibrate = !vibrate; try { localStorage.setItem("skylapse.vibrate", vibrate ? "1" : "0"); } catch (_) {} renderVibrate(); buzz(100); };
  renderVibrate();

  // ---------- frame & focus: live view relayed by the Pi, figures computed here ----------
  const LV = { on: false, zoom: 1, ox: 0.5, oy: 0.5, best: 0, timer: 0, retry: 0, abort: null };
  const lvImg = $("lv-img");
  function lvSet(state, note) {
    $("lv-state").textContent = state;
    $("lv-state").className = "pill" + (state === "live" ? " ok" : state === "off" ? "" : " warn");
    $("lv-note").hidden = !note;
    $("lv-note").textContent = note || "";
  }
  function lvStart() {
    if (isLive(S.intervalometer)) { lvSet("off", "A timelapse is running: live view is off so it cannot delay or spoil a frame."); return; }
    clearTimeout(LV.retry);
    LV.on = true;
    LV.since = Date.now();
    lvSet("starting…");
    lvImg.src = api("/api/camera/liveview/stream?size=medium&t=" + Date.now());
    if (!LV.timer) LV.timer = setInterval(lvMeasure, 250);
  }
  function lvStop(state, note) {
    LV.on = false;
    clearTimeout(LV.retry);
    lvImg.removeAttribute("src"); // closes the stream: the Pi turns live view off after a few seconds
    clearInterval(LV.timer);
    LV.timer = 0;
    lvSet(state || "off", note);
  }
  lvImg.onload = () => { if (LV.on) lvSet("live"); };
  // The stream could not start (or ended): ask once for the reason, then retry unless refused.
  lvImg.onerror = async () => {
    if (!LV.on || !lvImg.getAttribute("src")) return;
    let reason = null, refused = false;
    try {
      const ctl = new AbortController();
      const r = await fetch(api("/api/camera/liveview/stream?size=medium"), { signal: ctl.signal });
      if (!r.ok) { const b = await r.json().catch(() => ({})); reason = b.error || b; refused = true; }
      ctl.abort();
    } catch (_) { reason = { message: "The Pi is not answering" }; }
    if (!LV.on) return;
    if (refused) { lvStop("off", reason && reason.message ? plain(reason) : "Live view is not available."); return; }
    lvSet("retrying…", reason ? plain(reason) : "The stream stopped; trying again.");
    LV.retry = setTimeout(() => { if (LV.on) lvStart(); }, 2000);
  };
  // Focus figure: gradient energy of the magnified area (or the centre), on a small copy.
  const lvCanvas = document.createElement("canvas");
  function lvMeasure() {
    if (!LV.on) return;
    // No first frame in 12 s: the stream ended or never started; find out why.
    if (!lvImg.naturalWidth) { if (Date.now() - LV.since > 12000) { LV.since = Date.now(); lvImg.onerror(); } return; }
    if (isLive(S.intervalometer)) { lvStop("off", "A timelapse started: live view is off."); return; }
    const W = lvImg.naturalWidth, H = lvImg.naturalHeight;
    const span = 1 / Math.max(LV.zoom, 3); // the area looked at: at most a third of the frame
    const sw = W * span, sh = H * span;
    const sx = Math.min(W - sw, Math.max(0, LV.ox * W - sw / 2)), sy = Math.min(H - sh, Math.max(0, LV.oy * H - sh / 2));
    const w = Math.min(200, Math.round(sw)), h = Math.max(1, Math.round(w * sh / sw));
    lvCanvas.width = w; lvCanvas.height = h;
    const g = lvCanvas.getContext("2d", { willReadFrequently: true });
    let d;
    try { g.drawImage(lvImg, sx, sy, sw, sh, 0, 0, w, h); d = g.getImageData(0, 0, w, h).data; } catch (_) { return; }
    const L = new Float32Array(w * h);
    for (let i = 0, j = 0; i < d.length; i += 4, j++) L[j] = 0.2126 * d[i] + 0.7152 * d[i + 1] + 0.0722 * d[i + 2];
    let e = 0;
    for (let y = 1; y < h - 1; y++) for (let x = 1; x < w - 1; x++) {
      const k = y * w + x, gx = L[k + 1] - L[k - 1], gy = L[k + w] - L[k - w];
      e += gx * gx + gy * gy;
    }
    const fig = Math.round(10 * e / Math.max(1, (w - 2) * (h - 2))) / 10;
    LV.best = Math.max(LV.best, fig);
    $("lv-focus").textContent = String(fig);
    $("lv-best").textContent = String(LV.best);
    $("lv-meter").style.width = (LV.best ? Math.round(100 * fig / LV.best) : 0) + "%";
    document.body.dataset.lvFocus = String(fig);
    document.body.dataset.lvN = String((LV.n = (LV.n || 0) + 1)); // measurements so far (tests wait on it)
    const hist = histogram(lvImg);
    $("lv-hist")._h = hist;
    drawHistogram($("lv-hist"), hist);
  }
  function lvZoom() {
    lvImg.style.transformOrigin = (LV.ox * 100) + "% " + (LV.oy * 100) + "%";
    lvImg.style.transform = LV.zoom > 1 ? "scale(" + LV.zoom + ")" : "";
    $("lv-zoom").textContent = LV.zoom + "×";
    $("lv-zoom").setAttribute("aria-pressed", String(LV.zoom > 1));
  }
  $("lv-box").onclick = (e) => {
    if (LV.zoom > 1) return;
    const r = $("lv-box").getBoundingClientRect();
    LV.ox = Math.min(1, Math.max(0, (e.clientX - r.left) / r.width));
    LV.oy = Math.min(1, Math.max(0, (e.clientY - r.top) / r.height));
    LV.zoom = 5;
    lvZoom();
  };
  $("lv-zoom").onclick = () => { LV.zoom = LV.zoom === 1 ? 3 : LV.zoom === 3 ? 5 : 1; lvZoom(); };
  $("lv-grid").onclick = () => { const on = $("lv-lines").hidden; $("lv-lines").hidden = !on; $("lv-grid").setAttribute("aria-pressed", String(on)); };
  $("lv-reset").onclick = () => { LV.best = 0; $("lv-best").textContent = "–"; };
  $("lv-focus-row").onclick = (ev) => {
    const b = ev.target.closest("button[data-step]");
    if (b) act(b, "drive_focus", { step: b.dataset.step }, null, 15000);
  };
  $("lv-capture").onclick = async (ev) => {
    const r = await act(ev.currentTarget, "capture_liveview", {}, "Frame kept", 30000);
    if (r && r.id) showPhoto($("lv-shot"), api(r.fileUrl || "/api/camera/liveview/images/" + r.id + "/file"), r.settings || {}, (r.filename || "") + " · live view", r.filename);
  };
  function lvOpen() {
    $("frame").hidden = false;
    document.body.classList.add("lv-open");
    scrollTo(0, 0);
    lvStart();
  }
  function lvClose() {
    lvStop();
    $("frame").hidden = true;
    document.body.classList.remove("lv-open");
  }
  $("lv-open").onclick = lvOpen;
  $("lv-close").onclick = lvClose;
  // The phone sleeps or the page is left: no stream (the camera's battery); back: again.
  document.addEventListener("visibilitychange", () => {
    if ($("frame").hidden) return;
    if (document.visibilityState === "hidden") lvStop("paused");
    else lvStart();
  });

  // ---------- tabs, night mode, dimmer ----------
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
    if (name === "timelapse") { onFormChange(); if (ws && Date.now() - sunAt > 600000) loadSun(); }
    scrollTo(0, 0);
  }
  $("tabs").onclick = (ev) => { const b = ev.target.closest("button"); if (b) showTab(b.dataset.tab); };
  function setRed(on) {
    document.documentElement.classList.toggle("red", on);
    $("night").setAttribute("aria-pressed", String(on));
    try { localStorage.setItem("skylapse.red", on ? "1" : "0"); } catch (_) {}
    for (const c of document.querySelectorAll(".photo canvas")) if (c._h) drawHistogram(c, c._h);
    if (openRep) drawChart(openRep);
  }
  $("night").onclick = () => setRed(!document.documentElement.classList.contains("red"));
  $("night").setAttribute("aria-pressed", String(document.documentElement.classList.contains("red")));
  const DIM = ["Dim", "Dim 1", "Dim 2"];
  function setDim(level) {
    document.documentElement.dataset.dim = String(level);
    $("dim").textContent = DIM[level];
    $("dim").setAttribute("aria-pressed", String(level > 0));
    try { localStorage.setItem("skylapse.dim", String(level)); } catch (_) {}
  }
  $("dim").onclick = () => setDim(((Number(document.documentElement.dataset.dim) || 0) + 1) % 3);
  setDim(Number(document.documentElement.dataset.dim) || 0);

  restoreForm();
  let saved = null;
  try { saved = localStorage.getItem("skylapse.tab"); } catch (_) {}
  showTab(location.hash.slice(1) || saved || "camera");
  addEventListener("hashchange", () => { if (location.hash.slice(1) !== currentTab) showTab(location.hash.slice(1)); });
  layout();
  window.skylapse = { state: S, cmd: cmd, word: word, plain: plain }; // for debugging from the console and for tests
  connect();
})();
