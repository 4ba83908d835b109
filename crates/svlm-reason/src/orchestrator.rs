//! The LLM orchestrator: the LLM cannot see the image; it asks a spatial VLM elementary questions through the
//! `ask_vlm` tool (or, for models without tool calling, lines `ASK: <question>` / `FINAL: <answer>`), gets each
//! answer back as raw text plus the value `svlm-answers` parsed from it, and composes the final answer.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use svlm_eval::Answerer;

use crate::llm::{ChatMessage, ChatModel};
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
        "You answer spatial questions about an image you cannot see. A spatial vision model can: it measures distances between objects, gaps, widths, heights and distances from the camera in metric units. Break the question into such elementary measurements, then reason with the numbers. {protocol}"
    )
}

fn tool_result(answer: &str) -> String {
    let parsed = parse_answer(answer);
    json!({ "answer": answer, "parsed": parsed.describe(), "meters": parsed.meters, "yes_no": parsed.yes_no })
        .to_string()
}

/// Runs the conversation for `question` about `image` and returns the LLM's final answer. Every turn and VLM
/// exchange is appended to `transcript`.
pub fn answer_with_llm(
    question: &str,
    image: &Path,
    llm: &mut dyn ChatModel,
    vlm: &mut dyn Answerer,
    options: &OrchestratorOptions,
    transcript: &mut Transcript,
) -> Result<String> {
    let tools = if options.use_tools {
        vec![ask_vlm_tool()]
    } else {
        vec![]
    };
    let mut messages = vec![
        ChatMessage::system(&system_prompt(options.use_tools)),
        ChatMessage::user(question),
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
                results.push(ChatMessage::tool(&call.id, &content));
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
            transcript.push(Step::final_answer(&answer));
            return Ok(answer);
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
            messages.push(ChatMessage::user(&lines.join("\n")));
            continue;
        }
        if options.use_tools && !content.trim().is_empty() {
            let answer = content.trim().to_string();
            transcript.push(Step::final_answer(&answer));
            return Ok(answer);
        }
        let reminder = "Reply with `ASK: <question>` or `FINAL: <answer>`.";
        transcript.push(Step::Note {
            message: format!("no ASK/FINAL line; reminded the LLM: {reminder}"),
        });
        messages.push(ChatMessage::user(reminder));
    }
    anyhow::bail!(
        "the LLM gave no final answer within {} steps ({} VLM questions asked)",
        options.max_steps,
        transcript.vlm_questions()
    )
}
