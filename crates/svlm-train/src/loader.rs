//! The loader: mixture draws -> rows -> encoded samples -> batches (packed rows of a fixed shape, or padded
//! batches with optional length grouping), and the state that makes a resumed run see exactly the batches the
//! uninterrupted run would have seen.

use std::collections::VecDeque;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::batch::{
    EncodedSample, HostBatch, Packer, SampleEncoder, SourceTotals, group_by_length,
};
use crate::config::{RatioBy, RunConfig, StopRule};
use crate::data::{DataError, DataSet};
use crate::mixture::{Mixture, MixtureSource, MixtureState};

/// A drawn sample: (source index, row index) and the encoded sample.
type Drawn = ((usize, usize), EncodedSample);

/// Serializable loader position (part of every checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoaderState {
    pub mixture: MixtureState,
    /// Samples already drawn but not yet trained on, as (source, row) pairs: the batches of a length-grouping
    /// window, or (packing) one group of the samples that did not fit the last micro-batch's rows.
    pub pending: Vec<Vec<(usize, usize)>>,
    /// ChaCha8 state of the grouping RNG: seed and word position.
    pub rng_seed: [u8; 32],
    pub rng_word_pos: u128,
    pub totals: Vec<SourceTotals>,
    /// Rows read per source (for the bad-row fraction of reads).
    pub reads: Vec<usize>,
}

/// Train / validation split of one source's rows: hold-out rows are a seeded choice, not the file's tail.
pub fn split_rows(
    seed: u64,
    source: usize,
    len: usize,
    holdout: usize,
) -> (Vec<usize>, Vec<usize>) {
    let order = Mixture::epoch_order(seed ^ 0x005e_ed0f_ba11, u32::MAX, source, len);
    let holdout = holdout.min(len.saturating_sub(1));
    let mut validation: Vec<usize> = order[..holdout].iter().map(|&i| i as usize).collect();
    let mut train: Vec<usize> = order[holdout..].iter().map(|&i| i as usize).collect();
    validation.sort_unstable();
    train.sort_unstable();
    (train, validation)
}

/// How micro-batches are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batching {
    /// `batch_size` samples, one per row, padded to the longest.
    Padded,
    /// `rows` rows of `len` tokens, as many samples as fit.
    Packed { rows: usize, len: usize },
}

/// Samples drawn past the first one that does not fit a micro-batch's rows before it is closed: a few misses let
/// shorter samples fill the gaps, and the missed ones start the next micro-batch.
const PACK_LOOKAHEAD: usize = 8;

pub struct Loader<'a> {
    data: &'a DataSet,
    encoder: &'a dyn SampleEncoder,
    mixture: Mixture,
    stop: StopRule,
    batch_size: usize,
    batching: Batching,
    /// Mean tokens per sample over the mixture, from the probe (0 when not probed).
    mean_tokens: f64,
    window_batches: usize,
    /// Encoding length limit: `model.max_seq_len`, or the packed row length when shorter.
    max_seq_len: usize,
    max_bad_fraction: f64,
    pending: VecDeque<Vec<Drawn>>,
    /// Packing: drawn samples that did not fit, placed first in the next micro-batch.
    pool: VecDeque<Drawn>,
    rng: ChaCha8Rng,
    pub totals: Vec<SourceTotals>,
    reads: Vec<usize>,
    /// Validation rows per source.
    pub validation: Vec<Vec<usize>>,
    /// Encoded validation samples per source, made on first use.
    validation_cache: std::cell::OnceCell<Vec<Vec<EncodedSample>>>,
}

impl<'a> Loader<'a> {
    /// A loader that packs when `train.packing` says so.
    pub fn new(
        config: &RunConfig,
        data: &'a DataSet,
        encoder: &'a dyn SampleEncoder,
    ) -> Result<Self, DataError> {
        Self::with_packing(config, data, encoder, config.train.packing)
    }

    /// A loader that packs micro-batches when `packing` is true (the trainer turns it off for models without
    /// packing support), whatever `train.packing` says.
    pub fn with_packing(
        config: &RunConfig,
        data: &'a DataSet,
        encoder: &'a dyn SampleEncoder,
        packing: bool,
    ) -> Result<Self, DataError> {
        let pack_len = config.train.pack_len(config.model.max_seq_len);
        let max_seq_len = if packing {
            config.model.max_seq_len.min(pack_len)
        } else {
            config.model.max_seq_len
        };
        let mut sources = Vec::new();
        let mut validation = Vec::new();
        let mut mean_tokens = 0.0f64;
        let weight_sum: f64 = config.data.sources.iter().map(|s| s.weight).sum();
        for (i, (source, sc)) in data.sources.iter().zip(&config.data.sources).enumerate() {
            let (train, val) = split_rows(config.seed, i, source.len(), sc.holdout);
            let mut probe_tokens = 0usize;
            let mut probe_len = 0usize;
            let mut probed = 0usize;
            // Encoding runs the image processor: only pay for the probe where the plan needs token counts (or
            // packing needs the mean length to size its micro-batches).
            let needs_probe = config.data.ratio_by == RatioBy::Tokens
                || config.data.stop != StopRule::Steps
                || (packing && config.train.pack_rows.is_none());
            let probe_rows = if needs_probe {
                config.data.token_probe_rows
            } else {
                0
            };
            for &row in train.iter().take(probe_rows) {
                if let Some(sample) = source.get(row, i)
                    && let Ok(encoded) = encoder.encode(&sample, max_seq_len)
                {
                    probe_tokens += encoded.supervised_tokens();
                    probe_len += encoded.input_ids.len();
                    probed += 1;
                }
            }
            let tokens_per_sample = if probed == 0 {
                1.0
            } else {
                probe_tokens as f64 / probed as f64
            };
            if probed > 0 && weight_sum > 0.0 {
                mean_tokens += sc.weight / weight_sum * probe_len as f64 / probed as f64;
            }
            sources.push(MixtureSource {
                name: sc.name.clone(),
                weight: sc.weight,
                rows: train,
                epochs: config.source_epochs(sc),
                tokens_per_sample,
            });
            validation.push(val);
        }
        let n = sources.len();
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&config.seed.to_le_bytes());
        seed[8..16].copy_from_slice(b"grouping");
        let batching = if packing {
            let rows = config.train.pack_rows.unwrap_or_else(|| {
                let tokens = config.train.batch_size as f64 * mean_tokens.max(1.0);
                ((tokens / pack_len as f64).ceil() as usize).max(1)
            });
            tracing::info!(
                "packing: {rows} rows of {pack_len} tokens per micro-batch (mean sample {mean_tokens:.0} tokens)"
            );
            Batching::Packed {
                rows,
                len: pack_len,
            }
        } else {
            Batching::Padded
        };
        Ok(Self {
            data,
            encoder,
            mixture: Mixture::new(config.seed, config.data.ratio_by, sources),
            stop: config.data.stop,
            batch_size: config.train.batch_size,
            batching,
            mean_tokens,
            window_batches: config.data.length_group_batches,
            max_seq_len,
            max_bad_fraction: config.data.max_bad_fraction,
            pending: VecDeque::new(),
            pool: VecDeque::new(),
            rng: ChaCha8Rng::from_seed(seed),
            totals: vec![SourceTotals::default(); n],
            reads: vec![0; n],
            validation,
            validation_cache: std::cell::OnceCell::new(),
        })
    }

    pub fn mixture(&self) -> &Mixture {
        &self.mixture
    }

    pub fn batching(&self) -> Batching {
        self.batching
    }

    /// Samples a micro-batch holds on average (exact for padded batches; for packed ones estimated from the probed
    /// mean length, assuming rows about 97% full). Plans the schedule of runs that stop when the data does.
    pub fn samples_per_batch(&self) -> f64 {
        match self.batching {
            Batching::Padded => self.batch_size as f64,
            Batching::Packed { rows, len } if self.mean_tokens > 0.0 => {
                (rows * len) as f64 * 0.97 / self.mean_tokens
            }
            Batching::Packed { .. } => self.batch_size as f64,
        }
    }

    pub fn state(&self) -> LoaderState {
        LoaderState {
            mixture: self.mixture.state().clone(),
            pending: self
                .pending
                .iter()
                .map(|b| b.iter().map(|(k, _)| *k).collect())
                .chain((!self.pool.is_empty()).then(|| self.pool.iter().map(|(k, _)| *k).collect()))
                .collect(),
            rng_seed: self.rng.get_seed(),
            rng_word_pos: self.rng.get_word_pos(),
            totals: self.totals.clone(),
            reads: self.reads.clone(),
        }
    }

    pub fn restore(&mut self, state: LoaderState) -> anyhow::Result<()> {
        self.mixture.set_state(state.mixture)?;
        self.rng = ChaCha8Rng::from_seed(state.rng_seed);
        self.rng.set_word_pos(state.rng_word_pos);
        self.totals = state.totals;
        self.reads = state.reads;
        self.pending.clear();
        self.pool.clear();
        for batch in state.pending {
            let mut encoded = Vec::new();
            for (source, row) in batch {
                // These rows were read and encoded before the checkpoint; reading them again gives the same samples.
                let sample = self.data.sources[source].get(row, source).ok_or_else(|| {
                    anyhow::anyhow!("pending row {row} of source {source} no longer reads")
                })?;
                let mut e = self.encoder.encode(&sample, self.max_seq_len)?;
                e.source = source;
                e.origin = sample.origin.clone();
                encoded.push(((source, row), e));
            }
            match self.batching {
                Batching::Packed { .. } => self.pool.extend(encoded),
                Batching::Padded => self.pending.push_back(encoded),
            }
        }
        Ok(())
    }

    fn stopped(&self) -> bool {
        match self.stop {
            StopRule::FirstExhausted => self.mixture.first_exhausted(),
            StopRule::AllExhausted | StopRule::Steps => self.mixture.all_exhausted(),
        }
    }

    /// Draw one usable sample, skipping (and counting) bad rows. `None` when the stop rule says the data is done.
    fn draw(&mut self) -> Result<Option<Drawn>, DataError> {
        loop {
            if self.stopped() {
                return Ok(None);
            }
            let Some((source, row)) = self.mixture.next() else {
                return Ok(None);
            };
            self.reads[source] += 1;
            let ds = &self.data.sources[source];
            let encoded = match ds.get(row, source) {
                Some(sample) => match self.encoder.encode(&sample, self.max_seq_len) {
                    Ok(mut e) => {
                        e.source = source;
                        e.origin = sample.origin.clone();
                        Some(e)
                    }
                    Err(reason) => {
                        ds.record_bad(sample.origin.clone(), format!("{reason:#}"));
                        None
                    }
                },
                None => None,
            };
            match encoded {
                Some(e) => {
                    self.mixture.record(source, e.supervised_tokens());
                    let t = &mut self.totals[source];
                    t.samples += 1;
                    t.supervised_tokens += e.supervised_tokens() as u64;
                    t.tokens += e.input_ids.len() as u64;
                    t.truncated_tokens += e.truncated as u64;
                    return Ok(Some(((source, row), e)));
                }
                None => ds.check_bad_fraction(self.max_bad_fraction)?,
            }
        }
    }

    /// The next batch (possibly short, or packed rows less full, at the very end), or `None` when the data is done.
    pub fn next_batch(&mut self) -> Result<Option<HostBatch>, DataError> {
        match self.batching {
            Batching::Packed { rows, len } => self.next_packed(rows, len),
            Batching::Padded => self.next_padded(),
        }
    }

    /// A micro-batch of `rows` rows of `len` tokens: first the samples left over from the last one (oldest
    /// first), then new draws, each into the fullest row with room (best fit). A draw that fits nowhere waits in the
    /// pool for the next micro-batch; the batch closes when every row is full or after [`PACK_LOOKAHEAD`] such
    /// draws. The order of draws is the mixture's, so resuming needs only the mixture state and the pool's rows.
    fn next_packed(&mut self, rows: usize, len: usize) -> Result<Option<HostBatch>, DataError> {
        let mut packer = Packer::new(rows, len);
        let mut placed: Vec<Option<EncodedSample>> = Vec::new();
        let mut waiting = VecDeque::new();
        for drawn in std::mem::take(&mut self.pool) {
            match packer.offer(drawn.1.input_ids.len()) {
                Some(_) => placed.push(Some(drawn.1)),
                None => {
                    placed.push(None);
                    waiting.push_back(drawn);
                }
            }
        }
        let mut misses = 0;
        while misses < PACK_LOOKAHEAD && !packer.full() {
            let Some(drawn) = self.draw()? else {
                break;
            };
            match packer.offer(drawn.1.input_ids.len()) {
                Some(_) => placed.push(Some(drawn.1)),
                None => {
                    placed.push(None);
                    waiting.push_back(drawn);
                    misses += 1;
                }
            }
        }
        self.pool = waiting;
        if packer.is_empty() {
            return Ok(None);
        }
        let row_samples: Vec<Vec<&EncodedSample>> = packer
            .rows
            .iter()
            .map(|r| r.iter().filter_map(|&i| placed[i].as_ref()).collect())
            .collect();
        Ok(Some(HostBatch::pack(
            &row_samples,
            len,
            self.encoder.pad_id(),
        )))
    }

    fn next_padded(&mut self) -> Result<Option<HostBatch>, DataError> {
        if self.pending.is_empty() {
            let window = self.batch_size * self.window_batches.max(1);
            let mut drawn = Vec::with_capacity(window);
            while drawn.len() < window {
                match self.draw()? {
                    Some(d) => drawn.push(d),
                    None => break,
                }
            }
            if drawn.is_empty() {
                return Ok(None);
            }
            if self.window_batches > 1 {
                let lengths: Vec<usize> = drawn.iter().map(|(_, e)| e.input_ids.len()).collect();
                let groups = group_by_length(&lengths, self.batch_size, &mut self.rng);
                let mut slots: Vec<Option<((usize, usize), EncodedSample)>> =
                    drawn.into_iter().map(Some).collect();
                for g in groups {
                    self.pending
                        .push_back(g.into_iter().filter_map(|i| slots[i].take()).collect());
                }
            } else {
                self.pending.push_back(drawn);
            }
        }
        let Some(batch) = self.pending.pop_front() else {
            return Ok(None);
        };
        let samples: Vec<EncodedSample> = batch.into_iter().map(|(_, e)| e).collect();
        Ok(Some(HostBatch::collate(&samples, self.encoder.pad_id())))
    }

    /// Validation batches of one source (fixed rows, fixed order).
    pub fn validation_batches(&self, source: usize, batch_size: usize) -> Vec<HostBatch> {
        let cache = self.validation_cache.get_or_init(|| {
            (0..self.validation.len())
                .map(|source| {
                    let ds = &self.data.sources[source];
                    self.validation[source]
                        .iter()
                        .filter_map(|&row| ds.get(row, source))
                        .filter_map(|s| {
                            self.encoder.encode(&s, self.max_seq_len).ok().map(|mut e| {
                                e.source = source;
                                e.origin = s.origin.clone();
                                e
                            })
                        })
                        .collect()
                })
                .collect()
        });
        cache[source]
            .chunks(batch_size)
            .map(|c| HostBatch::collate(c, self.encoder.pad_id()))
            .collect()
    }

    /// Samples the run will see before its stop rule ends it (for the schedule and the progress bar), simulated on
    /// a copy of the mixture with the probed tokens per sample. `None` with `stop = "steps"` and no epoch limits.
    pub fn planned_samples(&self) -> Option<u64> {
        if self.stop == StopRule::Steps
            && self
                .mixture
                .sources()
                .iter()
                .all(|s| s.epochs.is_none() || s.weight == 0.0)
        {
            return None;
        }
        let mut m = self.mixture.clone();
        let mut n = 0u64;
        loop {
            let done = match self.stop {
                StopRule::FirstExhausted => m.first_exhausted(),
                _ => m.all_exhausted(),
            };
            if done {
                return Some(n);
            }
            let Some((s, _)) = m.next() else {
                return Some(n);
            };
            let t = m.sources()[s].tokens_per_sample.round() as usize;
            m.record(s, t);
            n += 1;
            if n > 1 << 34 {
                return Some(n);
            }
        }
    }
}
