//! skylapse: parse the configuration, start the services and the web server on one
//! single-threaded smol executor, run until SIGTERM/SIGINT.

use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use async_io::Async;
use futures_lite::StreamExt;

use skylapse::app::{App, Outbound, Publisher};
use skylapse::clock::{SharedClock, SystemClock};
use skylapse::config::{Config, Invocation, USAGE};
use skylapse::services;
use skylapse::systemd;
use skylapse::web::{Server, VERSION};

/// How long clients get to take their close frames at shutdown.
const CLIENT_CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long the services get to flush journals and release the camera.
const SERVICE_SHUTDOWN_LIMIT: Duration = Duration::from_secs(5);

type Executor = Arc<smol::Executor<'static>>;

// Services: camera, discovery, intervalometer, Wi-Fi, time sync and power are created and
// wired in `skylapse::services` (shared with the end-to-end tests).

fn main() -> ExitCode {
    // `skylapse simulate-night …`: plan a night against the simulator's sky (no service).
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("simulate-night") {
        #[cfg(feature = "demo")]
        return ExitCode::from(skylapse::simulate::main(&args[1..]) as u8);
        #[cfg(not(feature = "demo"))]
        {
            eprintln!("skylapse: simulate-night needs the built-in simulator (the `demo` feature)");
            return ExitCode::from(2);
        }
    }
    let config = match Config::from_process() {
        Ok(Invocation::Run(c)) => *c,
        Ok(Invocation::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Version) => {
            println!("skylapse {VERSION}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("skylapse: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(dir) = &config.static_dir {
        if !dir.is_dir() {
            eprintln!(
                "skylapse: --static-dir {} is not a directory",
                dir.display()
            );
            return ExitCode::from(2);
        }
    }
    let filter = config.log.clone().unwrap_or_else(|| "info".into());
    skylapse::logging::init(&filter);

    for problem in skylapse::config::data_dir_problems(&config.data_dir) {
        log::warn!("{problem}");
    }
    let mut config = config;
    let limits = &mut config.limits;
    let fit =
        skylapse::web::fit_connections_to_fd_limit(limits.max_connections, limits.max_clients);
    if fit < limits.max_connections {
        log::warn!(
            "only {fit} HTTP connections fit in the file descriptor limit (wanted {}); \
             raise LimitNOFILE",
            limits.max_connections
        );
        limits.max_connections = fit;
    }
    let config = Arc::new(config);
    let (publisher, outbound) = Publisher::channel();
    let clock: SharedClock = Arc::new(SystemClock);
    let mut app = App::new(config.clone(), clock, publisher);
    // The services' tasks and the web server share one executor, run by this thread.
    skylapse::rt::host_on_this_thread();
    let ex: Executor = skylapse::rt::executor();
    let running = match services::start(&mut app, services::Options::default()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("skylapse: {e}");
            return ExitCode::from(1);
        }
    };
    let app = Arc::new(app);
    // Woken by the camera workers several times per frame: do not preempt them for it (after
    // the services started, so their threads keep the normal policy).
    skylapse::sys::batch_this_thread();
    // Every task runs on the main thread, the services' and the web server's (rt::run_hosted).
    // It only parks (rt::block_on, with its own timers), so async-io's own "async-io" thread
    // is the one that waits in epoll and wakes us. With async_io::block_on both threads take
    // turns at the reactor and the helper thread polls with a backoff after every event: about
    // 4× the idle wake-ups (tests/bench/web.rs).
    let code = skylapse::rt::run_hosted(serve(ex.clone(), app, outbound));
    running.stop();
    code
}

async fn serve(
    ex: Executor,
    app: Arc<App>,
    outbound: async_channel::Receiver<Outbound>,
) -> ExitCode {
    let mut signals =
        match async_signal::Signals::new([async_signal::Signal::Term, async_signal::Signal::Int]) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("skylapse: cannot install signal handlers: {e}");
                return ExitCode::from(1);
            }
        };
    let listen = app.config.listen;
    let listener = match Async::<TcpListener>::bind(listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("skylapse: cannot listen on {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    let server = match Server::start(&ex, listener, app.clone(), outbound) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skylapse: cannot start the server: {e}");
            return ExitCode::from(1);
        }
    };
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{}", server.local_addr());
        let _ = out.flush();
    }
    log::info!("skylapse {VERSION} listening on {}", server.local_addr());
    systemd::notify("READY=1");
    let _watchdog = systemd::watchdog_interval().map(|every| {
        ex.spawn(async move {
            let mut timer = async_io::Timer::interval(every);
            loop {
                systemd::notify("WATCHDOG=1");
                timer.next().await;
            }
        })
    });

    let signal = signals.next().await;
    log::info!("{signal:?}: shutting down");
    systemd::notify("STOPPING=1");
    server.shutdown(CLIENT_CLOSE_GRACE).await;
    let finished = futures_lite::future::or(
        async {
            app.shutdown().await;
            true
        },
        async {
            async_io::Timer::after(SERVICE_SHUTDOWN_LIMIT).await;
            false
        },
    )
    .await;
    if !finished {
        log::warn!("services did not shut down within {SERVICE_SHUTDOWN_LIMIT:?}");
    }
    ExitCode::SUCCESS
}
