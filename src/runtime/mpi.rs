//! `Collective` over MPI (the rsmpi crate; cargo feature `mpi`): the processes `mpirun -np N`
//! or `srun` started, in `MPI_COMM_WORLD`.
//!
//! MPI is initialised with `MPI_THREAD_FUNNELED`: the GEMM's worker threads never call MPI;
//! the thread that initialised it makes every call. Dropping `Mpi` finalises MPI.

use std::cell::RefCell;
use std::time::Instant;

use ::mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use ::mpi::datatype::PartitionMut;
use ::mpi::environment::Universe;
use ::mpi::point_to_point as p2p;
use ::mpi::topology::{Communicator, SimpleCommunicator};
use ::mpi::Threading;

use super::collective::{chunk, ring_schedule, Algorithm, Collective, ReduceClock};

pub struct Mpi {
    world: SimpleCommunicator,
    algorithm: Algorithm,
    /// Scratch of the reductions (a chunk for the ring, p buffers for the gather).
    scratch: RefCell<Vec<f32>>,
    clock: ReduceClock,
    /// Last, so that MPI is finalised after everything above is gone.
    _universe: Universe,
}

impl Mpi {
    /// Initialise MPI, or say why not (it was initialised already, or the library refused).
    pub fn init(algorithm: Algorithm) -> Result<Mpi, String> {
        let (universe, _) = mpi::initialize_with_threading(Threading::Funneled)
            .ok_or("MPI could not be initialised (was it initialised already?)")?;
        let world = universe.world();
        Ok(Mpi { world, algorithm, scratch: RefCell::new(vec![]), clock: ReduceClock::default(), _universe: universe })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Reduce with `algorithm` from now on (every rank must switch at the same point).
    pub fn set_algorithm(&mut self, algorithm: Algorithm) {
        self.algorithm = algorithm;
    }

    /// Ring reduce-scatter + allgather (`ring_schedule`): each received chunk is added to the
    /// rank's own, so chunk c's sum runs around the ring from rank c.
    fn ring(&self, buf: &mut [f32]) {
        let (p, r) = (self.size(), self.rank());
        let right = self.world.process_at_rank(((r + 1) % p) as i32);
        let left = self.world.process_at_rank(((r + p - 1) % p) as i32);
        let (scatter, gather) = ring_schedule(r, p);
        let mut scratch = self.scratch.borrow_mut();
        scratch.resize(buf.len().div_ceil(p), 0.0);
        for (send, recv) in scatter {
            let (s, t) = (chunk(buf.len(), p, send), chunk(buf.len(), p, recv));
            let incoming = &mut scratch[..t.len()];
            p2p::send_receive_into(&buf[s], &right, incoming, &left);
            for (own, &got) in buf[t].iter_mut().zip(incoming.iter()) {
                *own += got;
            }
        }
        for (send, recv) in gather {
            let (s, t) = (chunk(buf.len(), p, send), chunk(buf.len(), p, recv));
            let incoming = &mut scratch[..t.len()];
            p2p::send_receive_into(&buf[s], &right, incoming, &left);
            buf[t].copy_from_slice(incoming);
        }
    }

    /// Allgather every buffer, then sum in rank order.
    fn gather(&self, buf: &mut [f32]) {
        let p = self.size();
        let mut all = self.scratch.borrow_mut();
        all.resize(buf.len() * p, 0.0);
        self.world.all_gather_into(&buf[..], &mut all[..]);
        buf.copy_from_slice(&all[..buf.len()]);
        for part in all.chunks_exact(buf.len()).skip(1) {
            for (acc, &x) in buf.iter_mut().zip(part) {
                *acc += x;
            }
        }
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn sum_f32(&self, buf: &mut [f32]) {
        if self.size() == 1 || buf.is_empty() {
            return;
        }
        let started = Instant::now();
        match self.algorithm {
            Algorithm::Ring => self.ring(buf),
            Algorithm::Gather => self.gather(buf),
            Algorithm::Mpi => {
                let mut out = self.scratch.borrow_mut();
                out.resize(buf.len(), 0.0);
                self.world.all_reduce_into(&buf[..], &mut out[..], SystemOperation::sum());
                buf.copy_from_slice(&out);
            }
        }
        self.clock.add(started.elapsed().as_secs_f64(), buf.len() * 4);
    }

    /// Small buffers (evaluation sums): allgather and sum in rank order.
    fn sum_f64(&self, buf: &mut [f64]) {
        let p = self.size();
        if p == 1 || buf.is_empty() {
            return;
        }
        let mut all = vec![0f64; buf.len() * p];
        self.world.all_gather_into(&buf[..], &mut all[..]);
        buf.copy_from_slice(&all[..buf.len()]);
        for part in all.chunks_exact(buf.len()).skip(1) {
            for (acc, &x) in buf.iter_mut().zip(part) {
                *acc += x;
            }
        }
    }

    fn all_gather_bytes(&self, mine: &[u8]) -> Vec<Vec<u8>> {
        let p = self.size();
        let mut lens = vec![0u64; p];
        self.world.all_gather_into(&(mine.len() as u64), &mut lens[..]);
        let counts: Vec<i32> = lens.iter().map(|&n| n as i32).collect();
        let displs: Vec<i32> = counts.iter().scan(0, |at, &n| Some(std::mem::replace(at, *at + n))).collect();
        let mut all = vec![0u8; lens.iter().sum::<u64>() as usize];
        // (MPI refuses a gather of nothing at all.)
        if !all.is_empty() {
            let mut parts = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            self.world.all_gather_varcount_into(mine, &mut parts);
        }
        counts.iter().zip(&displs).map(|(&n, &at)| all[at as usize..(at + n) as usize].to_vec()).collect()
    }

    fn broadcast_f32(&self, buf: &mut [f32]) {
        if self.size() > 1 && !buf.is_empty() {
            self.world.process_at_rank(0).broadcast_into(buf);
        }
    }

    fn abort(&self, message: &str) -> ! {
        eprintln!("rank {}: {message}", self.rank());
        self.world.abort(1)
    }

    fn reduce_stats(&self) -> (f64, u64) {
        self.clock.get()
    }
}

/// Make a panic on this rank end the whole job (after the usual panic message), instead of
/// leaving the other ranks waiting for it in a collective.
pub fn abort_on_panic(rank: usize) {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        eprintln!("rank {rank}: netc panicked (a bug: please report it); ending the job");
        SimpleCommunicator::world().abort(101)
    }));
}
