//! `DepthProForDepthEstimation` (transformers 5) as a Burn module. The module paths are the checkpoint names
//! except where HF numbers layers of different kinds in one list (`head.layers.{0,1,2,4}`, an upsample block's
//! `layers.K`, the FoV head's convolutions between ReLUs) and the Rust keyword `final`; [`module_path`] and
//! [`checkpoint_name`] map between the two.
//!
//! The encoder runs one DINOv2 on overlapping patches of the image at several scales (merged back into feature
//! maps, with intermediate layers as the finest maps) and one on the whole image; the neck upsamples all maps with
//! transposed convolutions, the fusion stage merges them coarse to fine, and the head gives inverse depth at
//! `64 x` the coarsest map. The FoV model (a third DINOv2 plus the coarsest fused features) gives the horizontal
//! field of view in degrees.

use anyhow::{Result, bail};
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::module::conv_transpose2d;
use burn::tensor::ops::ConvTransposeOptions;
use burn::tensor::{Device, Tensor, activation};
use svlm_model::nn::Linear;

use super::config::DepthProConfig;
use super::preprocess::TorchInterpolation;
use crate::depth::canonical_name;
use crate::model::{Conv2d, Dinov2Backbone, PreActResidualLayer};

const INIT_STD: f64 = 0.02;

/// A PyTorch `ConvTranspose2d` with kernel = stride = 2 and no padding (weight `[in, out, 2, 2]`): doubles the
/// resolution.
#[derive(Module, Debug)]
pub struct ConvTranspose2d {
    pub weight: Param<Tensor<4>>,
    pub bias: Option<Param<Tensor<1>>>,
}

impl ConvTranspose2d {
    pub fn new(d_in: usize, d_out: usize, bias: bool, device: &Device) -> Self {
        Self {
            weight: Initializer::Normal {
                mean: 0.0,
                std: INIT_STD,
            }
            .init([d_in, d_out, 2, 2], device),
            bias: bias.then(|| Initializer::Zeros.init([d_out], device)),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv_transpose2d(
            x,
            self.weight.val(),
            self.bias.as_ref().map(|b| b.val()),
            ConvTransposeOptions::new([2, 2], [0, 0], [0, 0], [1, 1], 1),
        )
    }
}

// ---------------------------------------------------------------- checkpoint names

fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(".")
}

/// The module path of a checkpoint key (transformers 5's in-memory attention names are accepted too, as for
/// Depth Anything). Keys this model has no place for come back unchanged, to be reported as unexpected.
pub fn module_path(key: &str) -> String {
    let key = canonical_name(key);
    let s: Vec<&str> = key.split('.').collect();
    let tail = |n: usize| s[n..].join(".");
    match s.as_slice() {
        [
            "depth_pro",
            "neck",
            "feature_upsample",
            "image_block",
            "layers",
            k,
            ..,
        ] => join(&[
            "depth_pro.neck.feature_upsample.image_block.upsample",
            k,
            &tail(6),
        ]),
        [
            "depth_pro",
            "neck",
            "feature_upsample",
            group @ ("scaled_images" | "intermediate"),
            i,
            "layers",
            k,
            ..,
        ] => match k.parse::<usize>() {
            Ok(0) => join(&[
                "depth_pro.neck.feature_upsample",
                group,
                i,
                "proj",
                &tail(7),
            ]),
            Ok(k) => join(&[
                "depth_pro.neck.feature_upsample",
                group,
                i,
                "upsample",
                &(k - 1).to_string(),
                &tail(7),
            ]),
            Err(_) => key,
        },
        ["fusion_stage", "final", ..] => join(&["fusion_stage.last", &tail(2)]),
        ["head", "layers", k, ..] => match *k {
            "0" => join(&["head.conv1", &tail(3)]),
            "1" => join(&["head.deconv", &tail(3)]),
            "2" => join(&["head.conv2", &tail(3)]),
            "4" => join(&["head.conv3", &tail(3)]),
            _ => key,
        },
        ["fov_model", "head", "layers", k, ..] => match k.parse::<usize>() {
            Ok(k) if k % 2 == 0 => join(&["fov_model.head.convs", &(k / 2).to_string(), &tail(4)]),
            _ => key,
        },
        _ => key,
    }
}

/// The checkpoint key of a module path (the inverse of [`module_path`] on `save_pretrained`'s names).
pub fn checkpoint_name(path: &str) -> String {
    let s: Vec<&str> = path.split('.').collect();
    let tail = |n: usize| s[n..].join(".");
    match s.as_slice() {
        [
            "depth_pro",
            "neck",
            "feature_upsample",
            "image_block",
            "upsample",
            k,
            ..,
        ] => join(&[
            "depth_pro.neck.feature_upsample.image_block.layers",
            k,
            &tail(6),
        ]),
        [
            "depth_pro",
            "neck",
            "feature_upsample",
            group,
            i,
            "proj",
            ..,
        ] => join(&[
            "depth_pro.neck.feature_upsample",
            group,
            i,
            "layers.0",
            &tail(6),
        ]),
        [
            "depth_pro",
            "neck",
            "feature_upsample",
            group,
            i,
            "upsample",
            k,
            ..,
        ] => match k.parse::<usize>() {
            Ok(k) => join(&[
                "depth_pro.neck.feature_upsample",
                group,
                i,
                "layers",
                &(k + 1).to_string(),
                &tail(7),
            ]),
            Err(_) => path.to_string(),
        },
        ["fusion_stage", "last", ..] => join(&["fusion_stage.final", &tail(2)]),
        ["head", layer, ..] => {
            let k = match *layer {
                "conv1" => "0",
                "deconv" => "1",
                "conv2" => "2",
                "conv3" => "4",
                _ => return path.to_string(),
            };
            join(&["head.layers", k, &tail(2)])
        }
        ["fov_model", "head", "convs", k, ..] => match k.parse::<usize>() {
            Ok(k) => join(&["fov_model.head.layers", &(2 * k).to_string(), &tail(4)]),
            Err(_) => path.to_string(),
        },
        _ => path.to_string(),
    }
}

// ---------------------------------------------------------------- patch merging

fn bilinear(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    TorchInterpolation::Bilinear.resize(x, size)
}

/// `split_to_patches`: `[B, C, S, S]` -> the `patch x patch` windows at stride `patch * (1 - overlap)`, row by
/// row, `[n * B, C, patch, patch]` with the batch index fastest (as `F.unfold` + permute). An image of the patch
/// size is returned as is.
fn split_to_patches(x: Tensor<4>, patch: usize, overlap: f64) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    if h == patch && w == patch {
        return x;
    }
    let stride = ((patch as f64 * (1.0 - overlap)) as usize).max(1);
    let (ny, nx) = ((h - patch) / stride + 1, (w - patch) / stride + 1);
    let mut patches = Vec::with_capacity(ny * nx);
    for i in 0..ny {
        for j in 0..nx {
            let (y, x0) = (i * stride, j * stride);
            patches.push(x.clone().slice([0..b, 0..c, y..y + patch, x0..x0 + patch]));
        }
    }
    Tensor::cat(patches, 0)
}

/// `reshape_features`: tokens `[N, T, C]` -> the last `side^2` tokens (the class token dropped) as `[N, C, side, side]`.
fn reshape_features(h: Tensor<3>) -> Tensor<4> {
    let [n, t, c] = h.dims();
    let side = (t as f64).sqrt() as usize;
    h.slice([0..n, t - side * side..t, 0..c])
        .reshape([n, side, side, c])
        .permute([0, 3, 1, 2])
}

/// `merge_patches`: `[n * B, C, s, s]` (patch-major, as [`split_to_patches`]) -> one `[B, C, k s', k s']` map per
/// image from the first `k^2` patches (`k = floor(sqrt(n))`), each patch losing `padding` rows/columns at the
/// edges it shares with a neighbour (at most `s / 4`; none when fewer than 4 patches).
fn merge_patches(patches: Tensor<4>, batch: usize, padding: usize) -> Tensor<4> {
    let [n, c, s, _] = patches.dims();
    if n == batch {
        return patches;
    }
    let per_image = n / batch;
    let k = (per_image as f64).sqrt() as usize;
    let padding = if per_image < 4 { 0 } else { padding.min(s / 4) };
    let rows: Vec<Tensor<4>> = (0..k)
        .map(|i| {
            let row: Vec<Tensor<4>> = (0..k)
                .map(|j| {
                    let p = i * k + j;
                    let top = if i > 0 { padding } else { 0 };
                    let bottom = if i + 1 < k { padding } else { 0 };
                    let left = if j > 0 { padding } else { 0 };
                    let right = if j + 1 < k { padding } else { 0 };
                    patches.clone().slice([
                        batch * p..batch * (p + 1),
                        0..c,
                        top..s - bottom,
                        left..s - right,
                    ])
                })
                .collect();
            Tensor::cat(row, 3)
        })
        .collect();
    Tensor::cat(rows, 2)
}

/// `reconstruct_feature_maps`: encoder tokens -> merged maps resized (bilinear) to `size`.
fn reconstruct_feature_maps(
    h: Tensor<3>,
    batch: usize,
    padding: usize,
    size: [usize; 2],
) -> Tensor<4> {
    bilinear(merge_patches(reshape_features(h), batch, padding), size)
}

/// The side of the coarsest feature maps for an `height x width` input: both divided by the power of two that
/// brings the width to the encoder grid (`exponent = int(log2(width / out_size))`).
fn base_size(height: usize, width: usize, out_size: usize) -> [usize; 2] {
    let exponent = (width as f64 / out_size as f64).log2().max(0.0) as u32;
    [height >> exponent, width >> exponent]
}

/// `Dinov2Model` on `pixels`: its `hidden_states` (the embeddings, then each layer) and `last_hidden_state` (the
/// last layer, layer-normed).
fn run_dinov2(model: &Dinov2Backbone, pixels: Tensor<4>) -> (Vec<Tensor<3>>, Tensor<3>) {
    let hidden = model.hidden_states(pixels);
    // `hidden_states` holds at least the embeddings.
    let last = model.layernorm.forward(hidden[hidden.len() - 1].clone());
    (hidden, last)
}

/// The DINOv2 of an encoder (`*.model.*` in the checkpoint).
#[derive(Module, Debug)]
pub struct Encoder {
    pub model: Dinov2Backbone,
}

// ---------------------------------------------------------------- encoder

/// `DepthProEncoder`.
#[derive(Module, Debug)]
pub struct DepthProEncoder {
    pub patch_encoder: Encoder,
    pub image_encoder: Encoder,
    #[module(skip)]
    pub patch_size: usize,
    #[module(skip)]
    pub out_size: usize,
    #[module(skip)]
    pub ratios: Vec<f64>,
    #[module(skip)]
    pub overlaps: Vec<f64>,
    #[module(skip)]
    pub hooks: Vec<usize>,
    #[module(skip)]
    pub merge_padding: usize,
}

impl DepthProEncoder {
    /// `pixels: [B, 3, S, S]` -> the image encoder's map, the patch encoder's maps (low to high resolution),
    /// then its intermediate maps.
    pub fn forward(&self, pixels: Tensor<4>) -> Result<Vec<Tensor<4>>> {
        let [b, _, h, w] = pixels.dims();
        let p = self.patch_size;
        if h != w {
            bail!(
                "Depth Pro takes square inputs, not {w}x{h} (set `size` to a square in the processor)"
            );
        }
        let min_ratio = self.ratios.iter().copied().fold(f64::INFINITY, f64::min);
        if min_ratio * (h as f64) < p as f64 {
            bail!(
                "image size {h}x{w} is too small to be scaled with scaled_images_ratios={:?} when patch_size={p}",
                self.ratios
            );
        }
        let base = base_size(h, w, self.out_size);
        let mut patches = Vec::with_capacity(self.ratios.len());
        for (&ratio, &overlap) in self.ratios.iter().zip(&self.overlaps) {
            let side = h as f64 * ratio;
            if side.fract() != 0.0 {
                bail!(
                    "scale {ratio} of a {h} px input is {side} px: the input must scale to whole pixels"
                );
            }
            let scaled = bilinear(pixels.clone(), [side as usize, side as usize]);
            patches.push(split_to_patches(scaled, p, overlap));
        }
        let counts: Vec<usize> = patches.iter().map(|t| t.dims()[0]).collect();
        // High resolution first, as the patch encoder's batch.
        let batch = Tensor::cat(patches.into_iter().rev().collect(), 0);
        let (hidden, last) = run_dinov2(&self.patch_encoder.model, batch);
        let [total, t, c] = last.dims();
        let mut features = Vec::with_capacity(1 + counts.len() + self.hooks.len());
        features.push(self.image_features(pixels, b, base));
        let mut end = total;
        for (i, (&count, &ratio)) in counts.iter().zip(&self.ratios).enumerate() {
            let start = end - count;
            let tokens = last.clone().slice([start..end, 0..t, 0..c]);
            end = start;
            let padding = (self.merge_padding as f64 * (1.0 / ratio)) as usize;
            let size = base.map(|s| s << i);
            features.push(reconstruct_feature_maps(tokens, b, padding, size));
        }
        let last_ratio = self.ratios[self.ratios.len() - 1];
        let padding = (self.merge_padding as f64 * (1.0 / last_ratio)) as usize;
        let size = base.map(|s| s << (self.ratios.len() - 1));
        for &hook in &self.hooks {
            features.push(reconstruct_feature_maps(
                hidden[hook + 1].clone(),
                b,
                padding,
                size,
            ));
        }
        Ok(features)
    }

    fn image_features(&self, pixels: Tensor<4>, batch: usize, base: [usize; 2]) -> Tensor<4> {
        let p = self.patch_size;
        let (_, last) = run_dinov2(&self.image_encoder.model, bilinear(pixels, [p, p]));
        reconstruct_feature_maps(last, batch, 0, base)
    }
}

// ---------------------------------------------------------------- neck

/// `DepthProFeatureUpsampleBlock`: an optional 1x1 projection (`layers.0`), then x2 transposed convolutions.
#[derive(Module, Debug)]
pub struct UpsampleBlock {
    pub proj: Option<Conv2d>,
    pub upsample: Vec<ConvTranspose2d>,
}

impl UpsampleBlock {
    fn new(
        d_in: usize,
        d_mid: usize,
        d_out: usize,
        n_up: usize,
        use_proj: bool,
        bias: bool,
        device: &Device,
    ) -> Self {
        Self {
            proj: use_proj.then(|| Conv2d::new(d_in, d_mid, 1, 1, 0, bias, device)),
            upsample: (0..n_up)
                .map(|i| {
                    ConvTranspose2d::new(if i == 0 { d_mid } else { d_out }, d_out, bias, device)
                })
                .collect(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = match &self.proj {
            Some(p) => p.forward(x),
            None => x,
        };
        self.upsample.iter().fold(x, |x, up| up.forward(x))
    }
}

#[derive(Module, Debug)]
pub struct FeatureUpsample {
    pub image_block: UpsampleBlock,
    pub scaled_images: Vec<UpsampleBlock>,
    pub intermediate: Vec<UpsampleBlock>,
}

/// The 3x3 projections to `fusion_hidden_size`; the last is the identity when its input already has that width.
#[derive(Module, Debug)]
pub struct FeatureProjection {
    pub projections: Vec<Conv2d>,
}

/// `DepthProNeck`.
#[derive(Module, Debug)]
pub struct DepthProNeck {
    pub feature_upsample: FeatureUpsample,
    pub fuse_image_with_low_res: Conv2d,
    pub feature_projection: FeatureProjection,
}

impl DepthProNeck {
    /// Encoder maps -> the fusion stage's inputs, coarse to fine: the image map fused with the lowest-resolution
    /// map, the other scales, the intermediate maps.
    pub fn forward(&self, features: Vec<Tensor<4>>) -> Vec<Tensor<4>> {
        let up = &self.feature_upsample;
        let mut features = features.into_iter();
        let image = features
            .next()
            .map(|f| up.image_block.forward(f))
            .into_iter();
        let blocks = up.scaled_images.iter().chain(&up.intermediate);
        let upsampled: Vec<Tensor<4>> = features.zip(blocks).map(|(f, b)| b.forward(f)).collect();
        let mut upsampled = upsampled.into_iter();
        let low = upsampled.next();
        let global = low.into_iter().chain(image).collect::<Vec<_>>();
        let global = self.fuse_image_with_low_res.forward(Tensor::cat(global, 1));
        std::iter::once(global)
            .chain(upsampled)
            .enumerate()
            .map(|(i, f)| match self.feature_projection.projections.get(i) {
                Some(p) => p.forward(f),
                None => f,
            })
            .collect()
    }
}

/// `DepthProModel`: encoder + neck.
#[derive(Module, Debug)]
pub struct DepthProModel {
    pub encoder: DepthProEncoder,
    pub neck: DepthProNeck,
}

// ---------------------------------------------------------------- fusion and head

/// `DepthProFeatureFusionLayer`: `x (+ residual_layer1(residual))` -> `residual_layer2` -> x2 deconvolution
/// (all but the last layer) -> 1x1 projection.
#[derive(Module, Debug)]
pub struct FusionLayer {
    pub residual_layer1: PreActResidualLayer,
    pub residual_layer2: PreActResidualLayer,
    pub deconv: Option<ConvTranspose2d>,
    pub projection: Conv2d,
}

impl FusionLayer {
    fn forward(&self, x: Tensor<4>, residual: Option<Tensor<4>>) -> Tensor<4> {
        let x = match residual {
            Some(r) => x + self.residual_layer1.forward(r),
            None => x,
        };
        let x = self.residual_layer2.forward(x);
        let x = match &self.deconv {
            Some(d) => d.forward(x),
            None => x,
        };
        self.projection.forward(x)
    }
}

/// `DepthProFeatureFusionStage` (`final` is `last` here).
#[derive(Module, Debug)]
pub struct FusionStage {
    pub intermediate: Vec<FusionLayer>,
    pub last: FusionLayer,
}

impl FusionStage {
    /// Neck maps (coarse to fine) -> each layer's output; the last is the head's input.
    pub fn forward(&self, maps: &[Tensor<4>]) -> Vec<Tensor<4>> {
        let mut fused: Vec<Tensor<4>> = Vec::with_capacity(maps.len());
        let layers = self.intermediate.iter().chain(std::iter::once(&self.last));
        for (map, layer) in maps.iter().zip(layers) {
            let out = match fused.last() {
                None => layer.forward(map.clone(), None),
                Some(prev) => layer.forward(prev.clone(), Some(map.clone())),
            };
            fused.push(out);
        }
        fused
    }
}

/// `DepthProDepthEstimationHead`: conv 3x3, x2 deconvolution, conv 3x3 to 32, ReLU, conv 1x1 to 1, ReLU.
#[derive(Module, Debug)]
pub struct DepthHead {
    pub conv1: Conv2d,
    pub deconv: ConvTranspose2d,
    pub conv2: Conv2d,
    pub conv3: Conv2d,
}

impl DepthHead {
    /// `[B, C, h, w]` -> inverse depth `[B, 2h, 2w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<3> {
        let x = self.deconv.forward(self.conv1.forward(x));
        let x = activation::relu(self.conv2.forward(x));
        let x = activation::relu(self.conv3.forward(x));
        let [b, _, h, w] = x.dims();
        x.reshape([b, h, w])
    }
}

// ---------------------------------------------------------------- field of view

/// `DepthProFovEncoder`: DINOv2 on the image resized to the patch size, a linear neck to `fusion / 2`.
#[derive(Module, Debug)]
pub struct FovEncoder {
    pub model: Dinov2Backbone,
    pub neck: Linear,
}

/// `DepthProFovHead`: strided 3x3 convolutions with ReLU, then one convolution to a single value.
#[derive(Module, Debug)]
pub struct FovHead {
    pub convs: Vec<Conv2d>,
}

/// `DepthProFovModel`.
#[derive(Module, Debug)]
pub struct FovModel {
    pub fov_encoder: FovEncoder,
    pub conv: Conv2d,
    pub head: FovHead,
    #[module(skip)]
    pub patch_size: usize,
    #[module(skip)]
    pub out_size: usize,
}

impl FovModel {
    /// `pixels [B, 3, S, S]` and the neck's coarsest map -> the horizontal field of view in degrees, `[B]`.
    pub fn forward(&self, pixels: Tensor<4>, global: Tensor<4>) -> Tensor<1> {
        let [b, _, h, w] = pixels.dims();
        let p = self.patch_size;
        let (_, last) = run_dinov2(&self.fov_encoder.model, bilinear(pixels, [p, p]));
        let tokens = self.fov_encoder.neck.forward(last);
        let fov = reconstruct_feature_maps(tokens, b, 0, base_size(h, w, self.out_size));
        let x = fov + activation::relu(self.conv.forward(global));
        let mut x = bilinear(x, [self.out_size, self.out_size]);
        let n = self.head.convs.len();
        for (i, conv) in self.head.convs.iter().enumerate() {
            x = conv.forward(x);
            if i + 1 < n {
                x = activation::relu(x);
            }
        }
        x.reshape([b])
    }
}

/// What one forward pass gives.
pub struct DepthProOutput {
    /// Inverse depth `[B, 64 b, 64 b]` (`b` the coarsest map's side; the processed size for the released model).
    pub predicted_depth: Tensor<3>,
    /// Horizontal field of view in degrees, `[B]`, when the model has the FoV head.
    pub field_of_view: Option<Tensor<1>>,
    /// `DepthProEncoder`'s maps: image, scaled images (low to high resolution), intermediate.
    pub encoder_features: Vec<Tensor<4>>,
    /// The neck's maps, the fusion stage's input (coarse to fine).
    pub neck_features: Vec<Tensor<4>>,
    /// The fusion stage's outputs (coarse to fine).
    pub fused: Vec<Tensor<4>>,
}

/// `DepthProForDepthEstimation`.
#[derive(Module, Debug)]
pub struct DepthProForDepthEstimation {
    pub depth_pro: DepthProModel,
    pub fusion_stage: FusionStage,
    pub head: DepthHead,
    pub fov_model: Option<FovModel>,
}

impl DepthProForDepthEstimation {
    /// A model with placeholder weights (load a checkpoint to use it).
    pub fn new(config: &DepthProConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        let patch_model = config.patch_model()?;
        let image_model = config.image_model()?;
        let encoder = DepthProEncoder {
            patch_encoder: Encoder {
                model: Dinov2Backbone::new(patch_model, device)?,
            },
            image_encoder: Encoder {
                model: Dinov2Backbone::new(image_model, device)?,
            },
            patch_size: config.patch_size,
            out_size: config.out_size()?,
            ratios: config.scaled_images_ratios.clone(),
            overlaps: config.scaled_images_overlap_ratios.clone(),
            hooks: config.intermediate_hook_ids.clone(),
            merge_padding: config.merge_padding_value,
        };
        Ok(Self {
            depth_pro: DepthProModel {
                encoder,
                neck: neck(config, device)?,
            },
            fusion_stage: fusion_stage(config, device),
            head: depth_head(config.fusion_hidden_size, device),
            fov_model: if config.use_fov_model {
                Some(fov_model(config, device)?)
            } else {
                None
            },
        })
    }

    /// `pixels: [B, 3, S, S]` (normalized) -> inverse depth, field of view and the intermediate maps.
    pub fn forward(&self, pixels: Tensor<4>) -> Result<DepthProOutput> {
        let encoder_features = self.depth_pro.encoder.forward(pixels.clone())?;
        let neck_features = self.depth_pro.neck.forward(encoder_features.clone());
        let fused = self.fusion_stage.forward(&neck_features);
        let Some(finest) = fused.last() else {
            bail!("the fusion stage gave no output");
        };
        let predicted_depth = self.head.forward(finest.clone());
        let field_of_view = self
            .fov_model
            .as_ref()
            .map(|fov| fov.forward(pixels, neck_features[0].clone()));
        Ok(DepthProOutput {
            predicted_depth,
            field_of_view,
            encoder_features,
            neck_features,
            fused,
        })
    }
}

fn neck(config: &DepthProConfig, device: &Device) -> Result<DepthProNeck> {
    let patch_hidden = config.patch_model()?.hidden_size;
    let image_hidden = config.image_model()?.hidden_size;
    let fusion = config.fusion_hidden_size;
    let scaled = &config.scaled_images_feature_dims;
    let scaled_images = scaled
        .iter()
        .map(|&d| UpsampleBlock::new(patch_hidden, d, d, 1, true, false, device))
        .collect();
    let intermediate = config
        .intermediate_feature_dims
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let mid = if i == 0 { fusion } else { d };
            UpsampleBlock::new(patch_hidden, mid, d, 2 + i, true, false, device)
        })
        .collect();
    let combined: Vec<usize> = scaled
        .iter()
        .chain(&config.intermediate_feature_dims)
        .copied()
        .collect();
    let projections = combined
        .iter()
        .enumerate()
        .filter(|&(i, &d)| !(i + 1 == combined.len() && d == fusion))
        .map(|(_, &d)| Conv2d::new(d, fusion, 3, 1, 1, false, device))
        .collect();
    Ok(DepthProNeck {
        feature_upsample: FeatureUpsample {
            image_block: UpsampleBlock::new(
                image_hidden,
                image_hidden,
                scaled[0],
                1,
                false,
                true,
                device,
            ),
            scaled_images,
            intermediate,
        },
        fuse_image_with_low_res: Conv2d::new(2 * scaled[0], scaled[0], 1, 1, 0, true, device),
        feature_projection: FeatureProjection { projections },
    })
}

fn fusion_stage(config: &DepthProConfig, device: &Device) -> FusionStage {
    let f = config.fusion_hidden_size;
    let bias = config.use_bias_in_fusion_residual();
    let residual = || PreActResidualLayer {
        convolution1: Conv2d::new(f, f, 3, 1, 1, bias, device),
        convolution2: Conv2d::new(f, f, 3, 1, 1, bias, device),
    };
    let layer = |deconv: bool| FusionLayer {
        residual_layer1: residual(),
        residual_layer2: residual(),
        deconv: deconv.then(|| ConvTranspose2d::new(f, f, false, device)),
        projection: Conv2d::new(f, f, 1, 1, 0, true, device),
    };
    let n = config.scaled_images_ratios.len() + config.intermediate_hook_ids.len();
    FusionStage {
        intermediate: (1..n).map(|_| layer(true)).collect(),
        last: layer(false),
    }
}

fn depth_head(f: usize, device: &Device) -> DepthHead {
    DepthHead {
        conv1: Conv2d::new(f, f / 2, 3, 1, 1, true, device),
        deconv: ConvTranspose2d::new(f / 2, f / 2, true, device),
        conv2: Conv2d::new(f / 2, 32, 3, 1, 1, true, device),
        conv3: Conv2d::new(32, 1, 1, 1, 0, true, device),
    }
}

fn fov_model(config: &DepthProConfig, device: &Device) -> Result<FovModel> {
    let f = config.fusion_hidden_size;
    let fov = config.fov_model()?;
    let channels = config.fov_head_channels();
    let n = config.num_fov_head_layers;
    let mut convs: Vec<Conv2d> = (0..n)
        .map(|i| Conv2d::new(channels[i], channels[i + 1], 3, 2, 1, true, device))
        .collect();
    let kernel = config.fov_final_kernel()?;
    convs.push(Conv2d::new(channels[n], 1, kernel, 1, 0, true, device));
    Ok(FovModel {
        fov_encoder: FovEncoder {
            model: Dinov2Backbone::new(fov, device)?,
            neck: Linear::new(fov.hidden_size, f / 2, true, INIT_STD, device),
        },
        conv: Conv2d::new(f, f / 2, 3, 2, 1, true, device),
        head: FovHead { convs },
        patch_size: config.patch_size,
        out_size: config.out_size()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_names_map_both_ways() {
        for (hf, ours) in [
            (
                "depth_pro.neck.feature_upsample.image_block.layers.0.weight",
                "depth_pro.neck.feature_upsample.image_block.upsample.0.weight",
            ),
            (
                "depth_pro.neck.feature_upsample.intermediate.1.layers.0.weight",
                "depth_pro.neck.feature_upsample.intermediate.1.proj.weight",
            ),
            (
                "depth_pro.neck.feature_upsample.intermediate.1.layers.3.weight",
                "depth_pro.neck.feature_upsample.intermediate.1.upsample.2.weight",
            ),
            (
                "fusion_stage.final.residual_layer1.convolution2.bias",
                "fusion_stage.last.residual_layer1.convolution2.bias",
            ),
            ("head.layers.4.weight", "head.conv3.weight"),
            ("head.layers.1.bias", "head.deconv.bias"),
            (
                "fov_model.head.layers.4.weight",
                "fov_model.head.convs.2.weight",
            ),
            (
                "depth_pro.encoder.patch_encoder.model.encoder.layer.0.attention.attention.query.weight",
                "depth_pro.encoder.patch_encoder.model.encoder.layer.0.attention.attention.query.weight",
            ),
        ] {
            assert_eq!(module_path(hf), ours);
            assert_eq!(checkpoint_name(ours), hf);
        }
        // Places this model has no parameter for stay as they are (and are reported as unexpected).
        assert_eq!(module_path("head.layers.3.weight"), "head.layers.3.weight");
        assert_eq!(
            module_path("fov_model.head.layers.1.weight"),
            "fov_model.head.layers.1.weight"
        );
        assert_eq!(
            module_path("fusion_stage.intermediate.0.attention.q_proj.weight"),
            "fusion_stage.intermediate.0.attention.attention.query.weight"
        );
    }

    #[test]
    fn patches_split_and_merge_as_transformers() {
        let device = Device::flex();
        // 1 x 1 x 6 x 6 with values 0..36, patches of 4 at stride 2: 2 x 2 windows.
        let x = Tensor::<1, burn::tensor::Int>::arange(0..36, &device)
            .float()
            .reshape([1, 1, 6, 6]);
        let p = split_to_patches(x, 4, 0.5);
        assert_eq!(p.dims(), [4, 1, 4, 4]);
        let v: Vec<f32> = p
            .clone()
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .unwrap();
        // Window (0, 1) starts at column 2; window (1, 0) at row 2.
        assert_eq!(v[16], 2.0);
        assert_eq!(v[32], 12.0);
        // Merging 4 patches of side 4 with padding 1 drops the shared edges: 3 + 3 per side.
        let merged = merge_patches(p.clone(), 1, 1);
        assert_eq!(merged.dims(), [1, 1, 6, 6]);
        let v: Vec<f32> = merged.into_data().convert::<f32>().try_into_vec().unwrap();
        let expected: Vec<f32> = (0..36).map(|i| i as f32).collect();
        assert_eq!(
            v, expected,
            "overlap 2 minus padding 1 per side tiles the image back"
        );
        // Without padding the patches are laid side by side.
        assert_eq!(merge_patches(p, 1, 0).dims(), [1, 1, 8, 8]);
    }

    #[test]
    fn base_size_halves_the_width_down_to_the_grid() {
        assert_eq!(base_size(1536, 1536, 24), [24, 24]);
        assert_eq!(base_size(64, 64, 4), [4, 4]);
    }
}
