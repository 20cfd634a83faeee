//! Memory a push took, handed back to the operating system once no push is in flight.
//!
//! A JSON push is parsed into values before it is typed: three to four times its body in memory
//! for a moment (docs/push.md). glibc's allocator keeps what was freed in its per-thread
//! arenas for reuse, so a server that took four large pushes at once stayed at their peak
//! (1.4 GB resident for 4 × 36 MB pushes, measured in benches/README.md). When the last push
//! in flight whose body was at least [`LARGE_PUSH_BYTES`] ends, `malloc_trim` returns the free
//! pages of every arena, on a blocking thread. Other allocators and
//! platforms do nothing here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A push with a body this large (or larger) triggers the hand-back when it is the last in flight.
pub(crate) const LARGE_PUSH_BYTES: u64 = 1 << 20;

/// A push's share of the push memory budget, held from before its body is read until it is
/// answered.
pub(crate) struct PushShare {
    permit: Option<OwnedSemaphorePermit>,
    budget: Arc<Semaphore>,
    /// The budget's permits when no push holds any.
    total: usize,
    large: bool,
}

impl PushShare {
    pub(crate) fn new(permit: OwnedSemaphorePermit, budget: &Arc<Semaphore>, total: usize, body_bytes: u64) -> Self {
        PushShare {
            permit: Some(permit),
            budget: Arc::clone(budget),
            total,
            large: body_bytes >= LARGE_PUSH_BYTES,
        }
    }
}

impl Drop for PushShare {
    fn drop(&mut self) {
        drop(self.permit.take());
        if self.large && self.budget.available_permits() >= self.total {
            release_to_os();
        }
    }
}

/// Returns free heap pages to the OS, off the runtime's workers. A trim queued and not yet
/// started covers this call too, so trims never pile up, and the last push's memory is never
/// left out (a clock-based limit skipped the trim of a push that ended in the same second as
/// the one before).
fn release_to_os() {
    static QUEUED: AtomicBool = AtomicBool::new(false);
    if QUEUED.swap(true, Ordering::AcqRel) {
        return;
    }
    #[cfg(test)]
    tests::RELEASES.fetch_add(1, Ordering::SeqCst);
    let run = || {
        QUEUED.store(false, Ordering::Release);
        trim();
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(run)),
        Err(_) => run(),
    }
}

/// glibc's allocator keeps the memory a thread freed in that thread's arena, and a server
/// has many threads (shards, blocking threads that parse pushes): the arenas a round of large
/// pushes left behind stayed resident after the trim, and the next round grew new ones
/// (benches/README.md, `bench-push-memory`: 202–280 MiB three seconds after four 56 MiB
/// pushes, 73–126 MiB with two arenas). Two arenas, unless the operator set
/// `MALLOC_ARENA_MAX` (glibc reads it at start and it stays in force). Call before the
/// server's threads start.
pub(crate) fn limit_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        set_arena_max(2);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_arena_max(arenas: i32) {
    // SAFETY: mallopt only sets a parameter of the allocator, under its own lock.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_: i32) {}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: malloc_trim only walks the allocator's own arenas under their locks; 0 keeps
    // no padding at the top of the heap.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) static RELEASES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    /// Memory goes back when the last large push in flight ends: not while another push
    /// holds budget, and not for small pushes.
    #[tokio::test]
    async fn the_last_large_push_hands_memory_back() {
        let budget = Arc::new(Semaphore::new(1000));
        let share = |kib: u32, bytes: u64| {
            let permit = Arc::clone(&budget).try_acquire_many_owned(kib).unwrap();
            PushShare::new(permit, &budget, 1000, bytes)
        };
        let (large, small) = (share(100, LARGE_PUSH_BYTES), share(1, LARGE_PUSH_BYTES - 1));
        drop(large);
        assert_eq!(RELEASES.load(Ordering::SeqCst), 0, "a push is still in flight");
        drop(small);
        assert_eq!(RELEASES.load(Ordering::SeqCst), 0, "the last push was small");
        drop(share(100, LARGE_PUSH_BYTES));
        assert_eq!(RELEASES.load(Ordering::SeqCst), 1, "the last large push ended");
    }
}
