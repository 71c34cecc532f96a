//! SIGINT and SIGTERM as ordinary events: blocked before any thread starts (threads inherit the
//! mask, so no store thread is interrupted) and then taken with `sigtimedwait`, which makes
//! "sleep until the next probe or until interrupted" one call, with no handler and no flag.

use std::time::{Duration, Instant};

pub struct Termination {
    set: libc::sigset_t,
}

impl Termination {
    /// Blocks SIGINT and SIGTERM in the calling thread and in every thread it starts later.
    /// Call it before starting threads.
    pub fn block() -> Termination {
        // SAFETY: a zeroed sigset_t is a valid argument to sigemptyset, which initialises it;
        // the set lives on this stack frame for every call below.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Termination { set }
        }
    }

    /// Waits until SIGINT or SIGTERM arrives (true) or `timeout` passes (false); `None` waits
    /// for the signal only.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let left = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    Some(left)
                }
                None => None,
            };
            let got = match left {
                Some(left) => {
                    let ts = libc::timespec {
                        tv_sec: left.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
                        tv_nsec: left.subsec_nanos() as libc::c_long,
                    };
                    // SAFETY: `self.set` is an initialised signal set; a null siginfo is allowed.
                    unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &ts) }
                }
                None => {
                    let mut sig: libc::c_int = 0;
                    // SAFETY: `self.set` is initialised and `sig` is a valid out-pointer.
                    match unsafe { libc::sigwait(&self.set, &mut sig) } {
                        0 => sig,
                        _ => -1,
                    }
                }
            };
            if got == libc::SIGINT || got == libc::SIGTERM {
                return true;
            }
            // Timeout (EAGAIN) ends the wait through the deadline check; EINTR from some other
            // signal just waits again.
        }
    }
}
