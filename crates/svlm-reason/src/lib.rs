//! svlm-reason: the paper's two applications of a spatial VLM.
//!
//! - Chain-of-thought spatial reasoning: a composite question ("do the blue can, the red can and the green sponge
//!   form roughly an equilateral triangle?") is broken into elementary questions the VLM answers directly, their
//!   answers are parsed into numbers with `svlm-answers`, and the final answer is composed from them — by the
//!   deterministic rule-based [`planner`] or by an LLM through the [`orchestrator`].
//! - Dense reward annotation ([`reward`]): per-frame distances between two objects over a sequence, reward
//!   curves, Spearman monotonicity ([`spearman`]), JSON for RL code and a PNG plot.
//!
//! "The VLM" is any `svlm_eval::Answerer`: a trained model, the exact-truth [`oracle`], or a script.

pub mod names;
pub mod reward;
pub mod spearman;

pub use names::{clean_name, match_name, parse_task, split_list};
pub use reward::{
    FailedFrame, RewardFiles, RewardFrame, RewardOptions, RewardReport, RewardSource, annotate,
    gap_question, write_report,
};
pub use spearman::{average_ranks, spearman_rho};

pub mod llm;
pub mod oracle;
pub mod orchestrator;
pub mod planner;
pub mod transcript;

pub use llm::{ChatModel, LlmConfig, LlmError, LlmMessage, OpenAiClient};
pub use oracle::TruthOracle;
pub use orchestrator::{LlmAnswer, OrchestratorOptions, answer_with_llm, ask_vlm_tool};
pub use planner::{Outcome, PlanError, PlannerOptions, answer_with_rules, plan};
pub use transcript::{ParsedAnswer, Step, Transcript, parse_answer};
