//! `Loop`: the body's kernels inside one counted loop, with the loop's symbol bound to the
//! step's index while they are emitted.

use cranelift_codegen::ir::{InstBuilder, Value};

use super::Emitter;
use crate::codegen::builder::LoopBuilder;
use crate::codegen::kernel::Kernel;

impl Emitter<'_> {
    /// Make room for the step indices of `n` loops after the graph's symbols (their values
    /// exist only inside their loops).
    pub fn reserve_loop_symbols(&mut self, n: u32) {
        let zero = self.int(0);
        self.dims.extend(std::iter::repeat_n(zero, n as usize));
    }

    /// `for s in 0..count { dims[index] = t(s); body }`, t(s) = s or count − 1 − s. The body's
    /// kernels take the next ids (`kernel::preorder`); when profiling, each one's time, summed
    /// over the steps, is charged to it, and the loop's own id keeps the rest (the copies
    /// of the carries' new values are body kernels too).
    pub(super) fn emit_loop(&mut self, count: usize, index: u32, reverse: bool, body: &[Kernel]) {
        let n = self.int(count as i64);
        self.for_n(n, |e, s| {
            let t: Value = if reverse {
                let last = e.int(count as i64 - 1);
                e.b.ins().isub(last, s)
            } else {
                s
            };
            e.dims[index as usize] = t;
            for k in body {
                let id = e.kernel_index + 1;
                match (e.outlined_in_loops.get(&id), e.runner) {
                    (Some(&outlined), Some(runner)) => e.call_outlined(k, outlined, runner, true),
                    _ => e.kernel(k),
                }
                if let Some(f) = e.profile {
                    let id = e.int(id);
                    e.b.ins().call(f, &[id]);
                }
            }
        });
    }
}
