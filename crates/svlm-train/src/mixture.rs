//! The mixture sampler: which source the next sample comes from, and which row.
//!
//! Source choice is by largest deficit (target share x total so far - realized), counted in samples or in supervised
//! tokens. Unlike drawing the source at random, the realized mixture then tracks the configured ratio within one
//! sample at every point of the run, so short runs and ablations at small ratios (5%) see the ratio they asked for.
//! Row order inside a source is a fresh permutation per epoch, derived from (seed, epoch, source) with ChaCha, so it
//! needs no stored RNG: the state is just cursors and counters.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::RatioBy;

/// Per-source position and realized counts (serialized into checkpoints).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceState {
    /// Next position in the current epoch's permutation.
    pub cursor: usize,
    /// Current epoch (0-based).
    pub epoch: u32,
    /// Samples and supervised tokens used so far.
    pub samples: u64,
    pub tokens: u64,
    pub exhausted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixtureState {
    pub sources: Vec<SourceState>,
}

/// One source as the mixture sees it.
#[derive(Debug, Clone)]
pub struct MixtureSource {
    pub name: String,
    /// Configured weight (normalized over sources by the mixture).
    pub weight: f64,
    /// Row indices (into the data source) that belong to training (hold-out removed).
    pub rows: Vec<usize>,
    /// Epochs until exhausted; `None` = cycle forever.
    pub epochs: Option<u32>,
    /// Estimated supervised tokens per sample (for `ratio_by = tokens` planning).
    pub tokens_per_sample: f64,
}

/// Deterministic mixture over sources.
#[derive(Debug, Clone)]
pub struct Mixture {
    seed: u64,
    ratio_by: RatioBy,
    sources: Vec<MixtureSource>,
    shares: Vec<f64>,
    state: MixtureState,
    /// Cached permutation per source: (epoch, order).
    permutations: Vec<Option<(u32, Vec<u32>)>>,
}

impl Mixture {
    pub fn new(seed: u64, ratio_by: RatioBy, sources: Vec<MixtureSource>) -> Self {
        let total: f64 = sources.iter().map(|s| s.weight).sum();
        let shares = sources
            .iter()
            .map(|s| if total > 0.0 { s.weight / total } else { 0.0 })
            .collect();
        let state = MixtureState {
            sources: sources
                .iter()
                .map(|s| SourceState {
                    exhausted: s.rows.is_empty(),
                    ..Default::default()
                })
                .collect(),
        };
        let permutations = vec![None; sources.len()];
        Self {
            seed,
            ratio_by,
            sources,
            shares,
            state,
            permutations,
        }
    }

    pub fn state(&self) -> &MixtureState {
        &self.state
    }

    pub fn set_state(&mut self, state: MixtureState) -> anyhow::Result<()> {
        if state.sources.len() != self.sources.len() {
            anyhow::bail!(
                "mixture state has {} sources, the config has {}",
                state.sources.len(),
                self.sources.len()
            );
        }
        self.state = state;
        Ok(())
    }

    pub fn sources(&self) -> &[MixtureSource] {
        &self.sources
    }

    /// Configured shares (weights normalized).
    pub fn shares(&self) -> &[f64] {
        &self.shares
    }

    /// True once any source with weight > 0 has finished its epochs.
    pub fn first_exhausted(&self) -> bool {
        self.sources
            .iter()
            .zip(&self.state.sources)
            .any(|(s, st)| s.weight > 0.0 && st.exhausted)
    }

    /// True once every source with weight > 0 has finished its epochs.
    pub fn all_exhausted(&self) -> bool {
        self.sources
            .iter()
            .zip(&self.state.sources)
            .all(|(s, st)| s.weight == 0.0 || st.exhausted)
    }

    /// The permutation of a source's rows for an epoch: a pure function of (seed, epoch, source).
    pub fn epoch_order(seed: u64, epoch: u32, source: usize, len: usize) -> Vec<u32> {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..12].copy_from_slice(&epoch.to_le_bytes());
        key[12..20].copy_from_slice(&(source as u64).to_le_bytes());
        key[20..24].copy_from_slice(b"perm");
        let mut rng = ChaCha8Rng::from_seed(key);
        let mut order: Vec<u32> = (0..len as u32).collect();
        order.shuffle(&mut rng);
        order
    }

    fn realized(&self, i: usize) -> f64 {
        match self.ratio_by {
            RatioBy::Samples => self.state.sources[i].samples as f64,
            RatioBy::Tokens => self.state.sources[i].tokens as f64,
        }
    }

    /// Pick the active source furthest below its share. Exhausted sources drop out and the others' shares are
    /// renormalized.
    pub fn choose_source(&self) -> Option<usize> {
        let active: Vec<usize> = (0..self.sources.len())
            .filter(|&i| self.shares[i] > 0.0 && !self.state.sources[i].exhausted)
            .collect();
        let share_sum: f64 = active.iter().map(|&i| self.shares[i]).sum();
        if active.is_empty() || share_sum <= 0.0 {
            return None;
        }
        let total: f64 = active.iter().map(|&i| self.realized(i)).sum();
        let mut best: Option<(usize, f64)> = None;
        for &i in &active {
            let share = self.shares[i] / share_sum;
            // One more unit (a sample, or a sample's expected tokens) is about to be added.
            let step = match self.ratio_by {
                RatioBy::Samples => 1.0,
                RatioBy::Tokens => self.sources[i].tokens_per_sample.max(1.0),
            };
            // Deficit relative to the share; ties go to the lower index, which keeps it deterministic.
            let deficit = (share * (total + step) - self.realized(i)) / share;
            if best.is_none_or(|(_, d)| deficit > d + 1e-12) {
                best = Some((i, deficit));
            }
        }
        best.map(|(i, _)| i)
    }

    /// Draw the next (source, row). The caller reports what was used with [`Mixture::record`]; a row that turns out
    /// bad is simply not recorded and the source stays in deficit.
    #[allow(clippy::should_implement_trait)] // a draw from a stateful mixture, not an iterator adaptor
    pub fn next(&mut self) -> Option<(usize, usize)> {
        let source = self.choose_source()?;
        Some((source, self.next_row(source)))
    }

    /// The next row of a given source, advancing its cursor and epoch.
    pub fn next_row(&mut self, source: usize) -> usize {
        let len = self.sources[source].rows.len();
        let epoch = self.state.sources[source].epoch;
        let stale = self.permutations[source]
            .as_ref()
            .is_none_or(|(e, _)| *e != epoch);
        if stale {
            self.permutations[source] =
                Some((epoch, Self::epoch_order(self.seed, epoch, source, len)));
        }
        let cursor = self.state.sources[source].cursor;
        let position = self.permutations[source]
            .as_ref()
            .map_or(cursor, |(_, order)| order[cursor] as usize);
        let row = self.sources[source].rows[position];
        let st = &mut self.state.sources[source];
        st.cursor += 1;
        if st.cursor >= len {
            st.cursor = 0;
            st.epoch += 1;
            if self.sources[source]
                .epochs
                .is_some_and(|limit| st.epoch >= limit)
            {
                st.exhausted = true;
            }
        }
        row
    }

    /// Count a used sample.
    pub fn record(&mut self, source: usize, supervised_tokens: usize) {
        let st = &mut self.state.sources[source];
        st.samples += 1;
        st.tokens += supervised_tokens as u64;
    }

    /// Realized fractions (by samples, by tokens) per source.
    pub fn realized_fractions(&self) -> (Vec<f64>, Vec<f64>) {
        let samples: u64 = self.state.sources.iter().map(|s| s.samples).sum();
        let tokens: u64 = self.state.sources.iter().map(|s| s.tokens).sum();
        let frac = |v: u64, t: u64| if t == 0 { 0.0 } else { v as f64 / t as f64 };
        (
            self.state
                .sources
                .iter()
                .map(|s| frac(s.samples, samples))
                .collect(),
            self.state
                .sources
                .iter()
                .map(|s| frac(s.tokens, tokens))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(
        name: &str,
        weight: f64,
        n: usize,
        epochs: Option<u32>,
        tokens: f64,
    ) -> MixtureSource {
        MixtureSource {
            name: name.into(),
            weight,
            rows: (0..n).collect(),
            epochs,
            tokens_per_sample: tokens,
        }
    }

    #[test]
    fn realized_sample_fractions_track_the_configured_ratios_over_2000_draws() {
        let mut m = Mixture::new(
            7,
            RatioBy::Samples,
            vec![
                source("general", 0.7, 300, None, 10.0),
                source("spatial", 0.25, 50, None, 10.0),
                source("ocr", 0.05, 17, None, 3.0),
            ],
        );
        for _ in 0..2000 {
            let (s, _) = m.next().expect("sources never run out with stop = steps");
            m.record(s, 5);
        }
        let (by_samples, _) = m.realized_fractions();
        for (got, want) in by_samples.iter().zip([0.7, 0.25, 0.05]) {
            assert!(
                (got - want).abs() <= 0.02,
                "realized {got} vs configured {want}"
            );
        }
    }

    #[test]
    fn realized_token_fractions_track_the_configured_ratios() {
        // Spatial answers are short: by tokens, 5% of tokens needs far more than 5% of samples.
        let mut m = Mixture::new(
            1,
            RatioBy::Tokens,
            vec![
                source("general", 0.95, 400, None, 40.0),
                source("spatial", 0.05, 400, None, 4.0),
            ],
        );
        let lengths = [40usize, 4];
        for k in 0..2000 {
            let (s, _) = m.next().expect("draw");
            // Vary lengths around the mean so the sampler must react to realized counts.
            let jitter = (k % 5) as isize - 2;
            m.record(s, (lengths[s] as isize + jitter).max(1) as usize);
        }
        let (by_samples, by_tokens) = m.realized_fractions();
        assert!(
            (by_tokens[1] - 0.05).abs() <= 0.02,
            "token share {}",
            by_tokens[1]
        );
        assert!(
            by_samples[1] > 0.2,
            "spatial sample share {} should be large when its answers are short",
            by_samples[1]
        );
    }

    #[test]
    fn each_epoch_is_a_fresh_permutation_covering_every_row_once() {
        let mut m = Mixture::new(
            3,
            RatioBy::Samples,
            vec![source("a", 1.0, 64, Some(3), 1.0)],
        );
        let mut epochs = Vec::new();
        for _ in 0..3 {
            let order: Vec<usize> = (0..64).map(|_| m.next().expect("draw").1).collect();
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(
                sorted,
                (0..64).collect::<Vec<_>>(),
                "an epoch visits every row exactly once"
            );
            epochs.push(order);
        }
        assert_ne!(epochs[0], epochs[1]);
        assert_ne!(epochs[1], epochs[2]);
        assert!(
            m.all_exhausted() && m.next().is_none(),
            "three epochs then exhausted"
        );
        // Same (seed, epoch, source) -> same order; another seed -> another order.
        assert_eq!(
            Mixture::epoch_order(3, 1, 0, 64),
            Mixture::epoch_order(3, 1, 0, 64)
        );
        assert_ne!(
            Mixture::epoch_order(3, 1, 0, 64),
            Mixture::epoch_order(4, 1, 0, 64)
        );
        assert_ne!(
            Mixture::epoch_order(3, 1, 0, 64),
            Mixture::epoch_order(3, 1, 1, 64)
        );
    }

    #[test]
    fn state_round_trip_continues_the_same_sequence() {
        let make = || {
            Mixture::new(
                9,
                RatioBy::Samples,
                vec![
                    source("a", 0.5, 13, None, 1.0),
                    source("b", 0.5, 7, None, 1.0),
                ],
            )
        };
        let mut full = make();
        let reference: Vec<(usize, usize)> = (0..100)
            .map(|_| {
                let d = full.next().expect("draw");
                full.record(d.0, 1);
                d
            })
            .collect();
        let mut first = make();
        let mut got = Vec::new();
        for _ in 0..37 {
            let d = first.next().expect("draw");
            first.record(d.0, 1);
            got.push(d);
        }
        let saved = serde_json::to_string(first.state()).expect("serialize");
        let mut resumed = make();
        resumed
            .set_state(serde_json::from_str(&saved).expect("deserialize"))
            .expect("state fits");
        for _ in 37..100 {
            let d = resumed.next().expect("draw");
            resumed.record(d.0, 1);
            got.push(d);
        }
        assert_eq!(got, reference);
    }

    #[test]
    fn first_exhausted_and_zero_weight_sources() {
        let mut m = Mixture::new(
            0,
            RatioBy::Samples,
            vec![
                source("big", 0.5, 100, Some(1), 1.0),
                source("small", 0.5, 10, Some(1), 1.0),
                source("val_only", 0.0, 5, Some(1), 1.0),
            ],
        );
        let mut drawn = [0usize; 3];
        while !m.first_exhausted() {
            let (s, _) = m.next().expect("draw");
            m.record(s, 1);
            drawn[s] += 1;
        }
        assert_eq!(drawn[1], 10);
        assert_eq!(drawn[2], 0, "a weight-0 source is never drawn");
        assert!((9..=11).contains(&drawn[0]));
        // all_exhausted: the small source drops out and the big one finishes alone.
        while let Some((s, _)) = m.next() {
            m.record(s, 1);
            drawn[s] += 1;
        }
        assert_eq!(drawn, [100, 10, 0]);
    }
}
