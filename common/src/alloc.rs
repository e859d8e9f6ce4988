//! Keeping a long-running process's memory near what it uses (glibc).
//!
//! glibc gives each thread that allocates an arena of its own (up to eight
//! per core) and returns freed memory to the system only from the top of
//! each heap. The server hashes, writes and reads transfers on blocking
//! threads, one after another on different threads, so every arena ends up
//! holding the free space of some earlier transfer: its resident memory
//! grew transfer after transfer while what it used stayed flat. The server
//! calls [`limit_arenas`] at start and [`trim`] when its last transfer
//! ends. Elsewhere (another C library) both do nothing.
//!
//! This and `sha256pair`'s SHA-NI calls are the only `unsafe` code in the
//! workspace (`.ci/run` checks).

/// Caps the number of malloc arenas at `n` (at least 1). Call before the
/// process starts threads.
pub fn limit_arenas(n: i32) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets an allocator parameter; M_ARENA_MAX
    // takes any positive count, and it is called before other threads
    // allocate.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, n.max(1));
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = n;
}

/// Returns the free memory of every arena to the system
/// (`malloc_trim(0)`): the pages of free chunks are released, what is in
/// use stays. Costs a walk over the heaps; call when a burst of work ends.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes the allocator's own locks and touches
    // only free memory; it is safe to call from any thread at any time.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}
