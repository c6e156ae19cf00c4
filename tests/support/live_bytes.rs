//! A counting global allocator: the bytes each thread holds on the heap, for tests that
//! count what caches leave behind. A test binary that includes this module installs it.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
};

/// Counts, per thread, the bytes allocated minus the bytes freed.
struct Counting;

thread_local! {
    /// Bytes allocated on this thread minus bytes freed on it.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn add(bytes: usize) {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let _ = LIVE.try_with(|n| n.set(n.get().wrapping_add_unsigned(bytes)));
}

fn sub(bytes: usize) {
    let _ = LIVE.try_with(|n| n.set(n.get().wrapping_sub_unsigned(bytes)));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the only
// addition is a thread-local counter that allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            add(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            add(layout.size());
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            sub(layout.size());
            add(new_size);
        }
        new
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        sub(layout.size());
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes allocated on this thread minus bytes freed on it, since it started.
pub fn live_bytes() -> isize {
    LIVE.with(Cell::get)
}
