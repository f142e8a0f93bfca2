// Minimal live status page: one WebSocket to the same host, reconnect with backoff
// (1 s doubling to 30 s), answer the server's time-sync request at once.
"use strict";
(function () {
  const link = document.getElementById("link");
  const server = document.getElementById("server");
  const token = new URLSearchParams(location.search).get("token");
  let delay = 1000;
  let ws = null;

  function url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = token ? "?token=" + encodeURIComponent(token) : "";
    return proto + "//" + location.host + "/ws" + q;
  }

  function send(msg) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  }

  function timeSyncResponse(requestId) {
    send({
      type: "time-sync-response",
      data: {
        requestId: requestId,
        clientTime: Date.now(),
        timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
      },
    });
  }

  function show(value) {
    if (value === null || value === undefined) return "–";
    if (typeof value === "object") {
      return Object.entries(value)
        .map(([k, v]) => k + ": " + (typeof v === "object" && v !== null ? JSON.stringify(v) : v))
        .join(", ");
    }
    return String(value);
  }

  function render(blocks) {
    for (const section of document.querySelectorAll("section[data-block]")) {
      const name = section.dataset.block;
      if (!(name in blocks)) continue;
      const dl = section.querySelector("dl");
      dl.textContent = "";
      const block = blocks[name];
      const entries = block && typeof block === "object" ? Object.entries(block) : [["", block]];
      for (const [k, v] of entries) {
        const dt = document.createElement("dt");
        const dd = document.createElement("dd");
        dt.textContent = k;
        dd.textContent = show(v);
        dl.append(dt, dd);
      }
    }
  }

  function connect() {
    ws = new WebSocket(url());
    ws.onopen = function () {
      delay = 1000;
      link.textContent = "live";
      link.className = "ok";
      // Sync the Pi's clock from the phone as soon as we are connected.
      timeSyncResponse(null);
    };
    ws.onmessage = function (ev) {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (_) { return; }
      switch (msg.type) {
        case "welcome":
          server.textContent = "skylapse " + msg.version + " · client " + msg.clientId;
          render(msg.data || msg);
          break;
        case "status_update":
          render(msg.data || msg);
          break;
        case "time-sync-request":
          timeSyncResponse((msg.data && msg.data.requestId) || msg.requestId);
          break;
      }
    };
    ws.onclose = function () {
      link.textContent = "reconnecting in " + delay / 1000 + " s";
      link.className = "bad";
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }

  connect();
})();
