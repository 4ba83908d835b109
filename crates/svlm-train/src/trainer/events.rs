//! Where step metrics go: an [`EventProcessor`] hands each step's [`StepMetrics`] to its sinks in order —
//! `metrics.jsonl`, TensorBoard events (when `log.tensorboard`), the progress bar (when `log.progress`).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::metrics::{METRICS_FILE, StepMetrics};
use super::{TrainError, io_err};
use crate::config::RunConfig;
use crate::tensorboard::EventWriter;

/// A receiver of step metrics.
pub trait MetricsSink {
    fn record(&mut self, metrics: &StepMetrics) -> Result<(), TrainError>;
    /// The run's loop has ended (also on a halt).
    fn finish(&mut self) {}
}

/// `metrics.jsonl`: one JSON line per step, appended.
pub struct MetricsFile {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsFile {
    pub fn append(run_dir: &Path) -> Result<Self, TrainError> {
        let path = run_dir.join(METRICS_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        Ok(Self { path, file })
    }
}

impl MetricsSink for MetricsFile {
    fn record(&mut self, metrics: &StepMetrics) -> Result<(), TrainError> {
        let line = serde_json::to_string(metrics).map_err(|e| io_err(&self.path, e))?;
        writeln!(self.file, "{line}").map_err(|e| io_err(&self.path, e))
    }
}

/// TensorBoard events in `tb/`: the scalars of every `log.every`-th step and of every step that validated.
pub struct TensorBoard {
    writer: EventWriter,
    every: u64,
    run_dir: PathBuf,
}

impl TensorBoard {
    pub fn create(run_dir: &Path, every: u64) -> Result<Self, TrainError> {
        let tb = run_dir.join("tb");
        let writer = EventWriter::create(&tb).map_err(|e| io_err(&tb, e))?;
        Ok(Self {
            writer,
            every,
            run_dir: run_dir.to_path_buf(),
        })
    }
}

impl MetricsSink for TensorBoard {
    fn record(&mut self, m: &StepMetrics) -> Result<(), TrainError> {
        if !m.step.is_multiple_of(self.every) && m.validation.is_empty() {
            return Ok(());
        }
        let run_dir = &self.run_dir;
        self.writer
            .scalars(m.step, &m.scalars())
            .map_err(|e| io_err(run_dir, e))?;
        self.writer.flush().map_err(|e| io_err(run_dir, e))
    }
}

/// The terminal progress bar: steps done of the planned steps, loss and throughput.
pub struct Progress {
    bar: indicatif::ProgressBar,
}

impl Progress {
    pub fn new(total_steps: u64, start_step: u64) -> Self {
        let bar = indicatif::ProgressBar::new(total_steps);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}<{eta_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_position(start_step);
        Self { bar }
    }
}

impl MetricsSink for Progress {
    fn record(&mut self, m: &StepMetrics) -> Result<(), TrainError> {
        self.bar.set_position(m.step);
        self.bar
            .set_message(format!("loss {:.4} | {:.0} tok/s", m.loss, m.tokens_per_s));
        Ok(())
    }

    fn finish(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// The sinks of a run, each step's metrics handed to each in order.
pub struct EventProcessor {
    sinks: Vec<Box<dyn MetricsSink>>,
}

impl EventProcessor {
    pub fn new(sinks: Vec<Box<dyn MetricsSink>>) -> Self {
        Self { sinks }
    }

    /// The sinks `config.log` asks for: TensorBoard (`log.tensorboard`), `metrics.jsonl` (always) and the progress
    /// bar (`log.progress`), recorded to in the order metrics file, TensorBoard, progress.
    pub fn for_run(
        config: &RunConfig,
        run_dir: &Path,
        total_steps: u64,
        start_step: u64,
    ) -> Result<Self, TrainError> {
        let tensorboard = if config.log.tensorboard {
            Some(TensorBoard::create(run_dir, config.log.every)?)
        } else {
            None
        };
        let mut sinks: Vec<Box<dyn MetricsSink>> = vec![Box::new(MetricsFile::append(run_dir)?)];
        if let Some(tb) = tensorboard {
            sinks.push(Box::new(tb));
        }
        if config.log.progress {
            sinks.push(Box::new(Progress::new(total_steps, start_step)));
        }
        Ok(Self::new(sinks))
    }

    pub fn record(&mut self, metrics: &StepMetrics) -> Result<(), TrainError> {
        self.sinks.iter_mut().try_for_each(|s| s.record(metrics))
    }

    pub fn finish(&mut self) {
        for sink in &mut self.sinks {
            sink.finish();
        }
    }
}
