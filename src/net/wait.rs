//! Waiting on one descriptor with a timeout: the few lines every thread here needs.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};

/// `d` as the kernel's time span (saturating: a huge timeout waits for ever, in effect).
pub(crate) fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: d.subsec_nanos().into(),
    }
}

/// Waits up to `timeout` (zero: just looks) for `fd` to be readable, or hung up; true if it is.
pub(crate) fn readable(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let mut fds = [PollFd::from_borrowed_fd(
        fd,
        PollFlags::IN | PollFlags::RDHUP,
    )];
    matches!(rustix::event::poll(&mut fds, Some(&timespec(timeout))), Ok(n) if n > 0)
}
