//! The C-ABI kernel entry points that generated code calls: one GEMM symbol per dtype (and
//! the profiling and bounds-violation callbacks of `CompileOptions::profile` / `checked`).
//! Input: matrix sizes, pointers and element strides; output: C written in place.
//!
//! Generated code only ever calls these names, so the implementation can be swapped: the JIT
//! binds them to the Rust functions below (the `matrixmultiply` crate, threaded); an object
//! file can link a `no_std` build of the same crate, or a Cranelift-generated GEMM.
//!
//! ```c
//! void netc_gemm_f32(int64_t m, int64_t k, int64_t n, float alpha,
//!                    const float* a, int64_t rsa, int64_t csa,   /* op(A): m × k */
//!                    const float* b, int64_t rsb, int64_t csb,   /* op(B): k × n */
//!                    float beta, float* c, int64_t rsc, int64_t csc);   /* C: m × n */
//! ```
//! computes C = alpha·A·B + beta·C, strides in elements (a transpose is a swap of strides);
//! C is not read when beta is 0. `netc_gemm_f64` is the same with double.

/// Symbol of the f32 GEMM.
pub const GEMM_F32: &str = "netc_gemm_f32";
/// Symbol of the f64 GEMM.
pub const GEMM_F64: &str = "netc_gemm_f64";

/// C = alpha·A·B + beta·C in f32, see the module documentation.
///
/// # Safety
/// The pointers and strides must describe valid m×k, k×n and m×n matrices; C must not
/// overlap A or B.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn netc_gemm_f32(
    m: i64,
    k: i64,
    n: i64,
    alpha: f32,
    a: *const f32,
    rsa: i64,
    csa: i64,
    b: *const f32,
    rsb: i64,
    csb: i64,
    beta: f32,
    c: *mut f32,
    rsc: i64,
    csc: i64,
) {
    if m <= 0 || n <= 0 {
        return;
    }
    let k = k.max(0) as usize;
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        matrixmultiply::sgemm(
            m as usize,
            k,
            n as usize,
            alpha,
            a,
            rsa as isize,
            csa as isize,
            b,
            rsb as isize,
            csb as isize,
            beta,
            c,
            rsc as isize,
            csc as isize,
        )
    }
}

/// C = alpha·A·B + beta·C in f64, see the module documentation.
///
/// # Safety
/// As for [`netc_gemm_f32`].
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn netc_gemm_f64(
    m: i64,
    k: i64,
    n: i64,
    alpha: f64,
    a: *const f64,
    rsa: i64,
    csa: i64,
    b: *const f64,
    rsb: i64,
    csb: i64,
    beta: f64,
    c: *mut f64,
    rsc: i64,
    csc: i64,
) {
    if m <= 0 || n <= 0 {
        return;
    }
    let k = k.max(0) as usize;
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        matrixmultiply::dgemm(
            m as usize,
            k,
            n as usize,
            alpha,
            a,
            rsa as isize,
            csa as isize,
            b,
            rsb as isize,
            csb as isize,
            beta,
            c,
            rsc as isize,
            csc as isize,
        )
    }
}

/// Symbol called after every kernel when compiled with `CompileOptions::profile`.
pub const PROFILE: &str = "netc_profile";

thread_local! {
    /// Time of the previous tick and seconds spent in each kernel so far, on this thread.
    static PROFILE_STATE: std::cell::RefCell<(std::time::Instant, Vec<f64>)> =
        std::cell::RefCell::new((std::time::Instant::now(), vec![]));
}

/// `kernel` has just finished (-1: the function starts): charge it the time since the last tick.
pub extern "C" fn netc_profile(kernel: i64) {
    PROFILE_STATE.with(|p| {
        let mut p = p.borrow_mut();
        let now = std::time::Instant::now();
        if let Ok(k) = usize::try_from(kernel) {
            if p.1.len() <= k {
                p.1.resize(k + 1, 0.0);
            }
            p.1[k] += (now - p.0).as_secs_f64();
        }
        p.0 = now;
    });
}

/// Seconds per kernel accumulated on this thread since the last call, and reset.
pub fn take_profile() -> Vec<f64> {
    PROFILE_STATE.with(|p| std::mem::take(&mut p.borrow_mut().1))
}

/// Symbol that bounds-checked code (`CompileOptions::checked`) calls instead of accessing
/// memory outside a buffer:
///
/// ```c
/// void netc_bounds_violation(int64_t kernel, int64_t buffer, int64_t offset, int64_t len);
/// ```
/// `buffer` is `codegen::kernel::Base::code`, `offset` the offending element offset from the
/// buffer's start and `len` its length in elements. The access itself is not performed.
pub const BOUNDS: &str = "netc_bounds_violation";

/// An access outside its buffer that checked code refused (see [`BOUNDS`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Violation {
    /// Index of the kernel in execution order.
    pub kernel: i64,
    /// `Base::code` of the buffer.
    pub buffer: i64,
    /// Offending element offset from the buffer's start (may be negative).
    pub offset: i64,
    /// The buffer's length in elements.
    pub len: i64,
    /// Violations reported on this thread since the last `take_violation`, this one included.
    pub count: u64,
}

thread_local! {
    /// The first violation reported on this thread since the last `take_violation`.
    static VIOLATION: std::cell::Cell<Option<Violation>> = const { std::cell::Cell::new(None) };
}

/// Record a refused access: the first one is kept, later ones are counted.
pub extern "C" fn netc_bounds_violation(kernel: i64, buffer: i64, offset: i64, len: i64) {
    let v = match VIOLATION.get() {
        Some(first) => Violation { count: first.count.saturating_add(1), ..first },
        None => Violation { kernel, buffer, offset, len, count: 1 },
    };
    VIOLATION.set(Some(v));
}

/// The first violation recorded on this thread since the last call, and reset.
pub fn take_violation() -> Option<Violation> {
    VIOLATION.take()
}

/// The symbols the JIT binds, with their addresses.
pub fn symbols() -> [(&'static str, *const u8); 4] {
    [
        (GEMM_F32, netc_gemm_f32 as *const u8),
        (GEMM_F64, netc_gemm_f64 as *const u8),
        (PROFILE, netc_profile as *const u8),
        (BOUNDS, netc_bounds_violation as *const u8),
    ]
}
