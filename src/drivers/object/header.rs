//! The C header of an object file: the functions' prototypes, the parameter tables, a size
//! macro per input and output, and the train block's learning rate as an inline function.
//! Every identifier taken from a tensor name goes through `CNames`, which hands them out
//! injectively (docs/abi.md).

use std::fmt::Write as _;

use super::{c_name, Arg, Entry, Model};
use crate::frontend::checked::{Optimizer, Schedule, TrainDecl};
use crate::ir::graph::{DType, Dim, Graph, ParamKind, Shape};

/// A shape as the source writes it: `[B, 2]`.
fn shape_text(g: &Graph, shape: &Shape) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| match d {
            Dim::Known(n) => n.to_string(),
            Dim::Sym(s) => g.symbols[s.0 as usize].clone(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

/// `#define P_NAME_ROW k` (elements per batch row) or `P_NAME_SIZE n` (no batch dimension).
fn size_macro(out: &mut String, macros: &mut CNames, upper: &str, name: &str, g: &Graph, shape: &Shape) {
    let known: usize = shape.iter().filter_map(|d| d.known()).product();
    let syms = shape.iter().filter(|d| d.known().is_none()).count();
    let id = c_name(name).to_uppercase();
    let text = shape_text(g, shape);
    match syms {
        0 => {
            let m = macros.claim(format!("{upper}_{id}_SIZE"));
            _ = writeln!(out, "#define {m} {known} /* {name}: {text} */")
        }
        1 => {
            let m = macros.claim(format!("{upper}_{id}_ROW"));
            _ = writeln!(out, "#define {m} {known} /* {name}: {text}, elements per batch row */")
        }
        _ => _ = writeln!(out, "/* {name}: {text} */"),
    }
}

/// Identifiers a parameter name must not take: C99's keywords, the types and macros of the
/// headers the generated header includes (`stdint.h`, `math.h`), and the wrappers' fixed
/// parameter names.
const RESERVED: &[&str] = &[
    "auto",
    "break",
    "case",
    "char",
    "const",
    "continue",
    "default",
    "do",
    "double",
    "else",
    "enum",
    "extern",
    "float",
    "for",
    "goto",
    "if",
    "inline",
    "int",
    "long",
    "register",
    "restrict",
    "return",
    "short",
    "signed",
    "sizeof",
    "static",
    "struct",
    "switch",
    "typedef",
    "union",
    "unsigned",
    "void",
    "volatile",
    "while",
    "_Bool",
    "_Complex",
    "_Imaginary",
    "bool",
    "true",
    "false",
    "int8_t",
    "int16_t",
    "int32_t",
    "int64_t",
    "uint8_t",
    "uint16_t",
    "uint32_t",
    "uint64_t",
    "intptr_t",
    "uintptr_t",
    "intmax_t",
    "uintmax_t",
    "size_t",
    "ptrdiff_t",
    "float_t",
    "double_t",
    "NULL",
    "HUGE_VAL",
    "HUGE_VALF",
    "HUGE_VALL",
    "INFINITY",
    "NAN",
    "FP_INFINITE",
    "FP_NAN",
    "FP_NORMAL",
    "FP_SUBNORMAL",
    "FP_ZERO",
    "FP_FAST_FMA",
    "FP_FAST_FMAF",
    "FP_FAST_FMAL",
    "FP_ILOGB0",
    "FP_ILOGBNAN",
    "MATH_ERRNO",
    "MATH_ERREXCEPT",
    "math_errhandling",
    "fpclassify",
    "isfinite",
    "isinf",
    "isnan",
    "isnormal",
    "signbit",
    "isgreater",
    "isgreaterequal",
    "isless",
    "islessequal",
    "islessgreater",
    "isunordered",
    "errno",
    "batch",
    "params",
    "state",
    "loss",
    "grads",
    "workspace",
    "seed",
    "step",
];

/// The C identifiers of one header, handed out injectively: a tensor keeps its natural name
/// (`dense_1.W` -> `dense_1_W`) unless that is taken, by a fixed identifier or by another
/// tensor whose name maps to the same one (`dense_1_W` beside `dense_1.W`, `W` beside `w`
/// once upper-cased for a macro); then it gets the first free `_2`, `_3`, ... suffix. Each
/// macro's comment names its tensor, so the suffixed one can be told apart.
#[derive(Default)]
struct CNames {
    used: std::collections::HashSet<String>,
}

impl CNames {
    /// Claim `name` exactly (a fixed identifier of the header).
    fn reserve(&mut self, name: String) -> String {
        self.used.insert(name.clone());
        name
    }

    /// `natural`, or the first `natural_K` not yet used; claimed.
    fn claim(&mut self, natural: String) -> String {
        let mut candidate = natural.clone();
        let mut k = 2;
        while self.used.contains(&candidate) {
            candidate = format!("{natural}_{k}");
            k += 1;
        }
        self.reserve(candidate)
    }
}

pub(super) fn header(m: &Model, entries: &[Entry], source: &str) -> String {
    let p = &m.prefix;
    let upper = p.to_uppercase();
    let t = match m.dtype {
        DType::F32 => "float",
        DType::F64 => "double",
    };
    let g = m.forward;
    // Macros share the preprocessor's one namespace: the fixed ones first, then each tensor's.
    let mut macros = CNames::default();
    for fixed in ["H", "NUM_PARAMS", "PARAM_ELEMENTS", "NUM_STATE", "BATCH"] {
        macros.reserve(format!("{upper}_{fixed}"));
    }
    let sig =
        |items: Vec<(String, String)>| items.iter().map(|(n, s)| format!("{n}: {s}")).collect::<Vec<_>>().join(", ");
    let ins = sig(g.inputs.iter().map(|i| (i.name.clone(), shape_text(g, &i.shape))).collect());
    let outs = sig(g.outputs.iter().map(|(n, id)| (n.clone(), shape_text(g, g.shape(*id)))).collect());
    let batch = g.symbols.first().map_or("B".to_string(), |s| s.clone());
    let mut h = String::new();
    let _ = write!(
        h,
        "/* {p}.h: the C API of the object file `netc build` compiled from {source}\n\
         \x20* (netc {version}). Generated: do not edit.\n\
         \x20*\n\
         \x20* model {name}({ins}) -> {outs}\n\
         \x20*\n\
         \x20* Tensors are dense row-major arrays of {t}; {batch} is the batch size, passed at run time.\n\
         \x20* The caller allocates every buffer (parameters, inputs, outputs, workspace); the\n\
         \x20* functions allocate nothing and keep no state, so calls with separate workspaces and\n\
         \x20* outputs may run on several threads at once. Buffers must not overlap. See docs/abi.md.\n\
         \x20*\n\
         \x20* Link: cc main.c {p}.o -lm\n\
         \x20*/\n\
         #ifndef {upper}_H\n#define {upper}_H\n\n#include <stdint.h>\n",
        version = env!("CARGO_PKG_VERSION"),
        name = m.name,
    );
    if m.train.is_some() {
        h.push_str("#include <math.h>\n");
    }
    h.push_str("\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");

    // Parameters.
    let n = m.params.len();
    let _ = writeln!(h, "/* Parameters: pass them as a table `{t} *params[{upper}_NUM_PARAMS]`, in this order. */");
    let state = m.forward.params.iter().filter(|p| p.kind == ParamKind::State).count();
    if state > 0 {
        let _ = writeln!(
            h,
            "/* The table holds the model's state too ({p}_param_trainable[i] == 0: running statistics):\n\
             \x20* {p}_train_step updates it by its rule (not by gradients), {p}_forward reads it. */"
        );
    }
    let _ = writeln!(h, "#define {upper}_NUM_PARAMS {n}");
    let total: usize = m.params.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
    let _ = writeln!(h, "#define {upper}_PARAM_ELEMENTS {total} /* all parameters together */");
    for (i, (name, shape)) in m.params.iter().enumerate() {
        let size: usize = shape.iter().product();
        let id = macros.claim(format!("{upper}_PARAM_{}", c_name(name).to_uppercase()));
        let _ = writeln!(h, "#define {id} {i} /* {name}: {shape:?}, {size} elements */");
    }
    tensor_tables(&mut h, p, "param", &m.params, n);
    if n > 0 {
        let flags: Vec<&str> =
            m.forward.params.iter().map(|q| if q.kind == ParamKind::Trainable { "1" } else { "0" }).collect();
        let _ = writeln!(h, "static const int {p}_param_trainable[{n}] = {{{}}};", flags.join(", "));
    }
    let _ = writeln!(
        h,
        "/* Write the initial parameters into params[0..{upper}_NUM_PARAMS): {}. */\n\
         void {p}_init_params({t} *const *params);\n",
        m.origin
    );

    // Optimizer state.
    if let Some(train) = m.train {
        let optimizer = match train.optimizer {
            Optimizer::Sgd { .. } => "sgd keeps no state",
            Optimizer::Momentum { .. } => "momentum: one velocity per parameter",
            Optimizer::Adam { .. } => "adam: the step count, then first and second moments per parameter",
        };
        let _ = writeln!(
            h,
            "/* Optimizer state of {p}_train_step ({optimizer}), a table like params (the model's own\n\
             \x20* state, if any, is in params). */"
        );
        let _ = writeln!(h, "#define {upper}_NUM_STATE {}", m.state.len());
        if !m.state.is_empty() {
            tensor_tables(&mut h, p, "state", &m.state, m.state.len());
            let _ = writeln!(
                h,
                "/* Zero the optimizer state (before the first step). */\nvoid {p}_init_state({t} *const *state);"
            );
        }
        h.push('\n');
    }

    // Inputs and outputs of each function: one size macro per distinct tensor (an input and
    // an output of the same name, or the same name with another shape, are distinct).
    let mut described = std::collections::HashSet::new();
    let mut texts = vec![];
    for e in entries {
        let eg = &e.graph;
        let mut text = format!("/* {p}_{}: {} */\n", e.what, e.doc);
        for a in &e.args {
            let (role, name, shape) = match a {
                Arg::Input { index, .. } | Arg::Scalar { index, .. } => {
                    ("input", &eg.inputs[*index].name, &eg.inputs[*index].shape)
                }
                Arg::Output { index, .. } => ("output", &eg.outputs[*index].0, eg.shape(eg.outputs[*index].1)),
                _ => continue,
            };
            if matches!(a, Arg::Scalar { .. }) {
                continue;
            }
            if described.insert((role, name.clone(), shape_text(eg, shape))) {
                size_macro(&mut text, &mut macros, &upper, name, eg, shape);
            }
        }
        texts.push(text);
    }
    for (e, text) in entries.iter().zip(texts) {
        h.push_str(&text);
        // Parameter names: the fixed ones, then each tensor's, clear of keywords, of the
        // included headers' names, of every macro above and of each other.
        let mut names = CNames::default();
        for r in RESERVED.iter().copied().chain(macros.used.iter().map(String::as_str)) {
            names.reserve(r.to_string());
        }
        let params: Vec<String> = e
            .args
            .iter()
            .map(|a| match a {
                Arg::Batch => "int64_t batch".to_string(),
                Arg::Input { name, .. } => format!("const {t} *{}", names.claim(c_name(name))),
                Arg::Scalar { name, .. } => format!("{t} {}", names.claim(c_name(name))),
                Arg::RandomKey { .. } => "uint64_t seed, uint64_t step".to_string(),
                Arg::Params { name, writable: true, .. } => format!("{t} *const *{name}"),
                Arg::Params { name, writable: false, .. } => format!("const {t} *const *{name}"),
                Arg::Output { name, .. } if name == "loss" && e.what != "forward" => format!("{t} *loss"),
                Arg::Output { name, .. } => format!("{t} *{}", names.claim(c_name(name))),
                Arg::Outputs { name, .. } => format!("{t} *const *{name}"),
                Arg::Workspace => "void *workspace".to_string(),
            })
            .collect();
        if e.args.iter().any(|a| matches!(a, Arg::RandomKey { .. })) {
            let _ = writeln!(
                h,
                "/* seed, step: the random numbers (dropout masks) of step `step` of a run seeded `seed`;\n\
                 \x20* netc run passes its seed and steps 0, 1, 2, ... */"
            );
        }
        let _ = writeln!(h, "void {p}_{}({});", e.what, params.join(", "));
        let _ = writeln!(
            h,
            "/* Bytes of workspace {p}_{} needs for this batch size (align it to 64 bytes). */\n\
             int64_t {p}_{}_workspace_size(int64_t batch);\n",
            e.what, e.what
        );
    }

    if let Some(train) = m.train {
        learning_rate(&mut h, p, &upper, train);
    }
    h.push_str("#ifdef __cplusplus\n}\n#endif\n\n");
    let _ = writeln!(h, "#endif /* {upper}_H */");
    h
}

/// `static const` tables of names, sizes and shapes of a list of tensors.
fn tensor_tables(h: &mut String, p: &str, kind: &str, tensors: &[(String, Vec<usize>)], n: usize) {
    if n == 0 {
        return;
    }
    let names: Vec<String> = tensors.iter().map(|(name, _)| format!("\"{name}\"")).collect();
    let sizes: Vec<String> = tensors.iter().map(|(_, s)| s.iter().product::<usize>().to_string()).collect();
    let ranks: Vec<String> = tensors.iter().map(|(_, s)| s.len().to_string()).collect();
    let max_rank = tensors.iter().map(|(_, s)| s.len()).max().unwrap_or(0).max(1);
    let shapes: Vec<String> = tensors
        .iter()
        .map(|(_, s)| {
            let dims: Vec<String> = s.iter().map(|d| d.to_string()).collect();
            format!("{{{}}}", if dims.is_empty() { "0".to_string() } else { dims.join(", ") })
        })
        .collect();
    let _ = writeln!(h, "static const char *const {p}_{kind}_names[{n}] = {{{}}};", names.join(", "));
    let _ = writeln!(h, "static const int64_t {p}_{kind}_sizes[{n}] = {{{}}};", sizes.join(", "));
    let _ = writeln!(h, "static const int {p}_{kind}_ranks[{n}] = {{{}}};", ranks.join(", "));
    let _ = writeln!(h, "static const int64_t {p}_{kind}_shapes[{n}][{max_rank}] = {{{}}};", shapes.join(", "));
}

/// The train block's settings and its learning rate schedule as an inline C function, so a C
/// training loop passes `lr` exactly as `netc run` does (Adam's bias correction is in the
/// step itself, from the step count in its state).
fn learning_rate(h: &mut String, p: &str, upper: &str, t: &TrainDecl) {
    let _ = writeln!(h, "/* The train block's settings. */");
    if let Some(batch) = t.batch {
        let _ = writeln!(h, "#define {upper}_BATCH {batch}");
    }
    let base = match t.optimizer {
        Optimizer::Sgd { lr } | Optimizer::Momentum { lr, .. } | Optimizer::Adam { lr, .. } => lr,
    };
    // The schedule runs over the steps after warmup: `s` of `n` (see training::optim).
    let scheduled = match t.schedule {
        Schedule::Constant => format!("{base:e}"),
        Schedule::Step { every, gamma } => {
            format!("{base:e} * pow({gamma:e}, (double)(s / {}))", every.max(1))
        }
        Schedule::Cosine { min_lr } => format!(
            "{min_lr:e} + 0.5 * ({base:e} - {min_lr:e}) * (1.0 + cos(3.14159265358979323846 * (double)s / (double)(n > 0 ? n : 1)))"
        ),
    };
    let warmup = t.warmup;
    let _ = writeln!(
        h,
        "/* The `lr` to pass to {p}_train_step at step `step` (0-based) of `total`: the file's\n\
         \x20* schedule{}. */\n\
         static inline double {p}_learning_rate(int64_t step, int64_t total) {{\n\
         \x20   const int64_t warmup = {warmup};\n\
         \x20   int64_t s = step < warmup ? 0 : step - warmup;\n\
         \x20   int64_t n = total > warmup ? total - warmup : 0;\n\
         \x20   double factor = step < warmup ? (double)(step + 1) / (double)warmup : 1.0;\n\
         \x20   (void)s; (void)n;\n\
         \x20   return ({scheduled}) * factor;\n\
         }}\n",
        if warmup > 0 { format!(" after {warmup} steps of linear warmup") } else { String::new() },
    );
}
