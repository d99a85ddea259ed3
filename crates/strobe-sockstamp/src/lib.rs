//! Kernel receive timestamps for TCP sockets.
//!
//! A user-space timestamp taken after `read` returns includes however long the reading task waited
//! to be scheduled; under load (a thousand streams on two cores) that wait is milliseconds, and it
//! is the measuring tool's own delay, not the server's. Linux can instead report when the kernel
//! received the bytes (`SO_TIMESTAMPNS`, supported for TCP since 4.13: the stamp of the last
//! segment a `recvmsg` consumed). This crate enables that and reads data together with the stamp.
//!
//! The kernel stamp is on `CLOCK_REALTIME`; callers need it on their monotonic clock. Rather than
//! map clocks, [`recv`] returns the *age* of the data (realtime now − kernel stamp, taken right
//! after the call), which callers subtract from their own monotonic "now". A clock step between
//! the two realtime readings is the only error source; ages outside 0..10 s are discarded.
//!
//! Elsewhere than Linux, or when the kernel gives no stamp, `recv` is a plain read with no age
//! (callers then fall back to their own clock). Linux enables receive stamping lazily the first
//! time any socket asks, so a process's very first segments may arrive unstamped.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Ages beyond this are treated as a clock step and ignored.
const MAX_AGE: Duration = Duration::from_secs(10);

/// Asks the kernel to stamp received data on this socket. Returns whether it agreed.
pub fn enable(fd: RawFd) -> bool {
    #[cfg(target_os = "linux")]
    {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt with a valid pointer to a c_int of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        rc == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = fd;
        false
    }
}

/// Reads into `buf` without blocking (the socket must be non-blocking); returns the byte count and,
/// when the kernel stamped the data, how long ago it arrived.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<Duration>)> {
    #[cfg(target_os = "linux")]
    {
        // u64 storage keeps the control buffer aligned for cmsghdr.
        let mut control = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: zeroed msghdr is valid; we point it at our iovec and control buffer, both alive
        // for the duration of the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: fd is a socket owned by the caller; msg is initialised above.
        let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let now = realtime_ns();
        let mut age = None;
        // SAFETY: the CMSG_* helpers walk the control buffer the kernel filled, within
        // msg_controllen.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET
                    && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
                {
                    let ts =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::timespec);
                    let stamp = ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128;
                    let diff = now - stamp;
                    if diff >= 0 && diff < MAX_AGE.as_nanos() as i128 {
                        age = Some(Duration::from_nanos(diff as u64));
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        Ok((n as usize, age))
    }
    #[cfg(not(target_os = "linux"))]
    {
        // SAFETY: plain non-blocking read into a buffer we own.
        let n = unsafe {
            libc::recv(
                fd,
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((n as usize, None))
    }
}

fn realtime_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn data_that_waited_reports_its_age() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let stamped = enable(server.as_raw_fd());
        let mut buf = [0u8; 16];
        // The kernel turns receive stamping on lazily (a deferred static key) the first time any
        // socket asks, so the very first segments may come unstamped: allow a few attempts.
        let mut age = None;
        for _ in 0..10 {
            client.write_all(b"hello").unwrap();
            std::thread::sleep(Duration::from_millis(30));
            let (n, a) = recv(server.as_raw_fd(), &mut buf).unwrap();
            assert_eq!(&buf[..n], b"hello");
            age = a;
            if age.is_some() || !cfg!(target_os = "linux") {
                break;
            }
        }
        if cfg!(target_os = "linux") {
            assert!(stamped);
            let age = age.expect("Linux stamps TCP data");
            assert!(
                age >= Duration::from_millis(29) && age < Duration::from_secs(2),
                "{age:?}"
            );
        }
        // Nothing more to read: a non-blocking error, not a hang.
        let e = recv(server.as_raw_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    }
}
