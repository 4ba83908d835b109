//! The LLM orchestrator: the LLM cannot see the image; it asks a spatial VLM elementary questions through the
//! `ask_vlm` tool (or, for models without tool calling, lines `ASK: <question>` / `FINAL: <answer>`), gets each
//! answer back as raw text plus the value `svlm-answers` parsed from it, and composes the final answer.
//!
//! An answer must rest on a measurement: a final answer given before any VLM answer could be read as a value is
//! sent back once with a reminder to ask the VLM; one given again without a measurement is returned marked
//! ungrounded ([`LlmAnswer::grounded`], `Transcript::grounded`), never passed off as a measured answer.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use svlm_eval::Answerer;

use crate::llm::{ChatModel, LlmMessage};
use crate::transcript::{Step, Transcript, parse_answer};

#[derive(Debug, Clone, PartialEq)]
pub struct OrchestratorOptions {
    /// LLM turns before giving up.
    pub max_steps: usize,
    /// Function calling (`ask_vlm` tool); false: the plain-text `ASK:` / `FINAL:` protocol.
    pub use_tools: bool,
}

impl Default for OrchestratorOptions {
    fn default() -> Self {
        OrchestratorOptions {
            max_steps: 12,
            use_tools: true,
        }
    }
}

pub const TOOL_NAME: &str = "ask_vlm";

/// The single tool's OpenAI function spec.
pub fn ask_vlm_tool() -> Value {
    json!({
        "type": "function",
        "function": {
            "name": TOOL_NAME,
            "description": "Ask a spatial vision-language model one elementary question about the image: the distance between two objects, the gap between them, an object's width, height or largest dimension, or its distance from the camera. It answers in words with a number and a unit.",
            "parameters": {
                "type": "object",
                "properties": {
                    "question": {"type": "string", "description": "One question about one object or one pair of objects, e.g. \"How far is the red can from the blue can?\""}
                },
                "required": ["question"]
            }
        }
    })
}

fn system_prompt(use_tools: bool) -> String {
    let protocol = if use_tools {
        format!(
            "Use the `{TOOL_NAME}` tool to ask elementary questions (one object or one pair per question). When you have enough information, reply with the final answer as plain text without calling the tool; start it with Yes or No for yes/no questions."
        )
    } else {
        "Reply with exactly one line per turn: `ASK: <question>` to ask the vision model one elementary question (one object or one pair per question), or `FINAL: <answer>` when you can answer; start the answer with Yes or No for yes/no questions.".to_string()
    };
    format!(
        "You answer spatial questions about an image you cannot see. A spatial vision model can: it measures distances between objects, gaps, widths, heights and distances from the camera in metric units. Break the question into such elementary measurements, then reason with the numbers. Never answer from guesses or general knowledge: every fact in your answer must come from the vision model. {protocol}"
    )
}

/// What the LLM is told when it answers before any measurement.
fn grounding_reminder(use_tools: bool, asked: usize) -> String {
    let why = if asked == 0 {
        "You have not asked the vision model anything yet, so your answer rests on no measurement."
            .to_string()
    } else {
        format!(
            "None of the vision model's {asked} answers could be read as a measurement, so your answer rests on none."
        )
    };
    let how = if use_tools {
        format!("Ask it with the `{TOOL_NAME}` tool (one object or one pair per question)")
    } else {
        "Ask it with `ASK: <question>` lines (one object or one pair per question)".to_string()
    };
    format!("{why} {how}, then answer from its numbers.")
}

/// The LLM's final answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmAnswer {
    pub answer: String,
    /// At least one VLM answer was read as a value before the final answer. `false`: the LLM answered without a
    /// measurement even after a reminder; the answer is a guess and must be shown as one.
    pub grounded: bool,
}

fn tool_result(answer: &str) -> String {
    let parsed = parse_answer(answer);
    json!({ "answer": answer, "parsed": parsed.describe(), "meters": parsed.meters, "yes_no": parsed.yes_no })
        .to_string()
}

/// Runs the conversation for `question` about `image` and returns the LLM's final answer, marked ungrounded when it
/// rests on no VLM measurement (see the module docs). Every turn and VLM exchange is appended to `transcript`.
pub fn answer_with_llm(
    question: &str,
    image: &Path,
    llm: &mut dyn ChatModel,
    vlm: &mut dyn Answerer,
    options: &OrchestratorOptions,
    transcript: &mut Transcript,
) -> Result<LlmAnswer> {
    let tools = if options.use_tools {
        vec![ask_vlm_tool()]
    } else {
        vec![]
    };
    let mut messages = vec![
        LlmMessage::system(&system_prompt(options.use_tools)),
        LlmMessage::user(question),
    ];
    let mut ask = |q: &str, transcript: &mut Transcript| -> Result<String> {
        let answers = vlm
            .answer_batch(&[(image.to_path_buf(), q.to_string())])
            .with_context(|| format!("the VLM failed on {q:?}"))?;
        let answer = answers
            .into_iter()
            .next()
            .context("the VLM gave no answer")?;
        transcript.push(Step::vlm(q, &answer, parse_answer(&answer)));
        Ok(answer)
    };
    let mut reminded = false;
    // Some(answer) when the LLM has answered; None asks it again (after a reminder).
    let mut settle = |answer: String,
                      transcript: &mut Transcript,
                      messages: &mut Vec<LlmMessage>|
     -> Option<LlmAnswer> {
        let grounded = transcript.measurements() > 0;
        if !grounded && !reminded {
            reminded = true;
            let reminder = grounding_reminder(options.use_tools, transcript.vlm_questions());
            transcript.push(Step::Note {
                message: format!(
                    "final answer {answer:?} rests on no measurement; reminded the LLM: {reminder}"
                ),
            });
            messages.push(LlmMessage::user(&reminder));
            return None;
        }
        if !grounded {
            tracing::warn!(%answer, "the LLM answered without a measurement from the vision model");
        }
        transcript.finish(&answer, grounded);
        Some(LlmAnswer { answer, grounded })
    };
    for _ in 0..options.max_steps {
        let reply = llm.chat(&messages, &tools)?;
        messages.push(reply.clone());
        if !reply.tool_calls.is_empty() {
            let mut asked = Vec::new();
            let mut results = Vec::new();
            for call in &reply.tool_calls {
                let question = (call.function.name == TOOL_NAME)
                    .then(|| serde_json::from_str::<Value>(&call.function.arguments).ok())
                    .flatten()
                    .and_then(|v| {
                        v.get("question")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .filter(|q| !q.trim().is_empty());
                let content = match question {
                    Some(q) => {
                        asked.push(q.clone());
                        tool_result(&ask(&q, transcript)?)
                    }
                    None => {
                        let message = format!(
                            "bad tool call {:?} with arguments {:?}: call `{TOOL_NAME}` with {{\"question\": \"...\"}}",
                            call.function.name, call.function.arguments
                        );
                        transcript.push(Step::Note {
                            message: message.clone(),
                        });
                        json!({ "error": message }).to_string()
                    }
                };
                results.push(LlmMessage::tool(&call.id, &content));
            }
            transcript.push(Step::Llm {
                content: reply.content.clone(),
                asked,
            });
            messages.extend(results);
            continue;
        }
        let content = reply.content.clone().unwrap_or_default();
        transcript.push(Step::Llm {
            content: Some(content.clone()),
            asked: vec![],
        });
        let final_line = content.lines().find_map(|l| {
            l.trim()
                .strip_prefix("FINAL:")
                .map(|r| r.trim().to_string())
        });
        let asks: Vec<String> = content
            .lines()
            .filter_map(|l| l.trim().strip_prefix("ASK:").map(|r| r.trim().to_string()))
            .filter(|q| !q.is_empty())
            .collect();
        if let Some(answer) = final_line {
            match settle(answer, transcript, &mut messages) {
                Some(done) => return Ok(done),
                None => continue,
            }
        }
        if !asks.is_empty() {
            let mut lines = Vec::new();
            for q in &asks {
                let answer = ask(q, transcript)?;
                lines.push(format!(
                    "VLM: {q} -> {answer} (parsed: {})",
                    parse_answer(&answer).describe()
                ));
            }
            messages.push(LlmMessage::user(&lines.join("\n")));
            continue;
        }
        if options.use_tools && !content.trim().is_empty() {
            match settle(content.trim().to_string(), transcript, &mut messages) {
                Some(done) => return Ok(done),
                None => continue,
            }
        }
        let reminder = "Reply with `ASK: <question>` or `FINAL: <answer>`.";
        transcript.push(Step::Note {
            message: format!("no ASK/FINAL line; reminded the LLM: {reminder}"),
        });
        messages.push(LlmMessage::user(reminder));
    }
    anyhow::bail!(
        "the LLM gave no final answer within {} steps ({} VLM questions asked)",
        options.max_steps,
        transcript.vlm_questions()
    )
}
