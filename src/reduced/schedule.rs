//! Running a study's reduced walkers: one job per walker through [`crate::train::run_walker`], or —
//! for the single-direction denoiser with one (x, ξ) pair per step — several walkers per thread in
//! SIMD lanes ([`super::lanes`]) that are refilled from a shared queue as walkers finish.
//!
//! A walker's numbers do not depend on the lane it runs in, on the lane width or on the thread
//! (the update is lane-invariant and every walker reads only its own streams), so the lane
//! scheduler returns exactly what running each job alone returns; `tests` check this.
//!
//! Jobs are taken largest d first. When the walkers of all d share one update rule up to the step
//! sizes (the usual case: η = δ/d^k, orthonormal spikes), a group's lanes take walkers of any d, each
//! lane with its own η and chi-square laws; otherwise a group is bound to one d. When the queue holds
//! no more jobs the group may take and at most half of its lanes are busy, the group moves its
//! walkers to a group of half the width, so the last slow walkers do not drag idle lanes along.
//!
//! A long run can be suspended and resumed ([`run_walkers`] with a [`LaneControl`]): on request
//! every group hands out a [`WalkerSnapshot`] of each walker it runs (periodically, and when told
//! to stop), and a walker started from its snapshot continues with exactly the numbers it would
//! have drawn without the interruption.

use super::frame::P;
use super::lanes::{Lanes, build};
use super::single::{PairCoords, SingleRule, SingleShared, SingleState, SingleWalker};
use super::streams::WalkerStreams;
use super::{ReducedLearner, build_learner, single_setup};
use crate::config::{Config, DenoiserKind};
use crate::observe::{Record, RecoveryTracker, Trajectory};
use crate::rng::ScalarRng;
use crate::rng::StreamKind;
use crate::study::{WalkerResult, run_plan, stream, thresholds};
use crate::train::{RunPlan, WalkerOutcome};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Lane width of the scheduler's widest groups.
pub const MAX_LANES: usize = 8;

/// True when the config runs in lanes: single direction, batch 1, one noise per sample, spikes
/// shared by the walkers of a d.
pub fn lanes_apply(cfg: &Config) -> bool {
    cfg.denoiser.kind == DenoiserKind::Single
        && !cfg.model.resample_spikes_per_walker
        && match build_learner(cfg, super::min_dim(cfg).max(16), 0) {
            ReducedLearner::Single(l) => l.shared.rule.is_pair(),
            ReducedLearner::TwoLayer(_) => false,
        }
}

/// Runs every walker at every d of `dims` on the current rayon pool; results in job order (d as
/// in `dims`, then walker), as `study::run_jobs`.
pub fn run_jobs(cfg: &Config, dims: &[usize], keep: bool, progress: &(dyn Fn(usize) + Sync)) -> Vec<WalkerResult> {
    let walkers = cfg.train.walkers as u64;
    let jobs: Vec<(usize, u64)> = (0..dims.len()).flat_map(|i| (0..walkers).map(move |w| (i, w))).collect();
    if !lanes_apply(cfg) {
        return jobs
            .par_iter()
            .map(|&(i, w)| {
                let r = crate::study::run_job::<f64>(cfg, dims[i], w, None, keep);
                progress(1);
                r
            })
            .collect();
    }
    let on_done = |_: &WalkerResult| progress(1);
    let control = LaneControl::new(&on_done, &|_| {});
    run_lanes(cfg, dims, &jobs, keep, HashMap::new(), &control)
        .into_iter()
        .map(|r| r.expect("every job ran: nothing asked to stop"))
        .collect()
}

/// How a caller steers a suspendable lane run ([`run_walkers`]).
pub struct LaneControl<'a> {
    /// Once set, every group snapshots its walkers (to `on_snapshot`), starts no new one and returns.
    pub stop: AtomicBool,
    /// Each increment asks every group for a snapshot of the walkers it runs.
    pub snapshot_epoch: AtomicU64,
    /// Called with every finished walker, as soon as it finishes.
    pub on_done: &'a (dyn Fn(&WalkerResult) + Sync),
    /// Called with the snapshots a stop or an epoch asked for.
    pub on_snapshot: &'a (dyn Fn(WalkerSnapshot) + Sync),
    /// Lane steps between two looks at `stop` and `snapshot_epoch` (default 2¹⁶, about 30 ms at 8 lanes).
    pub check_every: u32,
}

impl<'a> LaneControl<'a> {
    pub fn new(on_done: &'a (dyn Fn(&WalkerResult) + Sync), on_snapshot: &'a (dyn Fn(WalkerSnapshot) + Sync)) -> Self {
        Self {
            stop: AtomicBool::new(false),
            snapshot_epoch: AtomicU64::new(0),
            on_done,
            on_snapshot,
            check_every: 1 << 16,
        }
    }
}

/// Everything a lane walker carries between steps, for resuming it bit for bit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WalkerSnapshot {
    pub d: usize,
    pub walker: u64,
    pub step: u64,
    /// Index of the next record point in the plan's grid.
    pub next: usize,
    pub first: [Option<u64>; 3],
    pub loss_sum: f64,
    pub loss_n: u64,
    pub alpha: [f64; P],
    pub rho: f64,
    pub b: f64,
    pub normal_state: Vec<u64>,
    pub unread_normals: Vec<f64>,
    pub scalar: ScalarRng,
    pub evals_done: u64,
    pub records: Vec<Record>,
}

/// The walkers `walkers` ((d, walker) pairs, any mix of d), in lanes, under `control`: each walker
/// either starts fresh or continues from its snapshot in `resume`. Returns, in the order of
/// `walkers`, the result of every walker that finished (`None` for one suspended by a stop, or
/// never started).
///
/// # Panics
/// If the config does not run in lanes ([`lanes_apply`]) or a snapshot is not of a listed walker.
pub fn run_walkers(
    cfg: &Config,
    walkers: &[(usize, u64)],
    resume: Vec<WalkerSnapshot>,
    control: &LaneControl,
) -> Vec<Option<WalkerResult>> {
    assert!(lanes_apply(cfg), "run_walkers: this config does not run in lanes");
    let mut dims: Vec<usize> = walkers.iter().map(|&(d, _)| d).collect();
    dims.sort_unstable();
    dims.dedup();
    let index = |d: usize| dims.binary_search(&d).expect("a listed d");
    let jobs: Vec<(usize, u64)> = walkers.iter().map(|&(d, w)| (index(d), w)).collect();
    let resume = resume
        .into_iter()
        .map(|s| {
            let job = walkers
                .iter()
                .position(|&(d, w)| (d, w) == (s.d, s.walker))
                .unwrap_or_else(|| panic!("snapshot of walker {} at d = {}, which is not listed", s.walker, s.d));
            (job, s)
        })
        .collect();
    run_lanes(cfg, &dims, &jobs, false, resume, control)
}

/// The lane scheduler over `jobs` ((dims index, walker) pairs); see the module docs.
fn run_lanes(
    cfg: &Config,
    dims: &[usize],
    jobs: &[(usize, u64)],
    keep: bool,
    resume: HashMap<usize, WalkerSnapshot>,
    control: &LaneControl,
) -> Vec<Option<WalkerResult>> {
    let contexts: Vec<DimContext> = dims.iter().map(|&d| DimContext::new(cfg, d)).collect();
    // Largest d first (the longest jobs), walkers in order.
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&j| (std::cmp::Reverse(dims[jobs[j].0]), jobs[j].0, jobs[j].1));
    let queue = Queue { order, jobs, cursor: AtomicUsize::new(0), resume: Mutex::new(resume) };
    let mixed = lanes_mix(&contexts);
    let results: Vec<Mutex<Option<WalkerResult>>> = (0..jobs.len()).map(|_| Mutex::new(None)).collect();
    let sink = |job: usize, r: WalkerResult| {
        (control.on_done)(&r);
        *results[job].lock().unwrap() = Some(r);
    };
    let group = Group { cfg, contexts: &contexts, mixed, queue: &queue, keep, sink: &sink, control };
    let threads = rayon::current_num_threads().max(1);
    rayon::scope(|s| {
        for _ in 0..threads {
            s.spawn(|_| worker(&group));
        }
    });
    results.into_iter().map(|m| m.into_inner().unwrap()).collect()
}

/// True when one group's lanes may hold walkers of every d of `contexts`: their update rules differ
/// only in the step sizes (not so with random spikes, whose frame is drawn per d).
fn lanes_mix(contexts: &[DimContext]) -> bool {
    contexts.windows(2).all(|c| c[0].shared.rule.differs_only_in_step_sizes(&c[1].shared.rule))
}

/// What all walkers at one d share.
struct DimContext {
    d: usize,
    shared: SingleShared,
    plan: RunPlan,
    thresholds: [Option<f64>; 3],
    b0: f64,
}

impl DimContext {
    fn new(cfg: &Config, d: usize) -> Self {
        let setup = single_setup(cfg, d, 0);
        Self {
            d,
            shared: SingleShared::new(&setup),
            plan: run_plan(cfg, d),
            thresholds: thresholds(cfg),
            b0: cfg.denoiser.b,
        }
    }
}

struct Queue<'a> {
    /// Job indices in the order they are handed out.
    order: Vec<usize>,
    /// (index into dims, walker) per job.
    jobs: &'a [(usize, u64)],
    cursor: AtomicUsize,
    /// Snapshots to start jobs from, taken when the job is.
    resume: Mutex<HashMap<usize, WalkerSnapshot>>,
}

impl Queue<'_> {
    /// The dims index of the next job, if any.
    fn peek_dim(&self) -> Option<usize> {
        let c = self.cursor.load(Ordering::Acquire);
        self.order.get(c).map(|&j| self.jobs[j].0)
    }

    /// Takes the next job if it is at dims index `dim`, or any next job for `None`.
    fn take(&self, dim: Option<usize>) -> Option<usize> {
        let mut c = self.cursor.load(Ordering::Acquire);
        loop {
            let &j = self.order.get(c)?;
            if dim.is_some_and(|d| self.jobs[j].0 != d) {
                return None;
            }
            match self.cursor.compare_exchange(c, c + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(j),
                Err(now) => c = now,
            }
        }
    }
}

/// One walker in a lane, with its progress through the plan (the state of `run_walker`'s loop).
struct Slot {
    job: usize,
    /// Index of the walker's d in the run's dims (and contexts).
    dim: usize,
    walker_id: u64,
    walker: SingleWalker,
    step: u64,
    /// Index of the next record point in the plan's grid.
    next: usize,
    tracker: RecoveryTracker,
    traj: Trajectory,
    loss_sum: f64,
    loss_n: u64,
}

/// The slot of job `job`: from its snapshot if the queue holds one, else fresh.
fn new_slot(cfg: &Config, contexts: &[DimContext], queue: &Queue, job: usize) -> Slot {
    let (dim, walker) = queue.jobs[job];
    let ctx = &contexts[dim];
    let seed = |k| stream(cfg, ctx.d, walker, k);
    let mut w = SingleWalker::new(
        ctx.d as u64,
        ctx.b0,
        seed(StreamKind::Init),
        seed(StreamKind::Data),
        seed(StreamKind::Latent),
        seed(StreamKind::Evaluation),
    );
    let snapshot = queue.resume.lock().unwrap().remove(&job);
    if let Some(s) = snapshot {
        w.state = SingleState { alpha: s.alpha, rho: s.rho, b: s.b };
        w.evals_done = s.evals_done;
        w.streams
            .restore(&s.normal_state, &s.unread_normals, &s.scalar)
            .unwrap_or_else(|e| panic!("snapshot of walker {walker} at d = {}: {e}", ctx.d));
        return Slot {
            job,
            dim,
            walker_id: walker,
            walker: w,
            step: s.step,
            next: s.next,
            tracker: RecoveryTracker { thresholds: ctx.thresholds, first: s.first },
            traj: Trajectory { records: s.records },
            loss_sum: s.loss_sum,
            loss_n: s.loss_n,
        };
    }
    let mut tracker = RecoveryTracker::new(ctx.thresholds);
    tracker.check(&ctx.shared.rule.frame.overlaps(&w.state.alpha, 1.0), 0);
    Slot {
        job,
        dim,
        walker_id: walker,
        walker: w,
        step: 0,
        next: 0,
        tracker,
        traj: Trajectory::default(),
        loss_sum: 0.0,
        loss_n: 0,
    }
}

impl Slot {
    /// The slot's snapshot, its walker state taken from the lanes (`state`).
    fn snapshot(&self, d: usize, state: &SingleState) -> WalkerSnapshot {
        let (normal_state, unread_normals) = self.walker.streams.save();
        WalkerSnapshot {
            d,
            walker: self.walker_id,
            step: self.step,
            next: self.next,
            first: self.tracker.first,
            loss_sum: self.loss_sum,
            loss_n: self.loss_n,
            alpha: state.alpha,
            rho: state.rho,
            b: state.b,
            normal_state,
            unread_normals,
            scalar: self.walker.streams.scalar.clone(),
            evals_done: self.walker.evals_done,
            records: self.traj.records.clone(),
        }
    }
}

fn worker(g: &Group) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512dq") {
            // SAFETY: the features were just detected.
            return unsafe { worker_avx512(g) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { worker_avx2(g) };
        }
    }
    worker_generic(g)
}

/// The same code with 512-bit vectors enabled. No fused multiply-add is ever requested, so the
/// results are those of `worker_generic`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
unsafe fn worker_avx512(g: &Group) {
    worker_generic(g)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn worker_avx2(g: &Group) {
    worker_generic(g)
}

#[inline(always)]
fn worker_generic(g: &Group) {
    while let Some(dim) = g.queue.peek_dim() {
        let bind = if g.mixed { None } else { Some(dim) };
        let mut carried = run_group::<8>(g, bind, Vec::new());
        if !carried.is_empty() {
            carried = run_group::<4>(g, bind, carried);
        }
        if !carried.is_empty() {
            carried = run_group::<2>(g, bind, carried);
        }
        if !carried.is_empty() {
            run_group::<1>(g, bind, carried);
        }
        // Checked after a group, not before: every worker runs at least one (tests rely on it).
        if g.control.stop.load(Ordering::Relaxed) {
            return;
        }
    }
}

/// What a lane's walker does after a step (the control flow of `run_walker`).
enum After {
    Continue,
    Done,
}

/// What the workers of a run share.
struct Group<'a> {
    cfg: &'a Config,
    contexts: &'a [DimContext],
    /// True when a group may hold walkers of different d (their rules differ only in the step sizes).
    mixed: bool,
    queue: &'a Queue<'a>,
    keep: bool,
    sink: &'a (dyn Fn(usize, WalkerResult) + Sync),
    control: &'a LaneControl<'a>,
}

/// Per-lane parameters of the walkers in a group: their d's shared data and step sizes.
struct LaneParams<'a, const L: usize> {
    shared: [&'a SingleShared; L],
    eta: Lanes<L>,
    eta_b: Lanes<L>,
}

impl<'a, const L: usize> LaneParams<'a, L> {
    /// Every lane with the parameters of `shared`.
    fn uniform(shared: &'a SingleShared) -> Self {
        Self { shared: [shared; L], eta: Lanes([shared.rule.eta; L]), eta_b: Lanes([shared.rule.eta_b; L]) }
    }

    fn set(&mut self, l: usize, shared: &'a SingleShared) {
        self.shared[l] = shared;
        self.eta.0[l] = shared.rule.eta;
        self.eta_b.0[l] = shared.rule.eta_b;
    }
}

/// Steps up to L walkers in lanes until none is left, refilling lanes from the queue with walkers
/// at dims index `bind` (any d for `None`); returns the walkers still running if it is worth
/// continuing them at half the width.
#[inline(always)]
fn run_group<const L: usize>(g: &Group, bind: Option<usize>, carried: Vec<Slot>) -> Vec<Slot> {
    let (cfg, contexts, queue, keep, sink, control) = (g.cfg, g.contexts, g.queue, g.keep, g.sink, g.control);
    let mut epoch_seen = control.snapshot_epoch.load(Ordering::Relaxed);
    let mut until_control = control.check_every.max(1);
    let mut slots: [Option<Slot>; L] = std::array::from_fn(|_| None);
    let mut carried = carried.into_iter();
    // Idle lanes step spare streams whose numbers are thrown away.
    let mut spares: [WalkerStreams; L] = std::array::from_fn(|l| WalkerStreams::new(l as u64, l as u64 + 1000));
    let mut st = SingleState { alpha: [Lanes([0.0; L]); P], rho: Lanes([0.0; L]), b: Lanes([0.0; L]) };
    // The update's rule up to the step sizes, the same for every lane (`Group::mixed`).
    let first = &contexts[bind.unwrap_or(0)].shared;
    let rule = &first.rule;
    let mut params = LaneParams::<L>::uniform(first);
    let load = |st: &mut SingleState<Lanes<L>>, l: usize, w: &SingleState| {
        for i in 0..P {
            st.alpha[i].0[l] = w.alpha[i];
        }
        st.rho.0[l] = w.rho;
        st.b.0[l] = w.b;
    };
    let unload = |st: &SingleState<Lanes<L>>, l: usize| SingleState {
        alpha: std::array::from_fn(|i| st.alpha[i].0[l]),
        rho: st.rho.0[l],
        b: st.b.0[l],
    };
    let mut book = LaneBook::<L>::new();
    for (l, slot) in slots.iter_mut().enumerate() {
        *slot = carried.next().or_else(|| queue.take(bind).map(|j| new_slot(cfg, contexts, queue, j)));
        if let Some(s) = slot {
            let ctx = &contexts[s.dim];
            params.set(l, &ctx.shared);
            load(&mut st, l, &s.walker.state);
            book.load(l, s, ctx);
        }
    }
    debug_assert!(carried.next().is_none());
    loop {
        if book.active == 0 {
            return Vec::new();
        }
        let nothing_to_take = match bind {
            Some(d) => queue.peek_dim() != Some(d),
            None => queue.peek_dim().is_none(),
        };
        if L > 1 && book.active <= L / 2 && nothing_to_take {
            return slots
                .iter_mut()
                .enumerate()
                .filter_map(|(l, s)| {
                    let mut s = s.take()?;
                    book.sync(l, &mut s);
                    s.walker.state = unload(&st, l);
                    Some(s)
                })
                .collect();
        }
        until_control -= 1;
        if until_control == 0 {
            until_control = control.check_every.max(1);
            let stop = control.stop.load(Ordering::Relaxed);
            let epoch = control.snapshot_epoch.load(Ordering::Relaxed);
            if stop || epoch != epoch_seen {
                epoch_seen = epoch;
                for (l, s) in slots.iter_mut().enumerate() {
                    if let Some(s) = s {
                        book.sync(l, s);
                        (control.on_snapshot)(s.snapshot(contexts[s.dim].d, &unload(&st, l)));
                    }
                }
                if stop {
                    return Vec::new();
                }
            }
        }
        let loss = {
            let mut it = slots.iter_mut().zip(spares.iter_mut()).map(|(slot, spare)| match slot {
                Some(s) => &mut s.walker.streams,
                None => spare,
            });
            let streams: [&mut WalkerStreams; L] = std::array::from_fn(|_| it.next().unwrap());
            lane_step(rule, &params, &mut st, streams)
        };
        // Overlaps of every lane.
        let e = &rule.frame.spikes;
        let ov: [Lanes<L>; 3] = build(st.rho, |k| {
            let ek: [Lanes<L>; P] = build(st.rho, |i| Lanes::<L>::splat_f64(e[k][i]));
            ek[0] * st.alpha[0] + ek[1] * st.alpha[1] + ek[2] * st.alpha[2]
        });
        let Some(events) = book.step(loss, &ov) else { continue };
        for l in 0..L {
            if !events[l] {
                continue;
            }
            let Some(slot) = &mut slots[l] else { continue };
            let ctx = &contexts[slot.dim];
            let grid = &ctx.plan.grid;
            book.sync(l, slot);
            let o = [ov[0].0[l], ov[1].0[l], ov[2].0[l]];
            slot.tracker.check(&o, slot.step * ctx.plan.batch);
            let stop_now = ctx.plan.stop_when_recovered && slot.tracker.all_recovered();
            let mut after = After::Continue;
            if stop_now || slot.step == grid[slot.next] {
                slot.walker.state = unload(&st, l);
                if !slot.walker.is_finite() {
                    let msg = format!("weights became non-finite by step {}; lower train.delta", slot.step);
                    finish(slot, Some(msg), ctx, sink);
                    after = After::Done;
                } else {
                    let rec = Record {
                        step: slot.step,
                        samples: slot.step * ctx.plan.batch,
                        overlaps: o,
                        norm: 1.0,
                        skip: slot.walker.state.b,
                        train_loss: slot.loss_sum / slot.loss_n as f64,
                        eval: ctx.plan.n_eval.map(|n| slot.walker.evaluate(&ctx.shared, n)),
                    };
                    if keep {
                        slot.traj.records.push(rec);
                    }
                    slot.loss_sum = 0.0;
                    slot.loss_n = 0;
                    slot.next += 1;
                    if stop_now || slot.next == grid.len() {
                        finish(slot, None, ctx, sink);
                        after = After::Done;
                    }
                }
            }
            match after {
                After::Continue => book.load(l, slot, ctx),
                After::Done => {
                    book.clear(l);
                    slots[l] = queue.take(bind).map(|j| new_slot(cfg, contexts, queue, j));
                    if let Some(s) = &slots[l] {
                        let ctx = &contexts[s.dim];
                        params.set(l, &ctx.shared);
                        load(&mut st, l, &s.walker.state);
                        book.load(l, s, ctx);
                    }
                }
            }
        }
    }
}

/// The per-step bookkeeping of a group's lanes, kept lane-wise so that a step without an event
/// costs a few vector operations: step counts, running loss sums, the step of each lane's next
/// record point, and the threshold each overlap must reach to be news (+∞ once recovered or when
/// untracked). Between events it is the authority for a slot's `step`, `loss_sum` and `loss_n`
/// ([`LaneBook::sync`] writes them back).
struct LaneBook<const L: usize> {
    steps: [u64; L],
    /// Step at which the lane must be looked at: its next record point.
    due: [u64; L],
    /// Step of the lane's last record (loss_n = steps − loss_from).
    loss_from: [u64; L],
    loss_sum: Lanes<L>,
    news: [[f64; L]; 3],
    active: usize,
}

impl<const L: usize> LaneBook<L> {
    fn new() -> Self {
        Self {
            steps: [0; L],
            due: [u64::MAX; L],
            loss_from: [0; L],
            loss_sum: Lanes([0.0; L]),
            news: [[f64::INFINITY; L]; 3],
            active: 0,
        }
    }

    /// Takes lane `l`'s bookkeeping from its slot (a new or carried walker, or after an event).
    fn load(&mut self, l: usize, s: &Slot, ctx: &DimContext) {
        if self.due[l] == u64::MAX {
            self.active += 1;
        }
        self.steps[l] = s.step;
        self.loss_from[l] = s.step - s.loss_n;
        self.loss_sum.0[l] = s.loss_sum;
        // With nothing left to recover (no tracked direction) a stopping walker stops at once.
        let done = ctx.plan.stop_when_recovered && s.tracker.all_recovered();
        self.due[l] = if done { s.step + 1 } else { ctx.plan.grid[s.next] };
        for k in 0..3 {
            self.news[k][l] = match (s.tracker.thresholds[k], s.tracker.first[k]) {
                (Some(th), None) => th,
                _ => f64::INFINITY,
            };
        }
    }

    /// Marks lane `l` idle.
    fn clear(&mut self, l: usize) {
        if self.due[l] != u64::MAX {
            self.active -= 1;
        }
        self.due[l] = u64::MAX;
        self.news = self.news.map(|mut n| {
            n[l] = f64::INFINITY;
            n
        });
    }

    /// Writes lane `l`'s step and loss sums into its slot.
    fn sync(&self, l: usize, s: &mut Slot) {
        s.step = self.steps[l];
        s.loss_sum = self.loss_sum.0[l];
        s.loss_n = self.steps[l] - self.loss_from[l];
    }

    /// Counts a step with losses `loss` and overlaps `ov`; the lanes that need a look (a record
    /// point, or an overlap reaching its threshold for the first time), if any.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // five arrays indexed by lane, in one vectorisable loop
    fn step(&mut self, loss: Lanes<L>, ov: &[Lanes<L>; 3]) -> Option<[bool; L]> {
        self.loss_sum = self.loss_sum + loss;
        let mut events = [false; L];
        let mut any = false;
        for l in 0..L {
            self.steps[l] += 1;
            let hit = (self.steps[l] == self.due[l])
                | (ov[0].0[l].abs() >= self.news[0][l])
                | (ov[1].0[l].abs() >= self.news[1][l])
                | (ov[2].0[l].abs() >= self.news[2][l]);
            events[l] = hit;
            any |= hit;
        }
        any.then_some(events)
    }
}

fn finish(slot: &mut Slot, diverged: Option<String>, ctx: &DimContext, sink: &(dyn Fn(usize, WalkerResult) + Sync)) {
    let records = std::mem::take(&mut slot.traj.records);
    let outcome = WalkerOutcome { steps: slot.step, recovery: slot.tracker.clone(), diverged };
    sink(slot.job, WalkerResult { d: ctx.d, walker: slot.walker_id, outcome, records });
}

/// One step of L walkers in lanes: each lane draws from its own streams with its own d's laws
/// ([`SingleShared::draw_pair`]), then one [`super::single::SingleRule::pair_update_with`] on all
/// lanes with their own step sizes. Returns the lanes' training losses.
#[inline(always)]
fn lane_step<const L: usize>(
    rule: &SingleRule,
    params: &LaneParams<L>,
    st: &mut SingleState<Lanes<L>>,
    streams: [&mut WalkerStreams; L],
) -> Lanes<L> {
    let mut lev = [0usize; L];
    let z = || Lanes([0.0; L]);
    let mut c = PairCoords { xf: [z(); P], x0: z(), xif: [z(); P], xi0: z(), r1: z(), c12: z(), r2: z() };
    let (mut lam, mut nu) = (z(), z());
    for (l, w) in streams.into_iter().enumerate() {
        let p = params.shared[l].draw_pair(w);
        lam.0[l] = p.lambda;
        nu.0[l] = p.nu;
        lev[l] = p.level;
        for i in 0..P {
            c.xf[i].0[l] = p.z[i];
            c.xif[i].0[l] = p.xi[i];
        }
        (c.x0.0[l], c.xi0.0[l], c.r1.0[l], c.c12.0[l], c.r2.0[l]) = (p.z0, p.xi0, p.r1, p.c12, p.r2);
    }
    c.xf = rule.clean_span(&c.xf, lam, nu);
    let a = Lanes(build(0.0, |l| rule.levels[lev[l]].0));
    let s = Lanes(build(0.0, |l| rule.levels[lev[l]].1));
    rule.pair_update_with(st, a, s, &c, params.eta, params.eta_b)
}

/// `steps` lane steps of L walkers (for benchmarks), with the scheduler's SIMD dispatch.
pub fn run_lane_steps<const L: usize>(shared: &SingleShared, walkers: &mut [SingleWalker; L], steps: u64) {
    #[inline(always)]
    fn body<const L: usize>(shared: &SingleShared, walkers: &mut [SingleWalker; L], steps: u64) {
        let mut st = SingleState {
            alpha: std::array::from_fn(|i| Lanes(std::array::from_fn(|l| walkers[l].state.alpha[i]))),
            rho: Lanes(std::array::from_fn(|l| walkers[l].state.rho)),
            b: Lanes(std::array::from_fn(|l| walkers[l].state.b)),
        };
        let params = LaneParams::uniform(shared);
        for _ in 0..steps {
            let mut it = walkers.iter_mut().map(|w| &mut w.streams);
            let streams: [&mut WalkerStreams; L] = std::array::from_fn(|_| it.next().unwrap());
            std::hint::black_box(lane_step(&shared.rule, &params, &mut st, streams));
        }
        for (l, w) in walkers.iter_mut().enumerate() {
            w.state = SingleState { alpha: std::array::from_fn(|i| st.alpha[i].0[l]), rho: st.rho.0[l], b: st.b.0[l] };
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
        unsafe fn v4<const L: usize>(shared: &SingleShared, walkers: &mut [SingleWalker; L], steps: u64) {
            body(shared, walkers, steps)
        }
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512dq") {
            // SAFETY: the features were just detected.
            return unsafe { v4(shared, walkers, steps) };
        }
    }
    body(shared, walkers, steps)
}

impl<const L: usize> Lanes<L> {
    #[inline(always)]
    fn splat_f64(x: f64) -> Self {
        Lanes([x; L])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(stop: bool, eval: bool, coupling: &str, spikes: &str) -> Config {
        let text = format!(
            r#"
[experiment]
name = "lanes_test"
engine = "reduced"
[model]
beta_m = 0.5
beta_u = 3.0
beta_v = 6.0
coupling = "{coupling}"
spikes = "{spikes}"
[denoiser]
train_b = true
[train]
walkers = 11
stop_when_recovered = {stop}
max_samples = 3000
[observe]
eval = {eval}
n_eval = 8
[study]
dims = [24, 40]
"#
        );
        Config::from_toml(&text).unwrap()
    }

    /// A run of two d in mixed groups, suspended every 97 lane steps and resumed from JSON snapshots,
    /// round after round on 2 threads, ends with exactly the outcomes of an uninterrupted run.
    #[test]
    fn suspended_runs_resume_bit_for_bit() {
        let cfg = config(true, false, "sign", "orthonormal");
        let dims = cfg.study.dims.clone();
        let reference = run_jobs(&cfg, &dims, false, &|_| {});
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let mut done: HashMap<(usize, u64), WalkerOutcome> = HashMap::new();
        let mut snaps: HashMap<(usize, u64), String> = HashMap::new();
        let (mut rounds, mut resumed) = (0, 0);
        while done.len() < dims.len() * cfg.train.walkers {
            let walkers: Vec<(usize, u64)> = dims
                .iter()
                .flat_map(|&d| (0..cfg.train.walkers as u64).map(move |w| (d, w)))
                .filter(|j| !done.contains_key(j))
                .collect();
            let resume: Vec<WalkerSnapshot> =
                walkers.iter().filter_map(|j| snaps.get(j)).map(|j| serde_json::from_str(j).unwrap()).collect();
            resumed += resume.iter().filter(|s| s.step > 0).count();
            let new_snaps = Mutex::new(Vec::new());
            let on_snapshot = |s: WalkerSnapshot| new_snaps.lock().unwrap().push(s);
            let mut control = LaneControl::new(&|_| {}, &on_snapshot);
            control.check_every = 97;
            control.stop.store(true, Ordering::Relaxed);
            let out = pool.install(|| run_walkers(&cfg, &walkers, resume, &control));
            for (w, r) in walkers.iter().zip(out) {
                if let Some(r) = r {
                    done.insert(*w, r.outcome);
                }
            }
            for s in new_snaps.into_inner().unwrap() {
                snaps.insert((s.d, s.walker), serde_json::to_string(&s).unwrap());
            }
            rounds += 1;
            assert!(rounds < 10_000, "no progress");
        }
        assert!(rounds > 2 && resumed > 0, "{rounds} rounds, {resumed} resumed walkers: the test did not suspend");
        for r in &reference {
            assert_eq!(done[&(r.d, r.walker)], r.outcome, "d = {} walker {}", r.d, r.walker);
        }
    }

    /// The lane scheduler returns, for every job, exactly what running the job alone through
    /// `run_walker` returns (records, recovery times, step counts), on 1 and on 2 threads: with
    /// groups that mix d (orthonormal spikes; η differs per d) and with groups bound to one d
    /// (random spikes, drawn per d).
    #[test]
    fn lanes_equal_single_jobs() {
        let cases = [(true, false, "sign", "orthonormal", true), (false, true, "independent", "random", false)];
        for (stop, eval, coupling, spikes, mixes) in cases {
            let cfg = config(stop, eval, coupling, spikes);
            assert!(lanes_apply(&cfg));
            let dims = cfg.study.dims.clone();
            let contexts: Vec<DimContext> = dims.iter().map(|&d| DimContext::new(&cfg, d)).collect();
            assert_eq!(lanes_mix(&contexts), mixes, "{spikes} spikes");
            assert_ne!(contexts[0].shared.rule.eta, contexts[1].shared.rule.eta);
            let alone: Vec<WalkerResult> = dims
                .iter()
                .flat_map(|&d| (0..cfg.train.walkers as u64).map(move |w| (d, w)))
                .map(|(d, w)| crate::study::run_job::<f64>(&cfg, d, w, None, true))
                .collect();
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let lanes = pool.install(|| run_jobs(&cfg, &dims, true, &|_| {}));
                assert_eq!(lanes.len(), alone.len());
                for (a, b) in alone.iter().zip(&lanes) {
                    assert_eq!((a.d, a.walker), (b.d, b.walker));
                    assert_eq!(a.outcome, b.outcome, "d = {} walker {}", a.d, a.walker);
                    assert_eq!(a.records, b.records, "d = {} walker {}", a.d, a.walker);
                }
            }
        }
    }
}
