//! `/echo`, the entrypoint of `sagedock/echo:latest`: a SageMaker serving container for
//! sagedock's tests. It follows the serving-container contract (`serve`, `GET /ping`,
//! `POST /invocations`, `SAGEMAKER_BIND_TO_PORT`, the multi-model `/models` API) and
//! echoes what it receives, with knobs (environment variables and custom attributes) to
//! make it slow, unhealthy, crash, stream or use memory. See README.md for the list.
//!
//! std only: no dependencies, so the crate builds in seconds, statically linked, for a
//! `FROM scratch` image. One thread per connection.

mod http;
mod json;
mod report;

use http::{ReadError, Request, Writer};
use std::collections::BTreeMap;
use std::io::{self, BufReader, BufWriter, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::exit;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

const CUSTOM_ATTRIBUTES: &str = "X-Amzn-SageMaker-Custom-Attributes";

struct Config {
    port: u16,
    quiet: bool,
    startup_delay_ms: u64,
    listen_delay_ms: u64,
    ping_status: Option<u16>,
    crash_after: Option<u64>,
    sleep_ms: u64,
    max_models: usize,
    load_delay_ms: u64,
    /// ECHO_APPEND: bytes added after the echoed body (shows the order of a pipeline).
    append: Vec<u8>,
    hostname: String,
    /// ECHO_PING_DELAY_MS: `/ping` sleeps this long before answering.
    ping_delay_ms: u64,
    /// ECHO_SERIAL: one request at a time, like a single-threaded server.
    serial: bool,
    /// ECHO_COLD_MS: the first invocation sleeps this much longer (a model loaded lazily).
    cold_ms: u64,
    /// ECHO_NO_CONTENT_TYPE: invocation answers carry no Content-Type.
    no_content_type: bool,
    /// ECHO_STRICT_HEADERS: an invocation with a header not in [`KNOWN_HEADERS`] gets 400.
    strict_headers: bool,
}

/// The request headers ECHO_STRICT_HEADERS accepts.
const KNOWN_HEADERS: &[&str] = &[
    "host",
    "content-type",
    "content-length",
    "transfer-encoding",
    "accept",
    "connection",
    "expect",
    "user-agent",
    "x-amzn-sagemaker-custom-attributes",
    "x-amzn-sagemaker-target-model",
    "x-amzn-sagemaker-inference-id",
];

/// Held while a request is answered when ECHO_SERIAL is set.
static SERIAL: Mutex<()> = Mutex::new(());
/// Set once the first invocation has paid ECHO_COLD_MS.
static WARM: AtomicBool = AtomicBool::new(false);

static CONFIG: OnceLock<Config> = OnceLock::new();
/// Set once ECHO_STARTUP_DELAY_MS has passed: `/ping` answers 503 until then.
static READY: AtomicBool = AtomicBool::new(false);
/// Set by an invocation with `sick=1`: `/ping` answers 503 from then on.
static SICK: AtomicBool = AtomicBool::new(false);
/// Invocations answered so far (for ECHO_CRASH_AFTER).
static INVOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Multi-model endpoint state: model name → url, in memory only.
static MODELS: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

fn cfg() -> &'static Config {
    CONFIG.get().expect("config is set before serving")
}

fn models() -> MutexGuard<'static, BTreeMap<String, String>> {
    MODELS.lock().unwrap_or_else(|e| e.into_inner())
}

fn die(code: i32, msg: &str) -> ! {
    eprintln!("echo: {msg}");
    exit(code)
}

/// An environment variable, with empty (or blank) treated as unset.
fn env_opt(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A numeric environment variable; a value that does not parse is a startup error (exit 2).
fn env_num<T: FromStr>(name: &str) -> Option<T> {
    env_opt(name).map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| die(2, &format!("{name}={v:?} is not a valid number")))
    })
}

/// A yes/no environment variable: set and not `0`, `false` or `no`.
fn env_flag(name: &str) -> bool {
    env_opt(name).is_some_and(|v| !matches!(v.trim(), "0" | "false" | "no"))
}

fn env_status(name: &str) -> Option<u16> {
    env_num::<u16>(name).inspect(|s| {
        if !(200..=599).contains(s) {
            die(
                2,
                &format!("{name}={s} must be an HTTP status between 200 and 599"),
            );
        }
    })
}

/// SIGTERM/SIGINT handling. The image is `FROM scratch` and `/echo` runs as PID 1 of its
/// PID namespace, where the kernel applies no default action to signals the process has
/// no handler for: without a handler SIGTERM would be ignored and `docker stop` would wait
/// 10 s for SIGKILL. std has no signal API and this crate has no dependencies, so bind the
/// three libc functions (std links libc anyway). `unsafe` is needed for the FFI calls; the
/// handler only uses async-signal-safe functions (`write`, `_exit`).
mod sig {
    extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
        fn write(fd: i32, buf: *const u8, count: usize) -> isize;
        fn _exit(status: i32) -> !;
    }

    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;

    extern "C" fn on_signal(signum: i32) {
        let msg: &[u8] = if signum == SIGTERM {
            b"echo: SIGTERM, exiting 0\n"
        } else {
            b"echo: SIGINT, exiting 0\n"
        };
        // SAFETY: write(2) and _exit(2) are async-signal-safe; msg is a static buffer.
        unsafe {
            write(1, msg.as_ptr(), msg.len());
            _exit(0)
        }
    }

    /// Installs the handlers; with `ignore_term` SIGTERM gets none, so as PID 1 the
    /// process ignores it (like a shell entrypoint) and `docker stop` waits for SIGKILL.
    pub fn install(ignore_term: bool) {
        let handler: extern "C" fn(i32) = on_signal;
        // SAFETY: installs a handler with the C signature signal(2) expects.
        unsafe {
            if !ignore_term {
                signal(SIGTERM, handler as usize);
            }
            signal(SIGINT, handler as usize);
        }
    }
}

fn main() {
    let t0 = Instant::now();
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.len() != 1 || args[0] != "serve" {
        eprintln!(
            "echo: usage: /echo serve (got arguments {args:?}); SageMaker starts a serving \
             container with the single argument `serve`"
        );
        exit(2);
    }
    let ignore_term = env_flag("ECHO_IGNORE_SIGTERM");
    sig::install(ignore_term);
    if ignore_term {
        println!("echo: ignoring SIGTERM (ECHO_IGNORE_SIGTERM)");
    }

    if let Some(v) = env_opt("ECHO_FAIL_AT_START") {
        let code: i32 = v
            .trim()
            .parse()
            .unwrap_or_else(|_| die(2, &format!("ECHO_FAIL_AT_START={v:?} is not an exit code")));
        die(
            code,
            &format!("ECHO_FAIL_AT_START={code}: failing at start on purpose"),
        );
    }

    if let Some(target) = env_opt("ECHO_CONNECT_AT_START") {
        connect_at_start(target.trim());
    }
    if env_flag("ECHO_WRITE_MODEL") {
        let path = format!("{}/.echo-write-test", report::MODEL_DIR);
        match std::fs::write(&path, b"x") {
            Ok(()) => {
                let _ = std::fs::remove_file(&path);
                println!("echo: wrote {path} (ECHO_WRITE_MODEL)");
            }
            Err(e) => die(1, &format!("cannot write {path} (ECHO_WRITE_MODEL): {e}")),
        }
    }

    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string());
    let config = Config {
        port: if env_flag("ECHO_IGNORE_BIND_TO_PORT") {
            8080
        } else {
            env_num("SAGEMAKER_BIND_TO_PORT").unwrap_or(8080)
        },
        quiet: env_flag("ECHO_QUIET"),
        startup_delay_ms: env_num("ECHO_STARTUP_DELAY_MS").unwrap_or(0),
        listen_delay_ms: env_num("ECHO_LISTEN_DELAY_MS").unwrap_or(0),
        ping_status: env_status("ECHO_PING_STATUS"),
        crash_after: env_num("ECHO_CRASH_AFTER"),
        sleep_ms: env_num("ECHO_SLEEP_MS").unwrap_or(0),
        max_models: env_num("ECHO_MAX_MODELS").unwrap_or(100),
        load_delay_ms: env_num("ECHO_LOAD_DELAY_MS").unwrap_or(0),
        append: env_opt("ECHO_APPEND").unwrap_or_default().into_bytes(),
        hostname,
        ping_delay_ms: env_num("ECHO_PING_DELAY_MS").unwrap_or(0),
        serial: env_flag("ECHO_SERIAL"),
        cold_ms: env_num("ECHO_COLD_MS").unwrap_or(0),
        no_content_type: env_flag("ECHO_NO_CONTENT_TYPE"),
        strict_headers: env_flag("ECHO_STRICT_HEADERS"),
    };
    let c = CONFIG.get_or_init(|| config);

    if c.listen_delay_ms > 0 {
        println!(
            "echo: waiting {} ms before binding the port (ECHO_LISTEN_DELAY_MS)",
            c.listen_delay_ms
        );
        thread::sleep(Duration::from_millis(c.listen_delay_ms));
    }
    let listener = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], c.port)))
        .unwrap_or_else(|e| die(1, &format!("cannot listen on 0.0.0.0:{}: {e}", c.port)));
    println!(
        "echo: listening on 0.0.0.0:{} (pid {}, hostname {})",
        c.port,
        std::process::id(),
        c.hostname
    );

    let ready_at = t0 + Duration::from_millis(c.startup_delay_ms);
    let now = Instant::now();
    if now >= ready_at {
        mark_ready();
    } else {
        println!(
            "echo: /ping answers 503 for {} ms more (ECHO_STARTUP_DELAY_MS)",
            (ready_at - now).as_millis()
        );
        thread::spawn(move || {
            thread::sleep(ready_at.saturating_duration_since(Instant::now()));
            mark_ready();
        });
    }

    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let spawned = thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn(move || serve_connection(stream));
                if let Err(e) = spawned {
                    eprintln!("echo: cannot start a connection thread: {e}");
                }
            }
            Err(e) => {
                // E.g. EMFILE: do not spin.
                eprintln!("echo: accept failed: {e}");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// ECHO_CONNECT_AT_START: a TCP connection to HOST:PORT within 2 s, or exit 1 (what a
/// container that installs or downloads at start does without a network).
fn connect_at_start(target: &str) {
    use std::net::ToSocketAddrs;
    // Name resolution with no DNS server can take tens of seconds: give it 3.
    let (tx, rx) = std::sync::mpsc::channel();
    let name = target.to_string();
    thread::spawn(move || {
        let _ = tx.send(name.to_socket_addrs().map(|mut a| a.next()));
    });
    let addr = match rx.recv_timeout(Duration::from_secs(3)) {
        Ok(Ok(Some(addr))) => addr,
        Ok(Ok(None)) | Ok(Err(_)) | Err(_) => die(
            1,
            &format!("cannot resolve {target} at start (ECHO_CONNECT_AT_START)"),
        ),
    };
    match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Ok(_) => println!("echo: connected to {target} at start (ECHO_CONNECT_AT_START)"),
        Err(e) => die(
            1,
            &format!("cannot connect to {target} at start (ECHO_CONNECT_AT_START): {e}"),
        ),
    }
}

fn mark_ready() {
    READY.store(true, Ordering::Release);
    match cfg().ping_status {
        Some(s) => println!("echo: ready (but /ping always answers {s}: ECHO_PING_STATUS)"),
        None => println!("echo: ready"),
    }
}

fn log_request(method: &[u8], target: &[u8], status: u16, took: Duration) {
    let out = io::stdout();
    let mut out = out.lock();
    let _ = writeln!(
        out,
        "echo: {} {} {} {}us",
        String::from_utf8_lossy(method),
        String::from_utf8_lossy(target),
        status,
        took.as_micros()
    );
}

fn serve_connection(stream: TcpStream) {
    let c = cfg();
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut r = BufReader::with_capacity(64 * 1024, read_half);
    let mut w: Writer = BufWriter::with_capacity(64 * 1024, stream);
    let mut req = Request::new();
    loop {
        match req.read(&mut r, &mut w) {
            Ok(()) => {}
            Err(ReadError::Gone) => return,
            Err(ReadError::Bad(status, msg)) => {
                let body = format!("{{\"error\":{}}}", json::quote(msg));
                let _ = http::simple(
                    &mut w,
                    status,
                    http::Conn::Close,
                    b"application/json",
                    body.as_bytes(),
                    false,
                );
                let _ = w.flush();
                if !c.quiet {
                    log_request(b"-", msg.as_bytes(), status, Duration::ZERO);
                }
                return;
            }
        }
        let started = Instant::now();
        let serial = c
            .serial
            .then(|| SERIAL.lock().unwrap_or_else(|e| e.into_inner()));
        let routed = route(&req, &mut w);
        drop(serial);
        let Ok((status, invocation)) = routed else {
            return;
        };
        if w.flush().is_err() {
            return;
        }
        if !c.quiet {
            log_request(req.method(), req.target(), status, started.elapsed());
        }
        if invocation {
            let served = INVOCATIONS.fetch_add(1, Ordering::SeqCst) + 1;
            if c.crash_after.is_some_and(|limit| served >= limit) {
                die(
                    3,
                    &format!("served {served} invocations: exiting 3 (ECHO_CRASH_AFTER)"),
                );
            }
        }
        if !req.keep_alive {
            return;
        }
    }
}

/// Answers one request. Returns the status and whether it was an invocation (counts for
/// ECHO_CRASH_AFTER).
fn route(req: &Request, w: &mut Writer) -> io::Result<(u16, bool)> {
    let close = req.conn();
    let method = req.method();
    let head_only = method == b"HEAD";
    let get = method == b"GET" || head_only;
    let post = method == b"POST";
    let path = req.path();
    let c = cfg();

    let not_allowed = |w: &mut Writer, allow: &[u8]| -> io::Result<(u16, bool)> {
        http::start(w, 405, close)?;
        http::header(w, b"Allow", allow)?;
        http::finish(
            w,
            b"application/json",
            br#"{"error":"method not allowed"}"#,
            head_only,
        )?;
        Ok((405, false))
    };

    match path {
        b"/ping" if get => {
            if c.ping_delay_ms > 0 {
                thread::sleep(Duration::from_millis(c.ping_delay_ms));
            }
            let healthy = READY.load(Ordering::Acquire) && !SICK.load(Ordering::Acquire);
            let status = c.ping_status.unwrap_or(if healthy { 200 } else { 503 });
            http::simple(w, status, close, b"", b"", head_only)?;
            Ok((status, false))
        }
        b"/report" if get => {
            let body = report::build(&c.hostname, report::MODEL_DIR);
            http::simple(
                w,
                200,
                close,
                b"application/json",
                body.as_bytes(),
                head_only,
            )?;
            Ok((200, false))
        }
        b"/ping" | b"/report" => not_allowed(w, b"GET, HEAD"),
        b"/invocations" if post => Ok((invoke(req, w, None)?, true)),
        b"/invocations" => not_allowed(w, b"POST"),
        b"/models" if post => Ok((load_model(req, w)?, false)),
        b"/models" if get => {
            let mut body = String::from("{\"models\":[");
            for (i, (name, url)) in models().iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                push_model(&mut body, name, url);
            }
            body.push_str("]}");
            http::simple(
                w,
                200,
                close,
                b"application/json",
                body.as_bytes(),
                head_only,
            )?;
            Ok((200, false))
        }
        b"/models" => not_allowed(w, b"GET, POST"),
        _ => {
            let rest = path.strip_prefix(b"/models/").unwrap_or(b"");
            if let Some(name) = rest.strip_suffix(b"/invoke").filter(|n| valid_segment(n)) {
                if !post {
                    return not_allowed(w, b"POST");
                }
                let name = decode_name(name);
                if !models().contains_key(&name) {
                    mms_error(
                        w,
                        close,
                        404,
                        "ModelNotFoundException",
                        &format!("Model not found: {name}"),
                    )?;
                    return Ok((404, false));
                }
                return Ok((invoke(req, w, Some(&name))?, true));
            }
            if valid_segment(rest) {
                let name = decode_name(rest);
                if get {
                    let url = models().get(&name).cloned();
                    let Some(url) = url else {
                        mms_error(
                            w,
                            close,
                            404,
                            "ModelNotFoundException",
                            &format!("Model not found: {name}"),
                        )?;
                        return Ok((404, false));
                    };
                    let mut body = String::new();
                    push_model(&mut body, &name, &url);
                    http::simple(
                        w,
                        200,
                        close,
                        b"application/json",
                        body.as_bytes(),
                        head_only,
                    )?;
                    return Ok((200, false));
                }
                if method == b"DELETE" {
                    if models().remove(&name).is_none() {
                        mms_error(
                            w,
                            close,
                            404,
                            "ModelNotFoundException",
                            &format!("Model not found: {name}"),
                        )?;
                        return Ok((404, false));
                    }
                    let body = format!(
                        "{{\"status\":{}}}",
                        json::quote(&format!("Model \"{name}\" unregistered"))
                    );
                    http::simple(w, 200, close, b"application/json", body.as_bytes(), false)?;
                    return Ok((200, false));
                }
                return not_allowed(w, b"GET, HEAD, DELETE");
            }
            let body = format!(
                "{{\"error\":{}}}",
                json::quote(&format!("not found: {}", String::from_utf8_lossy(path)))
            );
            http::simple(
                w,
                404,
                close,
                b"application/json",
                body.as_bytes(),
                head_only,
            )?;
            Ok((404, false))
        }
    }
}

fn valid_segment(s: &[u8]) -> bool {
    !s.is_empty() && !s.contains(&b'/')
}

fn decode_name(s: &[u8]) -> String {
    String::from_utf8_lossy(&http::percent_decode(s, false)).into_owned()
}

fn push_model(out: &mut String, name: &str, url: &str) {
    out.push_str("{\"modelName\":");
    json::push_str(out, name);
    out.push_str(",\"modelUrl\":");
    json::push_str(out, url);
    out.push('}');
}

/// An error in Multi Model Server's shape: `{"code": N, "type": "...", "message": "..."}`.
fn mms_error(
    w: &mut Writer,
    close: http::Conn,
    status: u16,
    kind: &str,
    message: &str,
) -> io::Result<()> {
    let body = format!(
        "{{\"code\":{status},\"type\":{},\"message\":{}}}",
        json::quote(kind),
        json::quote(message)
    );
    http::simple(
        w,
        status,
        close,
        b"application/json",
        body.as_bytes(),
        false,
    )
}

/// `POST /models`: `{"model_name": ..., "url": ...}` as a JSON body, or as query
/// parameters (MMS accepts both).
fn load_model(req: &Request, w: &mut Writer) -> io::Result<u16> {
    let c = cfg();
    let close = req.conn();
    let mut name: Option<String> = None;
    let mut url: Option<String> = None;
    if !req.body.trim_ascii().is_empty() {
        match json::parse_object(&req.body) {
            Ok(members) => {
                for (k, v) in members {
                    match k.as_str() {
                        "model_name" => name = v,
                        "url" => url = v,
                        _ => {}
                    }
                }
            }
            Err(e) => {
                mms_error(w, close, 400, "BadRequestException", &e)?;
                return Ok(400);
            }
        }
    }
    for pair in req.query().split(|&b| b == b'&') {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let v = String::from_utf8_lossy(&http::percent_decode(v, true)).into_owned();
        match k {
            b"model_name" if name.is_none() => name = Some(v),
            b"url" if url.is_none() => url = Some(v),
            _ => {}
        }
    }
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        mms_error(
            w,
            close,
            400,
            "BadRequestException",
            "Parameter model_name is required.",
        )?;
        return Ok(400);
    };
    if name.contains('/') {
        mms_error(
            w,
            close,
            400,
            "BadRequestException",
            "model_name must not contain '/'.",
        )?;
        return Ok(400);
    }
    let Some(url) = url.filter(|u| !u.is_empty()) else {
        mms_error(
            w,
            close,
            400,
            "BadRequestException",
            "Parameter url is required.",
        )?;
        return Ok(400);
    };
    let dir = url.strip_prefix("file://").unwrap_or(&url);
    if !Path::new(dir).is_dir() {
        let msg = format!("Model directory not found in the container: {url}");
        mms_error(w, close, 404, "ModelNotFoundException", &msg)?;
        return Ok(404);
    }
    let conflict = |w: &mut Writer| -> io::Result<u16> {
        let msg = format!("Model {name} is already registered.");
        mms_error(w, close, 409, "ConflictStatusException", &msg)?;
        Ok(409)
    };
    if models().contains_key(&name) {
        return conflict(w);
    }
    if c.load_delay_ms > 0 {
        thread::sleep(Duration::from_millis(c.load_delay_ms));
    }
    {
        let mut loaded = models();
        if loaded.contains_key(&name) {
            drop(loaded);
            return conflict(w);
        }
        if loaded.len() >= c.max_models {
            let msg = format!(
                "Cannot load model {name}: {} models are loaded (ECHO_MAX_MODELS={})",
                loaded.len(),
                c.max_models
            );
            drop(loaded);
            mms_error(w, close, 507, "InsufficientMemoryException", &msg)?;
            return Ok(507);
        }
        loaded.insert(name.clone(), url.clone());
    }
    let body = format!(
        "{{\"status\":{}}}",
        json::quote(&format!("Model \"{name}\" loaded"))
    );
    http::simple(w, 200, close, b"application/json", body.as_bytes(), false)?;
    Ok(200)
}

/// Per-request knobs from X-Amzn-SageMaker-Custom-Attributes (`key=value`, comma-separated;
/// unknown keys are ignored).
#[derive(Default)]
struct Attrs {
    sleep_ms: Option<u64>,
    status: Option<u16>,
    crash: bool,
    sick: bool,
    stream: Option<u64>,
    stream_delay_ms: u64,
    alloc_mb: u64,
    report: bool,
}

fn parse_attrs(v: &[u8]) -> Result<Attrs, String> {
    fn num(key: &[u8], val: &[u8]) -> Result<u64, String> {
        std::str::from_utf8(val)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                format!(
                    "bad custom attribute {}={}: not a number",
                    String::from_utf8_lossy(key),
                    String::from_utf8_lossy(val)
                )
            })
    }
    fn flag(val: &[u8]) -> bool {
        matches!(val, b"1" | b"true" | b"yes")
    }
    let mut a = Attrs::default();
    for item in v.split(|&c| c == b',') {
        let Some(eq) = item.iter().position(|&c| c == b'=') else {
            continue;
        };
        let key = item[..eq].trim_ascii();
        let val = item[eq + 1..].trim_ascii();
        match key {
            b"sleep_ms" => a.sleep_ms = Some(num(key, val)?),
            b"status" => {
                let s = num(key, val)?;
                if !(200..=599).contains(&s) {
                    return Err(format!(
                        "bad custom attribute status={s}: must be 200..=599"
                    ));
                }
                a.status = Some(s as u16);
            }
            b"crash" => a.crash = flag(val),
            b"sick" => a.sick = flag(val),
            b"stream" => a.stream = Some(num(key, val)?),
            b"stream_delay_ms" => a.stream_delay_ms = num(key, val)?,
            b"alloc_mb" => a.alloc_mb = num(key, val)?,
            b"report" => a.report = flag(val),
            _ => {}
        }
    }
    Ok(a)
}

/// The headers every invocation response carries: the custom attributes back, and the
/// X-Echo-* headers.
fn echo_headers(req: &Request, w: &mut Writer, model: Option<&str>) -> io::Result<()> {
    if let Some(v) = req.header(CUSTOM_ATTRIBUTES) {
        http::header(w, CUSTOM_ATTRIBUTES.as_bytes(), v)?;
    }
    if let Some(v) = req.header("Accept") {
        http::header(w, b"X-Echo-Accept", v)?;
    }
    if let Some(v) = req.header("X-Amzn-SageMaker-Target-Model") {
        http::header(w, b"X-Echo-Target-Model", v)?;
    }
    if let Some(v) = req.header("X-Amzn-SageMaker-Inference-Id") {
        http::header(w, b"X-Echo-Inference-Id", v)?;
    }
    http::header(w, b"X-Echo-Instance", cfg().hostname.as_bytes())?;
    if let Some(m) = model {
        http::header(w, b"X-Echo-Model", m.as_bytes())?;
    }
    Ok(())
}

/// Allocates `mb` MiB and writes every byte, so the memory is resident (and counts
/// against the container's memory limit). None if the allocation is refused.
fn alloc_touched(mb: u64) -> Option<Vec<u8>> {
    let bytes = usize::try_from(mb.checked_mul(1 << 20)?).ok()?;
    let mut v: Vec<u8> = Vec::new();
    v.try_reserve_exact(bytes).ok()?;
    v.resize(bytes, 0xa5);
    Some(std::hint::black_box(v))
}

/// `POST /invocations` and `POST /models/<name>/invoke`.
fn invoke(req: &Request, w: &mut Writer, model: Option<&str>) -> io::Result<u16> {
    let c = cfg();
    let close = req.conn();
    if let Some(limit) = c.crash_after {
        let served = INVOCATIONS.load(Ordering::SeqCst);
        if served >= limit {
            die(
                3,
                &format!("served {served} invocations: exiting 3 (ECHO_CRASH_AFTER)"),
            );
        }
    }
    if c.strict_headers {
        if let Some(name) = req
            .header_names()
            .find(|n| !KNOWN_HEADERS.iter().any(|k| k.as_bytes().eq_ignore_ascii_case(n)))
        {
            let msg = format!(
                "unknown header {} (ECHO_STRICT_HEADERS)",
                String::from_utf8_lossy(name)
            );
            let body = format!("{{\"error\":{}}}", json::quote(&msg));
            http::start(w, 400, close)?;
            echo_headers(req, w, model)?;
            http::finish(w, b"application/json", body.as_bytes(), false)?;
            return Ok(400);
        }
    }
    let attrs = match req.header(CUSTOM_ATTRIBUTES).map(parse_attrs).transpose() {
        Ok(a) => a.unwrap_or_default(),
        Err(msg) => {
            let body = format!("{{\"error\":{}}}", json::quote(&msg));
            http::start(w, 400, close)?;
            echo_headers(req, w, model)?;
            http::finish(w, b"application/json", body.as_bytes(), false)?;
            return Ok(400);
        }
    };
    if attrs.sick {
        SICK.store(true, Ordering::Release);
        eprintln!("echo: sick=1 in the custom attributes: /ping answers 503 from now on");
    }
    if attrs.crash {
        die(
            4,
            "crash=1 in the custom attributes: exiting 4 without answering",
        );
    }
    let _held = if attrs.alloc_mb > 0 {
        match alloc_touched(attrs.alloc_mb) {
            Some(v) => Some(v),
            None => {
                let body = format!("{{\"error\":\"cannot allocate {} MiB\"}}", attrs.alloc_mb);
                http::start(w, 507, close)?;
                echo_headers(req, w, model)?;
                http::finish(w, b"application/json", body.as_bytes(), false)?;
                return Ok(507);
            }
        }
    } else {
        None
    };
    let cold_ms = if WARM.swap(true, Ordering::SeqCst) {
        0
    } else {
        c.cold_ms
    };
    let sleep_ms = attrs.sleep_ms.unwrap_or(c.sleep_ms) + cold_ms;
    if sleep_ms > 0 {
        thread::sleep(Duration::from_millis(sleep_ms));
    }

    if attrs.report {
        // A multi-model invocation reports the loaded model's directory.
        let dir = model
            .and_then(|m| models().get(m).cloned())
            .map(|url| url.strip_prefix("file://").unwrap_or(&url).to_string());
        let body = report::build(&c.hostname, dir.as_deref().unwrap_or(report::MODEL_DIR));
        http::start(w, 200, close)?;
        echo_headers(req, w, model)?;
        http::finish(w, b"application/json", body.as_bytes(), false)?;
        return Ok(200);
    }
    if let Some(status) = attrs.status {
        let body = format!("{{\"error\":\"forced status {status}\"}}");
        http::start(w, status, close)?;
        echo_headers(req, w, model)?;
        http::finish(w, b"application/json", body.as_bytes(), false)?;
        return Ok(status);
    }
    let content_type: &[u8] = if c.no_content_type {
        b""
    } else {
        req.header("Content-Type")
            .filter(|v| !v.is_empty())
            .unwrap_or(b"application/octet-stream")
    };
    http::start(w, 200, close)?;
    echo_headers(req, w, model)?;
    if let Some(chunks) = attrs.stream {
        if !content_type.is_empty() {
            http::header(w, b"Content-Type", content_type)?;
        }
        w.write_all(b"Transfer-Encoding: chunked\r\n\r\n")?;
        w.flush()?;
        for i in 0..chunks {
            if i > 0 && attrs.stream_delay_ms > 0 {
                thread::sleep(Duration::from_millis(attrs.stream_delay_ms));
            }
            http::chunk(w, &req.body)?;
            w.flush()?;
        }
        w.write_all(b"0\r\n\r\n")?;
        return Ok(200);
    }
    if c.append.is_empty() {
        http::finish(w, content_type, &req.body, false)?;
    } else {
        let mut body = req.body.clone();
        body.extend_from_slice(&c.append);
        http::finish(w, content_type, &body, false)?;
    }
    Ok(200)
}
