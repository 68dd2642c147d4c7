//! Merging shard stores (`diffexp merge DIR... --out OUT`) into the store an unsharded run would
//! have written, byte for byte: the merged store is created by the same code with the same
//! manifest, and every walker's rows are copied verbatim from the shard that ran it.

use super::manifest::{MANIFEST, Manifest, StoreState};
use super::run::{StoreOutcome, dim_shapes, jobs, new_manifest};
use super::trajectory::{DimStore, DimView};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// Checks that `shards` are the complete shards of one study and returns them ordered by index.
fn check_shards(dirs: &[PathBuf]) -> Result<Vec<(PathBuf, Manifest)>> {
    if dirs.is_empty() {
        bail!("merge needs at least one shard directory");
    }
    let mut shards = Vec::new();
    for d in dirs {
        let m = Manifest::load(d).with_context(|| format!("reading shard {}", d.display()))?;
        if m.state != StoreState::Complete {
            bail!("{} is not complete (finish it with `diffexp study ... --resume`)", d.display());
        }
        shards.push((d.clone(), m));
    }
    let first = shards[0].1.clone();
    let count = first.shard.map_or(1, |s| s.count);
    for (d, m) in &shards {
        let same = m.git_revision == first.git_revision
            && m.config == first.config
            && m.dims == first.dims
            && m.command == first.command;
        if !same {
            bail!(
                "{} and {} are not shards of the same study (configuration, dimensions or git revision differ)",
                shards[0].0.display(),
                d.display()
            );
        }
        if m.shard.map_or(1, |s| s.count) != count {
            bail!("{} belongs to a split into a different number of shards", d.display());
        }
    }
    shards.sort_by_key(|(_, m)| m.shard.map_or(0, |s| s.index));
    for (i, (d, m)) in shards.iter().enumerate() {
        let idx = m.shard.map_or(0, |s| s.index);
        if idx != i {
            bail!("shard {i}/{count} is missing or {} is given twice (found index {idx})", d.display());
        }
    }
    if shards.len() != count {
        bail!("{} of {count} shards given; shard {}/{count} is missing", shards.len(), shards.len());
    }
    Ok(shards)
}

/// Merges complete shards into a new store at `out` and finalises it (summary included).
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<StoreOutcome> {
    let shards = check_shards(dirs)?;
    let proto = &shards[0].1;
    if out.join(MANIFEST).exists() {
        bail!("{} already holds a diffexp store; merge into a new directory", out.display());
    }
    let cfg = &proto.config;
    let dims: Vec<usize> = proto.dims.iter().map(|e| e.d).collect();
    let mut fresh = new_manifest(cfg, &dims, &proto.command, None);
    // The shards' revision, which the check above made common, not this binary's.
    fresh.git_revision = proto.git_revision.clone();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let shapes = dim_shapes(&fresh);
    let stores = shapes
        .iter()
        .zip(&fresh.dims)
        .map(|(s, e)| DimStore::create(&out.join(&e.dir), s, false))
        .collect::<std::io::Result<Vec<_>>>()?;
    fresh.save(out)?;
    let n = shards.len();
    let all = jobs(stores.len(), fresh.walkers);
    for (i, e) in fresh.dims.iter().enumerate() {
        let views = shards
            .iter()
            .map(|(dir, _)| DimView::open(&dir.join(&e.dir), e.d, fresh.walkers, e.records, cfg.observe.eval))
            .collect::<std::io::Result<Vec<_>>>()?;
        for (j, &(di, w)) in all.iter().enumerate() {
            if di == i {
                let src = &views[j % n];
                if src.status.data()[w] == super::trajectory::STATUS_PENDING {
                    bail!("{}: walker {w} at d = {} is not finished", shards[j % n].0.display(), e.d);
                }
                stores[i].copy_walker_from(src, w)?;
            }
        }
    }
    super::run::finalize(out, fresh, &stores, 0, all.len())
}
