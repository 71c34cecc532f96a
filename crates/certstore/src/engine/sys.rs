//! The few Linux calls the engine makes: inotify, an eventfd to wake the watch thread, poll.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What the engine asks inotify to report for a watched directory: completed writes, renames
/// in and out, creations and deletions (names in the directory), attribute changes (a file made
/// readable again), and the directory itself going away.
pub(crate) const WATCH_MASK: u32 = libc::IN_CLOSE_WRITE
    | libc::IN_MOVED_TO
    | libc::IN_MOVED_FROM
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_ATTRIB
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR;

pub(crate) fn inotify_init() -> io::Result<OwnedFd> {
    // SAFETY: inotify_init1 takes flags only and returns a new descriptor or -1.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a descriptor we own from here on; nothing else closes it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn add_watch(fd: &OwnedFd, dir: &Path) -> io::Result<i32> {
    let path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `fd` is a live inotify descriptor and `path` a NUL-terminated string that
    // outlives the call.
    let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), WATCH_MASK) };
    if wd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(wd)
}

pub(crate) fn rm_watch(fd: &OwnedFd, wd: i32) {
    // SAFETY: removing a watch descriptor, valid or stale, only returns an error code.
    unsafe { libc::inotify_rm_watch(fd.as_raw_fd(), wd) };
}

pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes an initial value and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a descriptor we own from here on.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn wake(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to an eventfd; a full counter (EAGAIN) already
    // means "awake".
    unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

pub(crate) fn drain_wake(fd: RawFd) {
    let mut value: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live u64 from a non-blocking eventfd.
    unsafe { libc::read(fd, (&mut value as *mut u64).cast(), 8) };
}

/// Waits until `wake` or `inotify` (when there is one) is readable, or `timeout_ms` passed
/// (-1: no timeout). Returns which of the two are readable. Allocates nothing: it runs once per
/// wake-up of the watch thread.
pub(crate) fn poll_readable(wake: RawFd, inotify: Option<RawFd>, timeout_ms: i32) -> (bool, bool) {
    let pollfd = |fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let mut pfds = [pollfd(wake), pollfd(inotify.unwrap_or(-1))];
    let count = if inotify.is_some() { 2 } else { 1 };
    // SAFETY: `pfds` is a live array of at least `count` pollfd structs.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), count, timeout_ms) };
    if n <= 0 {
        return (false, false);
    }
    (pfds[0].revents != 0, pfds[1].revents != 0)
}

/// A buffer aligned for `struct inotify_event`.
#[repr(C, align(8))]
pub(crate) struct EventBuffer(pub [u8; 64 * 1024]);

/// One event read from inotify.
pub(crate) struct RawEvent<'a> {
    pub wd: i32,
    pub mask: u32,
    pub name: Option<&'a OsStr>,
}

impl RawEvent<'_> {
    /// The event the kernel queues after it dropped events.
    pub fn overflow() -> RawEvent<'static> {
        RawEvent {
            wd: -1,
            mask: libc::IN_Q_OVERFLOW,
            name: None,
        }
    }
}

/// Reads what is queued on a non-blocking inotify descriptor into `buf` and returns the
/// events; empty when nothing is queued.
pub(crate) fn read_events<'a>(fd: RawFd, buf: &'a mut EventBuffer) -> Vec<RawEvent<'a>> {
    // SAFETY: reads at most `buf.0.len()` bytes into the live buffer.
    let n = unsafe { libc::read(fd, buf.0.as_mut_ptr().cast(), buf.0.len()) };
    if n <= 0 {
        return Vec::new();
    }
    let bytes = &buf.0[..n as usize];
    let header = std::mem::size_of::<libc::inotify_event>();
    let mut events = Vec::new();
    let mut at = 0;
    while at + header <= bytes.len() {
        // SAFETY: `at + header <= len`, so a whole header is in bounds; read_unaligned makes no
        // alignment assumption.
        let ev: libc::inotify_event =
            unsafe { std::ptr::read_unaligned(bytes[at..].as_ptr().cast()) };
        let name_start = at + header;
        let name_end = (name_start + ev.len as usize).min(bytes.len());
        let name = (ev.len > 0).then(|| {
            let raw = &bytes[name_start..name_end];
            // The kernel pads the name with NULs.
            let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            OsStr::from_bytes(&raw[..len])
        });
        events.push(RawEvent {
            wd: ev.wd,
            mask: ev.mask,
            name,
        });
        at = name_end;
    }
    events
}
