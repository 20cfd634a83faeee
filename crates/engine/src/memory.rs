//! The memory pool behind `--memory-limit`.
//!
//! DataFusion 55's `RepartitionExec` spills batches it cannot reserve to a spill pool, and
//! that pool can deadlock: with two input tasks spilling at once it holds two open files,
//! its reader waits on the older one while the batch it needs sits in the newer one, and
//! the repartition gate parks the writers too. Every thread parks at 0 % CPU, forever
//! (apache/datafusion#24883, fixed upstream after 55.2; no release here has the fix).
//!
//! [`BoundedPool`] keeps that path from ever being taken: a `RepartitionExec` reservation
//! always succeeds (it is still counted, so every other consumer sees the memory as used),
//! so repartitioning never spills. The price: repartition buffers are not bounded by the
//! limit (DataFusion's channel gate holds them back while consumers lag, but nothing caps
//! them). The memory that grows with the data is the as-of join's, which reserves what it
//! holds, spills by key when the pool is short, and fails with a "needs at least" error
//! when even that cannot fit. A memory limit then ends in a result or an error, never a hang
//! (`crates/offline/tests/it/memory_limits.rs` hangs within seconds on the stock pool).

use std::fmt;
use std::num::NonZeroUsize;

use datafusion::common::Result;
use datafusion::execution::memory_pool::{
    GreedyMemoryPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, TrackConsumersPool,
};

/// A greedy pool of `limit` bytes in which repartitioning never spills (see the module docs).
#[derive(Debug)]
pub struct BoundedPool {
    inner: TrackConsumersPool<GreedyMemoryPool>,
}

impl BoundedPool {
    pub fn new(limit: usize) -> Self {
        BoundedPool {
            inner: TrackConsumersPool::new(GreedyMemoryPool::new(limit), NonZeroUsize::MIN.saturating_add(4)),
        }
    }
}

impl fmt::Display for BoundedPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BoundedPool({})", self.inner)
    }
}

/// Consumers whose failed reservations lead into DataFusion 55's deadlocking spill pool.
fn never_refused(consumer: &MemoryConsumer) -> bool {
    consumer.name().starts_with("RepartitionExec")
}

impl MemoryPool for BoundedPool {
    fn name(&self) -> &str {
        "BoundedPool"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.inner.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.inner.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        if never_refused(reservation.consumer()) {
            self.inner.grow(reservation, additional);
            Ok(())
        } else {
            self.inner.try_grow(reservation, additional)
        }
    }

    fn reserved(&self) -> usize {
        self.inner.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.inner.memory_limit()
    }
}
