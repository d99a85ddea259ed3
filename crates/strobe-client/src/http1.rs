//! A minimal HTTP/1.1 client connection, written for measurement.
//!
//! Why not a general client: a general client drives the socket in a task of its own and hands
//! body frames over a channel, so a frame's arrival is only seen after a task switch, and bursts of
//! frames from many streams queue behind each other. Here the worker that owns the request reads
//! the socket itself and stamps the time right after each `read` returns, then decodes in place:
//! one task, one buffer, no channel, no allocation per frame.
//!
//! It speaks just what OpenAI-compatible servers need: one request at a time per connection,
//! keep-alive, `Content-Length`, chunked and read-until-close bodies, over plain TCP or TLS
//! (rustls' sans-I/O connection, fed from the same stamped reads: see [`crate::tls`]).

use std::ops::ControlFlow;
use std::os::fd::AsRawFd;
use strobe_core::RunClock;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

const INITIAL_BUFFER: usize = 64 * 1024;
const MAX_HEAD: usize = 1024 * 1024;
const MAX_HEADERS: usize = 64;

/// What went wrong on the wire.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the connection closed {0}")]
    Closed(&'static str),
    #[error("malformed HTTP response: {0}")]
    Malformed(String),
}

/// How the body of a response is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    Chunked,
    Length(u64),
    UntilClose,
}

/// Status line and the headers that matter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub body: BodyKind,
    /// The server will close the connection after this response.
    pub close: bool,
    /// `Retry-After`, in milliseconds (from delta-seconds or an HTTP date).
    pub retry_after_ms: Option<u64>,
    /// `x-request-id`, when the server sent one.
    pub request_id: Option<String>,
}

/// How reading a body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyEnd {
    /// The whole body was read.
    Complete,
    /// The callback asked to stop before the end.
    Stopped,
}

/// The TLS side of a connection: rustls' state and the ciphertext not yet handed to it.
struct Tls {
    conn: rustls::ClientConnection,
    raw: Vec<u8>,
    raw_start: usize,
    raw_end: usize,
    out: Vec<u8>,
}

/// Ciphertext read at most at once (rustls decrypts at most 16 KiB records).
const RAW_BUFFER: usize = 16 * 1024 + 512;

/// Reads from the socket, returning the byte count and, when the kernel stamped them, how long
/// ago they arrived.
async fn recv_stamped(
    stream: &TcpStream,
    buf: &mut [u8],
) -> std::io::Result<(usize, Option<std::time::Duration>)> {
    let fd = stream.as_raw_fd();
    loop {
        stream.readable().await?;
        match stream.try_io(Interest::READABLE, || strobe_sockstamp::recv(fd, buf)) {
            Ok(read) => return Ok(read),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Writes whatever rustls has to send.
async fn flush_tls(stream: &mut TcpStream, tls: &mut Tls) -> std::io::Result<()> {
    while tls.conn.wants_write() {
        tls.out.clear();
        tls.conn.write_tls(&mut tls.out)?;
        stream.write_all(&tls.out).await?;
    }
    Ok(())
}

/// Hands buffered ciphertext to rustls; true if any was taken.
fn feed_tls(tls: &mut Tls) -> std::io::Result<bool> {
    if tls.raw_start == tls.raw_end {
        return Ok(false);
    }
    let mut pending = &tls.raw[tls.raw_start..tls.raw_end];
    let used = tls.conn.read_tls(&mut pending)?;
    tls.raw_start += used;
    tls.conn
        .process_new_packets()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok(used > 0)
}

/// One connection, used for one request at a time.
pub struct Http1 {
    stream: TcpStream,
    tls: Option<Box<Tls>>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Offset (run clock) at which the data of the last read reached this machine.
    last_read_ns: u64,
    /// The kernel stamps received data (see `strobe-sockstamp`).
    pub kernel_stamps: bool,
    /// False once the connection's state is unknown or the server said close.
    pub reusable: bool,
    /// Responses completed on this connection.
    pub served: u64,
    /// Body state of the current response, kept so that reading can resume after a stop.
    chunked: ChunkedDecoder,
    remaining: u64,
    /// The idle timeout's timer, while a response body is being read.
    watchdog: Option<Watchdog>,
    watching: bool,
}

/// An idle timeout that costs nothing per read: its timer is not re-armed by each read. When it
/// fires, it measures the quiet time since the last read (or since it was armed) and either
/// fails the read or sleeps for what is left, so it wakes at most once per idle period.
struct Watchdog {
    idle: std::time::Duration,
    armed_ns: u64,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

/// Runs `read` unless nothing arrives for the watchdog's idle time.
async fn watched<T>(
    read: impl std::future::Future<Output = std::io::Result<T>>,
    watchdog: Option<&mut Watchdog>,
    clock: &RunClock,
    last_read_ns: u64,
) -> std::io::Result<T> {
    let Some(w) = watchdog else {
        return read.await;
    };
    tokio::pin!(read);
    loop {
        tokio::select! {
            biased;
            r = &mut read => return r,
            _ = &mut w.sleep => {
                let quiet_since = last_read_ns.max(w.armed_ns);
                let quiet = std::time::Duration::from_nanos(clock.now_ns().saturating_sub(quiet_since));
                if quiet >= w.idle {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("nothing arrived for {:?} (the idle timeout)", w.idle),
                    ));
                }
                w.sleep.as_mut().reset(tokio::time::Instant::now() + (w.idle - quiet));
            }
        }
    }
}

impl Http1 {
    /// Connects (and with `tls`, completes the TLS handshake); with `kernel_stamps`, asks the
    /// kernel to stamp received data (falls back to user-space stamps where it cannot).
    pub async fn connect(
        addr: std::net::SocketAddr,
        kernel_stamps: bool,
        tls: Option<&crate::tls::TlsClient>,
    ) -> std::io::Result<Http1> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let kernel_stamps = kernel_stamps && strobe_sockstamp::enable(stream.as_raw_fd());
        let tls = match tls {
            Some(t) => Some(Box::new(Tls {
                conn: t.connection()?,
                raw: vec![0; RAW_BUFFER],
                raw_start: 0,
                raw_end: 0,
                out: Vec::with_capacity(4096),
            })),
            None => None,
        };
        let mut h = Http1 {
            stream,
            tls,
            kernel_stamps,
            buf: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
            last_read_ns: 0,
            reusable: true,
            served: 0,
            chunked: ChunkedDecoder::default(),
            remaining: 0,
            watchdog: None,
            watching: false,
        };
        h.handshake().await?;
        Ok(h)
    }

    /// Completes the TLS handshake (nothing for plain TCP).
    async fn handshake(&mut self) -> std::io::Result<()> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(());
        };
        loop {
            flush_tls(&mut self.stream, tls).await?;
            if !tls.conn.is_handshaking() {
                return Ok(());
            }
            if feed_tls(tls)? {
                continue;
            }
            let (n, _) = recv_stamped(&self.stream, &mut tls.raw).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection during the TLS handshake",
                ));
            }
            (tls.raw_start, tls.raw_end) = (0, n);
        }
    }

    /// The negotiated TLS version (`TLSv1_3`), for TLS connections.
    pub fn tls_version(&self) -> Option<String> {
        let v = self.tls.as_ref()?.conn.protocol_version()?;
        Some(format!("{v:?}"))
    }

    /// From now on, a read that waits longer than `idle` fails with `TimedOut` (until
    /// [`Http1::unwatch`]). Arming is a store, not a timer operation.
    pub fn watch_idle(&mut self, idle: Option<std::time::Duration>, clock: &RunClock) {
        let Some(idle) = idle else {
            self.watching = false;
            return;
        };
        let armed_ns = clock.now_ns();
        match self.watchdog.as_mut() {
            Some(w) if w.idle == idle => w.armed_ns = armed_ns,
            _ => {
                self.watchdog = Some(Watchdog {
                    idle,
                    armed_ns,
                    sleep: Box::pin(tokio::time::sleep(idle)),
                })
            }
        }
        self.watching = true;
    }

    /// Reads wait as long as they must (the head of a response has its own timeout).
    pub fn unwatch(&mut self) {
        self.watching = false;
    }

    /// Run-clock offset at which the data of the latest read reached this machine.
    pub fn last_read_ns(&self) -> u64 {
        self.last_read_ns
    }

    pub async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self.tls.as_mut() {
            None => self.stream.write_all(bytes).await,
            Some(tls) => {
                std::io::Write::write_all(&mut tls.conn.writer(), bytes)?;
                flush_tls(&mut self.stream, tls).await
            }
        }
    }

    /// Reads more bytes into the buffer; 0 means end of stream.
    async fn fill(&mut self, clock: &RunClock) -> std::io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let len = self.buf.len();
                self.buf.resize(len * 2, 0);
            }
        }
        if self.tls.is_some() {
            return self.fill_tls(clock).await;
        }
        let watchdog = if self.watching {
            self.watchdog.as_mut()
        } else {
            None
        };
        let (n, age) = watched(
            recv_stamped(&self.stream, &mut self.buf[self.end..]),
            watchdog,
            clock,
            self.last_read_ns,
        )
        .await?;
        self.stamp(clock, age);
        self.end += n;
        Ok(n)
    }

    /// Dates the latest read: when the kernel stamped the data, to its arrival rather than to
    /// when this task got round to reading it.
    fn stamp(&mut self, clock: &RunClock, age: Option<std::time::Duration>) {
        let now = clock.now_ns();
        self.last_read_ns = match (self.kernel_stamps, age) {
            (true, Some(age)) => now.saturating_sub(age.as_nanos() as u64),
            _ => now,
        };
    }

    /// `fill` over TLS: plaintext already decrypted first, else the buffered ciphertext, else a
    /// new stamped read. Plaintext is dated by the read that completed its record.
    async fn fill_tls(&mut self, clock: &RunClock) -> std::io::Result<usize> {
        loop {
            let tls = self.tls.as_mut().expect("called for TLS connections");
            match std::io::Read::read(&mut tls.conn.reader(), &mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // The peer closed without close_notify: an end of stream like any other.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if feed_tls(tls)? {
                flush_tls(&mut self.stream, tls).await?;
                continue;
            }
            let watchdog = if self.watching {
                self.watchdog.as_mut()
            } else {
                None
            };
            let (n, age) = watched(
                recv_stamped(&self.stream, &mut tls.raw),
                watchdog,
                clock,
                self.last_read_ns,
            )
            .await?;
            if n == 0 {
                return Ok(0);
            }
            (tls.raw_start, tls.raw_end) = (0, n);
            self.stamp(clock, age);
        }
    }

    /// Reads the response head (skipping `1xx` interim responses).
    pub async fn read_head(&mut self, clock: &RunClock) -> Result<Head, WireError> {
        loop {
            let parsed = {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete(len)) => Some((len, head_of(&resp)?)),
                    Ok(httparse::Status::Partial) => None,
                    Err(e) => return Err(WireError::Malformed(e.to_string())),
                }
            };
            match parsed {
                Some((len, head)) => {
                    self.start += len;
                    if (100..200).contains(&head.status) {
                        continue;
                    }
                    if head.close {
                        self.reusable = false;
                    }
                    self.chunked = ChunkedDecoder::default();
                    self.remaining = match head.body {
                        BodyKind::Length(n) => n,
                        _ => u64::MAX,
                    };
                    return Ok(head);
                }
                None => {
                    if self.end - self.start > MAX_HEAD {
                        return Err(WireError::Malformed(
                            "response head larger than 1 MiB".into(),
                        ));
                    }
                    if self.fill(clock).await? == 0 {
                        self.reusable = false;
                        return Err(WireError::Closed(if self.end == self.start {
                            "before any response"
                        } else {
                            "in the middle of the response head"
                        }));
                    }
                }
            }
        }
    }

    /// Reads the body, calling `on_data` with each piece of body data and the run-clock offset of
    /// the read that brought it. Pieces already buffered with the head carry that read's time.
    /// After [`BodyEnd::Stopped`], calling it again resumes where it stopped.
    pub async fn read_body(
        &mut self,
        kind: BodyKind,
        clock: &RunClock,
        mut on_data: impl FnMut(&[u8], u64) -> ControlFlow<()>,
    ) -> Result<BodyEnd, WireError> {
        loop {
            if self.remaining == 0 {
                self.served += 1;
                return Ok(BodyEnd::Complete);
            }
            if self.start == self.end && self.fill(clock).await? == 0 {
                self.reusable = false;
                return match kind {
                    BodyKind::UntilClose => {
                        self.served += 1;
                        Ok(BodyEnd::Complete)
                    }
                    _ => Err(WireError::Closed("before the end of the body")),
                };
            }
            let now = self.last_read_ns;
            let input = &self.buf[self.start..self.end];
            let mut flow = ControlFlow::Continue(());
            let (consumed, done) = match kind {
                BodyKind::Chunked => self.chunked.decode(input, |d| {
                    if flow.is_continue() {
                        flow = on_data(d, now);
                    }
                })?,
                BodyKind::Length(_) => {
                    let take = (input.len() as u64).min(self.remaining) as usize;
                    flow = on_data(&input[..take], now);
                    self.remaining -= take as u64;
                    (take, self.remaining == 0)
                }
                BodyKind::UntilClose => {
                    flow = on_data(input, now);
                    (input.len(), false)
                }
            };
            self.start += consumed;
            if done {
                self.served += 1;
                return Ok(BodyEnd::Complete);
            }
            if flow.is_break() {
                return Ok(BodyEnd::Stopped);
            }
        }
    }
}

fn head_of(resp: &httparse::Response) -> Result<Head, WireError> {
    let status = resp
        .code
        .ok_or_else(|| WireError::Malformed("no status code".into()))?;
    let mut body = BodyKind::UntilClose;
    let mut close = resp.version == Some(0);
    let mut retry_after_ms = None;
    let mut request_id = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("retry-after") {
            retry_after_ms = std::str::from_utf8(h.value).ok().and_then(retry_after);
            continue;
        }
        if h.name.eq_ignore_ascii_case("x-request-id") {
            request_id = std::str::from_utf8(h.value)
                .ok()
                .map(|v| v.trim().to_owned());
            continue;
        }
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if h.value
                .windows(7)
                .any(|w| w.eq_ignore_ascii_case(b"chunked"))
            {
                body = BodyKind::Chunked;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") && body != BodyKind::Chunked {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok());
            body = BodyKind::Length(
                v.ok_or_else(|| WireError::Malformed("bad Content-Length".into()))?,
            );
        } else if h.name.eq_ignore_ascii_case("connection") {
            if h.value.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if h.value.eq_ignore_ascii_case(b"keep-alive") {
                close = false;
            }
        }
    }
    if status == 204 || status == 304 {
        body = BodyKind::Length(0);
    }
    if body == BodyKind::UntilClose {
        close = true;
    }
    Ok(Head {
        status,
        body,
        close,
        retry_after_ms,
        request_id,
    })
}

/// `Retry-After` as delta-seconds (`120`, `1.5`) or an HTTP date, in milliseconds from now.
fn retry_after(value: &str) -> Option<u64> {
    let value = value.trim();
    if let Ok(s) = value.parse::<f64>() {
        return (s.is_finite() && s >= 0.0).then(|| (s.min(86_400.0) * 1000.0) as u64);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let wait = at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    Some(wait.as_millis().min(86_400_000) as u64)
}

/// Decodes one whole response held in `input` (the head, then as much body as it holds), without
/// a socket: `None` while the head is incomplete, else the head, the body and whether the body
/// ended. The same head parser and chunked decoder as a connection uses; for fuzzing and tests.
pub fn decode_response(input: &[u8]) -> Result<Option<(Head, Vec<u8>, bool)>, WireError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(input) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(WireError::Malformed(e.to_string())),
    };
    let head = head_of(&resp)?;
    let rest = &input[len..];
    let mut body = Vec::new();
    let done = match head.body {
        BodyKind::Chunked => {
            let mut d = ChunkedDecoder::default();
            d.decode(rest, |x| body.extend_from_slice(x))?.1
        }
        BodyKind::Length(n) => {
            let take = (rest.len() as u64).min(n) as usize;
            body.extend_from_slice(&rest[..take]);
            take as u64 == n
        }
        BodyKind::UntilClose => {
            body.extend_from_slice(rest);
            false
        }
    };
    Ok(Some((head, body, done)))
}

/// Incremental `Transfer-Encoding: chunked` decoder.
#[derive(Debug, Default)]
struct ChunkedDecoder {
    state: ChunkState,
    size: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    /// Skipping a chunk extension up to the line end.
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// After the last chunk: trailer lines until an empty one.
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
}

impl ChunkedDecoder {
    /// Decodes as much of `input` as possible; returns (bytes consumed, body finished).
    fn decode<'a>(
        &mut self,
        input: &'a [u8],
        mut out: impl FnMut(&'a [u8]),
    ) -> Result<(usize, bool), WireError> {
        use ChunkState::*;
        let bad = |what: &str| WireError::Malformed(format!("chunked encoding: {what}"));
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
                        self.size = self
                            .size
                            .checked_mul(16)
                            .ok_or_else(|| bad("chunk size overflows"))?
                            + digit;
                        i += 1;
                    }
                    b';' | b' ' | b'\t' => {
                        self.state = Extension;
                        i += 1;
                    }
                    b'\r' => {
                        self.state = SizeLf;
                        i += 1;
                    }
                    b'\n' => {
                        i += 1;
                        self.after_size();
                    }
                    _ => return Err(bad("invalid chunk size")),
                },
                Extension => {
                    if b == b'\n' {
                        self.after_size();
                    } else if b == b'\r' {
                        self.state = SizeLf;
                    }
                    i += 1;
                }
                SizeLf => {
                    if b != b'\n' {
                        return Err(bad("expected LF after chunk size"));
                    }
                    i += 1;
                    self.after_size();
                }
                Data => {
                    let take = ((input.len() - i) as u64).min(self.size) as usize;
                    out(&input[i..i + take]);
                    i += take;
                    self.size -= take as u64;
                    if self.size == 0 {
                        self.state = DataCr;
                    }
                }
                DataCr => {
                    self.state = match b {
                        b'\r' => DataLf,
                        b'\n' => Size,
                        _ => return Err(bad("expected CRLF after chunk data")),
                    };
                    i += 1;
                }
                DataLf => {
                    if b != b'\n' {
                        return Err(bad("expected LF after chunk data"));
                    }
                    self.state = Size;
                    i += 1;
                }
                TrailerStart => {
                    i += 1;
                    match b {
                        b'\r' => self.state = EndLf,
                        b'\n' => {
                            return Ok((i, true));
                        }
                        _ => self.state = TrailerLine,
                    }
                }
                TrailerLine => {
                    i += 1;
                    if b == b'\r' {
                        self.state = TrailerLf;
                    } else if b == b'\n' {
                        self.state = TrailerStart;
                    }
                }
                TrailerLf => {
                    i += 1;
                    self.state = TrailerStart;
                }
                EndLf => {
                    i += 1;
                    return Ok((i, true));
                }
            }
        }
        Ok((i, false))
    }

    fn after_size(&mut self) {
        self.state = if self.size == 0 {
            ChunkState::TrailerStart
        } else {
            ChunkState::Data
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], piece: usize) -> Result<(Vec<u8>, bool), WireError> {
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        for p in input.chunks(piece) {
            pending.extend_from_slice(p);
            let (used, done) = d.decode(&pending, |x| out.extend_from_slice(x))?;
            pending.drain(..used);
            if done {
                return Ok((out, true));
            }
        }
        Ok((out, false))
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_split() {
        let body = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for piece in 1..=body.len() {
            let (out, done) = decode_all(body, piece).unwrap();
            assert_eq!(out, b"hello, world", "piece {piece}");
            assert!(done, "piece {piece}");
        }
        let (out, done) = decode_all(b"3\r\nabc\r\n0\r\n\r\n", 100).unwrap();
        assert_eq!((out.as_slice(), done), (&b"abc"[..], true));
    }

    #[test]
    fn cut_and_bad_chunked_bodies() {
        let (out, done) = decode_all(b"a\r\nhello", 3).unwrap();
        assert_eq!((out.as_slice(), done), (&b"hello"[..], false));
        assert!(decode_all(b"zz\r\n", 4).is_err());
        assert!(decode_all(b"3\r\nabcX", 8).is_err());
    }

    #[test]
    fn heads_are_classified() {
        let parse = |raw: &[u8]| {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut r = httparse::Response::new(&mut headers);
            r.parse(raw).unwrap();
            head_of(&r).unwrap()
        };
        let h = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!((h.status, h.body, h.close), (200, BodyKind::Chunked, false));
        let h = parse(b"HTTP/1.1 404 Not Found\r\ncontent-length: 12\r\nconnection: close\r\n\r\n");
        assert_eq!(
            (h.status, h.body, h.close),
            (404, BodyKind::Length(12), true)
        );
        let h = parse(b"HTTP/1.0 200 OK\r\n\r\n");
        assert_eq!(
            (h.status, h.body, h.close),
            (200, BodyKind::UntilClose, true)
        );
        assert_eq!((h.retry_after_ms, h.request_id), (None, None));
        let h = parse(b"HTTP/1.1 429 Too Many\r\nRetry-After: 2\r\nX-Request-Id: req-7\r\ncontent-length: 0\r\n\r\n");
        assert_eq!(h.retry_after_ms, Some(2000));
        assert_eq!(h.request_id.as_deref(), Some("req-7"));
        let soon = httpdate::fmt_http_date(
            std::time::SystemTime::now() + std::time::Duration::from_secs(30),
        );
        let raw = format!("HTTP/1.1 503 x\r\nretry-after: {soon}\r\n\r\n");
        let ms = parse(raw.as_bytes()).retry_after_ms.unwrap();
        assert!((28_000..=30_000).contains(&ms), "{ms}");
        assert_eq!(
            parse(b"HTTP/1.1 503 x\r\nretry-after: soon\r\n\r\n").retry_after_ms,
            None
        );
    }

    #[test]
    fn whole_responses_decode_from_one_buffer() {
        let (h, body, done) = decode_response(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.status, body.as_slice(), done), (200, &b"hi"[..], true));
        let (_, body, done) = decode_response(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab")
            .unwrap()
            .unwrap();
        assert_eq!((body.as_slice(), done), (&b"ab"[..], false));
        assert!(decode_response(b"HTTP/1.1 200").unwrap().is_none());
        assert!(decode_response(b"HTTX/1.1 200 OK\r\n\r\n").is_err());
    }
}
