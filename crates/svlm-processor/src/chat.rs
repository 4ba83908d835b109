//! HF chat templates rendered with minijinja, configured as transformers configures Jinja2
//! (`trim_blocks`, `lstrip_blocks`, loop controls, Python string/dict methods, `raise_exception`, a
//! `json.dumps`-compatible `tojson`, and the `{% generation %}` tag).

use std::collections::BTreeMap;

use minijinja::{Environment, Error as JinjaError, ErrorKind, Value as JinjaValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ProcessorError, Result};
use crate::tokenizer::SpecialTokens;

/// One part of a message's content, as HF multimodal processors expect it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ContentPart {
    Text { text: String },
    Image,
}

/// `{"role": ..., "content": [{"type": "text", "text": ...} | {"type": "image"}]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: Vec<ContentPart>,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: Vec<ContentPart>) -> Self {
        Self {
            role: role.into(),
            content,
        }
    }

    /// A message with only text.
    pub fn text(role: impl Into<String>, text: impl Into<String>) -> Self {
        Self::new(role, vec![ContentPart::Text { text: text.into() }])
    }

    /// A user turn with `images` image placeholders first, then the text.
    pub fn user_with_images(images: usize, text: impl Into<String>) -> Self {
        let mut content = vec![ContentPart::Image; images];
        content.push(ContentPart::Text { text: text.into() });
        Self::new("user", content)
    }

    pub fn image_count(&self) -> usize {
        self.content
            .iter()
            .filter(|c| matches!(c, ContentPart::Image))
            .count()
    }
}

const TEMPLATE_NAME: &str = "chat";

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source", &self.source)
            .finish()
    }
}

impl Clone for ChatTemplate {
    fn clone(&self) -> Self {
        // The source compiled once already, so compiling it again cannot fail.
        Self::new(&self.source).unwrap_or_else(|_| unreachable!("template compiled before"))
    }
}

impl ChatTemplate {
    pub fn new(source: &str) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        minijinja_contrib::add_to_environment(&mut env);
        env.add_filter("tojson", tojson);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        let prepared = replace_generation_tags(source);
        env.add_template_owned(TEMPLATE_NAME, prepared)
            .map_err(|e| ProcessorError::Template(format!("cannot compile: {e:#}")))?;
        Ok(Self {
            env,
            source: source.to_string(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders as `apply_chat_template(messages, add_generation_prompt=..., tokenize=False)`.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        special_tokens: &SpecialTokens,
    ) -> Result<String> {
        self.render_jinja(
            JinjaValue::from_serialize(messages),
            add_generation_prompt,
            special_tokens.template_variables(),
        )
    }

    /// Renders messages given as JSON text (any shape: string content, tool calls...), keeping key order as
    /// Python dicts do, with extra template variables (e.g. `bos_token`).
    pub fn render_json(
        &self,
        messages_json: &str,
        add_generation_prompt: bool,
        extra: BTreeMap<String, Value>,
    ) -> Result<String> {
        let messages: JinjaValue = serde_json::from_str(messages_json)
            .map_err(|e| ProcessorError::Template(format!("messages are not valid JSON: {e}")))?;
        self.render_jinja(messages, add_generation_prompt, extra)
    }

    fn render_jinja(
        &self,
        messages: JinjaValue,
        add_generation_prompt: bool,
        extra: BTreeMap<String, Value>,
    ) -> Result<String> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| ProcessorError::Template(e.to_string()))?;
        let mut ctx: BTreeMap<String, JinjaValue> = extra
            .into_iter()
            .map(|(k, v)| (k, JinjaValue::from_serialize(&v)))
            .collect();
        ctx.insert("messages".into(), messages);
        ctx.insert(
            "add_generation_prompt".into(),
            JinjaValue::from(add_generation_prompt),
        );
        template
            .render(ctx)
            .map_err(|e| ProcessorError::Template(format!("cannot render: {e:#}")))
    }
}

/// transformers' Jinja extension for `{% generation %}...{% endgeneration %}` renders the body unchanged (it only
/// records assistant spans). An always-true `if` block renders the same and keeps the tags' whitespace control.
fn replace_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        // The closing `%}` is searched after the opening `{%`: in `{%}` they overlap.
        let Some(end) = tail[2..].find("%}").map(|e| e + 2) else {
            out.push_str(tail);
            return out;
        };
        let tag = &tail[..end + 2];
        let inner = &tag[2..end];
        let left = inner.starts_with('-') || inner.starts_with('+');
        let right = inner.ends_with('-') || inner.ends_with('+');
        let body = inner
            .trim_start_matches(['-', '+'])
            .trim_end_matches(['-', '+'])
            .trim();
        let replacement = match body {
            "generation" => Some("if true"),
            "endgeneration" => Some("endif"),
            _ => None,
        };
        match replacement {
            Some(r) => {
                out.push_str("{%");
                if left {
                    out.push(inner.as_bytes()[0] as char);
                }
                out.push(' ');
                out.push_str(r);
                out.push(' ');
                if right {
                    out.push(inner.as_bytes()[inner.len() - 1] as char);
                }
                out.push_str("%}");
            }
            None => out.push_str(tag),
        }
        rest = &tail[end + 2..];
    }
    out.push_str(rest);
    out
}

fn raise_exception(message: String) -> std::result::Result<JinjaValue, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, message))
}

/// `datetime.now().strftime(format)` (UTC) for the common directives; templates such as Llama 3's use it for the
/// date line.
fn strftime_now(format: String) -> std::result::Result<JinjaValue, JinjaError> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Ok(JinjaValue::from(strftime(&format, secs)))
}

fn strftime(format: &str, unix_secs: i64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let days = unix_secs.div_euclid(86_400);
    let secs_of_day = unix_secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy_march = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy_march + 2) / 153;
    let day = doy_march - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let cumulative = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = cumulative[(month - 1) as usize] + day + i64::from(leap && month > 2);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let (hour, minute, second) = (secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60);
    let month_name = MONTHS[(month - 1) as usize];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('H') => out.push_str(&format!("{hour:02}")),
            Some('I') => out.push_str(&format!(
                "{:02}",
                if hour % 12 == 0 { 12 } else { hour % 12 }
            )),
            Some('p') => out.push_str(if hour < 12 { "AM" } else { "PM" }),
            Some('M') => out.push_str(&format!("{minute:02}")),
            Some('S') => out.push_str(&format!("{second:02}")),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('B') => out.push_str(month_name),
            Some('b') => out.push_str(&month_name[..3]),
            Some('A') => out.push_str(DAYS[weekday]),
            Some('a') => out.push_str(&DAYS[weekday][..3]),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// `json.dumps(x, ensure_ascii=False, indent=indent)` as transformers' `tojson` filter (keys in insertion order).
fn tojson(
    value: &JinjaValue,
    kwargs: minijinja::value::Kwargs,
) -> std::result::Result<JinjaValue, JinjaError> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    python_json(value, indent, 0, &mut out)?;
    Ok(JinjaValue::from_safe_string(out))
}

fn python_json(
    v: &JinjaValue,
    indent: Option<usize>,
    depth: usize,
    out: &mut String,
) -> std::result::Result<(), JinjaError> {
    use minijinja::value::ValueKind as K;
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    let json_string = |s: &str| serde_json::to_string(s).unwrap_or_default();
    match v.kind() {
        K::Undefined | K::None => out.push_str("null"),
        K::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        K::Number => match v.as_i64() {
            Some(i) if v.is_integer() => out.push_str(&i.to_string()),
            _ => {
                let f = f64::try_from(v.clone())?;
                out.push_str(&python_float_repr(f));
            }
        },
        K::String | K::Plain => out.push_str(&json_string(v.as_str().unwrap_or(&v.to_string()))),
        K::Map => {
            let keys: Vec<JinjaValue> = v.try_iter()?.collect();
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                out.push_str(&json_string(k.as_str().unwrap_or(&k.to_string())));
                out.push_str(": ");
                python_json(&v.get_item(k)?, indent, depth + 1, out)?;
            }
            newline(out, depth);
            out.push('}');
        }
        K::Seq | K::Iterable => {
            let items: Vec<JinjaValue> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                python_json(item, indent, depth + 1, out)?;
            }
            newline(out, depth);
            out.push(']');
        }
        K::Bytes | K::Invalid => {
            return Err(JinjaError::new(
                ErrorKind::InvalidOperation,
                format!("cannot serialize a {} to JSON", v.kind()),
            ));
        }
        _ => out.push_str(&json_string(&v.to_string())),
    }
    Ok(())
}

/// Python's `repr(float)` for the common cases (shortest round-trip digits, `1.0` not `1`, exponent from 1e16).
fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let s = format!("{f}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_tags_keep_whitespace_control() {
        assert_eq!(
            replace_generation_tags("a{% generation %}b{%- endgeneration -%}c"),
            "a{% if true %}b{%- endif -%}c"
        );
        assert_eq!(
            replace_generation_tags("{{ x }}{% if y %}{% endif %}"),
            "{{ x }}{% if y %}{% endif %}"
        );
    }

    #[test]
    fn a_tag_whose_ends_overlap_is_an_error_not_a_panic() {
        assert_eq!(replace_generation_tags("a{%}b"), "a{%}b");
        assert!(ChatTemplate::new("{% for m in messages %}{%}{% endfor %}").is_err());
    }

    #[test]
    fn tojson_matches_python_json_dumps() {
        let t =
            ChatTemplate::new("{{ messages[0] | tojson }}|{{ messages[0] | tojson(indent=2) }}")
                .unwrap();
        let msgs = r#"[{"b": [1, 2.5, "ü\"<"], "a": {"x": null, "y": true}, "e": [], "f": 1e-5}]"#;
        let out = t.render_json(msgs, false, BTreeMap::new()).unwrap();
        let (flat, pretty) = out.split_once('|').unwrap();
        assert_eq!(
            flat,
            r#"{"b": [1, 2.5, "ü\"<"], "a": {"x": null, "y": true}, "e": [], "f": 1e-05}"#
        );
        assert_eq!(
            pretty,
            "{\n  \"b\": [\n    1,\n    2.5,\n    \"ü\\\"<\"\n  ],\n  \"a\": {\n    \"x\": null,\n    \"y\": true\n  },\n  \"e\": [],\n  \"f\": 1e-05\n}"
        );
    }

    #[test]
    fn strftime_formats_known_dates() {
        // 2024-02-29 13:05:09 UTC, a Thursday, day 60 of a leap year.
        let t = 1_709_211_909;
        assert_eq!(strftime("%d %b %Y", t), "29 Feb 2024");
        assert_eq!(
            strftime("%A %B %j %H:%M:%S %I%p %y %%", t),
            "Thursday February 060 13:05:09 01PM 24 %"
        );
        assert_eq!(strftime("%Y-%m-%d %a", 0), "1970-01-01 Thu");
        assert_eq!(strftime("%Y-%m-%d", 951_782_400), "2000-02-29");
    }

    #[test]
    fn raise_exception_is_an_error() {
        let t = ChatTemplate::new(
            "{% if messages|length == 0 %}{{ raise_exception('need messages') }}{% endif %}",
        )
        .unwrap();
        let err = t.render(&[], false, &SpecialTokens::default()).unwrap_err();
        assert!(err.to_string().contains("need messages"), "{err}");
    }

    #[test]
    fn trim_and_lstrip_blocks_as_transformers() {
        let t = ChatTemplate::new("{% for m in messages %}\n    {% if true %}\n[{{ m.role }}]\n    {% endif %}\n{% endfor %}")
            .unwrap();
        let out = t
            .render(
                &[ChatMessage::text("user", "x")],
                false,
                &SpecialTokens::default(),
            )
            .unwrap();
        assert_eq!(out, "[user]\n");
    }

    #[test]
    fn python_string_methods_work() {
        let t = ChatTemplate::new(
            "{{ messages[0]['role'].upper() }} {{ messages[0]['content'][0]['text'].strip() }}",
        )
        .unwrap();
        let out = t
            .render(
                &[ChatMessage::text("user", "  hi  ")],
                false,
                &SpecialTokens::default(),
            )
            .unwrap();
        assert_eq!(out, "USER hi");
    }

    #[test]
    fn syntax_error_is_reported() {
        assert!(ChatTemplate::new("{% for %}").is_err());
    }
}
