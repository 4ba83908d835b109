//! From samples to padded batches (host side, no tensors): the encoder applies the model's chat template and image
//! preprocessing and marks the supervised (assistant) tokens; the collator pads to the batch's longest sequence and
//! measures the padding.

use serde::{Deserialize, Serialize};

use crate::data::Sample;

/// Label value of tokens that carry no loss (as in PyTorch / HF).
pub const IGNORE_INDEX: i64 = -100;

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
    fn encode(&self, sample: &Sample, max_seq_len: usize) -> Result<EncodedSample, String>;
    /// Token id used for padding.
    fn pad_id(&self) -> u32;
}

/// A padded batch on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    pub batch: usize,
    pub seq_len: usize,
    /// `batch x seq_len`, padded with the pad id.
    pub input_ids: Vec<u32>,
    /// 1 on real tokens, 0 on padding.
    pub attention_mask: Vec<u8>,
    pub labels: Vec<i64>,
    /// `batch x max_tiles x C x H x W` (zero tiles pad samples with fewer images); empty when no sample has images.
    pub pixel_values: Vec<f32>,
    pub max_tiles: usize,
    pub tile_shape: [usize; 3],
    /// `batch x max_tiles`: true for real tiles.
    pub tile_mask: Vec<bool>,
    pub sources: Vec<usize>,
    pub origins: Vec<String>,
    /// Supervised tokens per sample.
    pub supervised: Vec<usize>,
    pub real_tokens: usize,
}

impl HostBatch {
    /// Pad samples to the longest one.
    pub fn collate(samples: &[EncodedSample], pad_id: u32) -> Self {
        let batch = samples.len();
        let seq_len = samples.iter().map(|s| s.input_ids.len()).max().unwrap_or(0);
        let max_tiles = samples.iter().map(|s| s.tiles).max().unwrap_or(0);
        let tile_shape = samples
            .iter()
            .find(|s| s.tiles > 0)
            .map_or([0; 3], |s| s.tile_shape);
        let tile_len = tile_shape.iter().product::<usize>();
        let mut out = HostBatch {
            batch,
            seq_len,
            input_ids: vec![pad_id; batch * seq_len],
            attention_mask: vec![0; batch * seq_len],
            labels: vec![IGNORE_INDEX; batch * seq_len],
            pixel_values: vec![0.0; batch * max_tiles * tile_len],
            max_tiles,
            tile_shape,
            tile_mask: vec![false; batch * max_tiles],
            sources: Vec::with_capacity(batch),
            origins: Vec::with_capacity(batch),
            supervised: Vec::with_capacity(batch),
            real_tokens: 0,
        };
        for (b, s) in samples.iter().enumerate() {
            let n = s.input_ids.len();
            let row = b * seq_len;
            out.input_ids[row..row + n].copy_from_slice(&s.input_ids);
            out.attention_mask[row..row + n].fill(1);
            out.labels[row..row + n].copy_from_slice(&s.labels);
            let start = b * max_tiles * tile_len;
            out.pixel_values[start..start + s.pixel_values.len()].copy_from_slice(&s.pixel_values);
            out.tile_mask[b * max_tiles..b * max_tiles + s.tiles].fill(true);
            out.sources.push(s.source);
            out.origins.push(s.origin.clone());
            out.supervised.push(s.supervised_tokens());
            out.real_tokens += n;
        }
        out
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
