//! The shard pipeline: items of one shard -> scene graphs -> question/answer pairs -> JSONL and/or Parquet,
//! images as PNG under `images/`, a per-shard manifest that marks the shard finished, and the run manifest.
//!
//! Output folder:
//! ```text
//! OUT/images/<id>.png                 with jsonl (Parquet embeds the bytes)
//! OUT/shard-00000-of-00004.jsonl        one `record::SpatialRecord` per line
//! OUT/shard-00000-of-00004.parquet      same records + image bytes (HF `datasets` image struct)
//! OUT/shard-00000-of-00004.manifest.json  written last: the shard is finished
//! OUT/manifest.json                     merge of the finished shards' manifests
//! ```
//! Shard files are written to temp files in `OUT` and renamed into place; a shard whose manifest exists with the
//! same run config is skipped on rerun. Items are processed in chunks, each chunk in parallel (rayon) and
//! written in item order, so the bytes do not depend on the thread count.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use image::ImageEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use svlm_io::{AtomicFile, write_atomic};

use crate::parquet_io::ParquetShardWriter;
use crate::qa::{QaConfig, generate, verify_answer};
use crate::record::{Role, SpatialRecord, Turn};
use crate::scene::{SkipCounts, count_skip};
use crate::shard::ShardSpec;
use crate::source::{BadItem, Item, ItemSource};

/// Which files a shard writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Jsonl,
    Parquet,
    Both,
}

impl OutputFormat {
    pub fn jsonl(self) -> bool {
        matches!(self, OutputFormat::Jsonl | OutputFormat::Both)
    }
    pub fn parquet(self) -> bool {
        matches!(self, OutputFormat::Parquet | OutputFormat::Both)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Jsonl => "jsonl",
            OutputFormat::Parquet => "parquet",
            OutputFormat::Both => "both",
        }
    }
}

impl std::str::FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jsonl" => Ok(OutputFormat::Jsonl),
            "parquet" => Ok(OutputFormat::Parquet),
            "both" => Ok(OutputFormat::Both),
            other => Err(format!("format {other:?} must be jsonl, parquet or both")),
        }
    }
}

/// How one shard is written.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    pub out: PathBuf,
    pub format: OutputFormat,
    pub shard: ShardSpec,
    /// Seeds the per-image question sampling and phrasing.
    pub seed: u64,
    pub qa: QaConfig,
    /// Items per parallel chunk (and per Parquet row group).
    pub chunk_size: usize,
    pub progress: bool,
}

/// Counts and provenance of one shard; its file is the shard's "finished" marker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardManifest {
    pub shard: String,
    /// Everything that determines the content; a rerun with another config refuses to mix outputs.
    pub config: serde_json::Value,
    /// Item indices `[start, end)` of this shard.
    pub items: [usize; 2],
    pub images: u64,
    pub qa: u64,
    pub qualitative: u64,
    pub quantitative: u64,
    pub qa_per_type: BTreeMap<String, u64>,
    pub qa_per_source: BTreeMap<String, u64>,
    /// Objects, candidate questions and items left out, by reason.
    pub skips: SkipCounts,
    pub plane_fallback_images: u64,
    pub bad_items: Vec<BadItem>,
    pub files: Vec<String>,
}

impl ShardManifest {
    fn add(&mut self, other: &ShardManifest) {
        self.images += other.images;
        self.qa += other.qa;
        self.qualitative += other.qualitative;
        self.quantitative += other.quantitative;
        for (k, v) in &other.qa_per_type {
            *self.qa_per_type.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &other.qa_per_source {
            *self.qa_per_source.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &other.skips {
            *self.skips.entry(k.clone()).or_insert(0) += v;
        }
        self.plane_fallback_images += other.plane_fallback_images;
        self.bad_items.extend(other.bad_items.iter().cloned());
        self.files.extend(other.files.iter().cloned());
    }
}

/// The run manifest: the finished shards and their summed counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunManifest {
    pub config: serde_json::Value,
    pub shard_count: usize,
    pub shards_finished: Vec<String>,
    pub totals: ShardManifest,
}

/// What happened to a shard.
#[derive(Debug, Clone, PartialEq)]
pub enum ShardOutcome {
    Written(ShardManifest),
    /// Already finished by an earlier run with the same config.
    Skipped(ShardManifest),
}

impl ShardOutcome {
    pub fn manifest(&self) -> &ShardManifest {
        match self {
            ShardOutcome::Written(m) | ShardOutcome::Skipped(m) => m,
        }
    }
}

/// The run config recorded in manifests.
pub fn run_config(source: &dyn ItemSource, opts: &SynthOptions) -> serde_json::Value {
    json!({
        "input": source.describe(),
        "seed": opts.seed,
        "format": opts.format.as_str(),
        "shard_count": opts.shard.count,
        "qa": {
            "qa_per_image": opts.qa.qa_per_image,
            "margin": opts.qa.margin,
            "size_margin": opts.qa.size_margin,
            "volume_ratio": opts.qa.volume_ratio,
            "clock_boundary_deg": opts.qa.clock_boundary_deg,
            "min_length": opts.qa.min_length,
            "kinds": opts.qa.kinds,
            "number_style": format!("{:?}", opts.qa.number_style),
            "short_answers": opts.qa.short_answers,
            "reasoned_answers": opts.qa.reasoned_answers,
            "phrasing": opts.qa.phrasing,
            "qualitative_share": opts.qa.qualitative_share,
        },
        "question_types": crate::qa::question_types().len(),
    })
}

/// One synthesized image: the record, its PNG bytes and what was counted on the way.
pub struct SynthesizedItem {
    pub record: SpatialRecord,
    pub png: Vec<u8>,
    pub skips: SkipCounts,
    pub plane_found: bool,
}

/// Per-item question seed: independent of shard layout and thread count.
fn item_rng(seed: u64, index: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(svlm_world::scene_seed(
        seed ^ 0x5157_4E54_4831_5341,
        index as u64,
    ))
}

/// Questions and the record for one item (no file IO).
pub fn synthesize_item(item: Item, index: usize, seed: u64, qa: &QaConfig) -> SynthesizedItem {
    let mut skips = item.graph.skips.clone();
    let mut rng = item_rng(seed, index);
    let qas = generate(&item.graph, qa, &mut rng, &mut skips);
    let mut conversations = Vec::with_capacity(2 * qas.len());
    let mut spatial = Vec::with_capacity(qas.len());
    for q in qas {
        // Every answer must read back to its truth; a failure is a template bug, counted and left out.
        if let Err(e) = verify_answer(&q) {
            tracing::warn!("{}: {} left out: {e}", item.id, q.spatial.kind);
            count_skip(&mut skips, "answer_does_not_parse");
            continue;
        }
        let question = if conversations.is_empty() {
            format!("<image>\n{}", q.question)
        } else {
            q.question
        };
        conversations.push(Turn {
            from: Role::Human,
            value: question,
        });
        conversations.push(Turn {
            from: Role::Gpt,
            value: q.answer,
        });
        spatial.push(q.spatial);
    }
    let png = encode_png(&item.rgb);
    SynthesizedItem {
        record: SpatialRecord {
            image: format!("images/{}.png", item.id),
            id: item.id,
            conversations,
            spatial,
            provenance: Some(item.provenance),
        },
        png,
        skips,
        plane_found: item.graph.plane_found,
    }
}

pub fn encode_png(rgb: &image::RgbImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    let encoder =
        PngEncoder::new_with_quality(&mut bytes, CompressionType::Fast, FilterType::Adaptive);
    // Encoding an in-memory RGB buffer into a Vec cannot fail (sizes come from the image itself).
    if encoder
        .write_image(
            rgb.as_raw(),
            rgb.width(),
            rgb.height(),
            image::ExtendedColorType::Rgb8,
        )
        .is_err()
    {
        bytes.clear();
    }
    bytes
}

fn read_manifest(path: &Path) -> Result<ShardManifest> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a shard manifest", path.display()))
}

/// Runs one shard: skips it when its manifest exists with the same config, else writes it and refreshes
/// `OUT/manifest.json`.
pub fn run_shard(source: &dyn ItemSource, opts: &SynthOptions) -> Result<ShardOutcome> {
    if source.is_empty() {
        bail!(
            "nothing to synthesize: the source has no items ({})",
            source.describe()
        );
    }
    let out = &opts.out;
    std::fs::create_dir_all(out.join("images"))
        .with_context(|| format!("creating {}", out.display()))?;
    let config = run_config(source, opts);
    let stem = opts.shard.stem();
    let marker = out.join(format!("{stem}.manifest.json"));
    if marker.exists() {
        let done = read_manifest(&marker)?;
        if done.config != config {
            bail!(
                "{} was written with another config; use another --out or remove that shard's files",
                marker.display()
            );
        }
        tracing::info!(
            "shard {} already finished ({} images), skipping",
            opts.shard,
            done.images
        );
        write_run_manifest(out, &config, opts.shard.count)?;
        return Ok(ShardOutcome::Skipped(done));
    }

    let range = opts.shard.range(source.len());
    let mut manifest = ShardManifest {
        shard: opts.shard.to_string(),
        config: config.clone(),
        items: [range.start, range.end],
        ..ShardManifest::default()
    };
    let jsonl_path = out.join(format!("{stem}.jsonl"));
    let mut jsonl = if opts.format.jsonl() {
        Some(BufWriter::new(AtomicFile::create(&jsonl_path)?))
    } else {
        None
    };
    let parquet_tmp = if opts.format.parquet() {
        Some(AtomicFile::create(&out.join(format!("{stem}.parquet")))?)
    } else {
        None
    };
    let mut parquet = match &parquet_tmp {
        Some(t) => Some(ParquetShardWriter::new(t.reopen()?)?),
        None => None,
    };

    let bar = if opts.progress {
        indicatif::ProgressBar::new(range.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {bar:40} {pos}/{len} images ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_prefix(format!("shard {}", opts.shard));

    let indices: Vec<usize> = range.collect();
    for chunk in indices.chunks(opts.chunk_size.max(1)) {
        source.prepare(chunk);
        // A bad input item is counted and skipped; a failed write of the output (a full or read-only disk) ends
        // the shard, since a shard finished without its images would be skipped by every rerun.
        let results: Vec<Result<Result<SynthesizedItem, BadItem>>> = chunk
            .par_iter()
            .map(|&i| {
                let item = match source.item(i) {
                    Ok(item) => item,
                    Err(bad) => return Ok(Err(bad)),
                };
                let done = synthesize_item(item, i, opts.seed, &opts.qa);
                // Parquet embeds the bytes; the PNG files serve the JSONL records.
                if opts.format.jsonl() {
                    let path = out.join(&done.record.image);
                    write_atomic(&path, &done.png).with_context(|| {
                        format!("writing shard {} of {}", opts.shard, out.display())
                    })?;
                }
                Ok(Ok(done))
            })
            .collect();
        let mut batch = Vec::with_capacity(results.len());
        for r in results {
            match r? {
                Err(bad) => {
                    tracing::warn!("item {} skipped ({}): {}", bad.item, bad.reason, bad.detail);
                    count_skip(&mut manifest.skips, &format!("item_{}", bad.reason));
                    manifest.bad_items.push(bad);
                }
                Ok(done) => {
                    for (k, v) in &done.skips {
                        *manifest.skips.entry(k.clone()).or_insert(0) += v;
                    }
                    if !done.plane_found {
                        manifest.plane_fallback_images += 1;
                    }
                    if done.record.spatial.is_empty() {
                        count_skip(&mut manifest.skips, "image_without_questions");
                        continue;
                    }
                    manifest.images += 1;
                    for q in &done.record.spatial {
                        manifest.qa += 1;
                        if q.truth.is_qualitative() {
                            manifest.qualitative += 1;
                        } else {
                            manifest.quantitative += 1;
                        }
                        *manifest.qa_per_type.entry(q.kind.to_string()).or_insert(0) += 1;
                        *manifest
                            .qa_per_source
                            .entry(q.source.as_str().to_string())
                            .or_insert(0) += 1;
                    }
                    if let Some(w) = jsonl.as_mut() {
                        serde_json::to_writer(&mut *w, &done.record)
                            .map_err(std::io::Error::from)
                            .and_then(|()| w.write_all(b"\n"))
                            .with_context(|| format!("writing {}", jsonl_path.display()))?;
                    }
                    batch.push((done.record, done.png));
                }
            }
        }
        if let Some(p) = parquet.as_mut() {
            p.write(&batch).with_context(|| {
                format!("writing {}", out.join(format!("{stem}.parquet")).display())
            })?;
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();

    crate::crash_point::pause_point("shard");
    if let Some(w) = jsonl {
        w.into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", jsonl_path.display()))?
            .commit()?;
        manifest.files.push(format!("{stem}.jsonl"));
    }
    if let (Some(p), Some(tmp)) = (parquet, parquet_tmp) {
        let parquet_path = out.join(format!("{stem}.parquet"));
        p.finish()
            .and_then(|f| Ok(f.sync_all()?))
            .with_context(|| format!("writing {}", parquet_path.display()))?;
        tmp.commit()?;
        manifest.files.push(format!("{stem}.parquet"));
    }
    crate::crash_point::pause_point("shard_manifest");
    if let Err(e) = write_atomic(&marker, &serde_json::to_vec_pretty(&manifest)?) {
        // Without its manifest the shard is unfinished: take its data files back off their final names, so a
        // full disk leaves the folder as it was before this shard.
        for file in &manifest.files {
            let _ = std::fs::remove_file(out.join(file));
        }
        return Err(e.into());
    }
    write_run_manifest(out, &config, opts.shard.count)?;
    Ok(ShardOutcome::Written(manifest))
}

/// Rewrites `OUT/manifest.json` from the finished shard manifests with this config.
pub fn write_run_manifest(
    out: &Path,
    config: &serde_json::Value,
    shard_count: usize,
) -> Result<RunManifest> {
    let mut totals = ShardManifest {
        shard: "all".into(),
        config: config.clone(),
        ..ShardManifest::default()
    };
    let mut finished = Vec::new();
    for index in 0..shard_count {
        let spec = ShardSpec {
            index,
            count: shard_count,
        };
        let path = out.join(format!("{}.manifest.json", spec.stem()));
        if !path.exists() {
            continue;
        }
        let m = read_manifest(&path)?;
        if &m.config != config {
            continue;
        }
        totals.add(&m);
        if finished.is_empty() {
            totals.items = m.items;
        }
        totals.items[0] = totals.items[0].min(m.items[0]);
        totals.items[1] = totals.items[1].max(m.items[1]);
        finished.push(spec.to_string());
    }
    let run = RunManifest {
        config: config.clone(),
        shard_count,
        shards_finished: finished,
        totals,
    };
    write_atomic(
        &out.join("manifest.json"),
        &serde_json::to_vec_pretty(&run)?,
    )?;
    Ok(run)
}
