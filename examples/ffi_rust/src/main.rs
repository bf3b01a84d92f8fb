//! Train the CS231n spiral classifier from Rust by calling the object file that
//! `netc build examples/spiral.net` wrote: the Rust side owns every buffer, the object
//! computes. The declarations below mirror `spiral_net.h`.

use std::os::raw::c_void;

const NUM_PARAMS: usize = 4;
const PARAM_SIZES: [usize; NUM_PARAMS] = [200, 100, 300, 3]; // spiral_net_param_sizes
const X_ROW: usize = 2;
const CLASSES: usize = 3;

extern "C" {
    fn spiral_net_init_params(params: *const *mut f32);
    fn spiral_net_train_step(
        batch: i64,
        x: *const f32,
        labels: *const f32,
        lr: f32,
        params: *const *mut f32,
        loss: *mut f32,
        workspace: *mut c_void,
    );
    fn spiral_net_train_step_workspace_size(batch: i64) -> i64;
    fn spiral_net_forward(
        batch: i64,
        x: *const f32,
        params: *const *const f32,
        scores: *mut f32,
        workspace: *mut c_void,
    );
    fn spiral_net_forward_workspace_size(batch: i64) -> i64;
}

/// A workspace: the ABI asks for 64-byte alignment.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u8; 64]);

fn workspace(bytes: i64) -> Vec<Line> {
    vec![Line([0; 64]); (bytes as usize).div_ceil(64)]
}

/// The lecture's spiral: `points` per class, three arms, a little noise (a fixed LCG).
fn spiral(points: usize) -> (Vec<f32>, Vec<f32>) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut noise = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 0.4
    };
    let (mut x, mut y) = (vec![], vec![]);
    for class in 0..CLASSES {
        for i in 0..points {
            let r = i as f32 / points as f32;
            let t = class as f32 * 4.0 + 4.0 * r + noise();
            x.extend([r * t.sin(), r * t.cos()]);
            y.push(class as f32);
        }
    }
    (x, y)
}

fn main() {
    let (x, labels) = spiral(100);
    let n = labels.len();
    let mut params: Vec<Vec<f32>> = PARAM_SIZES.iter().map(|&s| vec![0.0; s]).collect();
    let table: Vec<*mut f32> = params.iter_mut().map(|p| p.as_mut_ptr()).collect();
    let mut loss = 0.0f32;
    // SAFETY: every pointer covers the sizes the header gives, and the buffers outlive the calls.
    unsafe {
        spiral_net_init_params(table.as_ptr());
        let mut ws = workspace(spiral_net_train_step_workspace_size(n as i64));
        for step in 0..2000 {
            let ws = ws.as_mut_ptr().cast();
            spiral_net_train_step(n as i64, x.as_ptr(), labels.as_ptr(), 1.0, table.as_ptr(), &mut loss, ws);
            if step % 500 == 0 {
                println!("step {step:4}: loss {loss:.4}");
            }
        }
    }
    let mut scores = vec![0.0f32; n * CLASSES];
    let readonly: Vec<*const f32> = table.iter().map(|&p| p as *const f32).collect();
    // SAFETY: as above.
    unsafe {
        let mut ws = workspace(spiral_net_forward_workspace_size(n as i64));
        spiral_net_forward(n as i64, x.as_ptr(), readonly.as_ptr(), scores.as_mut_ptr(), ws.as_mut_ptr().cast());
    }
    let correct = scores
        .chunks(CLASSES)
        .zip(&labels)
        .filter(|(s, &y)| {
            let best = (0..CLASSES).max_by(|&a, &b| s[a].total_cmp(&s[b])).unwrap();
            best == y as usize
        })
        .count();
    println!("final loss {loss:.4}, training accuracy {:.3}", correct as f32 / n as f32);
}
