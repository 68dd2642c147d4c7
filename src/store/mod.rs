//! Storage of results: a directory of NPY arrays that numpy opens directly (also memory-mapped),
//! a JSON manifest, walker checkpoints for `--resume`, and merging of shards.
//!
//! A study writes `OUT/manifest.json` ([`manifest::Manifest`]: configuration, seed, git revision,
//! shard, array shapes, column names, units, state) and one directory `OUT/d{d}/` per dimension whose
//! arrays are preallocated for every walker and record point ([`trajectory::DimStore`]). Each walker
//! runs with a [`trajectory::WalkerSink`] — an [`Observer`](crate::observe::Observer), so the trainer
//! does not know it writes files — which fills its rows in place and publishes each record by
//! raising `count[w]` only after the record's data is flushed, and saves a checkpoint
//! ([`checkpoint`]) after it. A process killed at any moment leaves a readable store; `--resume`
//! restores each unfinished walker from its checkpoint and rewrites the same bytes
//! ([`run::run_store`]). Shards run disjoint job subsets and [`merge::merge`] assembles them into
//! exactly the files an unsharded run writes.
//!
//! ```no_run
//! use diffexp::config::Config;
//! use diffexp::store::run::{StoreOptions, run_store};
//! let cfg = Config::from_toml("[study]\ndims = [32, 64]\n").unwrap();
//! let opts = StoreOptions { out: "out/demo".as_ref(), command: "study", shard: None, resume: true, durable: false };
//! let done = run_store(&cfg, &cfg.study.dims, &opts, &|_| {}, &|_| {}).unwrap();
//! println!("{:?}", done.summary.unwrap().exponents[0].slope);
//! ```

pub mod checkpoint;
pub mod manifest;
pub mod merge;
pub mod npy;
pub mod run;
pub mod trajectory;
