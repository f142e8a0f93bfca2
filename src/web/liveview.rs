//! `GET /api/camera/liveview/stream[?size=small|medium]`: the camera's live view as a
//! `multipart/x-mixed-replace` JPEG stream (what an `<img>` shows as video).
//!
//! The connection leaves the HTTP connection table like a WebSocket (it is long-lived by
//! design); the number of viewers is bounded by the camera's [`LiveView`] (a fifth viewer gets
//! 503 with the reason). Each frame must be written within [`FRAME_WRITE_TIMEOUT`], or the
//! viewer is dropped; a viewer holds at most one frame. Bytes are relayed as the camera sent
//! them: the Pi decodes nothing.

use std::io;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use async_io::Async;
use futures_lite::AsyncWriteExt;

use super::http::{method_not_allowed, unauthorized, write_response, Request, Response};
use super::Web;
use crate::camera::liveview::{parse_size, LiveView};
use crate::protocol::ApiError;

/// The path of the stream.
pub const STREAM_PATH: &str = "/api/camera/liveview/stream";
/// A viewer that cannot take one frame in this long is dropped.
const FRAME_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The stream ends when the camera sends no frame for this long.
const FRAME_PATIENCE: Duration = Duration::from_secs(20);
const BOUNDARY: &str = "skylapse-frame";

/// Serves the stream on `stream` (the connection is not reused afterwards).
pub async fn serve(web: &Arc<Web>, req: &Request, stream: Async<TcpStream>, conn: u64) {
    let fail =
        |resp: Response| async { write_response(web, &stream, &resp.closing(), false).await };
    if req.method != "GET" {
        let _ = fail(method_not_allowed(web, "GET")).await;
        return;
    }
    if !web.token_ok(req.bearer_token().as_deref()) {
        let _ = fail(unauthorized(web)).await;
        return;
    }
    let Some(lv) = web.app.liveview() else {
        let err = crate::protocol::Owner::Camera.unavailable();
        let _ = fail(Response::api_error(web, &err)).await;
        return;
    };
    let viewer =
        match parse_size(req.query_param("size").as_deref()).and_then(|size| watch(&lv, size)) {
            Ok(v) => v,
            Err(e) => {
                let _ = fail(Response::api_error(web, &e)).await;
                return;
            }
        };
    // Long-lived from here: out of the HTTP connection table (the viewer cap bounds it).
    web.upgraded(conn);
    if let Err(e) = relay(web, &stream, &viewer).await {
        log::debug!("live-view viewer gone: {e}");
    }
}

fn watch(
    lv: &Arc<LiveView>,
    size: &'static str,
) -> Result<crate::camera::liveview::Viewer, ApiError> {
    lv.watch(size)
}

async fn relay(
    web: &Arc<Web>,
    stream: &Async<TcpStream>,
    viewer: &crate::camera::liveview::Viewer,
) -> io::Result<()> {
    let clock = &web.app.clock;
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary={BOUNDARY}\r\n\
         Cache-Control: no-store\r\nPragma: no-cache\r\nX-Content-Type-Options: nosniff\r\n\
         Connection: close\r\n\r\n"
    );
    let mut w = stream;
    timed(clock, w.write_all(head.as_bytes())).await?;
    loop {
        let timer = clock.sleep_until(clock.now() + FRAME_PATIENCE);
        let frame = futures_lite::future::or(viewer.next(), async {
            timer.await;
            None
        })
        .await;
        let Some(frame) = frame else {
            // The stream ended (a session started, the camera left) or stalled: close, so
            // the page can say so and offer to start again.
            let _ = timed(clock, w.write_all(format!("--{BOUNDARY}--\r\n").as_bytes())).await;
            return Ok(());
        };
        let part = format!(
            "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            frame.jpeg.len()
        );
        let write = async {
            w.write_all(part.as_bytes()).await?;
            w.write_all(&frame.jpeg).await?;
            w.write_all(b"\r\n").await?;
            w.flush().await
        };
        timed(clock, write).await?;
        viewer.done(&frame);
    }
}

async fn timed(
    clock: &crate::clock::SharedClock,
    fut: impl std::future::Future<Output = io::Result<()>>,
) -> io::Result<()> {
    let timer = clock.sleep_until(clock.now() + FRAME_WRITE_TIMEOUT);
    futures_lite::future::or(fut, async {
        timer.await;
        Err(io::Error::new(io::ErrorKind::TimedOut, "viewer too slow"))
    })
    .await
}
