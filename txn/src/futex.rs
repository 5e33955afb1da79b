//! Sleeping on a 32-bit word, and waking every sleeper of a word with one
//! system call (Linux futexes).
//!
//! The write groups of [`crate::tracker`] use this to wake a whole group of
//! committers at once: `std::thread::Thread::unpark` costs one system call
//! per thread, and on a two-core machine every one of those calls can
//! preempt the waker in favour of the thread it woke, so a leader waking 30
//! committers was switched out up to 30 times. One `FUTEX_WAKE` wakes them
//! all and preempts the waker at most once, on its way out of the kernel.
//!
//! Contract: [`wait`] returns when the word no longer holds `expected`, when
//! woken, or spuriously; callers re-check their condition in a loop, and a
//! waker changes the word (or the condition the waiter checks after reading
//! the word) before calling [`wake_all`] or [`wake_one`]. On other systems
//! `wait` yields the processor instead of sleeping: correct, but it spins.

use std::sync::atomic::AtomicU32;

/// Sleeps while `word` holds `expected` (see the module contract).
#[cfg(target_os = "linux")]
pub fn wait(word: &AtomicU32, expected: u32) {
    // SAFETY: `word` is a live, aligned 32-bit atomic for the whole call
    // (the borrow outlives it); FUTEX_WAIT only reads it, atomically, and
    // the null timeout means "no timeout". Errors (EAGAIN when the word
    // changed, EINTR) are spurious returns, which the caller's loop absorbs.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

/// Wakes every thread sleeping on `word`.
pub fn wake_all(word: &AtomicU32) {
    wake(word, i32::MAX);
}

/// Wakes one thread sleeping on `word`.
pub fn wake_one(word: &AtomicU32) {
    wake(word, 1);
}

#[cfg(target_os = "linux")]
fn wake(word: &AtomicU32, count: i32) {
    // SAFETY: as in `wait`: the word is live and aligned for the call;
    // FUTEX_WAKE does not access it, it only wakes its sleepers.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            count,
        );
    }
}

#[cfg(not(target_os = "linux"))]
pub fn wait(word: &AtomicU32, expected: u32) {
    if word.load(std::sync::atomic::Ordering::Acquire) == expected {
        std::thread::yield_now();
    }
}

#[cfg(not(target_os = "linux"))]
fn wake(_word: &AtomicU32, _count: i32) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn wait_returns_at_once_when_the_word_already_changed() {
        let word = AtomicU32::new(1);
        wait(&word, 0); // would sleep forever if it compared wrongly
    }

    #[test]
    fn one_wake_releases_every_sleeper_and_none_before_it() {
        let word = Arc::new(AtomicU32::new(0));
        let released = Arc::new(AtomicUsize::new(0));
        let sleepers: Vec<_> = (0..8)
            .map(|_| {
                let (word, released) = (word.clone(), released.clone());
                std::thread::spawn(move || {
                    while word.load(Ordering::Acquire) == 0 {
                        wait(&word, 0);
                    }
                    released.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(released.load(Ordering::SeqCst), 0, "a sleeper left before the wake");
        word.store(1, Ordering::Release);
        wake_all(&word);
        for s in sleepers {
            s.join().unwrap();
        }
        assert_eq!(released.load(Ordering::SeqCst), 8);
    }

    #[test]
    fn wake_one_releases_a_single_sleeper() {
        let word = Arc::new(AtomicU32::new(0));
        let sleeper = {
            let word = word.clone();
            std::thread::spawn(move || {
                while word.load(Ordering::Acquire) == 0 {
                    wait(&word, 0);
                }
            })
        };
        std::thread::sleep(Duration::from_millis(10));
        word.store(1, Ordering::Release);
        wake_one(&word);
        sleeper.join().unwrap();
    }
}
