//! The orchestrator against a scripted chat-completions server on 127.0.0.1 (std TcpListener in a thread that
//! serves a fixed number of connections, then stops).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use svlm_eval::Answerer;
use svlm_reason::{
    LlmConfig, LlmError, OpenAiClient, OrchestratorOptions, Step, Transcript, answer_with_llm,
};

struct Reply {
    delay: Duration,
    status: u16,
    body: String,
}

fn reply(status: u16, body: impl Into<String>) -> Reply {
    Reply {
        delay: Duration::ZERO,
        status,
        body: body.into(),
    }
}

fn message(content: Option<&str>, tool_calls: Value) -> String {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content, "tool_calls": tool_calls}}]
    })
    .to_string()
}

fn tool_call(id: &str, question: &str) -> Value {
    json!({"id": id, "type": "function",
           "function": {"name": "ask_vlm", "arguments": json!({"question": question}).to_string()}})
}

/// Serves one connection per scripted reply, in order; returns the request bodies it received.
fn serve(replies: Vec<Reply>) -> (String, JoinHandle<Vec<Value>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut bodies = Vec::new();
        for r in replies {
            let Ok((stream, _)) = listener.accept() else {
                break;
            };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_ok() {
                bodies.push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            }
            std::thread::sleep(r.delay);
            let mut stream = stream;
            let text = format!(
                "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                r.status,
                r.body.len(),
                r.body
            );
            // The client may have given up already (timeout tests).
            let _ = stream.write_all(text.as_bytes());
        }
        bodies
    });
    (url, handle)
}

fn client(url: &str, timeout_ms: u64, retries: u32) -> OpenAiClient {
    OpenAiClient::new(LlmConfig {
        timeout: Duration::from_millis(timeout_ms),
        max_retries: retries,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        ..LlmConfig::new(url, "test-model")
    })
}

/// A VLM that knows three distances.
struct ScriptedVlm;

impl Answerer for ScriptedVlm {
    fn answer_batch(&mut self, items: &[(PathBuf, String)]) -> anyhow::Result<Vec<String>> {
        Ok(items
            .iter()
            .map(|(_, q)| {
                let q = q.to_lowercase();
                if q.contains("blue can") && q.contains("red can") {
                    "They are about 50 cm apart.".to_string()
                } else if q.contains("red can") && q.contains("sponge") {
                    "The distance between them is 0.52 meters.".to_string()
                } else if q.contains("blue can") && q.contains("sponge") {
                    "1.6-1.7 feet".to_string()
                } else {
                    "I don't know.".to_string()
                }
            })
            .collect())
    }
}

fn scripted_vlm() -> ScriptedVlm {
    ScriptedVlm
}

/// `question` about img.png, the LLM behind `url` orchestrating the scripted VLM; the transcript is kept whatever
/// the outcome.
fn ask(
    url: &str,
    question: &str,
    options: &OrchestratorOptions,
) -> (anyhow::Result<svlm_reason::LlmAnswer>, Transcript) {
    let mut llm = client(url, 5000, 0);
    let mut vlm = scripted_vlm();
    let mut transcript = Transcript::new(question, Path::new("img.png"), "llm:test-model");
    let answer = answer_with_llm(
        question,
        Path::new("img.png"),
        &mut llm,
        &mut vlm,
        options,
        &mut transcript,
    );
    (answer, transcript)
}

#[test]
fn tool_call_conversation_reaches_a_final_answer() {
    let (url, server) = serve(vec![
        reply(
            200,
            message(
                None,
                json!([
                    tool_call("c1", "How far is the blue can from the red can?"),
                    tool_call("c2", "How far is the red can from the green sponge?"),
                ]),
            ),
        ),
        reply(
            200,
            message(
                None,
                json!([tool_call(
                    "c3",
                    "How far is the blue can from the green sponge?"
                )]),
            ),
        ),
        reply(
            200,
            message(
                Some("Yes, the sides are about 0.50 m, 0.52 m and 0.50 m."),
                json!([]),
            ),
        ),
    ]);
    let question =
        "Do the blue can, the red can and the green sponge form roughly an equilateral triangle?";
    let (answer, transcript) = ask(&url, question, &OrchestratorOptions::default());
    let answer = answer.unwrap();
    assert!(answer.grounded);
    assert_eq!(transcript.grounded, Some(true));
    let answer = answer.answer;
    assert!(answer.starts_with("Yes"), "{answer}");
    assert_eq!(transcript.vlm_questions(), 3);
    let bodies = server.join().unwrap();
    assert_eq!(bodies.len(), 3);
    assert_eq!(bodies[0]["model"], "test-model");
    assert_eq!(bodies[0]["tools"][0]["function"]["name"], "ask_vlm");
    assert_eq!(bodies[0]["messages"][1]["content"], question);
    // The second request carries the tool results: raw answer + parsed metres, tied to the call ids.
    let messages = bodies[1]["messages"].as_array().unwrap();
    let tool_messages: Vec<&Value> = messages.iter().filter(|m| m["role"] == "tool").collect();
    assert_eq!(tool_messages.len(), 2);
    assert_eq!(tool_messages[0]["tool_call_id"], "c1");
    let result: Value =
        serde_json::from_str(tool_messages[0]["content"].as_str().unwrap()).unwrap();
    assert_eq!(result["answer"], "They are about 50 cm apart.");
    assert!((result["meters"].as_f64().unwrap() - 0.5).abs() < 1e-9);
    let third: Vec<&Value> = bodies[2]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .collect();
    let range: Value = serde_json::from_str(third[2]["content"].as_str().unwrap()).unwrap();
    let feet = range["meters"].as_f64().unwrap();
    assert!((feet - 1.65 * 0.3048).abs() < 1e-6, "{feet}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("transcript.json");
    transcript.save(&path).unwrap();
    let saved: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(saved["final_answer"], answer.as_str());
    assert!(
        saved["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["step"] == "vlm")
    );
}

#[test]
fn plain_text_protocol_works_without_tools() {
    let (url, server) = serve(vec![
        reply(
            200,
            message(
                Some("ASK: How far is the blue can from the red can?"),
                json!([]),
            ),
        ),
        reply(200, message(Some("Let me think."), json!([]))),
        reply(200, message(Some("FINAL: About half a metre."), json!([]))),
    ]);
    let options = OrchestratorOptions {
        use_tools: false,
        ..OrchestratorOptions::default()
    };
    let (answer, transcript) = ask(&url, "How far apart are the cans?", &options);
    let answer = answer.unwrap();
    assert_eq!(answer.answer, "About half a metre.");
    assert!(answer.grounded);
    let bodies = server.join().unwrap();
    assert!(bodies[0].get("tools").is_none());
    let user_turns: Vec<&Value> = bodies[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .collect();
    let fed_back = user_turns.last().unwrap()["content"].as_str().unwrap();
    assert!(
        fed_back.contains("50 cm") && fed_back.contains("0.500 m"),
        "{fed_back}"
    );
    assert!(
        transcript
            .steps
            .iter()
            .any(|s| matches!(s, Step::Note { .. }))
    );
}

/// The user turns of one request, last first.
fn last_user_turn(body: &Value) -> String {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn notes(transcript: &Transcript) -> Vec<String> {
    transcript
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Note { message } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn an_answer_without_a_measurement_is_reminded_then_marked_ungrounded() {
    // What a small LLM did: answer at once, without a single question to the vision model.
    let guess = "The red cup is 10 units away from the gray shelf.";
    let (url, server) = serve(vec![
        reply(200, message(Some(guess), json!([]))),
        reply(200, message(Some(guess), json!([]))),
    ]);
    let question = "How far is the red cup from the gray shelf?";
    let (answer, transcript) = ask(&url, question, &OrchestratorOptions::default());
    let answer = answer.unwrap();
    assert_eq!(answer.answer, guess);
    assert!(!answer.grounded);
    assert_eq!(transcript.grounded, Some(false));
    assert_eq!(transcript.final_answer.as_deref(), Some(guess));
    assert_eq!(transcript.vlm_questions(), 0);
    let bodies = server.join().unwrap();
    assert_eq!(bodies.len(), 2, "asked once more, not more");
    let reminder = last_user_turn(&bodies[1]);
    assert!(
        reminder.contains("not asked the vision model") && reminder.contains("ask_vlm"),
        "{reminder}"
    );
    let notes = notes(&transcript);
    assert!(
        notes.len() == 1 && notes[0].contains("rests on no measurement"),
        "{notes:?}"
    );
    let saved: Value = serde_json::to_value(&transcript).unwrap();
    assert_eq!(saved["grounded"], false);
}

#[test]
fn a_reminded_llm_that_then_measures_is_grounded() {
    let (url, server) = serve(vec![
        reply(200, message(Some("FINAL: About 10 units."), json!([]))),
        reply(
            200,
            message(
                Some("ASK: How far is the blue can from the red can?"),
                json!([]),
            ),
        ),
        reply(200, message(Some("FINAL: About 50 cm."), json!([]))),
    ]);
    let options = OrchestratorOptions {
        use_tools: false,
        ..OrchestratorOptions::default()
    };
    let (answer, transcript) = ask(&url, "How far apart are the cans?", &options);
    let answer = answer.unwrap();
    assert_eq!(answer.answer, "About 50 cm.");
    assert!(answer.grounded);
    assert_eq!(transcript.grounded, Some(true));
    assert_eq!(transcript.measurements(), 1);
    let bodies = server.join().unwrap();
    let reminder = last_user_turn(&bodies[1]);
    assert!(reminder.contains("ASK: <question>"), "{reminder}");
}

#[test]
fn unreadable_vlm_answers_are_no_measurement() {
    let (url, server) = serve(vec![
        reply(
            200,
            message(None, json!([tool_call("c1", "What is behind the shelf?")])),
        ),
        reply(200, message(Some("About a metre."), json!([]))),
        reply(200, message(Some("About a metre."), json!([]))),
    ]);
    let (answer, transcript) = ask(
        &url,
        "How far is the shelf from the wall?",
        &OrchestratorOptions::default(),
    );
    let answer = answer.unwrap();
    assert!(!answer.grounded);
    assert_eq!(
        (transcript.vlm_questions(), transcript.measurements()),
        (1, 0)
    );
    let bodies = server.join().unwrap();
    let reminder = last_user_turn(&bodies[2]);
    assert!(
        reminder.contains("None of the vision model's 1 answers"),
        "{reminder}"
    );
}

#[test]
fn step_limit_stops_a_looping_llm() {
    let looping = || {
        reply(
            200,
            message(
                None,
                json!([tool_call("c", "How far is the blue can from the red can?")]),
            ),
        )
    };
    let (url, server) = serve(vec![looping(), looping()]);
    let mut llm = client(&url, 5000, 0);
    let mut vlm = scripted_vlm();
    let mut transcript = Transcript::new("q", Path::new("img.png"), "llm");
    let options = OrchestratorOptions {
        max_steps: 2,
        ..OrchestratorOptions::default()
    };
    let err = answer_with_llm(
        "q",
        Path::new("img.png"),
        &mut llm,
        &mut vlm,
        &options,
        &mut transcript,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("within 2 steps"), "{err}");
    server.join().unwrap();
}

#[test]
fn timeout_is_retried_then_reported() {
    let slow = || Reply {
        delay: Duration::from_millis(900),
        status: 200,
        body: message(Some("late"), json!([])),
    };
    let (url, server) = serve(vec![slow(), slow(), slow()]);
    let mut llm = client(&url, 200, 2);
    let started = Instant::now();
    let err = llm
        .complete(&[svlm_reason::LlmMessage::user("hi")], &[])
        .unwrap_err();
    assert!(
        matches!(err, LlmError::Unreachable { attempts: 3, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&url) && text.to_lowercase().contains("timeout"),
        "{text}"
    );
    assert_eq!(llm.attempts, 3);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    server.join().unwrap();
}

#[test]
fn malformed_replies_are_named() {
    let (url, server) = serve(vec![
        reply(200, "this is not json"),
        reply(200, r#"{"id":"x","object":"chat.completion"}"#),
    ]);
    let mut llm = client(&url, 5000, 3);
    let err = llm
        .complete(&[svlm_reason::LlmMessage::user("hi")], &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("not JSON") && err.contains(&url), "{err}");
    let err = llm
        .complete(&[svlm_reason::LlmMessage::user("hi")], &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing `choices`"), "{err}");
    // Malformed replies are not retried.
    assert_eq!(llm.attempts, 2);
    server.join().unwrap();
}

#[test]
fn server_error_then_success_is_retried() {
    let (url, server) = serve(vec![
        reply(500, r#"{"error":"overloaded"}"#),
        reply(429, r#"{"error":"slow down"}"#),
        reply(200, message(Some("hello"), json!([]))),
    ]);
    let mut llm = client(&url, 5000, 3);
    let m = llm
        .complete(&[svlm_reason::LlmMessage::user("hi")], &[])
        .unwrap();
    assert_eq!(m.content.as_deref(), Some("hello"));
    assert_eq!(llm.attempts, 3);
    assert_eq!(server.join().unwrap().len(), 3);

    let (url, server) = serve(vec![reply(503, "down"), reply(503, "down")]);
    let mut llm = client(&url, 5000, 1);
    let err = llm
        .complete(&[svlm_reason::LlmMessage::user("hi")], &[])
        .unwrap_err();
    assert!(
        matches!(
            err,
            LlmError::Retryable {
                status: 503,
                attempts: 2,
                ..
            }
        ),
        "{err:?}"
    );
    server.join().unwrap();

    let (url, server) = serve(vec![reply(401, "bad key")]);
    let mut llm = client(&url, 5000, 3);
    let err = llm
        .complete(&[svlm_reason::LlmMessage::user("hi")], &[])
        .unwrap_err();
    assert!(
        matches!(err, LlmError::Status { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(llm.attempts, 1);
    server.join().unwrap();
}

#[test]
fn unreachable_endpoint_names_the_url() {
    // A port that was just free and is closed again.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let mut llm = client(&url, 1000, 1);
    let err = llm
        .complete(&[svlm_reason::LlmMessage::user("hi")], &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unreachable") && err.contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}
