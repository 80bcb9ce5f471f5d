//! The explorer's HTTP/1.1: one request per connection, a thread per
//! connection, nothing a local page does not need.
//!
//! Hand-written rather than `tiny_http`: with that crate some of Chromium's
//! parallel image requests were never delivered to the handler (seen in the
//! browser test, 2 of 48 thumbnails pending forever, in 2 runs out of 3).
//! What it accepts: a request line `METHOD TARGET HTTP/1.x`, headers up to
//! 16 KiB, a body of `Content-Length` bytes up to [`super::MAX_BODY`]
//! (chunked bodies get 411; two `Content-Length` headers get 400), the whole
//! request within [`IO_TIMEOUT`] (a deadline for the request, not for each
//! read, so a byte every few seconds does not keep a connection). Every
//! answer closes the connection; `HEAD` is answered as `GET` without the
//! body. At most [`MAX_CONNECTIONS`] are served at once: when all are taken,
//! the connection that has been sending its request the longest is closed to
//! make room (slow clients cannot lock out the others); 503 only when every
//! slot is computing an answer.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest a client may take to send its whole request, or to read the answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request head (request line and headers).
const MAX_HEAD: usize = 16 << 10;
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;

/// A parsed request.
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The target as sent, e.g. `/api/filter?layer=0&map=1`.
    pub url: String,
    /// The body (empty without `Content-Length`).
    pub body: Vec<u8>,
    /// The `Host` header, if sent.
    pub host: Option<String>,
}

/// An answer.
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

/// What the page may load and run: its own files only (no inline script,
/// no other origin), images from itself and `data:` URLs (the maps).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data: blob:; \
     script-src 'self'; style-src 'self'; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

/// Reads from a stream until a deadline: each read waits at most the time
/// left, so the deadline holds for the whole request.
struct Deadline<'a> {
    stream: &'a TcpStream,
    until: Instant,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut s = self.stream;
        s.read(buf)
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

fn write_response(stream: &mut TcpStream, r: &Response, with_body: bool) {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n\
         Content-Security-Policy: {CONTENT_SECURITY_POLICY}\r\nX-Frame-Options: DENY\r\n\
         Referrer-Policy: no-referrer\r\nConnection: close\r\n\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    if with_body {
        let _ = stream.write_all(&r.body);
    }
    let _ = stream.flush();
}

fn error(status: u16, msg: &str) -> Response {
    Response {
        status,
        content_type: "application/json",
        body: serde_json::json!({ "error": msg }).to_string().into_bytes(),
    }
}

/// Reads one request; an error is the answer to send instead.
fn read_request(stream: &TcpStream) -> Result<Request, Response> {
    let deadline = Deadline {
        stream,
        until: Instant::now() + IO_TIMEOUT,
    };
    let mut reader = BufReader::new(deadline.take(MAX_HEAD as u64 + super::MAX_BODY as u64 + 1));
    let mut head_len = 0usize;
    let mut line = String::new();
    let timeout = |e: std::io::Error| {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            error(408, "the request took too long")
        } else {
            error(400, &format!("cannot read the request: {e}"))
        }
    };
    let mut next_line = |line: &mut String| -> Result<(), Response> {
        line.clear();
        let n = reader
            .by_ref()
            .take((MAX_HEAD - head_len.min(MAX_HEAD)) as u64 + 1)
            .read_line(line)
            .map_err(timeout)?;
        head_len += n;
        if head_len > MAX_HEAD {
            return Err(error(431, "request head over 16 KiB"));
        }
        if n == 0 {
            return Err(error(400, "the connection closed before the request ended"));
        }
        Ok(())
    };
    next_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, url, version) = (parts.next(), parts.next(), parts.next());
    let (method, url) = match (method, url, version) {
        (Some(m), Some(u), Some(v)) if v.starts_with("HTTP/1.") && u.starts_with('/') => {
            (m.to_string(), u.to_string())
        }
        _ => {
            return Err(error(
                400,
                "malformed request line: expected 'METHOD /path HTTP/1.1'",
            ))
        }
    };
    let mut length = None;
    let mut host = None;
    loop {
        next_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let Some((name, value)) = l.split_once(':') else {
            return Err(error(400, &format!("malformed header line '{l}'")));
        };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim();
        if name == "content-length" {
            if length.is_some() {
                // Two lengths: which one a proxy in front of us believed is
                // unknowable (request smuggling), so neither is taken.
                return Err(error(400, "more than one Content-Length header"));
            }
            let n: usize = value
                .parse()
                .map_err(|_| error(400, &format!("Content-Length '{value}' is not a number")))?;
            length = Some(n);
            if n > super::MAX_BODY {
                return Err(error(
                    413,
                    &format!("request body over {} bytes", super::MAX_BODY),
                ));
            }
        } else if name == "host" {
            if host.is_some() {
                return Err(error(400, "more than one Host header"));
            }
            host = Some(value.to_string());
        } else if name == "transfer-encoding" && !value.eq_ignore_ascii_case("identity") {
            return Err(error(
                411,
                "send the body with a Content-Length (chunked bodies are not accepted)",
            ));
        }
    }
    let mut body = vec![0u8; length.unwrap_or(0)];
    reader.read_exact(&mut body).map_err(timeout)?;
    Ok(Request {
        method,
        url,
        body,
        host,
    })
}

/// The connections still sending their request, oldest first, with a
/// handle that can close each one from another thread.
#[derive(Default)]
struct Readers {
    next: u64,
    open: BTreeMap<u64, TcpStream>,
}

impl Readers {
    fn add(&mut self, stream: &TcpStream) -> Option<u64> {
        let id = self.next;
        self.next += 1;
        self.open.insert(id, stream.try_clone().ok()?);
        Some(id)
    }
    /// Closes the connection that has been sending its request the longest.
    fn evict_oldest(&mut self) -> bool {
        match self.open.pop_first() {
            Some((_, s)) => {
                let _ = s.shutdown(std::net::Shutdown::Both);
                true
            }
            None => false,
        }
    }
}

fn serve_connection(
    mut stream: TcpStream,
    handler: &(dyn Fn(&Request) -> Response + Sync),
    readers: &Mutex<Readers>,
    id: Option<u64>,
) {
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let request = read_request(&stream);
    let lock = || readers.lock().unwrap_or_else(|e| e.into_inner());
    let was_reading = id.is_some_and(|id| lock().open.remove(&id).is_some());
    if id.is_some() && !was_reading {
        return; // closed to make room for another client
    }
    let (response, with_body) = match request {
        Ok(mut request) => {
            // HEAD: GET's answer, less the body.
            let head = request.method == "HEAD";
            if head {
                request.method = "GET".into();
            }
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&request)))
                .unwrap_or_else(|_| {
                    error(500, "internal error in this request; the server goes on")
                });
            (r, !head)
        }
        Err(r) => (r, true),
    };
    write_response(&mut stream, &response, with_body);
    // A lingering close: stop writing, then drain what the client may still
    // be sending (a refused body), so that closing does not reset the
    // connection before the client has read the answer.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = std::io::copy(
        &mut (&stream).take(MAX_HEAD as u64 + 2 * super::MAX_BODY as u64),
        &mut std::io::sink(),
    );
}

/// Accepts connections until the process ends, each on its own thread.
pub fn serve(listener: TcpListener, handler: Arc<dyn Fn(&Request) -> Response + Send + Sync>) {
    let active = Arc::new(AtomicUsize::new(0));
    let readers = Arc::new(Mutex::new(Readers::default()));
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        if active.load(Ordering::Acquire) >= MAX_CONNECTIONS {
            let evicted = readers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .evict_oldest();
            if !evicted {
                write_response(
                    &mut stream,
                    &error(503, "too many connections; try again"),
                    true,
                );
                continue;
            }
        }
        active.fetch_add(1, Ordering::AcqRel);
        let id = readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(&stream);
        let (active, handler, readers) = (
            Arc::clone(&active),
            Arc::clone(&handler),
            Arc::clone(&readers),
        );
        std::thread::spawn(move || {
            serve_connection(stream, handler.as_ref(), &readers, id);
            active.fetch_sub(1, Ordering::AcqRel);
        });
    }
}
