//! The multimodal processors: `Idefics3Processor` (SmolVLM), `LlavaProcessor` and `Qwen2VLProcessor` /
//! `Qwen2_5_VLProcessor`, read from an HF folder.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::chat::{ChatMessage, ChatTemplate};
use crate::error::{ProcessorError, Result};
use crate::files::{JsonFile, read_json, read_json_if_exists, read_text};
use crate::image_processor::{ImageProcessor, ImageProcessorKind, PixelTiles};
use crate::resample::Rgb8;
use crate::tokenizer::{PaddingSide, Tokenizer};

/// How image placeholders in the text are expanded into image tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptStyle {
    /// `Idefics3Processor`: `<fake_token_around_image>` + `<row_r_col_c>` / `<global-img>` + `image_seq_len`
    /// image tokens per tile.
    Idefics3 {
        image_seq_len: usize,
        image_token: String,
        fake_image_token: String,
        global_image_token: String,
    },
    /// `LlavaProcessor`: the image token repeated `(H / patch) * (W / patch) + num_additional_image_tokens`
    /// times, minus one for the "default" feature-select strategy (which drops CLS).
    Llava {
        image_token: String,
        patch_size: usize,
        num_additional_image_tokens: usize,
        vision_feature_select_strategy: String,
    },
    /// `Qwen2VLProcessor` / `Qwen2_5_VLProcessor`: the image token (`<|image_pad|>`) repeated once per merged
    /// patch, `t * h * w / merge_size^2` times for an image of patch grid `(t, h, w)`.
    Qwen2Vl { image_token: String },
}

impl PromptStyle {
    pub fn image_token(&self) -> &str {
        match self {
            Self::Idefics3 { image_token, .. }
            | Self::Llava { image_token, .. }
            | Self::Qwen2Vl { image_token } => image_token,
        }
    }
}

/// The processor's output for one sample; plain data (no tensors).
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedInputs {
    /// The text after image-token expansion, as it was tokenized.
    pub prompt: String,
    pub input_ids: Vec<u32>,
    /// All ones for one sample; `collate` adds zeros for padding.
    pub attention_mask: Vec<u32>,
    /// `pixel_shape` = `[num_tiles, 3, H, W]`, channels first. Idefics3: all tiles of all images of the sample,
    /// each image's tiles row-major then its global image. LLaVA: one tile per image. `[0, 3, 0, 0]` without images.
    /// Qwen2-VL: `[num_patches, C * T * p * p, 1, 1]`, the flattened patches of every image in order (each patch a
    /// "tile" of one value per pixel of the patch), with the images' grids in `image_grid_thw`.
    pub pixel_values: Vec<f32>,
    pub pixel_shape: [usize; 4],
    /// Idefics3 only: `[num_tiles, H, W]`, 1 = real pixel, 0 = padding.
    pub pixel_attention_mask: Option<Vec<u8>>,
    /// Idefics3 only: `(rows, cols)` of the split grid per image; `(0, 0)` = not split (single tile).
    pub image_grid: Vec<(usize, usize)>,
    /// Number of tiles each image contributed, in order.
    pub tiles_per_image: Vec<usize>,
    /// Qwen2-VL only: each image's patch grid `(t, h, w)`.
    pub image_grid_thw: Vec<[usize; 3]>,
}

impl ProcessedInputs {
    pub fn num_tiles(&self) -> usize {
        self.pixel_shape[0]
    }
}

/// A padded batch, row-major. Pixel layout follows the HF model inputs:
/// Idefics3 `pixel_shape = [batch, max_tiles, 3, H, W]` (missing tiles are zeros with a zero mask);
/// LLaVA `pixel_shape = [total_images, 3, H, W]` (all samples' images concatenated).
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub batch_size: usize,
    pub seq_len: usize,
    /// `[batch_size, seq_len]`.
    pub input_ids: Vec<u32>,
    /// `[batch_size, seq_len]`, 0 at padding.
    pub attention_mask: Vec<u32>,
    pub pixel_values: Vec<f32>,
    pub pixel_shape: Vec<usize>,
    /// Idefics3: `[batch, max_tiles, H, W]`.
    pub pixel_attention_mask: Option<Vec<u8>>,
    /// Qwen2-VL: the grids of all images of the batch, row by row (`pixel_shape = [total_patches, patch_dim]`).
    pub image_grid_thw: Vec<[usize; 3]>,
}

/// A processor folder as `AutoProcessor.from_pretrained` reads it.
#[derive(Debug, Clone)]
pub struct Processor {
    pub tokenizer: Tokenizer,
    pub image_processor: ImageProcessor,
    pub style: PromptStyle,
    chat_template: Option<ChatTemplate>,
}

impl Processor {
    /// Reads `tokenizer.json` (+ `tokenizer_config.json`, `special_tokens_map.json`), the image processor from
    /// `preprocessor_config.json` or `processor_config.json["image_processor"]`, the processor settings from
    /// `processor_config.json`, and the chat template from `chat_template.jinja`, `chat_template.json`,
    /// `processor_config.json` or `tokenizer_config.json` (first found).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let mut tokenizer = Tokenizer::from_dir(dir)?;
        let processor_path = dir.join("processor_config.json");
        let processor_config = read_json_if_exists(&processor_path)?.unwrap_or(Value::Null);
        let preprocessor_path = dir.join("preprocessor_config.json");
        let (image_path, image_config) = match processor_config.get("image_processor") {
            Some(v) if v.is_object() => (processor_path.clone(), v.clone()),
            _ => {
                if !preprocessor_path.is_file() {
                    return Err(ProcessorError::MissingKey {
                        path: preprocessor_path,
                        key: "image_processor_type (file not found, and processor_config.json has no \
                              \"image_processor\")"
                            .into(),
                    });
                }
                (preprocessor_path.clone(), read_json(&preprocessor_path)?)
            }
        };
        let image_processor = ImageProcessor::from_config(&image_path, &image_config)?;
        let class = processor_class(&processor_config, &image_config, image_processor.kind());
        let pfile = JsonFile::new(&processor_path, &processor_config);
        let style = match class {
            ProcessorClass::Idefics3 => {
                let image_token = "<image>".to_string();
                let fake_image_token = "<fake_token_around_image>".to_string();
                // Idefics3Processor.__init__ adds these three if the tokenizer lacks them.
                tokenizer.add_special_tokens(&[
                    &fake_image_token,
                    &image_token,
                    "<end_of_utterance>",
                ])?;
                PromptStyle::Idefics3 {
                    image_seq_len: pfile.require_usize("image_seq_len")?,
                    image_token,
                    fake_image_token,
                    global_image_token: "<global-img>".into(),
                }
            }
            ProcessorClass::Llava => {
                let strategy = pfile.str_or("vision_feature_select_strategy", "")?;
                if strategy.is_empty() {
                    return Err(ProcessorError::MissingKey {
                        path: processor_path.clone(),
                        key: "vision_feature_select_strategy".into(),
                    });
                }
                if strategy != "default" && strategy != "full" {
                    return Err(pfile.invalid(
                        "vision_feature_select_strategy",
                        format!("expected \"default\" or \"full\", got {strategy:?}"),
                    ));
                }
                // As LlavaProcessor: the tokenizer's own `image_token` wins over the processor config.
                let image_token = match tokenizer.special_tokens().named.get("image_token") {
                    Some(t) => t.clone(),
                    None => pfile.str_or("image_token", "<image>")?,
                };
                if tokenizer.token_to_id(&image_token).is_none() {
                    return Err(ProcessorError::Tokenizer {
                        path: dir.join("tokenizer.json"),
                        message: format!(
                            "the image token {image_token:?} is not in the vocabulary"
                        ),
                    });
                }
                PromptStyle::Llava {
                    image_token,
                    patch_size: pfile.require_usize("patch_size")?,
                    num_additional_image_tokens: pfile
                        .usize_or("num_additional_image_tokens", 0)?,
                    vision_feature_select_strategy: strategy,
                }
            }
            ProcessorClass::Qwen2Vl => {
                // As Qwen2VLProcessor: the tokenizer's own `image_token` wins over `<|image_pad|>`.
                let image_token = tokenizer
                    .special_tokens()
                    .named
                    .get("image_token")
                    .cloned()
                    .unwrap_or_else(|| "<|image_pad|>".into());
                if tokenizer.token_to_id(&image_token).is_none() {
                    return Err(ProcessorError::Tokenizer {
                        path: dir.join("tokenizer.json"),
                        message: format!(
                            "the image token {image_token:?} is not in the vocabulary"
                        ),
                    });
                }
                PromptStyle::Qwen2Vl { image_token }
            }
        };
        let template_source = find_chat_template(dir, &processor_config)?
            .or_else(|| tokenizer.chat_template().map(str::to_string));
        let chat_template = template_source
            .as_deref()
            .map(ChatTemplate::new)
            .transpose()?;
        Ok(Self {
            tokenizer,
            image_processor,
            style,
            chat_template,
        })
    }

    pub fn new(
        tokenizer: Tokenizer,
        image_processor: ImageProcessor,
        style: PromptStyle,
        chat_template: Option<&str>,
    ) -> Result<Self> {
        Ok(Self {
            tokenizer,
            image_processor,
            style,
            chat_template: chat_template.map(ChatTemplate::new).transpose()?,
        })
    }

    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    /// `processor.apply_chat_template(messages, add_generation_prompt=..., tokenize=False)`.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self.chat_template.as_ref().ok_or_else(|| {
            ProcessorError::Template("this processor has no chat template".into())
        })?;
        template.render(
            messages,
            add_generation_prompt,
            self.tokenizer.special_tokens(),
        )
    }

    /// `processor(text=text, images=images)` for one sample, with the HF default `add_special_tokens=True`.
    pub fn process(&self, text: &str, images: &[Rgb8]) -> Result<ProcessedInputs> {
        self.process_with(text, images, true)
    }

    /// `processor.apply_chat_template(messages, add_generation_prompt=..., tokenize=True)` with `images` in the
    /// order of the messages' image parts. As transformers does, special tokens are not added when the rendered
    /// prompt already starts with the BOS token.
    pub fn process_chat(
        &self,
        messages: &[ChatMessage],
        images: &[Rgb8],
        add_generation_prompt: bool,
    ) -> Result<ProcessedInputs> {
        let in_messages: usize = messages.iter().map(ChatMessage::image_count).sum();
        if in_messages != images.len() {
            return Err(ProcessorError::Invalid(format!(
                "the messages have {in_messages} image part(s) but {} image(s) were given",
                images.len()
            )));
        }
        let text = self.apply_chat_template(messages, add_generation_prompt)?;
        self.process_with(&text, images, self.chat_add_special_tokens(&text))
    }

    /// The `add_special_tokens` transformers uses when it tokenizes a rendered chat: false when the prompt already
    /// starts with the BOS token (the template wrote it), true otherwise.
    pub fn chat_add_special_tokens(&self, rendered_prompt: &str) -> bool {
        !self
            .tokenizer
            .special_tokens()
            .bos
            .as_deref()
            .is_some_and(|bos| rendered_prompt.starts_with(bos))
    }

    pub fn process_with(
        &self,
        text: &str,
        images: &[Rgb8],
        add_special_tokens: bool,
    ) -> Result<ProcessedInputs> {
        let image_token = self.style.image_token();
        let in_text = text.matches(image_token).count();
        if in_text != images.len() {
            return Err(ProcessorError::Invalid(format!(
                "the text has {in_text} image token(s) {image_token:?} but {} image(s) were given",
                images.len()
            )));
        }
        let mut out = match (&self.style, &self.image_processor) {
            (
                PromptStyle::Idefics3 {
                    image_seq_len,
                    image_token,
                    fake_image_token,
                    global_image_token,
                },
                ImageProcessor::Idefics3(ip),
            ) => {
                let mut tiles = Vec::with_capacity(images.len());
                let mut grid = Vec::with_capacity(images.len());
                for img in images {
                    let p = ip.preprocess(img)?;
                    grid.push((p.rows, p.cols));
                    tiles.push(p.tiles);
                }
                let image_strings: Vec<String> = grid
                    .iter()
                    .map(|&(rows, cols)| {
                        idefics3_image_prompt(
                            rows,
                            cols,
                            *image_seq_len,
                            fake_image_token,
                            image_token,
                            global_image_token,
                        )
                    })
                    .collect();
                let prompt = interleave(text, image_token, &image_strings);
                let mut out = stack_tiles(prompt, &tiles)?;
                out.pixel_attention_mask = Some(vec![1u8; out.pixel_values.len() / 3]);
                out.image_grid = grid;
                out
            }
            (
                PromptStyle::Llava {
                    image_token,
                    patch_size,
                    num_additional_image_tokens,
                    vision_feature_select_strategy,
                },
                ImageProcessor::ResizeCrop { processor, .. },
            ) => {
                let tiles = images
                    .iter()
                    .map(|img| processor.preprocess(img))
                    .collect::<Result<Vec<_>>>()?;
                // transformers 5 expands each image by its own processed size.
                let image_strings: Vec<String> = tiles
                    .iter()
                    .map(|t| {
                        let mut n = (t.height / patch_size) * (t.width / patch_size)
                            + num_additional_image_tokens;
                        if vision_feature_select_strategy == "default" {
                            n = n.saturating_sub(1);
                        }
                        image_token.repeat(n)
                    })
                    .collect();
                let prompt = interleave(text, image_token, &image_strings);
                stack_tiles(prompt, &tiles)?
            }
            (PromptStyle::Qwen2Vl { image_token }, ImageProcessor::Qwen2Vl(ip)) => {
                let patches = images
                    .iter()
                    .map(|img| ip.preprocess(img))
                    .collect::<Result<Vec<_>>>()?;
                let merge = ip.merge_size * ip.merge_size;
                let image_strings: Vec<String> = patches
                    .iter()
                    .map(|p| image_token.repeat(p.grid_thw.iter().product::<usize>() / merge))
                    .collect();
                let prompt = interleave(text, image_token, &image_strings);
                let dim = ip.patch_dim();
                let mut pixel_values = Vec::new();
                for p in &patches {
                    pixel_values.extend_from_slice(&p.values);
                }
                let tiles_per_image: Vec<usize> = patches
                    .iter()
                    .map(|p| p.grid_thw.iter().product())
                    .collect();
                ProcessedInputs {
                    prompt,
                    input_ids: Vec::new(),
                    attention_mask: Vec::new(),
                    pixel_shape: [pixel_values.len() / dim, dim, 1, 1],
                    pixel_values,
                    pixel_attention_mask: None,
                    image_grid: Vec::new(),
                    tiles_per_image,
                    image_grid_thw: patches.iter().map(|p| p.grid_thw).collect(),
                }
            }
            _ => {
                return Err(ProcessorError::Invalid(
                    "the prompt style and the image processor belong to different model families"
                        .into(),
                ));
            }
        };
        out.input_ids = self.tokenizer.encode(&out.prompt, add_special_tokens)?;
        out.attention_mask = vec![1; out.input_ids.len()];
        Ok(out)
    }

    /// `processor.decode(ids, skip_special_tokens=...)`: Idefics3 additionally collapses each run of
    /// `<global-img>` / `<row_r_col_c>` tags (with their newlines) into one `<image>`, as its processor does.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        let text = self.tokenizer.decode(ids, skip_special_tokens)?;
        Ok(match self.style {
            PromptStyle::Idefics3 { .. } => collapse_image_tags(&text),
            PromptStyle::Llava { .. } | PromptStyle::Qwen2Vl { .. } => text,
        })
    }

    /// Pads samples into one batch with the tokenizer's pad token and padding side.
    pub fn collate(&self, samples: &[ProcessedInputs]) -> Result<Batch> {
        let pad = self.tokenizer.pad_token_id().ok_or_else(|| {
            ProcessorError::Invalid(
                "the tokenizer has no pad_token (set one in tokenizer_config.json)".into(),
            )
        })?;
        let layout = match self.style {
            PromptStyle::Idefics3 { .. } => PixelLayout::PerSamplePadded,
            PromptStyle::Llava { .. } => PixelLayout::Concatenated,
            PromptStyle::Qwen2Vl { .. } => PixelLayout::Patches,
        };
        collate(samples, pad, self.tokenizer.padding_side(), layout)
    }

    /// LLaVA: the number of image tokens one image of processed size `height x width` expands to.
    pub fn image_token_count_llava(&self, height: usize, width: usize) -> Option<usize> {
        match &self.style {
            PromptStyle::Llava {
                patch_size,
                num_additional_image_tokens,
                vision_feature_select_strategy,
                ..
            } => {
                let n = (height / patch_size) * (width / patch_size) + num_additional_image_tokens;
                Some(if vision_feature_select_strategy == "default" {
                    n.saturating_sub(1)
                } else {
                    n
                })
            }
            PromptStyle::Idefics3 { .. } | PromptStyle::Qwen2Vl { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProcessorClass {
    Idefics3,
    Llava,
    Qwen2Vl,
}

fn processor_class(
    processor_config: &Value,
    image_config: &Value,
    kind: ImageProcessorKind,
) -> ProcessorClass {
    let named = processor_config
        .get("processor_class")
        .or_else(|| image_config.get("processor_class"))
        .and_then(Value::as_str);
    match named {
        Some("Idefics3Processor") => ProcessorClass::Idefics3,
        Some("LlavaProcessor") => ProcessorClass::Llava,
        Some("Qwen2VLProcessor" | "Qwen2_5_VLProcessor" | "Qwen3VLProcessor") => {
            ProcessorClass::Qwen2Vl
        }
        _ => match kind {
            ImageProcessorKind::Idefics3 => ProcessorClass::Idefics3,
            ImageProcessorKind::Qwen2Vl => ProcessorClass::Qwen2Vl,
            ImageProcessorKind::Clip | ImageProcessorKind::Siglip => ProcessorClass::Llava,
        },
    }
}

fn find_chat_template(dir: &Path, processor_config: &Value) -> Result<Option<String>> {
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        return read_text(&jinja).map(Some);
    }
    let json_path: PathBuf = dir.join("chat_template.json");
    if let Some(v) = read_json_if_exists(&json_path)? {
        let file = JsonFile::new(&json_path, &v);
        let t = file.require("chat_template")?;
        return t
            .as_str()
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| file.invalid("chat_template", "expected a string"));
    }
    Ok(processor_config
        .get("chat_template")
        .and_then(Value::as_str)
        .map(str::to_string))
}

/// `get_image_prompt_string` of transformers' Idefics3 processor.
pub fn idefics3_image_prompt(
    rows: usize,
    cols: usize,
    image_seq_len: usize,
    fake_image_token: &str,
    image_token: &str,
    global_image_token: &str,
) -> String {
    let image_run = image_token.repeat(image_seq_len);
    let mut s = String::new();
    if rows == 0 && cols == 0 {
        s.push_str(fake_image_token);
        s.push_str(global_image_token);
        s.push_str(&image_run);
        s.push_str(fake_image_token);
        return s;
    }
    for r in 0..rows {
        for c in 0..cols {
            s.push_str(fake_image_token);
            s.push_str(&format!("<row_{}_col_{}>", r + 1, c + 1));
            s.push_str(&image_run);
        }
        s.push('\n');
    }
    s.push('\n');
    s.push_str(fake_image_token);
    s.push_str(global_image_token);
    s.push_str(&image_run);
    s.push_str(fake_image_token);
    s
}

/// Length of one `\n?<global-img>\n?` or `<row_\d+_col_\d+>\n?` at the start of `s`, if any.
fn image_tag_len(s: &str) -> Option<usize> {
    const GLOBAL: &str = "<global-img>";
    let lead = usize::from(s.starts_with("\n") && s[1..].starts_with(GLOBAL));
    let rest = &s[lead..];
    let tag = if rest.starts_with(GLOBAL) {
        GLOBAL.len()
    } else {
        let body = rest.strip_prefix("<row_")?;
        let r = body.bytes().take_while(u8::is_ascii_digit).count();
        let body = body[r..].strip_prefix("_col_").filter(|_| r > 0)?;
        let c = body.bytes().take_while(u8::is_ascii_digit).count();
        body[c..].strip_prefix('>').filter(|_| c > 0)?;
        "<row_".len() + r + "_col_".len() + c + 1
    };
    let trail = usize::from(rest[tag..].starts_with('\n'));
    Some(lead + tag + trail)
}

/// `re.sub(r"(\n?<global-img>\n?|<row_\d+_col_\d+>\n?)+", "<image>", text)`.
fn collapse_image_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let mut j = i;
        while let Some(n) = image_tag_len(&text[j..]) {
            j += n;
        }
        if j > i {
            out.push_str("<image>");
            i = j;
        } else {
            let c = text[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&text[i..i + c]);
            i += c;
        }
    }
    out
}

/// Replaces the i-th occurrence of `token` in `text` by `replacements[i]` (the caller matched the counts).
fn interleave(text: &str, token: &str, replacements: &[String]) -> String {
    let mut parts = text.split(token);
    let mut out = parts.next().unwrap_or_default().to_string();
    for (part, rep) in parts.zip(replacements) {
        out.push_str(rep);
        out.push_str(part);
    }
    out
}

fn stack_tiles(prompt: String, tiles: &[PixelTiles]) -> Result<ProcessedInputs> {
    let (h, w) = tiles.first().map_or((0, 0), |t| (t.height, t.width));
    if tiles.iter().any(|t| t.height != h || t.width != w) {
        return Err(ProcessorError::Invalid(
            "images of one sample were preprocessed to different sizes".into(),
        ));
    }
    let num_tiles: usize = tiles.iter().map(|t| t.num_tiles).sum();
    let mut pixel_values = Vec::with_capacity(num_tiles * 3 * h * w);
    for t in tiles {
        pixel_values.extend_from_slice(&t.values);
    }
    Ok(ProcessedInputs {
        prompt,
        input_ids: Vec::new(),
        attention_mask: Vec::new(),
        pixel_values,
        pixel_shape: [num_tiles, 3, h, w],
        pixel_attention_mask: None,
        image_grid: Vec::new(),
        tiles_per_image: tiles.iter().map(|t| t.num_tiles).collect(),
        image_grid_thw: Vec::new(),
    })
}

/// How `collate` lays out pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelLayout {
    /// `[batch, max_tiles, 3, H, W]` + mask `[batch, max_tiles, H, W]` (Idefics3).
    PerSamplePadded,
    /// `[total_images, 3, H, W]` (LLaVA).
    Concatenated,
    /// `[total_patches, patch_dim]`, every sample's flattened patches in order, with the grids (Qwen2-VL).
    Patches,
}

/// Pads token sequences to the longest with `pad_token_id` on `side`, and lays out pixels per `layout`.
pub fn collate(
    samples: &[ProcessedInputs],
    pad_token_id: u32,
    side: PaddingSide,
    layout: PixelLayout,
) -> Result<Batch> {
    if samples.is_empty() {
        return Err(ProcessorError::Invalid(
            "cannot collate an empty batch".into(),
        ));
    }
    let batch_size = samples.len();
    let seq_len = samples.iter().map(|s| s.input_ids.len()).max().unwrap_or(0);
    let mut input_ids = Vec::with_capacity(batch_size * seq_len);
    let mut attention_mask = Vec::with_capacity(batch_size * seq_len);
    for s in samples {
        if s.attention_mask.len() != s.input_ids.len() {
            return Err(ProcessorError::Invalid(format!(
                "sample has {} ids but {} attention mask entries",
                s.input_ids.len(),
                s.attention_mask.len()
            )));
        }
        let pad = seq_len - s.input_ids.len();
        if side == PaddingSide::Left {
            input_ids.extend(std::iter::repeat_n(pad_token_id, pad));
            attention_mask.extend(std::iter::repeat_n(0, pad));
        }
        input_ids.extend_from_slice(&s.input_ids);
        attention_mask.extend_from_slice(&s.attention_mask);
        if side == PaddingSide::Right {
            input_ids.extend(std::iter::repeat_n(pad_token_id, pad));
            attention_mask.extend(std::iter::repeat_n(0, pad));
        }
    }
    let with_pixels: Vec<&ProcessedInputs> = samples.iter().filter(|s| s.num_tiles() > 0).collect();
    let h = with_pixels
        .iter()
        .map(|s| s.pixel_shape[2])
        .max()
        .unwrap_or(0);
    let w = with_pixels
        .iter()
        .map(|s| s.pixel_shape[3])
        .max()
        .unwrap_or(0);
    let image_grid_thw: Vec<[usize; 3]> = samples
        .iter()
        .flat_map(|s| s.image_grid_thw.iter().copied())
        .collect();
    let (pixel_values, pixel_shape, pixel_attention_mask) = match layout {
        PixelLayout::Patches => {
            let dim = with_pixels.first().map_or(0, |s| s.pixel_shape[1]);
            if with_pixels.iter().any(|s| s.pixel_shape[1] != dim) {
                return Err(ProcessorError::Invalid(
                    "patches of one batch must share one patch size".into(),
                ));
            }
            let total: usize = samples.iter().map(ProcessedInputs::num_tiles).sum();
            let mut values = Vec::with_capacity(total * dim);
            for s in samples {
                values.extend_from_slice(&s.pixel_values);
            }
            (values, vec![total, dim], None)
        }
        PixelLayout::Concatenated => {
            if with_pixels
                .iter()
                .any(|s| s.pixel_shape[2] != h || s.pixel_shape[3] != w)
            {
                return Err(ProcessorError::Invalid(
                    "LLaVA images in one batch must share one processed size".into(),
                ));
            }
            let total: usize = samples.iter().map(ProcessedInputs::num_tiles).sum();
            let mut values = Vec::with_capacity(total * 3 * h * w);
            for s in samples {
                values.extend_from_slice(&s.pixel_values);
            }
            (values, vec![total, 3, h, w], None)
        }
        PixelLayout::PerSamplePadded => {
            let max_tiles = samples
                .iter()
                .map(ProcessedInputs::num_tiles)
                .max()
                .unwrap_or(0);
            let mut values = vec![0f32; batch_size * max_tiles * 3 * h * w];
            let mut mask = vec![0u8; batch_size * max_tiles * h * w];
            for (b, s) in samples.iter().enumerate() {
                let [n, _, sh, sw] = s.pixel_shape;
                for t in 0..n {
                    let tile_mask = s.pixel_attention_mask.as_ref();
                    for c in 0..3 {
                        for y in 0..sh {
                            let src = ((t * 3 + c) * sh + y) * sw;
                            let dst = (((b * max_tiles + t) * 3 + c) * h + y) * w;
                            values[dst..dst + sw].copy_from_slice(&s.pixel_values[src..src + sw]);
                        }
                    }
                    for y in 0..sh {
                        let dst = ((b * max_tiles + t) * h + y) * w;
                        match tile_mask {
                            Some(m) => {
                                let src = (t * sh + y) * sw;
                                mask[dst..dst + sw].copy_from_slice(&m[src..src + sw]);
                            }
                            None => mask[dst..dst + sw].fill(1),
                        }
                    }
                }
            }
            (values, vec![batch_size, max_tiles, 3, h, w], Some(mask))
        }
    };
    Ok(Batch {
        batch_size,
        seq_len,
        input_ids,
        attention_mask,
        pixel_values,
        pixel_shape,
        pixel_attention_mask,
        image_grid_thw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idefics3_prompt_for_split_and_single_images() {
        let single = idefics3_image_prompt(0, 0, 2, "<f>", "<i>", "<g>");
        assert_eq!(single, "<f><g><i><i><f>");
        let split = idefics3_image_prompt(1, 2, 1, "<f>", "<i>", "<g>");
        assert_eq!(
            split,
            "<f><row_1_col_1><i><f><row_1_col_2><i>\n\n<f><g><i><f>"
        );
    }

    #[test]
    fn image_tags_collapse_like_the_python_regex() {
        let text = "a<fake><row_1_col_1><i><fake><row_1_col_2><i>\n\n<fake><global-img><i><fake>b\n<row_x_col_1>é";
        assert_eq!(
            collapse_image_tags(text),
            "a<fake><image><i><fake><image><i>\n\n<fake><image><i><fake>b\n<row_x_col_1>é"
        );
        assert_eq!(collapse_image_tags("\n<global-img>\n"), "<image>");
        assert_eq!(
            collapse_image_tags("<row_12_col_3>\n<row_1_col_1>x"),
            "<image>x"
        );
    }

    #[test]
    fn interleave_puts_each_expansion_in_place() {
        let out = interleave("a<i>b<i>c", "<i>", &["X".into(), "Y".into()]);
        assert_eq!(out, "aXbYc");
    }

    fn sample(ids: &[u32], tiles: usize) -> ProcessedInputs {
        ProcessedInputs {
            prompt: String::new(),
            input_ids: ids.to_vec(),
            attention_mask: vec![1; ids.len()],
            pixel_values: (0..tiles * 3 * 2 * 2).map(|i| i as f32 + 1.0).collect(),
            pixel_shape: [tiles, 3, 2, 2],
            pixel_attention_mask: Some(vec![1; tiles * 4]),
            image_grid: vec![],
            tiles_per_image: vec![tiles],
            image_grid_thw: vec![],
        }
    }

    #[test]
    fn collate_pads_left_and_right() {
        let s = [sample(&[5, 6, 7], 1), sample(&[8], 2)];
        let right = collate(&s, 0, PaddingSide::Right, PixelLayout::PerSamplePadded).unwrap();
        assert_eq!(right.input_ids, vec![5, 6, 7, 8, 0, 0]);
        assert_eq!(right.attention_mask, vec![1, 1, 1, 1, 0, 0]);
        let left = collate(&s, 0, PaddingSide::Left, PixelLayout::PerSamplePadded).unwrap();
        assert_eq!(left.input_ids, vec![5, 6, 7, 0, 0, 8]);
        assert_eq!(left.attention_mask, vec![1, 1, 1, 0, 0, 1]);
        assert_eq!(left.pixel_shape, vec![2, 2, 3, 2, 2]);
        let mask = left.pixel_attention_mask.unwrap();
        // sample 0 has one real tile and one padded tile
        assert_eq!(&mask[0..4], &[1, 1, 1, 1]);
        assert_eq!(&mask[4..8], &[0, 0, 0, 0]);
        assert_eq!(&mask[8..16], &[1; 8]);
        assert!(left.pixel_values[12..24].iter().all(|&v| v == 0.0));
        assert_eq!(left.pixel_values[0], 1.0);
    }

    #[test]
    fn collate_concatenates_llava_images() {
        let s = [sample(&[1], 1), sample(&[2], 0), sample(&[3], 2)];
        let b = collate(&s, 9, PaddingSide::Right, PixelLayout::Concatenated).unwrap();
        assert_eq!(b.pixel_shape, vec![3, 3, 2, 2]);
        assert_eq!(b.pixel_values.len(), 3 * 12);
        assert!(collate(&[], 0, PaddingSide::Right, PixelLayout::Concatenated).is_err());
    }
}
