//! Attention over the keys each query row actually attends, for masks whose unmasked keys form one contiguous run
//! per row: causal, padded, and packed rows (causal within each sample, nothing across samples). Query rows go in
//! blocks; a block's scores are computed only over the union of its rows' key runs, so a row of several packed
//! samples costs about the sum of its samples' squared lengths instead of the row's squared length.
//!
//! Same layout as the dense kernel in `attention.rs`: the grouped query `[B, KV, G * S, D]` against `k, v: [B, KV,
//! T, D]`, one (batch, KV head) pair per task. For the backward pass each block keeps either its probabilities or,
//! when those would take too much memory (long dense rows: a vision encoder's 1024 patches), only each row's
//! maximum and normalizer, from which the backward pass recomputes exactly the same probabilities (the same
//! product and the same float operations in the same order), as memory-efficient attention does.

use rayon::prelude::*;

use super::kernel::{Gemm, dot, exp, gemm, max, sum, vectorized};

/// Query rows per block under a mask: small enough that a block of a packed row spans few samples, large enough
/// for the matrix products to run at speed.
pub(crate) const BLOCK: usize = 32;

/// Query rows per block without a mask: every block spans all keys, so larger blocks amortize packing the keys
/// for each product (a block's scores, 128 x 1024 floats, still fit in L2).
pub(crate) const UNMASKED_BLOCK: usize = 128;

/// The keys one query row attends: `lo..hi`, or every key with equal weight when the row is fully masked (what
/// the dense composition gives it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyRun {
    lo: u32,
    hi: u32,
    uniform: bool,
}

/// The key runs of a call without a mask: every query row attends all `t` keys (`s` rows, shared by the batch).
pub(crate) fn full_runs(s: usize, t: usize) -> Vec<KeyRun> {
    vec![
        KeyRun {
            lo: 0,
            hi: t as u32,
            uniform: false,
        };
        s
    ]
}

/// Each mask row's key run (`mask: [MB, 1, S, T]`, true = masked, row-major bytes), or `None` if some row's
/// unmasked keys are not contiguous.
pub(crate) fn key_runs(mask: &[u8], t: usize) -> Option<Vec<KeyRun>> {
    mask.chunks(t.max(1))
        .map(|row| {
            let lo = row.iter().position(|&m| m == 0);
            let Some(lo) = lo else {
                return Some(KeyRun {
                    lo: 0,
                    hi: t as u32,
                    uniform: true,
                });
            };
            let len = row[lo..].iter().take_while(|&&m| m == 0).count();
            let hi = lo + len;
            row[hi..].iter().all(|&m| m != 0).then_some(KeyRun {
                lo: lo as u32,
                hi: hi as u32,
                uniform: false,
            })
        })
        .collect()
}

/// The attention layout of one call: `pairs = B * KV` tasks, each with `rows = G * S` grouped query rows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    pub kv: usize,
    pub rows: usize,
    pub s: usize,
    pub t: usize,
    pub d: usize,
    /// Batches of the mask: 1 (shared by the batch) or B.
    pub mask_batches: usize,
    /// Query rows per block ([`BLOCK`] or [`UNMASKED_BLOCK`]).
    pub block: usize,
}

impl Shape {
    fn run<'a>(&self, runs: &'a [KeyRun], pair: usize, row: usize) -> &'a KeyRun {
        let b = if self.mask_batches == 1 {
            0
        } else {
            pair / self.kv
        };
        &runs[b * self.s + row % self.s]
    }

    /// The blocks of one pair: `(first row, rows, first key, keys)`.
    fn blocks(&self, runs: &[KeyRun], pair: usize) -> Vec<(usize, usize, usize, usize)> {
        let mut out = Vec::new();
        let groups = self.rows / self.s.max(1);
        for g in 0..groups {
            let mut s0 = 0;
            while s0 < self.s {
                let n = self.block.max(1).min(self.s - s0);
                let r0 = g * self.s + s0;
                let (lo, hi) = (r0..r0 + n)
                    .map(|r| self.run(runs, pair, r))
                    .fold((usize::MAX, 0), |(lo, hi), k| {
                        (lo.min(k.lo as usize), hi.max(k.hi as usize))
                    });
                out.push((r0, n, lo.min(hi), hi.saturating_sub(lo)));
                s0 += n;
            }
        }
        out
    }

    /// The fraction of the dense score matrices that the blocks of all `pairs` compute.
    pub(crate) fn density(&self, runs: &[KeyRun], pairs: usize) -> f64 {
        let area: usize = (0..pairs)
            .flat_map(|p| self.blocks(runs, p))
            .map(|(_, n, _, w)| n * w)
            .sum();
        area as f64 / (pairs * self.rows * self.t).max(1) as f64
    }
}

/// What one block keeps for the backward pass.
#[derive(Clone, Debug)]
pub(crate) struct Block {
    r0: usize,
    n: usize,
    k0: usize,
    w: usize,
    kept: Kept,
}

#[derive(Clone, Debug)]
enum Kept {
    /// The probabilities `[rows, keys]`.
    Probabilities(Vec<f32>),
    /// Each row's largest scaled score and inverse normalizer.
    RowSoftmax(Vec<(f32, f32)>),
}

/// `out: [pairs * rows * d]` and the blocks of every pair, for the grouped query `qg` and `k`, `v`
/// (`[pairs * t * d]` each). With `keep_probabilities` false the blocks keep only each row's softmax statistics.
pub(crate) fn forward(
    qg: &[f32],
    k: &[f32],
    v: &[f32],
    runs: &[KeyRun],
    shape: Shape,
    scale: f32,
    keep_probabilities: bool,
) -> (Vec<f32>, Vec<Vec<Block>>) {
    let Shape { rows, t, d, .. } = shape;
    let mut out = vec![0.0f32; qg.len()];
    let blocks: Vec<Vec<Block>> = out
        .par_chunks_mut((rows * d).max(1))
        .enumerate()
        .map(|(pair, out)| {
            let q = &qg[pair * rows * d..(pair + 1) * rows * d];
            let kp = &k[pair * t * d..(pair + 1) * t * d];
            let vp = &v[pair * t * d..(pair + 1) * t * d];
            shape
                .blocks(runs, pair)
                .into_iter()
                .map(|(r0, n, k0, w)| {
                    let mut p = vec![0.0f32; n * w];
                    scores(&mut p, q, kp, (r0, n, k0, w), d);
                    let stats: Vec<(f32, f32)> = p
                        .chunks_mut(w.max(1))
                        .enumerate()
                        .map(|(i, pr)| {
                            let run = shape.run(runs, pair, r0 + i);
                            softmax_row(pr, run, k0, scale, t)
                        })
                        .collect();
                    // out[r0..r0+n] = p v[k0..k0+w]
                    gemm(
                        Gemm::rows(&mut out[r0 * d..(r0 + n) * d], n, d),
                        Gemm::view(&p, n, w, w, 1),
                        Gemm::view(&vp[k0 * d..], w, d, d, 1),
                        false,
                    );
                    let kept = if keep_probabilities {
                        Kept::Probabilities(p)
                    } else {
                        Kept::RowSoftmax(stats)
                    };
                    Block { r0, n, k0, w, kept }
                })
                .collect()
        })
        .collect();
    (out, blocks)
}

/// `dst = q[r0..r0+n] k[k0..k0+w]^T`: one block's raw scores.
fn scores(
    dst: &mut [f32],
    q: &[f32],
    k: &[f32],
    (r0, n, k0, w): (usize, usize, usize, usize),
    d: usize,
) {
    gemm(
        Gemm::rows(dst, n, w),
        Gemm::view(&q[r0 * d..], n, d, d, 1),
        Gemm::view(&k[k0 * d..], d, w, 1, d),
        false,
    );
}

/// Scale, mask outside the row's run, softmax over the block's keys `k0..k0 + row.len()`, in place; returns the
/// largest scaled score and the inverse normalizer ([`probabilities_row`] rebuilds the row from them).
fn softmax_row(row: &mut [f32], run: &KeyRun, k0: usize, scale: f32, t: usize) -> (f32, f32) {
    let Some(live) = live_keys(row, run, k0, t) else {
        return (0.0, 0.0);
    };
    vectorized(
        #[inline(always)]
        || {
            live.iter_mut().for_each(|x| *x *= scale);
            let top = max(live);
            for x in live.iter_mut() {
                *x = exp(*x - top);
            }
            let inv = 1.0 / sum(live);
            live.iter_mut().for_each(|x| *x *= inv);
            (top, inv)
        },
    )
}

/// The part of a block's row (keys `k0..`) inside the row's run, with the probabilities outside it set: 0, or
/// `1 / t` everywhere for a fully masked row (then `None`: nothing is left to compute).
fn live_keys<'a>(row: &'a mut [f32], run: &KeyRun, k0: usize, t: usize) -> Option<&'a mut [f32]> {
    if run.uniform {
        row.iter_mut().for_each(|x| *x = 1.0 / t as f32);
        return None;
    }
    let (lo, hi) = (run.lo as usize - k0, run.hi as usize - k0);
    row[..lo].iter_mut().for_each(|x| *x = 0.0);
    row[hi..].iter_mut().for_each(|x| *x = 0.0);
    Some(&mut row[lo..hi])
}

/// The probabilities [`softmax_row`] computed from the same raw scores, given its statistics: the same
/// operations in the same order, so the same bits.
fn probabilities_row(
    row: &mut [f32],
    run: &KeyRun,
    k0: usize,
    scale: f32,
    t: usize,
    (top, inv): (f32, f32),
) {
    let Some(live) = live_keys(row, run, k0, t) else {
        return;
    };
    vectorized(
        #[inline(always)]
        || {
            live.iter_mut().for_each(|x| *x *= scale);
            for x in live.iter_mut() {
                *x = exp(*x - top);
            }
            live.iter_mut().for_each(|x| *x *= inv);
        },
    )
}

/// `(dqg, dk, dv)` in the layouts of `qg`, `k`, `v` for the output gradient `g` (grouped like `qg`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    qg: &[f32],
    k: &[f32],
    v: &[f32],
    g: &[f32],
    runs: &[KeyRun],
    blocks: &[Vec<Block>],
    shape: Shape,
    scale: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let Shape { rows, t, d, .. } = shape;
    let mut dq = vec![0.0f32; qg.len()];
    let mut dk = vec![0.0f32; k.len()];
    let mut dv = vec![0.0f32; v.len()];
    dq.par_chunks_mut((rows * d).max(1))
        .zip(dk.par_chunks_mut((t * d).max(1)))
        .zip(dv.par_chunks_mut((t * d).max(1)))
        .zip(blocks.par_iter())
        .enumerate()
        .for_each(|(pair, (((dq, dk), dv), blocks))| {
            let q = &qg[pair * rows * d..(pair + 1) * rows * d];
            let kp = &k[pair * t * d..(pair + 1) * t * d];
            let vp = &v[pair * t * d..(pair + 1) * t * d];
            let gp = &g[pair * rows * d..(pair + 1) * rows * d];
            let mut recomputed = Vec::new();
            for b in blocks {
                let (r0, n, k0, w) = (b.r0, b.n, b.k0, b.w);
                let go = &gp[r0 * d..(r0 + n) * d];
                let p: &[f32] = match &b.kept {
                    Kept::Probabilities(p) => p,
                    Kept::RowSoftmax(stats) => {
                        recomputed.resize(n * w, 0.0);
                        scores(&mut recomputed, q, kp, (r0, n, k0, w), d);
                        for (i, (pr, &st)) in recomputed.chunks_mut(w.max(1)).zip(stats).enumerate()
                        {
                            let run = shape.run(runs, pair, r0 + i);
                            probabilities_row(pr, run, k0, scale, t, st);
                        }
                        &recomputed
                    }
                };
                // dv[k0..k0+w] += p^T g
                gemm(
                    Gemm::rows(&mut dv[k0 * d..(k0 + w) * d], w, d),
                    Gemm::view(p, w, n, 1, w),
                    Gemm::view(go, n, d, d, 1),
                    true,
                );
                // dp = g v[k0..k0+w]^T, then the scores' gradient in place
                let mut ds = vec![0.0f32; n * w];
                gemm(
                    Gemm::rows(&mut ds, n, w),
                    Gemm::view(go, n, d, d, 1),
                    Gemm::view(&vp[k0 * d..], d, w, 1, d),
                    false,
                );
                for (i, (dr, pr)) in ds.chunks_mut(w.max(1)).zip(p.chunks(w.max(1))).enumerate() {
                    let run = shape.run(runs, pair, r0 + i);
                    if run.uniform {
                        dr.iter_mut().for_each(|x| *x = 0.0);
                        continue;
                    }
                    vectorized(
                        #[inline(always)]
                        || {
                            let dp = dot(dr, pr);
                            for (x, p) in dr.iter_mut().zip(pr) {
                                *x = scale * p * (*x - dp);
                            }
                        },
                    )
                }
                // dq[r0..r0+n] = ds k[k0..k0+w]
                gemm(
                    Gemm::rows(&mut dq[r0 * d..(r0 + n) * d], n, d),
                    Gemm::view(&ds, n, w, w, 1),
                    Gemm::view(&kp[k0 * d..], w, d, d, 1),
                    false,
                );
                // dk[k0..k0+w] += ds^T q[r0..r0+n]
                gemm(
                    Gemm::rows(&mut dk[k0 * d..(k0 + w) * d], w, d),
                    Gemm::view(&ds, w, n, 1, w),
                    Gemm::view(&q[r0 * d..], n, d, d, 1),
                    true,
                );
            }
        });
    (dq, dk, dv)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[1, 1, s, s]` mask bytes of one packed row: causal within each segment, nothing across.
    pub(super) fn packed(segments: &[usize]) -> Vec<u8> {
        let s: usize = segments.iter().sum();
        let mut id = Vec::new();
        for (k, &len) in segments.iter().enumerate() {
            id.extend(std::iter::repeat_n(k, len));
        }
        let mut m = vec![1u8; s * s];
        for i in 0..s {
            for j in 0..=i {
                if id[i] == id[j] {
                    m[i * s + j] = 0;
                }
            }
        }
        m
    }

    #[test]
    fn packed_rows_have_one_run_per_query_and_a_sparse_block_cover() {
        let segments = [60, 50, 70, 76];
        let s: usize = segments.iter().sum();
        let runs = key_runs(&packed(&segments), s).expect("contiguous runs");
        assert_eq!(
            runs[0],
            KeyRun {
                lo: 0,
                hi: 1,
                uniform: false
            }
        );
        assert_eq!(
            runs[59],
            KeyRun {
                lo: 0,
                hi: 60,
                uniform: false
            }
        );
        assert_eq!(
            runs[60],
            KeyRun {
                lo: 60,
                hi: 61,
                uniform: false
            }
        );
        assert_eq!(
            runs[s - 1],
            KeyRun {
                lo: 180,
                hi: s as u32,
                uniform: false
            }
        );
        let shape = Shape {
            kv: 1,
            rows: s,
            s,
            t: s,
            d: 8,
            mask_batches: 1,
            block: BLOCK,
        };
        let density = shape.density(&runs, 1);
        assert!(density < 0.4, "{density}");
    }

    #[test]
    fn a_row_with_two_runs_has_no_key_run_and_a_fully_masked_row_attends_uniformly() {
        assert_eq!(key_runs(&[0, 1, 0, 1], 4), None);
        assert_eq!(
            key_runs(&[1, 1, 1, 1], 4),
            Some(vec![KeyRun {
                lo: 0,
                hi: 4,
                uniform: true
            }])
        );
        assert_eq!(
            key_runs(&[1, 0, 0, 1], 4),
            Some(vec![KeyRun {
                lo: 1,
                hi: 3,
                uniform: false
            }])
        );
    }
}
