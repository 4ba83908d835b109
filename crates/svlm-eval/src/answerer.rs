//! Answering questions about images with a loaded VLM: the one generation path from (images, question) to text,
//! behind `svlm ask`, `svlm eval`, `svlm reason`, `svlm reward` and the quickstart. [`ModelAnswerer`] implements
//! [`crate::Answerer`] and [`crate::ImagesAnswerer`], so a library user evaluates a model as the binary does:
//! `evaluate(&set, &mut ModelAnswerer::open(weights, processor, &settings)?, &options)`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use svlm_model::generate::{GenerationImages, GenerationOptions, generate, stop_tokens_of};
use svlm_model::{LoadedModel, WeightDType, load_pretrained_as, resolve_device_with_dtype};
use svlm_processor::Rgb8;
use svlm_processor::{
    ChatMessage,
    processor::{ProcessedInputs, Processor},
};

/// Generation settings a user chooses on the command line.
#[derive(Debug, Clone)]
pub struct AnswerSettings {
    pub device: String,
    pub dtype: String,
    pub max_new_tokens: usize,
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u64,
}

/// A VLM with its processor, ready to answer (image, question) pairs.
pub struct ModelAnswerer {
    loaded: LoadedModel,
    processor: Processor,
    device: svlm_model::burn::tensor::Device,
    options: GenerationOptions,
}

/// Where a `--model` argument points: an HF model folder, a training run (its newest checkpoint) or a
/// `checkpoint-N` folder; hub repo ids and `.gguf` files go through `svlm_model::hub`. Returns the weights folder
/// and the folder holding tokenizer/processor files.
pub fn resolve_model_spec(
    spec: &str,
    processor_dir: Option<&Path>,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let path = Path::new(spec);
    let weights = if path.is_dir() && !path.join("config.json").is_file() {
        let (_, checkpoint) =
            svlm_train::checkpoint::latest_checkpoint(path).with_context(|| {
                format!("{spec}: a folder without config.json and without checkpoint-N folders")
            })?;
        checkpoint
    } else if path.is_dir() {
        path.to_path_buf()
    } else {
        svlm_model::hub::resolve_model(spec, None).with_context(|| {
            format!("--model {spec}: not a local folder, .gguf file or cached hub repo")
        })?
    };
    let processor = match processor_dir {
        Some(dir) => dir.to_path_buf(),
        None => svlm_train::checkpoint::processor_dir_of(&weights).with_context(|| {
            format!(
                "no tokenizer.json in {}, its run folder or the folder its run config names: pass --processor DIR",
                weights.display()
            )
        })?,
    };
    Ok((weights, processor))
}

/// A [`ModelAnswerer`] for a `--model`-style spec with greedy decoding (reasoning and reward commands).
pub fn open_answerer(
    spec: &str,
    processor_dir: Option<&Path>,
    device: &str,
) -> anyhow::Result<ModelAnswerer> {
    let (weights, processor) = resolve_model_spec(spec, processor_dir)?;
    let settings = AnswerSettings {
        device: device.to_string(),
        dtype: "f32".into(),
        max_new_tokens: 48,
        temperature: 0.0,
        top_p: 1.0,
        seed: 0,
    };
    ModelAnswerer::open(&weights, &processor, &settings)
        .with_context(|| format!("opening the VLM {spec}"))
}

impl ModelAnswerer {
    pub fn open(
        weights: &Path,
        processor_dir: &Path,
        settings: &AnswerSettings,
    ) -> anyhow::Result<Self> {
        let dtype: WeightDType = settings.dtype.parse()?;
        let device = resolve_device_with_dtype(&settings.device, dtype)?;
        let processor = Processor::from_dir(processor_dir).with_context(|| {
            format!("reading the processor files of {}", processor_dir.display())
        })?;
        let loaded = load_pretrained_as(weights, &device, dtype)?;
        let options = generation_options(weights, &loaded, &processor, settings)?;
        Ok(Self {
            loaded,
            processor,
            device,
            options,
        })
    }

    /// Answer each (images, question) with one chat turn; prompts are generated together as one batch.
    pub fn answer(&mut self, items: &[(Vec<Rgb8>, String)]) -> anyhow::Result<Vec<String>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut inputs = Vec::with_capacity(items.len());
        for (images, question) in items {
            let message = ChatMessage::user_with_images(images.len(), question.clone());
            inputs.push(self.processor.process_chat(&[message], images, true)?);
        }
        let images = generation_images(&self.processor, &inputs, &self.device)?;
        let prompts: Vec<Vec<u32>> = inputs.iter().map(|i| i.input_ids.clone()).collect();
        let tokens = generate(&self.loaded.model, &prompts, images, &self.options)?;
        tokens
            .iter()
            .map(|t| Ok(self.processor.tokenizer.decode(t, true)?.trim().to_string()))
            .collect()
    }
}

/// Generation options for a loaded model: the user's settings, the model's stop tokens plus the chat turn's
/// `<end_of_utterance>`, and the tokenizer's pad token.
pub fn generation_options(
    weights: &Path,
    loaded: &LoadedModel,
    processor: &Processor,
    settings: &AnswerSettings,
) -> anyhow::Result<GenerationOptions> {
    let mut stop_tokens = stop_tokens_of(weights, &loaded.config)?;
    if let Some(eou) = processor.tokenizer.token_to_id("<end_of_utterance>") {
        stop_tokens.push(eou);
    }
    Ok(GenerationOptions {
        max_new_tokens: settings.max_new_tokens,
        temperature: settings.temperature,
        top_p: settings.top_p,
        stop_tokens,
        pad_token: processor.tokenizer.pad_token_id().unwrap_or(0),
        seed: settings.seed,
    })
}

/// The images of processed prompts as one generation batch on `device` (all prompts with images, or none).
pub fn generation_images(
    processor: &Processor,
    inputs: &[ProcessedInputs],
    device: &svlm_model::burn::tensor::Device,
) -> anyhow::Result<GenerationImages> {
    let with_images = inputs.iter().filter(|i| i.pixel_shape[0] > 0).count();
    if with_images == 0 {
        return Ok(GenerationImages::default());
    }
    if with_images != inputs.len() {
        bail!("a batch mixes questions with and without images; answer them in separate batches");
    }
    let batch = processor.collate(inputs)?;
    // The Qwen2-VL family: every image's flattened patches with the grids.
    if !batch.image_grid_thw.is_empty() {
        let [n, dim] = match batch.pixel_shape.as_slice() {
            [n, dim] => [*n, *dim],
            other => {
                bail!("flattened patches of shape {other:?}: expected [patches, patch values]")
            }
        };
        return Ok(GenerationImages {
            image_patches: Some(svlm_model::ImagePatches {
                pixel_values: svlm_model::burn::tensor::Tensor::from_data(
                    svlm_model::burn::tensor::TensorData::new(batch.pixel_values, [n, dim]),
                    device,
                ),
                grid_thw: batch.image_grid_thw,
            }),
            ..Default::default()
        });
    }
    let shape: [usize; 5] = match batch.pixel_shape.as_slice() {
        [b, n, c, h, w] => [*b, *n, *c, *h, *w],
        // LLaVA collates images flat: one image per prompt here.
        [n, c, h, w] if *n == inputs.len() => [*n, 1, *c, *h, *w],
        other => bail!("cannot batch pixel values of shape {other:?}: ask one image per question"),
    };
    GenerationImages::from_host(
        batch.pixel_values,
        shape,
        batch.pixel_attention_mask.as_deref(),
        device,
    )
}

impl crate::Answerer for ModelAnswerer {
    fn answer_batch(&mut self, items: &[(PathBuf, String)]) -> anyhow::Result<Vec<String>> {
        let mut loaded = Vec::with_capacity(items.len());
        for (path, question) in items {
            let image = svlm_processor::image_ops::load_image(path)
                .with_context(|| format!("reading image {}", path.display()))?;
            loaded.push((vec![image], question.clone()));
        }
        self.answer(&loaded)
    }
}

impl crate::ImagesAnswerer for ModelAnswerer {
    fn answer_images(&mut self, batch: &[(Vec<PathBuf>, String)]) -> anyhow::Result<Vec<String>> {
        let mut loaded = Vec::with_capacity(batch.len());
        for (paths, prompt) in batch {
            let mut images = Vec::with_capacity(paths.len());
            for path in paths {
                images.push(
                    svlm_processor::image_ops::load_image(path)
                        .with_context(|| format!("reading image {}", path.display()))?,
                );
            }
            loaded.push((images, prompt.clone()));
        }
        // Prompts with different image counts do not batch: answer those one by one.
        if loaded.windows(2).all(|w| w[0].0.len() == w[1].0.len()) {
            return self.answer(&loaded);
        }
        let mut answers = Vec::with_capacity(loaded.len());
        for one in loaded {
            answers.extend(self.answer(std::slice::from_ref(&one))?);
        }
        Ok(answers)
    }
}
