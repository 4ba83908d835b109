//! A client for OpenAI-compatible `/v1/chat/completions` endpoints (function calling included), with timeouts,
//! retries with exponential backoff on 429/5xx/timeouts/connection failures, and errors that name the URL or the
//! missing part of a malformed reply. [`ChatModel`] is the seam: anything that answers chat turns (a local svlm
//! model later) plugs into the orchestrator the same way.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One chat message in the OpenAI wire format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl LlmMessage {
    pub fn system(text: &str) -> Self {
        Self::text("system", text)
    }
    pub fn user(text: &str) -> Self {
        Self::text("user", text)
    }
    pub fn assistant(text: &str) -> Self {
        Self::text("assistant", text)
    }
    pub fn tool(call_id: &str, content: &str) -> Self {
        LlmMessage {
            tool_call_id: Some(call_id.to_string()),
            ..Self::text("tool", content)
        }
    }
    fn text(role: &str, text: &str) -> Self {
        LlmMessage {
            role: role.to_string(),
            content: Some(text.to_string()),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// JSON text, as the API sends it.
    #[serde(default)]
    pub arguments: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("LLM endpoint {url} unreachable after {attempts} attempt(s): {last}")]
    Unreachable {
        url: String,
        attempts: u32,
        last: String,
    },
    #[error(
        "LLM endpoint {url} kept failing with HTTP {status} after {attempts} attempt(s): {body}"
    )]
    Retryable {
        url: String,
        status: u16,
        attempts: u32,
        body: String,
    },
    #[error("LLM endpoint {url} answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("malformed reply from {url}: {what} (reply starts {snippet:?})")]
    Malformed {
        url: String,
        what: String,
        snippet: String,
    },
}

/// Something that answers a chat turn.
pub trait ChatModel {
    /// The assistant's reply to `messages`; `tools` are OpenAI function specs (empty: no tool calling).
    fn chat(&mut self, messages: &[LlmMessage], tools: &[Value]) -> anyhow::Result<LlmMessage>;
    /// Name for transcripts.
    fn name(&self) -> String;
}

/// Endpoint settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    /// e.g. `http://127.0.0.1:8080/v1` or `https://api.openai.com/v1` (a base without `/v1` gets it appended).
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff; doubles per retry, capped at `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub temperature: Option<f64>,
}

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

impl LlmConfig {
    pub fn new(base_url: &str, model: &str) -> Self {
        LlmConfig {
            base_url: base_url.to_string(),
            api_key: None,
            model: model.to_string(),
            timeout: Duration::from_secs(60),
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            temperature: Some(0.0),
        }
    }

    /// Base URL from `base_url`, else `SVLM_LLM_BASE_URL`, else `OPENAI_BASE_URL`, else OpenAI's; key from
    /// `OPENAI_API_KEY` (absent: no Authorization header, as local servers expect).
    pub fn from_env(base_url: Option<&str>, model: &str) -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let base = base_url
            .map(str::to_string)
            .or_else(|| env("SVLM_LLM_BASE_URL"))
            .or_else(|| env("OPENAI_BASE_URL"))
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        LlmConfig {
            api_key: env("OPENAI_API_KEY"),
            ..LlmConfig::new(&base, model)
        }
    }

    /// The chat-completions URL.
    pub fn endpoint(&self) -> String {
        let base = self.base_url.trim_end_matches('/');
        if base.ends_with("/v1") {
            format!("{base}/chat/completions")
        } else {
            format!("{base}/v1/chat/completions")
        }
    }

    fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(16));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// The HTTP client.
pub struct OpenAiClient {
    pub config: LlmConfig,
    agent: ureq::Agent,
    /// HTTP attempts made (including retries).
    pub attempts: u32,
}

impl OpenAiClient {
    pub fn new(config: LlmConfig) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        OpenAiClient {
            config,
            agent,
            attempts: 0,
        }
    }

    /// One completion: the first choice's message.
    pub fn complete(
        &mut self,
        messages: &[LlmMessage],
        tools: &[Value],
    ) -> Result<LlmMessage, LlmError> {
        let url = self.config.endpoint();
        let mut body = json!({ "model": self.config.model, "messages": messages });
        if !tools.is_empty() {
            body["tools"] = Value::Array(tools.to_vec());
            body["tool_choice"] = json!("auto");
        }
        if let Some(t) = self.config.temperature {
            body["temperature"] = json!(t);
        }
        let attempts = self.config.max_retries + 1;
        let mut last_status: Option<(u16, String)> = None;
        let mut last_transport = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                std::thread::sleep(self.config.backoff(attempt - 1));
            }
            self.attempts += 1;
            let mut request = self
                .agent
                .post(&url)
                .header("Content-Type", "application/json");
            if let Some(key) = &self.config.api_key {
                request = request.header("Authorization", &format!("Bearer {key}"));
            }
            let mut response = match request.send_json(&body) {
                Ok(r) => r,
                Err(e) => {
                    last_transport = e.to_string();
                    tracing::warn!(%url, attempt, error = %e, "LLM request failed");
                    continue;
                }
            };
            let status = response.status().as_u16();
            let text = match response.body_mut().read_to_string() {
                Ok(t) => t,
                Err(e) => {
                    last_transport = format!("reading the reply body: {e}");
                    continue;
                }
            };
            if status == 429 || (500..600).contains(&status) {
                tracing::warn!(%url, attempt, status, "LLM endpoint busy or failing; retrying");
                last_status = Some((status, snippet(&text)));
                continue;
            }
            if !(200..300).contains(&status) {
                return Err(LlmError::Status {
                    url,
                    status,
                    body: snippet(&text),
                });
            }
            return parse_reply(&url, &text);
        }
        match last_status {
            Some((status, body)) if last_transport.is_empty() => Err(LlmError::Retryable {
                url,
                status,
                attempts,
                body,
            }),
            _ => Err(LlmError::Unreachable {
                url,
                attempts,
                last: last_transport,
            }),
        }
    }
}

impl ChatModel for OpenAiClient {
    fn chat(&mut self, messages: &[LlmMessage], tools: &[Value]) -> anyhow::Result<LlmMessage> {
        Ok(self.complete(messages, tools)?)
    }
    fn name(&self) -> String {
        self.config.model.clone()
    }
}

fn snippet(text: &str) -> String {
    text.chars().take(200).collect()
}

/// The first choice's message of a chat-completions reply body.
pub fn parse_reply(url: &str, text: &str) -> Result<LlmMessage, LlmError> {
    let malformed = |what: &str| LlmError::Malformed {
        url: url.to_string(),
        what: what.to_string(),
        snippet: snippet(text),
    };
    let value: Value =
        serde_json::from_str(text).map_err(|e| malformed(&format!("not JSON ({e})")))?;
    if let Some(err) = value.get("error") {
        return Err(malformed(&format!("the reply is an error object: {err}")));
    }
    let choices = value
        .get("choices")
        .ok_or_else(|| malformed("missing `choices`"))?
        .as_array()
        .ok_or_else(|| malformed("`choices` is not an array"))?;
    let message = choices
        .first()
        .ok_or_else(|| malformed("`choices` is empty"))?
        .get("message")
        .ok_or_else(|| malformed("missing `choices[0].message`"))?;
    let message: LlmMessage = serde_json::from_value(message.clone())
        .map_err(|e| malformed(&format!("`choices[0].message` is not a chat message ({e})")))?;
    if message.content.is_none() && message.tool_calls.is_empty() {
        return Err(malformed(
            "`choices[0].message` has neither `content` nor `tool_calls`",
        ));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_backoff() {
        assert_eq!(
            LlmConfig::new("http://h:1/v1/", "m").endpoint(),
            "http://h:1/v1/chat/completions"
        );
        assert_eq!(
            LlmConfig::new("http://h:1", "m").endpoint(),
            "http://h:1/v1/chat/completions"
        );
        let c = LlmConfig::new("x", "m");
        assert_eq!(c.backoff(0), Duration::from_millis(500));
        assert_eq!(c.backoff(2), Duration::from_secs(2));
        assert_eq!(c.backoff(10), Duration::from_secs(8));
    }

    #[test]
    fn parses_replies() {
        let ok = r#"{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"ask_vlm","arguments":"{\"question\":\"How far?\"}"}}]}}]}"#;
        let m = parse_reply("u", ok).unwrap();
        assert_eq!(m.tool_calls[0].function.name, "ask_vlm");
        let err = parse_reply("http://u", "{\"id\":1}")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("missing `choices`") && err.contains("http://u"),
            "{err}"
        );
        let err = parse_reply("u", "<html>").unwrap_err().to_string();
        assert!(err.contains("not JSON"), "{err}");
        let err = parse_reply("u", r#"{"choices":[]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty"), "{err}");
        let err = parse_reply("u", r#"{"choices":[{"message":{"role":"assistant"}}]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("neither"), "{err}");
    }
}
