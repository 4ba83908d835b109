//! From samples to batches (host side, no tensors): the encoder applies the model's chat template and image
//! preprocessing and marks the supervised (assistant) tokens; the collator either pads one sample per row to the
//! batch's longest sequence or packs several samples per row of a fixed length (segment ids and per-sample
//! positions tell the model where each sample starts), and measures the padding.

use serde::{Deserialize, Serialize};

use crate::data::Sample;

/// Label value of tokens that carry no loss (as in PyTorch / HF; the model's loss reads the same constant).
pub use svlm_model::IGNORE_INDEX;

/// One encoded sample.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedSample {
    pub source: usize,
    pub origin: String,
    pub input_ids: Vec<u32>,
    /// Same length as `input_ids`: the token id on assistant tokens, [`IGNORE_INDEX`] elsewhere (unshifted, as HF
    /// labels: the loss compares position t's logits with label t+1).
    pub labels: Vec<i64>,
    /// Preprocessed image tiles of this sample, `tiles x C x H x W`, row-major.
    pub pixel_values: Vec<f32>,
    pub tiles: usize,
    /// `[C, H, W]` of one tile (all samples of a run share it).
    pub tile_shape: [usize; 3],
    /// The Qwen2-VL family: each image's patch grid `(t, h, w)`; its tiles are then the images' flattened patches
    /// (`tile_shape = [C * T * p * p, 1, 1]`). Empty for the other families.
    pub image_grid_thw: Vec<[usize; 3]>,
    /// Tokens cut off by `max_seq_len`.
    pub truncated: usize,
}

impl EncodedSample {
    /// Tokens that carry loss (the label of the first position never does after the shift).
    pub fn supervised_tokens(&self) -> usize {
        self.labels
            .iter()
            .skip(1)
            .filter(|&&l| l != IGNORE_INDEX)
            .count()
    }
}

/// Applies a model's chat template and image preprocessing. Implementations live next to each model family's
/// processor (`crate::vlm`); tests use small ones of their own.
pub trait SampleEncoder: Send + Sync {
    /// Encode one sample, truncating to `max_seq_len`. An error (e.g. an image that fails to decode) skips the
    /// sample; it is counted and named like a malformed row.
    fn encode(&self, sample: &Sample, max_seq_len: usize) -> anyhow::Result<EncodedSample>;
    /// Token id used for padding.
    fn pad_id(&self) -> u32;
}

/// Where one sample sits in a [`HostBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub row: usize,
    /// First token position in the row.
    pub start: usize,
    /// Tokens of the sample in the row (after truncation to the row).
    pub len: usize,
    /// First tile slot of the sample in its row (`tiles` slots from there).
    pub tile_start: usize,
    pub tiles: usize,
}

/// A batch on the host: one sample per row padded to the longest ([`HostBatch::collate`]), or several samples per
/// row of a fixed length ([`HostBatch::pack`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    /// Rows.
    pub batch: usize,
    pub seq_len: usize,
    /// `batch x seq_len`, padded with the pad id.
    pub input_ids: Vec<u32>,
    /// 1 on real tokens, 0 on padding.
    pub attention_mask: Vec<u8>,
    /// Unshifted labels; the first token of every sample is [`IGNORE_INDEX`], so no position predicts across a
    /// sample boundary.
    pub labels: Vec<i64>,
    /// `batch x seq_len`: 1-based index of the token's sample inside its row, 0 on padding.
    pub segment_ids: Vec<u32>,
    /// `batch x seq_len`: the token's position inside its own sample (RoPE position id); 0 on padding.
    pub position_ids: Vec<u32>,
    /// True when rows may hold several samples: the model must confine attention to segments and take
    /// `position_ids` instead of `0..seq_len`.
    pub packed: bool,
    /// `batch x max_tiles x C x H x W`: each row's tiles, its samples' tiles in sample order (zero tiles pad rows with
    /// fewer); empty when no sample has images.
    pub pixel_values: Vec<f32>,
    pub max_tiles: usize,
    pub tile_shape: [usize; 3],
    /// `batch x max_tiles`: true for real tiles.
    pub tile_mask: Vec<bool>,
    /// The Qwen2-VL family: the patch grids of every sample's images, in sample order (row 0's samples first).
    pub image_grid_thw: Vec<[usize; 3]>,
    /// Per sample, in row order (row 0's samples first): where it sits.
    pub spans: Vec<Span>,
    /// Per sample: source index, origin, supervised tokens.
    pub sources: Vec<usize>,
    pub origins: Vec<String>,
    pub supervised: Vec<usize>,
    pub real_tokens: usize,
    /// Tokens of samples longer than a packed row, cut off at the row's end.
    pub truncated: usize,
}

impl HostBatch {
    /// One sample per row, padded to the longest one.
    pub fn collate(samples: &[EncodedSample], pad_id: u32) -> Self {
        let seq_len = samples.iter().map(|s| s.input_ids.len()).max().unwrap_or(0);
        let rows: Vec<Vec<&EncodedSample>> = samples.iter().map(|s| vec![s]).collect();
        Self::from_rows(&rows, seq_len, pad_id, false)
    }

    /// Rows of exactly `seq_len` tokens, each holding the given samples back to back, then padding. A sample that
    /// does not fit in what is left of its row is cut at the row's end (counted in `truncated`); the loader plans
    /// rows so that only a sample longer than a whole row is.
    pub fn pack(rows: &[Vec<&EncodedSample>], seq_len: usize, pad_id: u32) -> Self {
        Self::from_rows(rows, seq_len, pad_id, true)
    }

    fn from_rows(rows: &[Vec<&EncodedSample>], seq_len: usize, pad_id: u32, packed: bool) -> Self {
        let batch = rows.len();
        let all = || rows.iter().flatten();
        let max_tiles = rows
            .iter()
            .map(|r| r.iter().map(|s| s.tiles).sum::<usize>())
            .max()
            .unwrap_or(0);
        let tile_shape = all().find(|s| s.tiles > 0).map_or([0; 3], |s| s.tile_shape);
        let tile_len = tile_shape.iter().product::<usize>();
        let n_samples = all().count();
        let mut out = HostBatch {
            batch,
            seq_len,
            input_ids: vec![pad_id; batch * seq_len],
            attention_mask: vec![0; batch * seq_len],
            labels: vec![IGNORE_INDEX; batch * seq_len],
            segment_ids: vec![0; batch * seq_len],
            position_ids: vec![0; batch * seq_len],
            packed,
            pixel_values: vec![0.0; batch * max_tiles * tile_len],
            max_tiles,
            tile_shape,
            tile_mask: vec![false; batch * max_tiles],
            image_grid_thw: Vec::new(),
            spans: Vec::with_capacity(n_samples),
            sources: Vec::with_capacity(n_samples),
            origins: Vec::with_capacity(n_samples),
            supervised: Vec::with_capacity(n_samples),
            real_tokens: 0,
            truncated: 0,
        };
        for (r, samples) in rows.iter().enumerate() {
            let (mut start, mut tile_start) = (0usize, 0usize);
            for (k, s) in samples.iter().enumerate() {
                let len = s.input_ids.len().min(seq_len - start);
                out.truncated += s.input_ids.len() - len;
                let at = r * seq_len + start;
                out.input_ids[at..at + len].copy_from_slice(&s.input_ids[..len]);
                out.attention_mask[at..at + len].fill(1);
                out.labels[at..at + len].copy_from_slice(&s.labels[..len]);
                if len > 0 {
                    out.labels[at] = IGNORE_INDEX;
                }
                out.segment_ids[at..at + len].fill(k as u32 + 1);
                for (i, p) in out.position_ids[at..at + len].iter_mut().enumerate() {
                    *p = i as u32;
                }
                let pixels = (r * max_tiles + tile_start) * tile_len;
                out.pixel_values[pixels..pixels + s.pixel_values.len()]
                    .copy_from_slice(&s.pixel_values);
                let tiles = r * max_tiles + tile_start;
                out.tile_mask[tiles..tiles + s.tiles].fill(true);
                out.image_grid_thw.extend_from_slice(&s.image_grid_thw);
                out.spans.push(Span {
                    row: r,
                    start,
                    len,
                    tile_start,
                    tiles: s.tiles,
                });
                out.sources.push(s.source);
                out.origins.push(s.origin.clone());
                out.supervised.push(
                    s.labels[..len]
                        .iter()
                        .skip(1)
                        .filter(|&&l| l != IGNORE_INDEX)
                        .count(),
                );
                out.real_tokens += len;
                start += len;
                tile_start += s.tiles;
            }
        }
        out
    }

    /// Samples in the batch.
    pub fn samples(&self) -> usize {
        self.spans.len()
    }

    /// Share of token positions that are padding.
    pub fn pad_fraction(&self) -> f64 {
        let total = self.batch * self.seq_len;
        if total == 0 {
            0.0
        } else {
            1.0 - self.real_tokens as f64 / total as f64
        }
    }

    pub fn supervised_tokens(&self) -> usize {
        self.supervised.iter().sum()
    }
}

/// Packs samples into `rows` rows of `len` tokens, in arrival order: each sample goes into the fullest row that still
/// has room for it (best fit, which leaves fewer unusable gaps than first fit). Used by the loader one sample at a
/// time; see [`Packer::offer`].
#[derive(Debug, Clone)]
pub struct Packer {
    len: usize,
    free: Vec<usize>,
    /// Per row: indices of the offered samples placed there, in order.
    pub rows: Vec<Vec<usize>>,
    offered: usize,
}

impl Packer {
    pub fn new(rows: usize, len: usize) -> Self {
        Self {
            len,
            free: vec![len; rows],
            rows: vec![Vec::new(); rows],
            offered: 0,
        }
    }

    /// Offer the next sample of `tokens` tokens (capped at the row length: a longer sample takes a whole row and
    /// is truncated). Returns the row it was placed in, or `None` when no row has room (the sample is not placed,
    /// but still numbered: indices count offers).
    pub fn offer(&mut self, tokens: usize) -> Option<usize> {
        let tokens = tokens.min(self.len);
        let index = self.offered;
        self.offered += 1;
        // Best fit: the fullest row that still has room, the first of equals.
        let row = (0..self.free.len())
            .filter(|&r| self.free[r] >= tokens)
            .min_by_key(|&r| self.free[r])?;
        self.free[row] -= tokens;
        self.rows[row].push(index);
        Some(row)
    }

    /// True when no row has room left at all.
    pub fn full(&self) -> bool {
        self.free.iter().all(|&f| f == 0)
    }

    pub fn is_empty(&self) -> bool {
        self.rows.iter().all(Vec::is_empty)
    }
}

/// Which samples form which batch when length grouping is on: inside a window, sort by length and cut into batches,
/// then shuffle the batch order (seeded) so long and short batches alternate without a length trend.
pub fn group_by_length(
    lengths: &[usize],
    batch_size: usize,
    rng: &mut impl rand::Rng,
) -> Vec<Vec<usize>> {
    use rand::seq::SliceRandom;
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    // Stable sort: equal lengths keep draw order, so the grouping is a pure function of the draws and the RNG.
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    let mut batches: Vec<Vec<usize>> = order.chunks(batch_size).map(<[usize]>::to_vec).collect();
    batches.shuffle(rng);
    batches
}

/// Counters about what went into training, per source (the realized mixture).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceTotals {
    pub samples: u64,
    pub supervised_tokens: u64,
    pub tokens: u64,
    pub truncated_tokens: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn sample(ids: &[u32], supervised_from: usize, tiles: usize) -> EncodedSample {
        EncodedSample {
            source: 0,
            origin: "t:1".into(),
            input_ids: ids.to_vec(),
            labels: ids
                .iter()
                .enumerate()
                .map(|(i, &t)| {
                    if i >= supervised_from {
                        t as i64
                    } else {
                        IGNORE_INDEX
                    }
                })
                .collect(),
            pixel_values: vec![1.0; tiles * 3 * 2 * 2],
            tiles,
            tile_shape: [3, 2, 2],
            image_grid_thw: Vec::new(),
            truncated: 0,
        }
    }

    #[test]
    fn collate_pads_to_the_longest_and_measures_padding() {
        let b = HostBatch::collate(&[sample(&[5, 6, 7, 8], 2, 2), sample(&[9, 10], 1, 0)], 0);
        assert_eq!((b.batch, b.seq_len, b.max_tiles), (2, 4, 2));
        assert_eq!(b.input_ids, vec![5, 6, 7, 8, 9, 10, 0, 0]);
        assert_eq!(b.attention_mask, vec![1, 1, 1, 1, 1, 1, 0, 0]);
        assert_eq!(b.labels, vec![-100, -100, 7, 8, -100, 10, -100, -100]);
        assert_eq!(b.supervised, vec![2, 1]);
        assert!((b.pad_fraction() - 0.25).abs() < 1e-12);
        assert_eq!(b.tile_mask, vec![true, true, false, false]);
        assert_eq!(b.pixel_values.len(), 2 * 2 * 12);
        assert!(
            b.pixel_values[..24].iter().all(|&v| v == 1.0)
                && b.pixel_values[24..].iter().all(|&v| v == 0.0)
        );
    }

    #[test]
    fn packing_marks_segments_positions_and_boundary_labels() {
        let a = sample(&[5, 6, 7], 1, 1);
        let b = sample(&[8, 9], 0, 2);
        let c = sample(&[10, 11, 12, 13], 2, 0);
        let p = HostBatch::pack(&[vec![&a, &b], vec![&c]], 6, 0);
        assert!(p.packed);
        assert_eq!((p.batch, p.seq_len, p.samples(), p.max_tiles), (2, 6, 3, 3));
        assert_eq!(p.input_ids, vec![5, 6, 7, 8, 9, 0, 10, 11, 12, 13, 0, 0]);
        assert_eq!(p.segment_ids, vec![1, 1, 1, 2, 2, 0, 1, 1, 1, 1, 0, 0]);
        assert_eq!(p.position_ids, vec![0, 1, 2, 0, 1, 0, 0, 1, 2, 3, 0, 0]);
        assert_eq!(p.attention_mask, vec![1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0]);
        // `b` is supervised from its first token, but that label would be predicted by `a`'s last token: dropped.
        assert_eq!(
            p.labels,
            vec![-100, 6, 7, -100, 9, -100, -100, -100, 12, 13, -100, -100]
        );
        assert_eq!(p.supervised, vec![2, 1, 2]);
        assert_eq!(
            p.supervised,
            [&a, &b, &c].map(|s| s.supervised_tokens()).to_vec()
        );
        assert_eq!(p.real_tokens, 9);
        assert!((p.pad_fraction() - 3.0 / 12.0).abs() < 1e-12);
        assert_eq!(
            p.spans[1],
            Span {
                row: 0,
                start: 3,
                len: 2,
                tile_start: 1,
                tiles: 2
            }
        );
        // Row 0 holds a's tile then b's two; row 1 has none.
        assert_eq!(p.tile_mask, vec![true, true, true, false, false, false]);
        assert_eq!(p.pixel_values.len(), 2 * 3 * 12);
        assert!(p.pixel_values[..36].iter().all(|&v| v == 1.0));
        assert!(p.pixel_values[36..].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn a_sample_longer_than_a_row_is_cut_at_the_row_end() {
        let long = sample(&[1, 2, 3, 4, 5, 6, 7], 3, 0);
        let p = HostBatch::pack(&[vec![&long]], 5, 0);
        assert_eq!(p.input_ids, vec![1, 2, 3, 4, 5]);
        assert_eq!(p.labels, vec![-100, -100, -100, 4, 5]);
        assert_eq!((p.truncated, p.real_tokens, p.supervised[0]), (2, 5, 2));
        assert_eq!(p.pad_fraction(), 0.0);
    }

    #[test]
    fn the_packer_places_best_fit_in_arrival_order() {
        let mut packer = Packer::new(2, 10);
        assert_eq!(packer.offer(6), Some(0));
        assert_eq!(packer.offer(7), Some(1));
        assert_eq!(packer.offer(5), None, "4 and 3 tokens left");
        assert_eq!(packer.offer(3), Some(1), "the fuller row that fits");
        assert_eq!(packer.offer(4), Some(0));
        assert!(packer.full());
        assert_eq!(packer.rows, vec![vec![0, 4], vec![1, 3]]);
        let mut packer = Packer::new(1, 4);
        assert_eq!(
            packer.offer(9),
            Some(0),
            "a sample longer than a row takes a row"
        );
        assert!(packer.full());
    }

    #[test]
    fn length_grouping_cuts_padding() {
        let lengths: Vec<usize> = (0..64).map(|i| 8 + (i * 37) % 120).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let pad = |batches: &[Vec<usize>]| -> f64 {
            let (mut real, mut total) = (0usize, 0usize);
            for b in batches {
                let longest = b.iter().map(|&i| lengths[i]).max().unwrap_or(0);
                real += b.iter().map(|&i| lengths[i]).sum::<usize>();
                total += longest * b.len();
            }
            1.0 - real as f64 / total as f64
        };
        let grouped = group_by_length(&lengths, 8, &mut rng);
        let plain: Vec<Vec<usize>> = (0..64)
            .collect::<Vec<_>>()
            .chunks(8)
            .map(<[usize]>::to_vec)
            .collect();
        let mut all: Vec<usize> = grouped.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..64).collect::<Vec<_>>());
        assert!(
            pad(&grouped) < 0.5 * pad(&plain),
            "grouped {} vs plain {}",
            pad(&grouped),
            pad(&plain)
        );
    }
}
