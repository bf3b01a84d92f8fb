//! The parallel-kernel symbol of the JIT: an elementwise, pooling or row kernel outlined by the
//! code generator into its own function, run over ranges of its outer items on the worker
//! pool.
//!
//! ```c
//! typedef void (*netc_range_fn)(const void* inputs, void* params, void* outputs,
//!                                const int64_t* dims, void* workspace, int64_t lo, int64_t hi);
//! void netc_parallel(netc_range_fn f, const void* inputs, void* params, void* outputs,
//!                    const int64_t* dims, void* workspace, int64_t items, int64_t work);
//! ```
//! `f(…, lo, hi)` computes items `lo..hi` of the kernel (planes of a pool, rows of a
//! log-softmax, outer rows or blocks of a map: `codegen::emit::Emitter::parallel_items`);
//! `work` is what the kernel costs in elements of the cheapest map (a map's elements times
//! `Expr::cost`), which sets how many threads are worth it.
//!
//! Why: between the GEMMs of a train step, the elementwise kernels, pools and softmaxes ran on
//! one thread while the other cores waited (AlexNet's max-pool gradients and ReLUs, a
//! transformer's GELU: 10–30% of a two-thread step).
//!
//! Determinism: each item writes only its own elements and reads nothing another item
//! writes, and an element's operations do not depend on the range it falls in (a map's
//! blocks are whole vectors), so the results are the same bits on any thread count.
//! Object files call the kernels inline, on one thread.

use crate::runtime::threads::Pool;

/// Symbol of the parallel kernel runner (one for both dtypes: the kernel knows its own).
pub const PARALLEL: &str = "netc_parallel";

/// An outlined kernel over items `lo..hi`: the five pointers of the program's ABI, then the range.
pub type RangeFn = unsafe extern "C" fn(*const u8, *mut u8, *mut u8, *const i64, *mut u8, i64, i64);

/// Fewest elements worth a thread of their own: about 10 µs of the cheapest map (below this,
/// handing a range to a spinning worker costs more than it saves).
pub const MIN_WORK: i64 = 1 << 15;

/// Fewest elements for which the call waits for parked workers to wake (tens of µs on a
/// virtual machine); smaller kernels use only the workers that are awake.
pub const WAKE_WORK: i64 = 1 << 18;

/// How many ranges `items` items of `work` elements in all are cut into on `threads` threads:
/// one per thread, fewer when a range would get less than [`MIN_WORK`] elements.
pub fn ranges(items: i64, work: i64, threads: usize) -> usize {
    let by_work = (work / MIN_WORK).max(1);
    (threads as i64).min(items).min(by_work).max(1) as usize
}

/// The kernel `f` over `items` items, cut into [`ranges`] on the global pool; see the module
/// documentation.
///
/// # Safety
/// `f` is a kernel of the program whose five arguments follow (valid for the whole call), and
/// its items are independent: for any cut of `0..items`, the ranges may run at once on
/// different threads.
pub unsafe extern "C" fn netc_parallel(
    f: RangeFn,
    inputs: *const u8,
    params: *mut u8,
    outputs: *mut u8,
    dims: *const i64,
    workspace: *mut u8,
    items: i64,
    work: i64,
) {
    let pool = POOL.with(|p| p.get()).unwrap_or_else(Pool::global);
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        parallel_on(
            pool,
            f,
            [inputs as usize, params as usize, outputs as usize, dims as usize, workspace as usize],
            items,
            work,
        )
    }
}

thread_local! {
    /// The pool of this thread's outlined kernels, if not the global one (`on_pool`).
    static POOL: std::cell::Cell<Option<&'static Pool>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with the outlined kernels it calls on this thread (through compiled code) on
/// `pool` instead of the global pool (tests: results must not depend on the thread count).
pub fn on_pool<R>(pool: &'static Pool, f: impl FnOnce() -> R) -> R {
    let before = POOL.with(|p| p.replace(Some(pool)));
    let result = f();
    POOL.with(|p| p.set(before));
    result
}

/// [`netc_parallel`] on a given pool, the five pointers as addresses (tests: results must not
/// depend on the thread count).
///
/// # Safety
/// As for [`netc_parallel`].
pub unsafe fn parallel_on(pool: &Pool, f: RangeFn, args: [usize; 5], items: i64, work: i64) {
    let call = |lo: i64, hi: i64| {
        let [i, p, o, d, w] = args;
        // SAFETY: the caller's contract: `f` may run any range of `0..items`.
        unsafe { f(i as *const u8, p as *mut u8, o as *mut u8, d as *const i64, w as *mut u8, lo, hi) }
    };
    let parts = ranges(items, work, pool.threads());
    if parts <= 1 {
        return call(0, items.max(0));
    }
    let edge = |r: usize| (items as i128 * r as i128 / parts as i128) as i64;
    let job = |r: usize| call(edge(r), edge(r + 1));
    if work >= WAKE_WORK {
        pool.run(parts, &job);
    } else {
        pool.run_awake(parts, &job);
    }
}
