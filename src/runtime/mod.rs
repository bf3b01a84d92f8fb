//! What compiled code and training use at run time: the C symbols generated code calls
//! (`symbols`: GEMM, convolution, profiling and bounds callbacks), the worker pool
//! (`threads`), the seeded generator (`rng`), initial parameters (`params`), weight files
//! (`weights`, safetensors), data sets (`data/`: CSV, NPY, IDX, spiral, synthetic), the
//! one reader of input files and atomic writer of outputs (`files`), the matrices and tile
//! geometry of Winograd convolution (`winograd`, shared by the code generator and the
//! transform symbols), and the communication of data-parallel runs (`collective`; over MPI in
//! `mpi`, cargo feature `mpi`).

pub mod collective;
pub mod data;
pub mod files;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod params;
pub mod rng;
pub mod symbols;
pub mod threads;
pub mod weights;
pub mod winograd;
