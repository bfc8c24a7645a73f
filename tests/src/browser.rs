//! Browser page tests: the test page (`web/test-page.js`) bundled with esbuild from the
//! npm packages `tests/env/setup.sh` installs, served with a `/report` endpoint from a
//! loopback port ([`PageServer`]), and loaded by headless Chromium ([`PageServer::run`]),
//! which is stopped as soon as the page has reported (or the time is up). The page's report
//! is the test's evidence: what the browser's clients saw.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::process::Process;
use crate::tools;

/// The test page's source.
const PAGE_SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../web/test-page.js");

/// The page bundled into one script (esbuild, browser IIFE).
pub fn bundle() -> anyhow::Result<String> {
    let output = Command::new(tools::tool("esbuild"))
        .arg(PAGE_SOURCE)
        .args([
            "--bundle",
            "--format=iife",
            "--platform=browser",
            "--log-level=warning",
        ])
        .env("NODE_PATH", tools::tool("web-node-modules"))
        .output()
        .context("cannot run esbuild")?;
    if !output.status.success() {
        bail!(
            "esbuild could not bundle {PAGE_SOURCE}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8(output.stdout).context("esbuild's bundle is not UTF-8")
}

/// Serves the page (`/`, `/page.js`) and takes its report (`POST /report`) on a loopback
/// address, from a thread of its own; stopped when dropped.
pub struct PageServer {
    addr: SocketAddr,
    reports: mpsc::Receiver<String>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PageServer {
    /// Serves `script` (the bundle) at `ip` (a loopback address) on a free port.
    pub fn start(ip: [u8; 4], script: String) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind(SocketAddr::from((ip, 0))).context("cannot bind the page server")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tx, reports) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Err(err) = serve(stream, &script, &tx) {
                            eprintln!("[page server] {err:#}");
                        }
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(err) => eprintln!("[page server] accept: {err}"),
                }
            }
        });
        Ok(Self {
            addr,
            reports,
            stop,
            thread: Some(thread),
        })
    }

    /// The page's origin, `http://<ip>:<port>`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Loads `/?<query>` in headless Chromium and returns the page's report (JSON), waiting
    /// at most `timeout`. Chromium's profile and log go to `dir`.
    pub fn run(
        &self,
        query: &str,
        dir: &Path,
        timeout: Duration,
    ) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}/?{query}", self.origin());
        let profile = dir.join(format!("chromium-profile-{}", self.addr.port()));
        let mut command = Command::new(tools::tool("chromium"));
        command
            .args([
                "--headless=new",
                // The tests run as root, where Chromium's sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(&url);
        let log = dir.join(format!("chromium-{}.log", self.addr.port()));
        let mut browser = Process::spawn("chromium", command, &log)?;
        let started = Instant::now();
        loop {
            match self.reports.recv_timeout(Duration::from_millis(200)) {
                Ok(report) => {
                    return serde_json::from_str(&report)
                        .with_context(|| format!("the page's report is not JSON: {report}"));
                }
                Err(mpsc::RecvTimeoutError::Timeout) if started.elapsed() < timeout => {
                    if let Err(err) = browser.ensure_running() {
                        bail!("Chromium exited before the page reported: {err:#}");
                    }
                }
                Err(_) => {
                    let tail = std::fs::read_to_string(&log).unwrap_or_default();
                    let tail: Vec<&str> = tail.lines().rev().take(30).collect();
                    bail!(
                        "no report from {url} within {timeout:?}; Chromium's log ends:\n{}",
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                }
            }
        }
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

const PAGE_HTML: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>weft gRPC-Web test</title></head>\
<body><script src=\"/page.js\"></script></body></html>";

/// One request on one connection (each answer closes it).
fn serve(
    mut stream: TcpStream,
    script: &str,
    reports: &mpsc::Sender<String>,
) -> anyhow::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            content_length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, content_type, body) = match (method, path) {
        ("GET", "/page.js") => ("200 OK", "application/javascript", script.as_bytes()),
        ("GET", p) if p == "/" || p.starts_with("/?") => {
            ("200 OK", "text/html; charset=utf-8", PAGE_HTML.as_bytes())
        }
        ("POST", "/report") => {
            let mut body = vec![0; content_length];
            reader.read_exact(&mut body)?;
            let _ = reports.send(String::from_utf8_lossy(&body).into_owned());
            ("204 No Content", "text/plain", &b""[..])
        }
        _ => ("404 Not Found", "text/plain", &b"not found"[..]),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nconnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    Ok(())
}
