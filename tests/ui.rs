//! The web UI in a real browser: the real `skylapse --demo` binary (web server + in-process
//! camera simulator) and headless Chromium, driven over the Chrome DevTools Protocol with
//! async-tungstenite. Waits happen inside the page (a MutationObserver plus a short poll,
//! with a deadline), never as sleeps here.
//!
//! Screenshots (390×844 phone viewport) land in `$CARGO_TARGET_TMPDIR/ui-*.png`.
//! Without Chromium the test is skipped, unless `SKYLAPSE_REQUIRE_PEERS=1`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use async_io::{Async, Timer};
use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketSender;
use futures_lite::future;
use futures_lite::StreamExt;
use serde_json::{json, Value};

/// How long one CDP call may take.
/// How a tap that reached another element than the one aimed at is reported.
const TAP_MISSED: &str = "tap missed";
const CALL_PATIENCE: Duration = Duration::from_secs(20);

/// A child process killed (and reaped) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tmp_dir(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ui-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Reads `r` line by line on a thread; the first line for which `pick` returns Some is sent
/// back, the rest is drained (so the child never blocks on a full pipe).
fn watch_lines<R: std::io::Read + Send + 'static>(
    r: R,
    pick: fn(&str) -> Option<String>,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if !sent {
                if let Some(v) = pick(&line) {
                    let _ = tx.send(v);
                    sent = true;
                }
            }
        }
    });
    rx
}

/// `skylapse --demo` on `listen` with the simulator's control plane on; returns once it prints
/// its address, with the control plane's address (from its log).
fn start_server(listen: &str, data_dir: &Path, log: &Path) -> (Proc, SocketAddr, SocketAddr) {
    let log_file = std::fs::File::create(log).expect("server log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_skylapse"))
        .args(["--demo", "--listen", listen, "--data-dir"])
        .arg(data_dir)
        .env("SKYLAPSE_DEMO_CONTROL", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .expect("start skylapse");
    let out = child.stdout.take().expect("stdout");
    let proc = Proc(child);
    let rx = watch_lines(out, |l| {
        l.strip_prefix("listening on http://")
            .map(|a| a.trim().to_string())
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("skylapse did not print its address");
    // Logged while the services start, before the address is printed.
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let control = text
        .lines()
        .find_map(|l| {
            let at = l.find("control plane at http://")? + "control plane at http://".len();
            l[at..].split('/').next().map(str::to_string)
        })
        .expect("the demo simulator's control plane address in the log");
    (
        proc,
        addr.parse().expect("address"),
        control.parse().expect("control address"),
    )
}

fn chromium_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

fn start_chromium(path: &Path, profile: &Path) -> (Proc, String) {
    let mut child = Command::new(path)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let err = child.stderr.take().expect("stderr");
    let proc = Proc(child);
    let rx = watch_lines(err, |l| {
        l.find("DevTools listening on ")
            .map(|i| l[i + "DevTools listening on ".len()..].trim().to_string())
    });
    let url = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("chromium did not print its DevTools address");
    (proc, url)
}

type Pending = Arc<Mutex<HashMap<u64, async_channel::Sender<Value>>>>;

/// A DevTools connection with one page attached (flat session mode).
struct Cdp {
    sender: async_lock::Mutex<WebSocketSender<Async<TcpStream>>>,
    next_id: AtomicU64,
    pending: Pending,
    /// Console errors, uncaught exceptions and browser log errors seen so far.
    problems: Arc<Mutex<Vec<String>>>,
    session: String,
    _reader: smol::Task<()>,
}

impl Cdp {
    async fn connect(url: &str) -> Cdp {
        let host = url
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .expect("ws url");
        let tcp = Async::<TcpStream>::connect(host.parse::<SocketAddr>().expect("addr"))
            .await
            .expect("connect devtools");
        let (ws, _) = async_tungstenite::client_async(url, tcp)
            .await
            .expect("devtools handshake");
        let (sender, mut receiver) = ws.split();
        let pending: Pending = Arc::default();
        let problems: Arc<Mutex<Vec<String>>> = Arc::default();
        let reader = {
            let pending = pending.clone();
            let problems = problems.clone();
            smol::spawn(async move {
                while let Some(Ok(msg)) = receiver.next().await {
                    let Message::Text(text) = msg else { continue };
                    let Ok(v) = serde_json::from_str::<Value>(&text) else {
                        continue;
                    };
                    if let Some(id) = v["id"].as_u64() {
                        if let Some(tx) = pending.lock().unwrap().remove(&id) {
                            let _ = tx.try_send(v);
                        }
                        continue;
                    }
                    if let Some(p) = problem(&v) {
                        problems.lock().unwrap().push(p);
                    }
                }
            })
        };
        let mut cdp = Cdp {
            sender: async_lock::Mutex::new(sender),
            next_id: AtomicU64::new(1),
            pending,
            problems,
            session: String::new(),
            _reader: reader,
        };
        let target = cdp
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await
            .expect("create target");
        let attached = cdp
            .call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await
            .expect("attach");
        cdp.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        for m in ["Runtime.enable", "Log.enable", "Page.enable"] {
            cdp.page(m, json!({})).await.expect(m);
        }
        cdp.page(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
        )
        .await
        .expect("viewport");
        cdp
    }

    async fn send(
        &self,
        method: &str,
        params: Value,
        session: Option<&str>,
        patience: Duration,
    ) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = async_channel::bounded(1);
        self.pending.lock().unwrap().insert(id, tx);
        let mut frame = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            frame["sessionId"] = json!(s);
        }
        self.sender
            .lock()
            .await
            .send(Message::text(frame.to_string()))
            .await
            .map_err(|e| format!("{method}: send: {e}"))?;
        let reply = future::or(async { rx.recv().await.ok() }, async {
            Timer::after(patience).await;
            None
        })
        .await
        .ok_or_else(|| format!("{method}: no reply"))?;
        if let Some(e) = reply.get("error") {
            return Err(format!("{method}: {e}"));
        }
        Ok(reply["result"].clone())
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        self.send(method, params, None, CALL_PATIENCE).await
    }

    async fn page(&self, method: &str, params: Value) -> Result<Value, String> {
        self.send(method, params, Some(&self.session), CALL_PATIENCE)
            .await
    }

    /// Evaluates `expr` in the page, awaiting a promise; errors carry the exception text.
    async fn eval(&self, expr: &str) -> Result<Value, String> {
        self.eval_within(expr, CALL_PATIENCE).await
    }

    async fn eval_within(&self, expr: &str, patience: Duration) -> Result<Value, String> {
        let r = self
            .send(
                "Runtime.evaluate",
                json!({"expression": expr, "awaitPromise": true, "returnByValue": true}),
                Some(&self.session),
                patience,
            )
            .await?;
        if let Some(ex) = r.get("exceptionDetails") {
            let text = ex["exception"]["description"]
                .as_str()
                .or(ex["text"].as_str())
                .unwrap_or("exception");
            return Err(text.to_string());
        }
        Ok(r["result"]["value"].clone())
    }

    /// Resolves when the JS expression `cond` is truthy (re-checked on every DOM mutation and
    /// every 100 ms in the page), fails after `ms`.
    async fn wait_for(&self, what: &str, cond: &str, ms: u32) -> Result<Value, String> {
        let expr = format!(
            r#"new Promise((resolve, reject) => {{
                const cond = () => {{ try {{ return ({cond}); }} catch (e) {{ return false; }} }};
                const end = performance.now() + {ms};
                let mo, iv;
                const check = () => {{
                    const v = cond();
                    if (v) {{ mo.disconnect(); clearInterval(iv); resolve(v === true ? true : String(v)); }}
                    else if (performance.now() > end) {{ mo.disconnect(); clearInterval(iv); reject(new Error("timed out waiting for: " + {what:?})); }}
                }};
                mo = new MutationObserver(check);
                mo.observe(document, {{subtree: true, childList: true, attributes: true, characterData: true}});
                iv = setInterval(check, 100);
                check();
            }})"#
        );
        self.eval_within(&expr, Duration::from_millis(u64::from(ms)) + CALL_PATIENCE)
            .await
    }

    /// A real tap: scrolls the element into view, checks nothing covers it, presses the mouse.
    async fn tap(&self, selector: &str) -> Result<(), String> {
        // A late toast or status line can move the page between aiming and clicking. A click
        // that landed on something inert (not a control) did nothing: aim again, a few times.
        for _ in 0..3 {
            match self.tap_once(selector).await {
                // Covered while aiming: nothing was clicked yet.
                Err(e) if e.contains(" is covered by ") => {}
                Err(e)
                    if e.starts_with(TAP_MISSED)
                        && !["<button", "<input", "<select", "<a "]
                            .iter()
                            .any(|c| e.contains(c)) => {}
                other => return other,
            }
            Timer::after(Duration::from_millis(150)).await;
        }
        self.tap_once(selector).await
    }

    async fn tap_once(&self, selector: &str) -> Result<(), String> {
        let expr = format!(
            r#"(() => {{
                const e = document.querySelector({selector:?});
                if (!e) throw new Error("no element " + {selector:?});
                e.scrollIntoView({{block: "center"}});
                const r = e.getBoundingClientRect();
                const x = r.left + r.width / 2, y = r.top + r.height / 2;
                const hit = document.elementFromPoint(x, y);
                if (!hit || !(e === hit || e.contains(hit))) throw new Error({selector:?} + " is covered by " + (hit && hit.outerHTML.slice(0, 80)));
                if (e.disabled) throw new Error({selector:?} + " is disabled");
                window.__clicked = null;
                document.addEventListener("click", (c) => {{ window.__clicked = c.target; }}, {{capture: true, once: true}});
                return [x, y];
            }})()"#
        );
        let at = self.eval(&expr).await?;
        let (x, y) = (at[0].as_f64().unwrap_or(0.0), at[1].as_f64().unwrap_or(0.0));
        for kind in ["mousePressed", "mouseReleased"] {
            self.page(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .await?;
        }
        // The click must have reached the element (nothing moved it in between).
        let landed = self
            .eval(&format!(
                r#"(() => {{ const e = document.querySelector({selector:?}), c = window.__clicked;
                    return c ? (e === c || (e && e.contains(c)) ? "ok" : c.outerHTML.slice(0, 120)) : "no click"; }})()"#
            ))
            .await?;
        if landed != "ok" {
            return Err(format!("{TAP_MISSED} {selector}: {landed}"));
        }
        Ok(())
    }

    /// Sets a form field as typing would (input + change events).
    async fn fill(&self, selector: &str, value: &str) -> Result<(), String> {
        self.eval(&format!(
            r#"(() => {{ const e = document.querySelector({selector:?}); if (!e) throw new Error("no " + {selector:?});
                e.focus(); e.value = {value:?}; e.dispatchEvent(new Event("input", {{bubbles: true}}));
                e.dispatchEvent(new Event("change", {{bubbles: true}})); e.blur(); }})()"#
        ))
        .await
        .map(|_| ())
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ui-{name}.png"));
        if let Ok(r) = self
            .page("Page.captureScreenshot", json!({"format": "png"}))
            .await
        {
            if let Some(bytes) = r["data"].as_str().and_then(base64_decode) {
                let _ = std::fs::write(&path, bytes);
            }
        }
        path
    }

    fn problems(&self) -> Vec<String> {
        self.problems.lock().unwrap().clone()
    }
}

/// A console error, an uncaught exception or a browser log error, as text.
fn problem(v: &Value) -> Option<String> {
    let p = &v["params"];
    match v["method"].as_str()? {
        "Runtime.consoleAPICalled" if p["type"] == "error" || p["type"] == "assert" => {
            let args: Vec<String> = p["args"]
                .as_array()?
                .iter()
                .map(|a| {
                    a["value"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| a["description"].to_string())
                })
                .collect();
            Some(format!("console.error: {}", args.join(" ")))
        }
        "Runtime.exceptionThrown" => Some(format!(
            "exception: {}",
            p["exceptionDetails"]["exception"]["description"]
                .as_str()
                .or(p["exceptionDetails"]["text"].as_str())
                .unwrap_or("?")
        )),
        "Log.entryAdded" if p["entry"]["level"] == "error" => Some(format!(
            "log: {} {}",
            p["entry"]["text"].as_str().unwrap_or("?"),
            p["entry"]["url"].as_str().unwrap_or("")
        )),
        _ => None,
    }
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    Some(out)
}

/// A loopback port with nothing listening on it.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// One request to the simulator's `/_sim` control plane (plain HTTP/1.1 on loopback).
fn sim(control: SocketAddr, method: &str, path: &str, body: Value) -> Result<(), String> {
    use std::io::{Read, Write};
    let body = body.to_string();
    let mut s = TcpStream::connect(control).map_err(|e| format!("control plane: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| format!("control plane: {e}"))?;
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    if reply.starts_with("HTTP/1.1 2") {
        Ok(())
    } else {
        Err(format!(
            "{method} {path}: {}",
            reply.lines().next().unwrap_or("no reply")
        ))
    }
}

/// The simulator's state (`GET /_sim/state`).
fn sim_state(control: SocketAddr) -> Result<Value, String> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(control).map_err(|e| format!("control plane: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "GET /_sim/state HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("control plane: {e}"))?;
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("control plane: no reply")?;
    serde_json::from_slice(&reply[split + 4..]).map_err(|e| format!("control plane: {e}"))
}

/// Brightest luminance (0–255) inside each selector's box in a fresh screenshot of the page:
/// what the screen really shows, after filters, blending and the dimmer.
async fn brightest(cdp: &Cdp, selectors: &[&str]) -> Result<Vec<f64>, String> {
    let shot = cdp
        .page("Page.captureScreenshot", json!({"format": "png"}))
        .await?;
    let b64 = shot["data"].as_str().ok_or("no screenshot")?;
    let sels = serde_json::to_string(selectors).unwrap_or_default();
    let v = cdp
        .eval(&format!(
            r#"(async () => {{
                const img = new Image(); img.src = "data:image/png;base64,{b64}"; await img.decode();
                const c = document.createElement("canvas"); c.width = img.width; c.height = img.height;
                const g = c.getContext("2d"); g.drawImage(img, 0, 0);
                const k = img.width / innerWidth;
                return JSON.stringify({sels}.map((sel) => {{
                    const e = document.querySelector(sel); if (!e) return -1;
                    const r = e.getBoundingClientRect();
                    const x = Math.max(0, Math.floor(r.left * k)), y = Math.max(0, Math.floor(r.top * k));
                    const w = Math.min(c.width - x, Math.ceil(r.width * k)), h = Math.min(c.height - y, Math.ceil(r.height * k));
                    if (w <= 0 || h <= 0) return -2;
                    const d = g.getImageData(x, y, w, h).data; let m = 0;
                    for (let i = 0; i < d.length; i += 4) m = Math.max(m, 0.2126 * d[i] + 0.7152 * d[i + 1] + 0.0722 * d[i + 2]);
                    return m;
                }}));
            }})()"#
        ))
        .await?;
    let list: Vec<f64> =
        serde_json::from_str(v.as_str().unwrap_or("[]")).map_err(|e| e.to_string())?;
    if list.iter().any(|m| *m < 0.0) {
        return Err(format!("nothing to measure in {selectors:?}: {list:?}"));
    }
    Ok(list)
}

/// Elements that stick out of the viewport or have text cut off, on the visible tab.
const CLIPPING: &str = r##"(() => {
    const W = document.documentElement.clientWidth, bad = [];
    const desc = (e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className && typeof e.className === "string" ? "." + e.className.trim().split(/\s+/).join(".") : "") + " '" + (e.textContent || "").trim().slice(0, 30) + "'";
    if (document.documentElement.scrollWidth > W + 1) bad.push("the page scrolls sideways: " + document.documentElement.scrollWidth + " > " + W);
    for (const e of document.querySelectorAll("body *")) {
        if (!e.getClientRects().length || e.closest("#zoom, #dimmer, svg, .sheet[hidden]") && e.tagName !== "svg") continue;
        const cs = getComputedStyle(e), r = e.getBoundingClientRect();
        if (cs.visibility === "hidden" || r.width === 0 || r.height === 0) continue;
        if (r.right > W + 0.5 || r.left < -0.5) bad.push(desc(e) + " sticks out (" + Math.round(r.left) + "–" + Math.round(r.right) + ")");
        const cuts = cs.overflowX !== "visible" || cs.textOverflow === "ellipsis" || cs.whiteSpace === "nowrap";
        if (cuts && !e.matches("input, canvas, img, svg, .zoom, .choices") && e.scrollWidth > e.clientWidth + 1) bad.push(desc(e) + " is cut off (" + e.scrollWidth + " > " + e.clientWidth + ")");
    }
    return JSON.stringify(bad.slice(0, 12));
})()"##;

#[test]
fn ui_drives_the_real_server_in_a_browser() {
    let Some(chromium) = chromium_path() else {
        crate::peer_missing(
            "ui",
            "no Chromium found (set CHROMIUM=/path/to/chromium to run the UI test)",
        );
        return;
    };
    let data = tmp_dir("data");
    let log = tmp_dir("log").join("server.log");
    let (server, addr, control) = start_server("127.0.0.1:0", &data, &log);
    let (_browser, devtools) = start_chromium(&chromium, &tmp_dir("profile"));

    smol::block_on(async {
        let cdp = Cdp::connect(&devtools).await;
        let mut server = Some(server);
        let result = scenario(&cdp, addr, control, &data, &log, &mut server).await;
        if let Err(e) = result {
            let shot = cdp.screenshot("failure").await;
            let text = cdp
                .eval("document.body ? document.body.innerText.slice(0, 3000) : ''")
                .await
                .unwrap_or_default();
            let toasts = cdp
                .eval("JSON.stringify([...document.querySelectorAll('.toast')].map(t => t.textContent))")
                .await
                .unwrap_or_default();
            panic!(
                "{e}\nscreenshot: {}\nserver log: {}\ntoasts: {}\npage text:\n{}\nbrowser problems: {:?}",
                shot.display(),
                log.display(),
                toasts.as_str().unwrap_or(""),
                text.as_str().unwrap_or(""),
                cdp.problems()
            );
        }
    });
}

/// A night, walked through as a photographer would (issue 14): settings visible at once, a 20"
/// plan judged against the camera's Tv, a session that loses its camera and gets it back, a
/// test photo between frames, red mode that keeps photos below the text, a 320 px phone, and a
/// power cut of the Pi.
async fn scenario(
    cdp: &Cdp,
    addr: SocketAddr,
    control: SocketAddr,
    data: &Path,
    log: &Path,
    server: &mut Option<Proc>,
) -> Result<(), String> {
    let t0 = std::time::Instant::now();
    let step = |name: &str| eprintln!("[{:>6.2} s] {name}", t0.elapsed().as_secs_f64());
    let base = format!("http://{addr}/");
    cdp.page("Page.navigate", json!({"url": base})).await?;

    step("load");
    cdp.wait_for("live link", "document.body.dataset.link === 'live'", 10_000)
        .await?;
    cdp.wait_for(
        "camera connected",
        "document.body.dataset.camera === 'connected' && document.querySelector('#cam-kv').textContent.includes('Canon')",
        15_000,
    )
    .await?;
    // Issue 14 item 2: the settings are there without a tap, in photographers' words, and the
    // strip under the header shows them on every tab.
    cdp.wait_for(
        "settings from the status block",
        "document.querySelector('#settings [data-setting=tv] span').textContent === '1/125' && document.querySelector('#settings [data-setting=mode] span').textContent === 'M' && document.querySelector('#settings [data-setting=afoperation] span').textContent === 'One Shot'",
        10_000,
    )
    .await?;
    cdp.wait_for(
        "the strip",
        "document.querySelector('#st-exp').textContent === 'M · 1/125 · f/8 · ISO 100' && /full|%/.test(document.querySelector('#st-batt').textContent)",
        5_000,
    )
    .await?;
    cdp.screenshot("camera").await;

    step("test photo");
    // A test photo outside a session: the display-size image, never inverted, with its
    // exposure, a histogram and the clipped share.
    cdp.tap("#test-photo").await?;
    cdp.wait_for(
        "test photo preview",
        "(() => { const i = document.querySelector('#test-preview img'); return i && i.complete && i.naturalWidth > 0 && document.querySelector('#test-preview figcaption').textContent.includes('clipped'); })()",
        20_000,
    )
    .await?;
    let caption = cdp
        .eval("document.querySelector('#test-preview figcaption').textContent")
        .await?;
    let caption = caption.as_str().unwrap_or("");
    if !caption.contains("1/125 · f/8 · ISO 100") || !caption.contains("display size") {
        return Err(format!("test photo caption: {caption}"));
    }
    let filter = cdp
        .eval("getComputedStyle(document.querySelector('#test-preview img')).filter")
        .await?;
    if filter != "none" {
        return Err(format!("a photo is filtered in normal mode: {filter}"));
    }
    // Tap for 100 %: one image pixel per device pixel; tap again to close.
    cdp.tap("#test-preview img").await?;
    cdp.wait_for(
        "100 % crop",
        "(() => { const z = document.querySelector('#zoom img'), i = document.querySelector('#test-preview img'); return z && !document.querySelector('#zoom').hidden && Math.abs(z.getBoundingClientRect().width * devicePixelRatio - i.naturalWidth) < 2; })()",
        5_000,
    )
    .await?;
    // (A click, not a tap: the overlay removes the clicked image, which the tap check needs.)
    cdp.eval("document.querySelector('#zoom').click()").await?;
    cdp.wait_for(
        "crop closed",
        "document.querySelector('#zoom').hidden",
        5_000,
    )
    .await?;

    step("take photo");
    cdp.tap("#take-photo").await?;
    cdp.wait_for(
        "photo toast",
        "[...document.querySelectorAll('#cam-card .toast.sev-ok')].some(t => t.textContent.includes('Photo taken'))",
        15_000,
    )
    .await?;

    step("frame & focus");
    // Issue 11: the live view on the phone, and a focus figure (computed in the browser) that
    // peaks where the simulator's lens is truly in focus. A night sky metered for the scene;
    // the lens starts 80 steps short of focus and is driven through it in big steps.
    sim(
        control,
        "PATCH",
        "/_sim/state",
        json!({"sky_mode": "night", "lv_exposure_simulation": false, "true_focus": 500, "focus_position": 380}),
    )?;
    cdp.tap("#lv-open").await?;
    cdp.wait_for(
        "live view",
        "document.querySelector('#lv-state').textContent === 'live' && Number(document.body.dataset.lvN) > 2 && document.querySelector('main').offsetParent === null",
        20_000,
    )
    .await?;
    // Tap the brightest star (alone near the centre) to magnify it, as one would.
    let star = sim_state(control)?["scene"]["brightest_star"].clone();
    let (sx, sy) = (
        star[0].as_f64().unwrap_or(0.5),
        star[1].as_f64().unwrap_or(0.5),
    );
    cdp.eval(&format!(
        "(() => {{ const b = document.querySelector('#lv-box'), r = b.getBoundingClientRect(); b.dispatchEvent(new MouseEvent('click', {{bubbles: true, clientX: r.left + {sx} * r.width, clientY: r.top + {sy} * r.height}})); }})()"
    ))
    .await?;
    cdp.wait_for(
        "magnified",
        "document.querySelector('#lv-zoom').textContent === '5×'",
        5_000,
    )
    .await?;
    let mut sweep = Vec::new();
    for i in 0..7 {
        if i > 0 {
            let before = sim_state(control)?["scene"]["focus_position"]
                .as_i64()
                .unwrap_or(-1);
            cdp.tap("#lv-focus-row [data-step=far3]").await?;
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while sim_state(control)?["scene"]["focus_position"]
                .as_i64()
                .unwrap_or(-1)
                == before
            {
                if std::time::Instant::now() > deadline {
                    return Err("the focus drive did not move the lens".into());
                }
                Timer::after(Duration::from_millis(50)).await; // polling the simulator's state
            }
        }
        // Fresh frames only: a few measurements after the lens moved.
        let n0 = cdp
            .eval("Number(document.body.dataset.lvN)")
            .await?
            .as_f64()
            .unwrap_or(0.0);
        cdp.wait_for(
            "fresh focus figures",
            &format!("Number(document.body.dataset.lvN) >= {}", n0 + 6.0),
            10_000,
        )
        .await?;
        let fig = cdp
            .eval("Number(document.body.dataset.lvFocus)")
            .await?
            .as_f64()
            .unwrap_or(0.0);
        let pos = sim_state(control)?["scene"]["focus_position"]
            .as_i64()
            .unwrap_or(-1);
        sweep.push((pos, fig));
    }
    eprintln!("focus sweep (position, figure): {sweep:?}");
    let best = sweep
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|p| p.0)
        .unwrap_or(-1);
    if (best - 500).abs() > 40 {
        return Err(format!(
            "the focus figure peaks at {best}, not at the true focus 500: {sweep:?}"
        ));
    }
    cdp.wait_for(
        "best marked",
        "Number(document.querySelector('#lv-best').textContent) >= Number(document.body.dataset.lvFocus)",
        5_000,
    )
    .await?;
    cdp.screenshot("frame-focus").await;
    cdp.tap("#lv-capture").await?;
    cdp.wait_for(
        "kept frame",
        "(() => { const i = document.querySelector('#lv-shot img'); return i && i.complete && i.naturalWidth > 0; })()",
        20_000,
    )
    .await?;
    cdp.tap("#lv-close").await?;
    cdp.wait_for(
        "stream closed",
        "!document.querySelector('#lv-img').getAttribute('src') && document.querySelector('#frame').hidden && document.querySelector('main').offsetParent !== null",
        5_000,
    )
    .await?;
    sim(
        control,
        "PATCH",
        "/_sim/state",
        json!({"lv_exposure_simulation": true}),
    )?;

    step("error in plain words");
    // A refused connection: one sentence for the photographer, the raw error behind Details.
    let port = closed_port();
    cdp.fill("#connect-ip", "127.0.0.1").await?;
    cdp.fill("#connect-port", &port.to_string()).await?;
    cdp.tap("#connect-btn").await?;
    cdp.wait_for(
        "connect error toast",
        "[...document.querySelectorAll('#discovery-card .toast.sev-err')].some(t => t.querySelector('p').textContent.length > 10 && !/os error/.test(t.querySelector('p').textContent) && t.querySelector('details'))",
        20_000,
    )
    .await?;

    step("20\" plan");
    // Issue 14 B3: the camera's dial goes to 20"; the plan knows at once (status block), a
    // 10 s interval cannot start and says why, 25 s can.
    sim(
        control,
        "PATCH",
        "/_sim/state",
        json!({"settings": {"tv": "20\""}}),
    )?;
    cdp.wait_for(
        "20\" in the strip",
        "document.querySelector('#st-exp').textContent.includes('20\"')",
        10_000,
    )
    .await?;
    cdp.tap("nav button[data-tab='timelapse']").await?;
    cdp.fill("#f-interval", "0:10").await?;
    cdp.tap("#f-stop input[value='duration'] + span").await?;
    cdp.fill("#f-duration", "1:00").await?;
    cdp.wait_for(
        "10 s refused at 20\"",
        "document.querySelector('#f-validation .sev-err') && document.querySelector('#f-validation').textContent.includes('20\"') && document.querySelector('#start').disabled && document.querySelector('#f-reason').textContent.includes('too short')",
        10_000,
    )
    .await?;
    cdp.screenshot("plan-20s-refused").await;
    cdp.tap("#f-presets button[data-s='25']").await?;
    cdp.wait_for(
        "25 s fits 20\"",
        "document.querySelector('#f-validation .sev-ok') && document.querySelector('#f-validation').textContent.includes('20\"') && !document.querySelector('#start').disabled && document.querySelector('#f-reason').hidden",
        10_000,
    )
    .await?;
    // The plan: 1 h at 25 s = 144 frames, the clip at 24 and 30 fps, card and battery.
    cdp.wait_for(
        "plan figures",
        "(() => { const t = document.querySelector('#f-plan').textContent; return t.includes('144 frames') && t.includes('0:06 at 24 fps') && t.includes('Card:') && t.includes('battery'); })()",
        5_000,
    )
    .await?;
    cdp.screenshot("plan-20s").await;
    // Start in N minutes: the plan tells when.
    cdp.tap("#f-start input[value='in'] + span").await?;
    cdp.wait_for(
        "start in 10 min",
        "/^Starts \\d\\d:\\d\\d \\(in (9|10) m/.test(document.querySelector('#f-plan li').textContent)",
        5_000,
    )
    .await?;
    cdp.tap("#f-start input[value='now'] + span").await?;

    step("change Tv with the picker");
    // Back to 1/125 through our own picker (no native select).
    cdp.tap("nav button[data-tab='camera']").await?;
    cdp.tap("#settings [data-setting=tv]").await?;
    cdp.wait_for(
        "picker",
        "!document.querySelector('#picker').hidden && document.querySelector('#picker-list [data-value=\"1/125\"]')",
        10_000,
    )
    .await?;
    cdp.screenshot("picker").await;
    cdp.tap("#picker-list [data-value='1/125']").await?;
    cdp.wait_for(
        "Tv back to 1/125",
        "document.querySelector('#picker').hidden && document.querySelector('#st-exp').textContent.includes('1/125')",
        10_000,
    )
    .await?;

    step("session");
    // A 3 s session (room for a test photo between frames at 1/125).
    cdp.tap("nav button[data-tab='timelapse']").await?;
    cdp.fill("#f-interval", "0:03").await?;
    cdp.tap("#f-stop input[value='unlimited'] + span").await?;
    cdp.fill("#f-title", "Night walk").await?;
    cdp.wait_for(
        "interval fits",
        "document.querySelector('#f-validation .sev-ok') && !document.querySelector('#start').disabled",
        10_000,
    )
    .await?;
    cdp.tap("#start").await?;
    cdp.wait_for(
        "first frame",
        "document.body.dataset.session === 'running' && parseInt(document.querySelector('#s-ok').textContent) >= 1",
        10_000,
    )
    .await?;
    cdp.wait_for(
        "lifecycle message in the header",
        "!document.querySelector('#life').hidden && document.querySelector('#life').textContent.includes('started')",
        5_000,
    )
    .await?;
    // Messages of before the session are gone (the connect error was still up).
    cdp.wait_for("toasts cleared", "!document.querySelector('.toast')", 2_000)
        .await?;
    // The monitor shows the last frame with its histogram.
    cdp.wait_for(
        "last frame in the monitor",
        "(() => { const i = document.querySelector('#s-frame img'); return i && i.complete && i.naturalWidth > 0 && document.querySelector('#s-frame figcaption').textContent.includes('Last frame'); })()",
        15_000,
    )
    .await?;

    step("settings change asks first");
    cdp.tap("nav button[data-tab='camera']").await?;
    cdp.tap("#settings [data-setting=iso]").await?;
    cdp.wait_for(
        "iso picker",
        "!document.querySelector('#picker').hidden && document.querySelector('#picker-list [data-value=\"200\"]')",
        10_000,
    )
    .await?;
    cdp.tap("#picker-list [data-value='200']").await?;
    cdp.wait_for(
        "jump warning",
        "!document.querySelector('#sheet').hidden && document.querySelector('#sheet-text').textContent.includes('jump')",
        5_000,
    )
    .await?;
    cdp.tap("#sheet-no").await?;
    cdp.wait_for(
        "iso unchanged",
        "document.querySelector('#sheet').hidden && document.querySelector('#st-exp').textContent.includes('ISO 100')",
        5_000,
    )
    .await?;

    step("test photo between frames");
    // Issue 14 B4: Take photo is off; a test photo waits for a gap; no frame fails.
    cdp.tap("nav button[data-tab='camera']").await?;
    cdp.wait_for(
        "take photo off during the session",
        "document.querySelector('#take-photo').disabled && !document.querySelector('#shoot-note').hidden",
        5_000,
    )
    .await?;
    cdp.eval("window.__before = document.querySelector('#test-preview img').src")
        .await?;
    cdp.tap("#test-photo").await?;
    cdp.wait_for(
        "a new test photo during the session",
        "(() => { const i = document.querySelector('#test-preview img'); return i && i.src !== window.__before && i.complete && i.naturalWidth > 0 && document.querySelector('#test-progress').hidden; })()",
        20_000,
    )
    .await?;
    let frames_before = cdp
        .eval("window.skylapse.state.intervalometer.stats.shotsTaken")
        .await?
        .as_u64()
        .unwrap_or(0);
    cdp.wait_for(
        "two more frames, none failed",
        &format!("window.skylapse.state.intervalometer.stats.shotsTaken >= {} && window.skylapse.state.intervalometer.stats.shotsFailed === 0", frames_before + 2),
        15_000,
    )
    .await?;

    step("camera outage");
    // The camera drops off the network: within one health-check period (10 s) a full-width
    // banner says since when and how many frames were missed; the strip turns red.
    cdp.tap("nav button[data-tab='timelapse']").await?;
    sim(
        control,
        "POST",
        "/_sim/network",
        json!({"offline": "refuse"}),
    )?;
    let lost = std::time::Instant::now();
    cdp.wait_for(
        "outage banner",
        "document.body.dataset.banner === 'err' && document.querySelector('#banner').textContent.includes('Camera not answering since') && document.querySelector('#strip').classList.contains('bad')",
        10_000,
    )
    .await?;
    eprintln!("banner after {:.1} s", lost.elapsed().as_secs_f64());
    cdp.wait_for(
        "frames missed counted",
        "/[1-9]\\d* frames? missed/.test(document.querySelector('#banner').textContent) && parseInt(document.querySelector('#s-failed').textContent) >= 1",
        10_000,
    )
    .await?;
    cdp.screenshot("outage").await;
    sim(control, "POST", "/_sim/network", json!({"offline": null}))?;
    cdp.wait_for(
        "camera back",
        "document.body.dataset.banner === 'ok' && document.querySelector('#banner').textContent.includes('Camera back') && !document.querySelector('#strip').classList.contains('bad')",
        40_000,
    )
    .await?;
    cdp.screenshot("camera-back").await;

    step("red mode");
    // Red mode: outline buttons, and no photo on screen brighter than the UI's own text.
    cdp.tap("#night").await?;
    cdp.wait_for(
        "red mode",
        "document.documentElement.classList.contains('red')",
        5_000,
    )
    .await?;
    // The dimmer: one veil over everything, three steps.
    cdp.tap("#dim").await?;
    cdp.wait_for(
        "dimmed",
        "document.documentElement.dataset.dim === '1' && getComputedStyle(document.querySelector('#dimmer')).opacity === '0.35'",
        5_000,
    )
    .await?;
    cdp.tap("#dim").await?;
    cdp.tap("#dim").await?;
    cdp.wait_for(
        "undimmed",
        "document.documentElement.dataset.dim === '0'",
        5_000,
    )
    .await?;
    let fill = cdp
        .eval("getComputedStyle(document.querySelector('#stop')).backgroundColor + ' ' + getComputedStyle(document.querySelector('#start')).backgroundColor")
        .await?;
    if fill != "rgb(0, 0, 0) rgb(0, 0, 0)" {
        return Err(format!("solid fills in red mode: {fill}"));
    }
    cdp.screenshot("monitor-red").await;
    // Dim text at about 3:1 on black; no native pickers (they ignore the theme).
    let ratio = cdp
        .eval(
            "(() => { const c = getComputedStyle(document.querySelector('#s-kv dt')).color.match(/\\d+/g).map(Number);
                const lin = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
                const L = 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2]);
                return (L + 0.05) / 0.05; })()",
        )
        .await?
        .as_f64()
        .unwrap_or(0.0);
    if !(2.8..=4.5).contains(&ratio) {
        return Err(format!(
            "dim text contrast in red mode {ratio:.2}:1, not about 3:1"
        ));
    }
    let native = cdp
        .eval("document.querySelectorAll('select, input[type=time], input[type=date], input[type=number], input[type=range]').length")
        .await?;
    if native != 0 {
        return Err(format!("{native} native pickers in the page"));
    }
    cdp.tap("nav button[data-tab='camera']").await?;
    cdp.eval("document.querySelector('#test-preview').scrollIntoView({block: 'center'})")
        .await?;
    let m = brightest(cdp, &["#test-preview .frame", "#test-preview figcaption b"]).await?;
    cdp.screenshot("photo-red").await;
    eprintln!("red mode: photo {:.0}, text {:.0} (luminance)", m[0], m[1]);
    if m[0] > m[1] {
        return Err(format!(
            "a photo is brighter than the text in red mode: {m:?}"
        ));
    }

    step("stop");
    cdp.tap("nav button[data-tab='timelapse']").await?;
    cdp.tap("#stop").await?;
    cdp.wait_for(
        "stop confirmation",
        "!document.querySelector('#sheet').hidden",
        5_000,
    )
    .await?;
    cdp.tap("#sheet-yes").await?;
    // The finished session folds into one line; open it to save.
    cdp.wait_for(
        "finished, one line",
        "!document.querySelector('#unsaved-card').hidden && document.querySelector('#u-body').hidden && document.querySelector('#u-line').textContent.includes('Finished')",
        10_000,
    )
    .await?;
    cdp.screenshot("finished-red").await;
    cdp.tap("#u-line").await?;
    cdp.tap("#u-save").await?;
    cdp.wait_for(
        "saved",
        "document.querySelector('#unsaved-card').hidden",
        10_000,
    )
    .await?;

    step("report");
    cdp.tap("nav button[data-tab='reports']").await?;
    cdp.wait_for(
        "report listed",
        "document.querySelector('#reports').textContent.includes('Night walk')",
        10_000,
    )
    .await?;
    cdp.tap("#reports li[data-report]").await?;
    // Its title below the sticky header, a back link, the chart drawn for the width with
    // ≥ 14 px labels, and the outage in the list of gaps.
    cdp.wait_for(
        "report open",
        "(() => { const c = document.querySelector('#r-chart svg'); if (document.querySelector('#report-card').hidden || !c) return false;
            const t = document.querySelector('#r-title').getBoundingClientRect(), h = document.querySelector('#hdr').getBoundingClientRect();
            const big = [...c.querySelectorAll('text')].every((e) => parseFloat(getComputedStyle(e).fontSize) >= 14);
            return t.top >= h.bottom - 1 && t.bottom <= innerHeight && big && c.getBoundingClientRect().width <= document.querySelector('#r-chart').clientWidth + 1
                && /\\d\\d:\\d\\d:\\d\\d–\\d\\d:\\d\\d:\\d\\d .* · frames? \\d+(–\\d+)? failed/.test(document.querySelector('#r-gaps').textContent) && !document.querySelector('#r-back').hidden; })()",
        10_000,
    )
    .await?;
    cdp.screenshot("report-red").await;
    cdp.eval("document.querySelector('#r-chart').scrollIntoView({block: 'start'})")
        .await?;
    cdp.screenshot("report-chart-red").await;

    step("320 px");
    // The smallest phones: nothing sticks out or is cut off, on any tab.
    cdp.page(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 320, "height": 640, "deviceScaleFactor": 2, "mobile": true}),
    )
    .await?;
    for tab in ["camera", "timelapse", "reports", "network", "system"] {
        cdp.tap(&format!("nav button[data-tab='{tab}']")).await?;
        let bad = cdp.eval(CLIPPING).await?;
        if bad != "[]" {
            cdp.screenshot(&format!("320-{tab}")).await;
            return Err(format!("at 320 px on {tab}: {bad}"));
        }
    }
    cdp.screenshot("320-system").await;
    cdp.page(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
    )
    .await?;
    cdp.tap("#night").await?;

    let problems = cdp.problems();
    if !problems.is_empty() {
        return Err(format!("browser reported problems: {problems:#?}"));
    }

    step("long exposure countdown");
    // A 2" exposure: the monitor counts it down ("Exposing… 2 s") instead of "now".
    sim(
        control,
        "PATCH",
        "/_sim/state",
        json!({"settings": {"tv": "2\""}}),
    )?;
    cdp.tap("nav button[data-tab='timelapse']").await?;
    cdp.wait_for(
        "2\" in the strip",
        "document.querySelector('#st-exp').textContent.includes('2\"')",
        10_000,
    )
    .await?;
    cdp.fill("#f-interval", "0:04").await?;
    cdp.tap("#f-stop input[value='stop-after'] + span").await?;
    cdp.fill("#f-shots", "2").await?;
    cdp.fill("#f-title", "Stars").await?;
    cdp.wait_for(
        "4 s fits 2\"",
        "document.querySelector('#f-validation .sev-ok') && !document.querySelector('#start').disabled",
        10_000,
    )
    .await?;
    cdp.tap("#start").await?;
    cdp.wait_for(
        "exposing countdown",
        "/^Exposing… [12] s$/.test(document.querySelector('#s-next').textContent)",
        10_000,
    )
    .await?;
    cdp.screenshot("exposing").await;
    cdp.wait_for(
        "exposures done",
        "!document.querySelector('#unsaved-card').hidden && document.querySelector('#u-line').textContent.includes('Stars') && document.querySelector('#u-line').textContent.includes('2 taken')",
        15_000,
    )
    .await?;
    cdp.tap("#u-line").await?;
    cdp.tap("#u-discard").await?;
    cdp.wait_for(
        "confirm sheet",
        "!document.querySelector('#sheet').hidden",
        5_000,
    )
    .await?;
    cdp.tap("#sheet-yes").await?;
    cdp.wait_for(
        "discarded",
        "document.querySelector('#unsaved-card').hidden",
        10_000,
    )
    .await?;
    sim(
        control,
        "PATCH",
        "/_sim/state",
        json!({"settings": {"tv": "1/125"}}),
    )?;
    cdp.wait_for(
        "1/125 in the strip",
        "document.querySelector('#st-exp').textContent.includes('1/125')",
        10_000,
    )
    .await?;

    step("power cut");
    // An unlimited session is running when the server dies (power cut: SIGKILL). The page says
    // the Pi is unreachable and keeps shooting, reconnects when the server is back on the same
    // port, and offers to resume the interrupted session; resumed, stopped, then discarded.
    cdp.fill("#f-interval", "0:01").await?;
    cdp.tap("#f-stop input[value='unlimited'] + span").await?;
    cdp.fill("#f-title", "Power cut").await?;
    cdp.wait_for(
        "interval validated",
        "document.querySelector('#f-validation .sev-ok') && !document.querySelector('#start').disabled",
        10_000,
    )
    .await?;
    cdp.tap("#start").await?;
    cdp.wait_for(
        "unlimited session shooting",
        "document.body.dataset.session === 'running' && parseInt(document.querySelector('#s-ok').textContent) >= 1",
        10_000,
    )
    .await?;
    // 1 s frames leave no gap for a test photo: refused with the reason, no frame touched.
    cdp.tap("nav button[data-tab='camera']").await?;
    cdp.tap("#test-photo").await?;
    cdp.wait_for(
        "test photo refused",
        "[...document.querySelectorAll('#cam-card .toast.sev-err')].some(t => t.textContent.includes('No room for a test photo'))",
        10_000,
    )
    .await?;
    cdp.screenshot("test-refused").await;
    cdp.tap("nav button[data-tab='timelapse']").await?;
    drop(server.take());
    cdp.wait_for(
        "offline shown",
        "document.body.dataset.link === 'offline' && document.querySelector('#offline-text').textContent.includes('keeps shooting')",
        10_000,
    )
    .await?;
    cdp.screenshot("offline").await;
    step("restart");
    let (again, _, _) = start_server(&addr.to_string(), data, log);
    *server = Some(again);
    // Retry now, unless the page's own retry got there first.
    cdp.eval(
        "document.querySelector('#offline').hidden || document.querySelector('#retry').click()",
    )
    .await?;
    cdp.wait_for(
        "reconnected",
        "document.body.dataset.link === 'live' && document.body.dataset.camera === 'connected'",
        20_000,
    )
    .await?;
    cdp.wait_for(
        "interrupted session offered",
        "!document.querySelector('#unsaved-card').hidden && !document.querySelector('#u-body').hidden && document.querySelector('#u-head').textContent.includes('Interrupted') && !document.querySelector('#u-resume').hidden",
        10_000,
    )
    .await?;
    cdp.screenshot("interrupted").await;
    step("resume");
    cdp.tap("#u-resume").await?;
    cdp.wait_for(
        "resumed",
        "document.body.dataset.session === 'running' && !document.querySelector('#stop').hidden",
        10_000,
    )
    .await?;
    // The monitor of a running session at 320 px: nothing cut off either.
    cdp.page(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 320, "height": 640, "deviceScaleFactor": 2, "mobile": true}),
    )
    .await?;
    let bad = cdp.eval(CLIPPING).await?;
    cdp.screenshot("320-monitor").await;
    if bad != "[]" {
        return Err(format!("at 320 px on the monitor: {bad}"));
    }
    cdp.page(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
    )
    .await?;
    step("stale link");
    // The Pi stops answering without closing the socket (SIGSTOP): the page says how old its
    // data is and greys the figures, then gives up on the socket and retries; back when it
    // answers again.
    let pid = server.as_ref().map(|p| p.0.id()).unwrap_or(0) as i32;
    // SAFETY: a signal to our own child process.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let stale = cdp
        .wait_for(
            "stale figures",
            "document.body.dataset.link === 'stale' && /last update \\d+ s ago/.test(document.querySelector('#link').textContent) && document.querySelector('#main').classList.contains('stale')",
            20_000,
        )
        .await;
    cdp.screenshot("stale").await;
    let gone = cdp
        .wait_for(
            "socket given up",
            "document.body.dataset.link === 'offline'",
            20_000,
        )
        .await;
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    stale?;
    gone?;
    // Retry now, unless the page's own retry got there first.
    cdp.eval(
        "document.querySelector('#offline').hidden || document.querySelector('#retry').click()",
    )
    .await?;
    cdp.wait_for(
        "live again",
        "document.body.dataset.link === 'live'",
        20_000,
    )
    .await?;
    // Back: one line about what happened while the phone heard nothing.
    cdp.wait_for(
        "away summary",
        "document.querySelector('#life').textContent.includes('While you were away')",
        10_000,
    )
    .await?;
    step("stop");
    cdp.tap("#stop").await?;
    cdp.wait_for(
        "stop confirmation",
        "!document.querySelector('#sheet').hidden",
        5_000,
    )
    .await?;
    cdp.tap("#sheet-yes").await?;
    cdp.wait_for(
        "stopped, save offered",
        "!document.querySelector('#unsaved-card').hidden && document.querySelector('#u-title').value === 'Power cut'",
        10_000,
    )
    .await?;
    step("discard");
    cdp.eval(
        "document.querySelector('#u-body').hidden && document.querySelector('#u-line').click()",
    )
    .await?;
    cdp.tap("#u-discard").await?;
    cdp.wait_for(
        "confirm sheet",
        "!document.querySelector('#sheet').hidden",
        5_000,
    )
    .await?;
    cdp.tap("#sheet-yes").await?;
    cdp.wait_for(
        "discarded",
        "document.querySelector('#unsaved-card').hidden && document.querySelector('#life').textContent.includes('Session discarded')",
        10_000,
    )
    .await?;
    // Rename the report, then delete it through the confirmation sheet.
    step("rename + delete");
    cdp.tap("nav button[data-tab='reports']").await?;
    // The report opened before is still open: back to the list by its link.
    cdp.tap("#r-back").await?;
    cdp.wait_for(
        "report listed",
        "document.querySelector('#reports li[data-report]')",
        5_000,
    )
    .await?;
    cdp.tap("#reports li[data-report]").await?;
    cdp.wait_for(
        "report open",
        "!document.querySelector('#report-card').hidden && document.querySelector('#r-newtitle').value === 'Night walk'",
        5_000,
    )
    .await?;
    cdp.fill("#r-newtitle", "Renamed run").await?;
    cdp.tap("#r-rename button").await?;
    cdp.wait_for(
        "renamed",
        "document.querySelector('#r-title').textContent === 'Renamed run'",
        10_000,
    )
    .await?;
    cdp.tap("#r-delete").await?;
    cdp.wait_for(
        "confirm sheet",
        "!document.querySelector('#sheet').hidden",
        5_000,
    )
    .await?;
    cdp.tap("#sheet-yes").await?;
    cdp.wait_for(
        "deleted",
        "document.querySelector('#report-card').hidden && document.querySelector('#reports').textContent.includes('No saved reports')",
        10_000,
    )
    .await?;

    step("done");
    // Failed reconnect attempts are logged by the browser itself; nothing else may be.
    let problems: Vec<String> = cdp
        .problems()
        .into_iter()
        .filter(|p| !p.contains("WebSocket connection to"))
        .collect();
    if !problems.is_empty() {
        return Err(format!("browser reported problems: {problems:#?}"));
    }
    Ok(())
}

/// Issue 12 in the browser: the sun card for a place set by hand (and polar night as the
/// server's reason), a start at sunset −30 min showing the Pi's resolved time, a keyframe
/// ramp whose planned curve is drawn (points and labels checked in the DOM), a keyframed
/// session started from the page, an auto-ramp session whose live chart gains measured
/// points as frames arrive, 320 px without clipping, and red mode.
#[test]
fn ui_follows_the_light() {
    let Some(chromium) = chromium_path() else {
        crate::peer_missing(
            "ui",
            "no Chromium found (set CHROMIUM=/path/to/chromium to run the UI test)",
        );
        return;
    };
    let data = tmp_dir("light-data");
    let log = tmp_dir("light-log").join("server.log");
    let (_server, addr, _control) = start_server("127.0.0.1:0", &data, &log);
    let (_browser, devtools) = start_chromium(&chromium, &tmp_dir("light-profile"));
    smol::block_on(async {
        let cdp = Cdp::connect(&devtools).await;
        if let Err(e) = light(&cdp, addr).await {
            let shot = cdp.screenshot("light-failure").await;
            let text = cdp
                .eval("document.body ? document.body.innerText.slice(0, 3000) : ''")
                .await
                .unwrap_or_default();
            panic!(
                "{e}\nscreenshot: {}\nserver log: {}\npage text:\n{}\nbrowser problems: {:?}",
                shot.display(),
                log.display(),
                text.as_str().unwrap_or(""),
                cdp.problems()
            );
        }
    });
}

async fn light(cdp: &Cdp, addr: SocketAddr) -> Result<(), String> {
    let t0 = std::time::Instant::now();
    let step = |name: &str| eprintln!("[{:>6.2} s] {name}", t0.elapsed().as_secs_f64());
    // Times on the page in UTC, so they can be read against the server's ISO times.
    cdp.page(
        "Emulation.setTimezoneOverride",
        json!({"timezoneId": "UTC"}),
    )
    .await?;
    cdp.page(
        "Page.navigate",
        json!({"url": format!("http://{addr}/#timelapse")}),
    )
    .await?;
    cdp.wait_for(
        "live, camera connected",
        "document.body.dataset.link === 'live' && document.body.dataset.camera === 'connected' && document.querySelector('#st-exp').textContent.includes('ISO 100')",
        15_000,
    )
    .await?;

    step("sun card without a location");
    cdp.wait_for(
        "no location yet, a way to set it",
        "!document.querySelector('#sun-none').hidden && !document.querySelector('#sun-form').hidden",
        10_000,
    )
    .await?;
    // A sun-based start is refused in plain words until a place is known.
    cdp.tap("#f-start input[value='sun'] + span").await?;
    cdp.wait_for(
        "sun start needs the place",
        "document.querySelector('#start').disabled && document.querySelector('#f-reason').textContent.includes('location')",
        5_000,
    )
    .await?;

    step("polar night at 78° N");
    cdp.fill("#sun-lat", "78.22").await?;
    cdp.fill("#sun-lon", "15.63").await?;
    cdp.tap("#sun-save").await?;
    cdp.wait_for(
        "Longyearbyen",
        "document.querySelector('#sun-where').textContent.includes('78.220° N')",
        10_000,
    )
    .await?;
    let api: Value = cdp.eval("fetch('/api/sun').then((r) => r.json())").await?;
    let shown = cdp
        .eval("document.querySelector('#sun-kv dd[data-event=sunrise]').textContent")
        .await?;
    let shown = shown.as_str().unwrap_or("");
    eprintln!(
        "78° N {}: sunrise {shown:?} ({})",
        api["date"], api["reasons"]
    );
    match api["reasons"]["sunrise"].as_str() {
        Some("alwaysBelow") if shown.contains("polar night") => {}
        Some("alwaysAbove") if shown.contains("polar day") => {}
        None if api["sunrise"].as_str().is_some_and(|t| shown == &t[11..16]) => {}
        _ => return Err(format!("sunrise shown as {shown:?}, the server says {api}")),
    }

    step("times for 47° N 8° E");
    cdp.tap("#sun-edit").await?;
    cdp.fill("#sun-lat", "47").await?;
    cdp.fill("#sun-lon", "8").await?;
    cdp.tap("#sun-save").await?;
    cdp.wait_for(
        "47° N",
        "document.querySelector('#sun-where').textContent.includes('47.000° N, 8.000° E') && /^\\d\\d:\\d\\d$/.test(document.querySelector('#sun-kv dd[data-event=sunset]').textContent)",
        10_000,
    )
    .await?;
    let api: Value = cdp.eval("fetch('/api/sun').then((r) => r.json())").await?;
    for ev in ["sunrise", "sunset", "civilDusk", "astronomicalDusk"] {
        let shown = cdp
            .eval(&format!(
                "document.querySelector('#sun-kv dd[data-event={ev}]').textContent"
            ))
            .await?;
        let want = api[ev].as_str().map(|t| t[11..16].to_string());
        if shown.as_str() != want.as_deref() {
            return Err(format!("{ev}: shown {shown}, the server says {api}"));
        }
    }
    cdp.screenshot("light-sun").await;

    step("start at sunset −30 min");
    cdp.fill("#f-interval", "0:02").await?;
    cdp.tap("#f-stop input[value='sun'] + span").await?;
    cdp.wait_for(
        "resolved start and stop",
        "/^First frame at \\d\\d:\\d\\d/.test(document.querySelector('#f-startsun-at').textContent) && /^Stops at \\d\\d:\\d\\d/.test(document.querySelector('#f-stopsun-at').textContent)",
        10_000,
    )
    .await?;
    let plan: Value = cdp
        .eval("fetch('/api/intervalometer/plan', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({interval: 2, startAt: {event: 'sunset', offsetMinutes: -30}, stopAt: {event: 'astronomicalDusk', offsetMinutes: 0}})}).then((r) => r.json())")
        .await?;
    let start = plan["startTime"].as_str().ok_or(format!("plan: {plan}"))?;
    let line = cdp
        .eval("document.querySelector('#f-startsun-at').textContent")
        .await?;
    if !line
        .as_str()
        .unwrap_or("")
        .starts_with(&format!("First frame at {}", &start[11..16]))
    {
        return Err(format!("start line {line}, the Pi resolves {start}"));
    }
    // …and that is sunset − 30 min on its day.
    let sun: Value = cdp
        .eval(&format!(
            "fetch('/api/sun?date={}').then((r) => r.json())",
            &start[..10]
        ))
        .await?;
    let off = skylapse::util::parse_iso8601(start).unwrap_or(0)
        - skylapse::util::parse_iso8601(sun["sunset"].as_str().unwrap_or("")).unwrap_or(0);
    eprintln!(
        "sunset {} → first frame {start} ({} s)",
        sun["sunset"],
        off / 1000
    );
    if (off + 1_800_000).abs() > 60_000 {
        return Err(format!("start {start} is not sunset − 30 min: {sun}"));
    }
    cdp.screenshot("light-sun-start").await;

    step("keyframe ramp preview");
    cdp.tap("#f-start input[value='now'] + span").await?;
    cdp.tap("#f-stop input[value='duration'] + span").await?;
    cdp.fill("#f-duration", "0:10").await?;
    cdp.tap("#f-ramp input[value='keyframes'] + span").await?;
    cdp.tap("#kf-add").await?;
    cdp.tap("#kf-add").await?;
    cdp.fill("#kf-list li[data-i='1'] input[data-kfin=elapsed]", "0:05")
        .await?;
    cdp.tap("#kf-list li[data-i='1'] [data-kf=tv]").await?;
    cdp.wait_for(
        "shutter picker, only what fits 2 s",
        "!document.querySelector('#picker').hidden && document.querySelector('#picker-list [data-value=\"1/8\"]') && ![...document.querySelectorAll('#picker-list [data-value]')].some((b) => /^([2-9]|\\d\\d)\"|^1\"\\d/.test(b.dataset.value))",
        10_000,
    )
    .await?;
    cdp.tap("#picker-list [data-value='1/8']").await?;
    cdp.tap("#kf-list li[data-i='1'] [data-kf=iso]").await?;
    cdp.wait_for(
        "ISO picker",
        "!document.querySelector('#picker').hidden && document.querySelector('#picker-list [data-value=\"400\"]')",
        10_000,
    )
    .await?;
    cdp.tap("#picker-list [data-value='400']").await?;
    // 10 min at 2 s = 300 frames; the curve climbs 6 stops over the first 5 minutes.
    let curve = cdp
        .wait_for(
            "the planned curve",
            "(() => { const p = document.querySelector('#f-curve svg path[data-series=exposure]'); if (!p || document.querySelector('#f-curve').hidden) return false;
                const labels = [...document.querySelectorAll('#f-curve svg text[data-axis=x]')].map((t) => t.textContent);
                const note = document.querySelector('#f-curve-note').textContent;
                return p.dataset.n === '300' && (p.getAttribute('d').match(/[ML]/g) || []).length === 300 && labels.length === 2 && labels.every((l) => /^\\d\\d:\\d\\d$/.test(l))
                    && note.includes('1/125') && note.includes('→ 1/8') && note.includes('ISO 400') && note.includes('+6 EV') && document.querySelector('#f-plan').textContent.includes('300 frames')
                    ? note : false; })()",
            15_000,
        )
        .await?;
    eprintln!("plan curve: {curve}");
    // The curve's vertical extent: low at the start, high from the middle on.
    let shape = cdp
        .eval("(() => { const d = document.querySelector('#f-curve svg path[data-series=exposure]').getAttribute('d').split(/[ML]/).filter(Boolean).map((p) => Number(p.split(' ')[1]));
            return JSON.stringify([d[0], d[75], d[150], d[299]]); })()")
        .await?;
    let ys: Vec<f64> = serde_json::from_str(shape.as_str().unwrap_or("[]")).unwrap_or_default();
    if ys.len() != 4 || !(ys[0] > ys[1] && ys[1] > ys[2] && (ys[2] - ys[3]).abs() < 0.5) {
        return Err(format!(
            "the exposure curve does not climb then hold: {ys:?}"
        ));
    }
    cdp.eval("document.querySelector('#f-curve').scrollIntoView({block: 'center'})")
        .await?;
    cdp.screenshot("light-keyframes").await;

    step("320 px with the ramp editor");
    cdp.page(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 320, "height": 640, "deviceScaleFactor": 2, "mobile": true}),
    )
    .await?;
    // (The chart is redrawn for the width.)
    cdp.eval("dispatchEvent(new Event('resize'))").await?;
    let bad = cdp.eval(CLIPPING).await?;
    cdp.screenshot("light-320").await;
    if bad != "[]" {
        return Err(format!("at 320 px: {bad}"));
    }
    let w = cdp
        .eval("document.querySelector('#f-curve svg').getBoundingClientRect().right <= document.documentElement.clientWidth")
        .await?;
    if w != true {
        return Err("the curve is wider than a 320 px screen".into());
    }
    cdp.page(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
    )
    .await?;

    step("keyframed session");
    cdp.tap("#f-stop input[value='stop-after'] + span").await?;
    cdp.fill("#f-shots", "3").await?;
    cdp.fill("#f-title", "Ramp").await?;
    cdp.wait_for(
        "can start",
        "!document.querySelector('#start').disabled && document.querySelector('#f-plan').textContent.includes('3 frames')",
        10_000,
    )
    .await?;
    cdp.tap("#start").await?;
    cdp.wait_for(
        "keyframed frames charted",
        "document.body.dataset.session === 'running' && Number(document.querySelector('#s-chart').dataset.points) >= 2 && document.querySelector('#s-chart svg path[data-series=exposure]')",
        15_000,
    )
    .await?;
    cdp.wait_for(
        "ramp done",
        "!document.querySelector('#unsaved-card').hidden && document.querySelector('#u-line').textContent.includes('3 taken')",
        15_000,
    )
    .await?;

    step("auto ramp, live chart");
    cdp.tap("#f-ramp input[value='auto'] + span").await?;
    cdp.fill("#f-shots", "7").await?;
    cdp.fill("#f-title", "Auto").await?;
    cdp.wait_for(
        "auto plan: target and sun",
        "!document.querySelector('#start').disabled && document.querySelector('#f-curve svg path[data-series=target]') && document.querySelector('#f-curve svg path[data-series=sun]') && document.querySelector('#f-auto-limits').textContent.includes('Longest shutter: 1 s')",
        10_000,
    )
    .await?;
    // Aperture limits reach the server: reversed ones are refused by the plan (Start
    // disabled with the server's reason), ordered ones are accepted.
    let choose = |id: &str| format!("document.querySelector('#{id}').click(); true");
    let pick_av = |widest_last: bool| {
        format!(
            "(() => {{ const b = [...document.querySelectorAll('#picker-list button')].filter((x) => x.dataset.value); if (!b.length || document.querySelector('#picker').hidden) return false; b.sort((p, q) => parseFloat(p.dataset.value.slice(1)) - parseFloat(q.dataset.value.slice(1))); (b[{}]).click(); return true; }})()",
            if widest_last { "b.length - 1" } else { "0" }
        )
    };
    for (id, last) in [("f-auto-avmin", true), ("f-auto-avmax", false)] {
        cdp.eval(&choose(id)).await?;
        cdp.wait_for("the aperture list", &pick_av(last), 10_000)
            .await?;
    }
    cdp.wait_for(
        "reversed aperture limits refused by the server",
        "document.querySelector('#start').disabled && document.querySelector('#f-reason').textContent.includes('minAv')",
        10_000,
    )
    .await?;
    for (id, last) in [("f-auto-avmin", false), ("f-auto-avmax", true)] {
        cdp.eval(&choose(id)).await?;
        cdp.wait_for("the aperture list", &pick_av(last), 10_000)
            .await?;
    }
    cdp.wait_for(
        "aperture limits accepted",
        "!document.querySelector('#start').disabled && document.querySelector('#f-auto-limits').textContent.includes('aperture moves last')",
        10_000,
    )
    .await?;
    cdp.tap("#start").await?;
    let first = cdp
        .wait_for(
            "a measured frame",
            "Number(document.querySelector('#s-chart').dataset.measured) >= 1 && document.querySelector('#s-chart svg path[data-series=brightness]') && document.querySelector('#s-chart svg path[data-series=target]') && document.querySelector('#s-chart').dataset.measured",
            20_000,
        )
        .await?;
    let n0: u32 = first.as_str().unwrap_or("0").parse().unwrap_or(0);
    let more = cdp
        .wait_for(
            "the chart gains points",
            &format!("Number(document.querySelector('#s-chart').dataset.measured) >= {} && document.querySelector('#s-chart').dataset.measured", n0 + 2),
            20_000,
        )
        .await?;
    eprintln!("live chart: {n0} → {more} measured frames");
    cdp.eval("document.querySelector('#s-chart').scrollIntoView({block: 'center'})")
        .await?;
    cdp.screenshot("light-live").await;

    step("red mode");
    cdp.tap("#night").await?;
    let colours = cdp
        .eval("JSON.stringify([...document.querySelectorAll('#s-chart svg path, #s-chart svg text')].map((e) => getComputedStyle(e).stroke !== 'none' && e.tagName === 'path' ? getComputedStyle(e).stroke : getComputedStyle(e).fill))")
        .await?;
    let colours: Vec<String> =
        serde_json::from_str(colours.as_str().unwrap_or("[]")).unwrap_or_default();
    for c in &colours {
        let v: Vec<f64> = c
            .trim_start_matches("rgba(")
            .trim_start_matches("rgb(")
            .trim_end_matches(')')
            .split(',')
            .filter_map(|x| x.trim().parse().ok())
            .collect();
        // Red as the page's red text is (#e01818): green and blue at most 15 % of red.
        if v.len() < 3 || v[1] > 0.15 * v[0] || v[2] > 0.15 * v[0] {
            return Err(format!(
                "a chart colour is not red in red mode: {colours:?}"
            ));
        }
    }
    let native = cdp
        .eval("document.querySelectorAll('select, input[type=time], input[type=date], input[type=number], input[type=range]').length")
        .await?;
    if native != 0 {
        return Err(format!("{native} native pickers in the page"));
    }
    cdp.eval("document.querySelector('#s-chart').scrollIntoView({block: 'center'})")
        .await?;
    cdp.screenshot("light-live-red").await;
    cdp.wait_for(
        "auto done",
        "!document.querySelector('#unsaved-card').hidden && document.querySelector('#u-line').textContent.includes('Auto') && document.querySelector('#u-line').textContent.includes('7 taken')",
        30_000,
    )
    .await?;
    step("done");
    let problems = cdp.problems();
    if !problems.is_empty() {
        return Err(format!("browser reported problems: {problems:#?}"));
    }
    Ok(())
}
