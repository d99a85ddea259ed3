//! A server connection that remembers when its latest bytes reached the machine, so that a
//! request's "received" instant is its arrival, not the moment a busy server got to it.

use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Arrival of the latest read on a connection, as nanoseconds after `epoch`.
#[derive(Clone)]
pub struct LastArrival {
    epoch: Instant,
    ns: Arc<AtomicU64>,
}

impl LastArrival {
    pub fn new(epoch: Instant) -> LastArrival {
        LastArrival {
            epoch,
            ns: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The arrival instant of the latest bytes read, if any were read.
    pub fn get(&self) -> Option<Instant> {
        match self.ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(self.epoch + std::time::Duration::from_nanos(ns)),
        }
    }

    fn set(&self, at: Instant) {
        let ns = at.saturating_duration_since(self.epoch).as_nanos() as u64;
        self.ns.store(ns.max(1), Ordering::Relaxed);
    }
}

pub struct StampedStream {
    inner: TcpStream,
    kernel_stamps: bool,
    arrival: LastArrival,
    /// A slow reader: at most this many bytes per second.
    read_rate: Option<u64>,
    /// With a read rate: no read before this wakes.
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl StampedStream {
    pub fn new(inner: TcpStream, arrival: LastArrival, read_rate: Option<u64>) -> StampedStream {
        let kernel_stamps = strobe_sockstamp::enable(inner.as_raw_fd());
        StampedStream {
            inner,
            kernel_stamps,
            arrival,
            read_rate: read_rate.filter(|r| *r > 0),
            pause: None,
        }
    }
}

/// Bytes read at once by a slow reader: a hundredth of a second's worth.
fn slow_piece(rate: u64) -> usize {
    (rate / 100).max(1) as usize
}

impl AsyncRead for StampedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(rate) = this.read_rate {
            if let Some(p) = this.pause.as_mut() {
                if p.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
            let piece = slow_piece(rate).min(buf.remaining());
            let mut small = ReadBuf::new(&mut buf.initialize_unfilled()[..piece]);
            let polled = Pin::new(&mut this.inner).poll_read(cx, &mut small);
            let n = small.filled().len();
            if matches!(polled, Poll::Ready(Ok(()))) && n > 0 {
                this.arrival.set(Instant::now());
                buf.advance(n);
                let wait = std::time::Duration::from_secs_f64(n as f64 / rate as f64);
                this.pause = Some(Box::pin(tokio::time::sleep(wait)));
            }
            return polled;
        }
        if !this.kernel_stamps {
            let before = buf.filled().len();
            let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
            if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
                this.arrival.set(Instant::now());
            }
            return polled;
        }
        let fd = this.inner.as_raw_fd();
        loop {
            match this.inner.poll_read_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            // SAFETY: recv writes at most `unfilled.len()` bytes into it; we then mark exactly the
            // bytes it reported as initialised and filled.
            let unfilled = unsafe { buf.unfilled_mut() };
            let slice =
                unsafe { &mut *(unfilled as *mut [std::mem::MaybeUninit<u8>] as *mut [u8]) };
            match this.inner.try_io(tokio::io::Interest::READABLE, || {
                strobe_sockstamp::recv(fd, slice)
            }) {
                Ok((n, age)) => {
                    let now = Instant::now();
                    if n > 0 {
                        this.arrival
                            .set(age.map_or(now, |a| now.checked_sub(a).unwrap_or(now)));
                    }
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for StampedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
