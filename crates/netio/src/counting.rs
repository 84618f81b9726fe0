//! A counting global allocator for tests: wraps [`System`] and counts, per thread, the
//! allocations made and the net heap bytes held while counting is switched on. Per thread,
//! so the test harness's other threads (other tests, output capture) do not disturb a
//! measurement.
//!
//! It lives here because a `GlobalAlloc` impl needs `unsafe`, which the workspace keeps in
//! this crate. A test installs it with
//! `#[global_allocator] static A: switchyard_netio::counting::Counting = switchyard_netio::counting::Counting;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The allocator; install it as the test binary's `#[global_allocator]`.
pub struct Counting;

/// What was counted on this thread.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls to `alloc`, `alloc_zeroed` and `realloc`.
    pub allocs: u64,
    /// Calls to `dealloc`.
    pub frees: u64,
    /// Bytes requested minus bytes released (realloc counts the difference).
    pub net_bytes: i64,
}

thread_local! {
    // const-initialised and without a destructor: reading it never allocates.
    static ON: Cell<bool> = const { Cell::new(false) };
    static COUNTS: Cell<Counts> = const {
        Cell::new(Counts { allocs: 0, frees: 0, net_bytes: 0 })
    };
}

fn record(allocs: u64, frees: u64, bytes: i64) {
    let _ = ON.try_with(|on| {
        if on.get() {
            let _ = COUNTS.try_with(|c| {
                let mut v = c.get();
                v.allocs += allocs;
                v.frees += frees;
                v.net_bytes += bytes;
                c.set(v);
            });
        }
    });
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the `GlobalAlloc`
// contract; the bookkeeping only touches const-initialised thread-locals and never
// allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(1, 0, layout.size() as i64);
        // SAFETY: same layout as the caller's, forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(1, 0, layout.size() as i64);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        record(0, 1, -(layout.size() as i64));
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(1, 0, new_size as i64 - layout.size() as i64);
        // SAFETY: `ptr` came from `System` with `layout`; the caller guarantees `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Start counting on this thread from zero.
pub fn start() {
    COUNTS.with(|c| c.set(Counts::default()));
    ON.with(|on| on.set(true));
}

/// Stop counting on this thread and return what was counted since [`start`].
pub fn stop() -> Counts {
    ON.with(|on| on.set(false));
    COUNTS.with(|c| c.get())
}

/// What has been counted so far, without stopping.
pub fn peek() -> Counts {
    COUNTS.with(|c| c.get())
}
