//! Spatial evaluation: scoring answers against ground truth, metrics per question type and family, benchmark
//! readers (svlm synthesis sets, Q-Spatial-Bench, SpatialRGPT-Bench; the published spatial benchmarks with their
//! official scoring in [`benchmarks`]) and reports (JSON, markdown, predictions
//! JSONL, PNG charts).
//!
//! Anything implementing [`Answerer`] answers the questions; [`answerer::ModelAnswerer`] (feature `model`, on by
//! default) is a `svlm-model` VLM with its processor, the answerer `svlm eval` uses.
//!
//! Invalid format: an answer the parsers of `svlm-answers` cannot read (no yes/no word, no option named, a number
//! without a unit...) is invalid. It counts in the valid-format rate, and as not correct in every "over all" rate;
//! "over valid" rates leave it out. Both are reported.

#[cfg(feature = "model")]
pub mod answerer;
pub mod baseline;
pub mod benchmarks;
pub mod dataset;
pub mod evaluate;
pub mod general;
pub mod metrics;
pub mod report;
pub mod score;
pub mod steps;

pub use baseline::{PriorBaseline, best_within_2x_constant};
pub use benchmarks::{
    BenchItem, BenchPrediction, BenchSet, BenchSummary, Benchmark, BenchmarkFormat,
    FnImagesAnswerer, ImagesAnswerer, LoadOptions, ReadContext, RunOptions, detect_format,
    load_bench, load_benchmark, read_qspatial, read_spatialrgpt, read_synth, read_synth_cached,
    run_benchmark,
};
pub use dataset::{EvalItem, EvalSet, Skip};
pub use evaluate::{
    Answerer, EvalOptions, FnAnswerer, Prediction, evaluate, evaluate_with_progress,
    rescore_predictions, resume_log,
};
pub use general::{
    GeneralItem, GeneralPrediction, GeneralReport, evaluate_general, read_general_vqa,
};
pub use metrics::{ChoiceMisses, Metrics, Rate};
pub use report::{
    BenchReport, EvalReport, PublishedResult, ReportFiles, parse_published, published_results,
    read_predictions, truth_text, write_leaderboard,
};
pub use score::{Parsed, Score, score_answer};
pub use steps::ReasoningSteps;
