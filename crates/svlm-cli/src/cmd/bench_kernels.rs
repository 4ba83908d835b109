//! `svlm bench kernels`: forward+backward time of each fused CPU kernel (`svlm_model::fused`) against the
//! composition of Burn ops it replaces, at one decoder layer's shapes (default: SmolLM2-135M's), both in the same
//! process on the same machine, printed as a ratio.

use std::time::Instant;

use anyhow::bail;
use svlm_model::burn::tensor::{Bool, Device, Distribution, Tensor, TensorData};
use svlm_model::fused::{self, reference};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 576)]
    pub hidden: usize,
    #[arg(long, default_value_t = 9)]
    pub heads: usize,
    #[arg(long, default_value_t = 3)]
    pub kv_heads: usize,
    #[arg(long, default_value_t = 1536)]
    pub intermediate: usize,
    #[arg(long, default_value_t = 49152)]
    pub vocab: usize,
    #[arg(long, default_value_t = 256)]
    pub seq: usize,
    #[arg(long, default_value_t = 2)]
    pub batch: usize,
    /// Patches per image of the vision-attention row (SmolVLM-256M's SigLIP at 512 px: 1024, 12 heads of 64).
    #[arg(long, default_value_t = 1024)]
    pub vision_patches: usize,
    #[arg(long, default_value_t = 12)]
    pub vision_heads: usize,
    #[arg(long, default_value_t = 64)]
    pub vision_head_dim: usize,
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    #[arg(long, default_value_t = 7)]
    pub iters: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median seconds of `op` (forward, then backward of the output's sum).
fn time(args: &Args, op: &dyn Fn() -> Tensor<1>) -> f64 {
    let once = || {
        let t = Instant::now();
        let _grads = op().backward();
        t.elapsed().as_secs_f64()
    };
    for _ in 0..args.warmup {
        once();
    }
    median((0..args.iters).map(|_| once()).collect())
}

fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device).require_grad()
}

/// Causal `[B, 1, S, S]`.
fn causal(b: usize, s: usize, device: &Device) -> Tensor<4, Bool> {
    let m: Vec<bool> = (0..b * s * s).map(|i| (i % s) > (i / s) % s).collect();
    Tensor::from_data(TensorData::new(m, [b, 1, s, s]), device)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.iters == 0
        || !args.heads.is_multiple_of(args.kv_heads.max(1))
        || !args.hidden.is_multiple_of(args.heads)
    {
        bail!(
            "need --iters >= 1, --heads a multiple of --kv-heads and --hidden a multiple of --heads"
        );
    }
    let device = Device::flex().autodiff();
    let (b, s, d) = (args.batch, args.seq, args.hidden / args.heads);
    let (h, kv) = (args.heads, args.kv_heads);
    let x = random([b, s, args.hidden], &device);
    let w = random([args.hidden], &device);
    let gate = random([b, s, args.intermediate], &device);
    let up = random([b, s, args.intermediate], &device);
    let q = random([b, h, s, d], &device);
    let k = random([b, kv, s, d], &device);
    let v = random([b, kv, s, d], &device);
    let cos = Tensor::<3>::random([b, s, d], Distribution::Normal(0.0, 1.0), &device);
    let sin = Tensor::<3>::random([b, s, d], Distribution::Normal(0.0, 1.0), &device);
    let mask = causal(b, s, &device);
    let (vp, vh, vd) = (args.vision_patches, args.vision_heads, args.vision_head_dim);
    let vq = random([b, vh, vp, vd], &device);
    let vk = random([b, vh, vp, vd], &device);
    let vv = random([b, vh, vp, vd], &device);
    let vscale = (vd as f64).powf(-0.5);
    let logits = random([b * s, args.vocab], &device);
    let targets: Vec<i64> = (0..b * s)
        .map(|i| ((i * 7919) % args.vocab) as i64)
        .collect();
    let scale = (d as f64).powf(-0.5);

    type Row<'a> = (
        &'static str,
        String,
        Box<dyn Fn() -> Tensor<1> + 'a>,
        Box<dyn Fn() -> Tensor<1> + 'a>,
    );
    let rows: Vec<Row> = vec![
        (
            "attention (causal, GQA)",
            format!("q [{b},{h},{s},{d}] kv [{b},{kv},{s},{d}]"),
            Box::new(|| {
                fused::attention(q.clone(), k.clone(), v.clone(), Some(mask.clone()), scale).sum()
            }),
            Box::new(|| {
                reference::attention(q.clone(), k.clone(), v.clone(), Some(mask.clone()), scale)
                    .sum()
            }),
        ),
        (
            "attention (vision, no mask)",
            format!("q, kv [{b},{vh},{vp},{vd}]"),
            Box::new(|| fused::attention(vq.clone(), vk.clone(), vv.clone(), None, vscale).sum()),
            Box::new(|| {
                reference::attention(vq.clone(), vk.clone(), vv.clone(), None, vscale).sum()
            }),
        ),
        (
            "rms_norm",
            format!("[{b},{s},{}]", args.hidden),
            Box::new(|| fused::rms_norm(x.clone(), w.clone(), 1e-5).sum()),
            Box::new(|| reference::rms_norm(x.clone(), w.clone(), 1e-5).sum()),
        ),
        (
            "layer_norm",
            format!("[{b},{s},{}]", args.hidden),
            Box::new(|| fused::layer_norm(x.clone(), w.clone(), w.clone(), 1e-5).sum()),
            Box::new(|| reference::layer_norm(x.clone(), w.clone(), w.clone(), 1e-5).sum()),
        ),
        (
            "gelu (tanh)",
            format!("[{b},{s},{}]", args.intermediate),
            Box::new(|| fused::gelu_tanh(gate.clone()).sum()),
            Box::new(|| reference::gelu_tanh(gate.clone()).sum()),
        ),
        (
            "swiglu",
            format!("[{b},{s},{}]", args.intermediate),
            Box::new(|| fused::swiglu(gate.clone(), up.clone()).sum()),
            Box::new(|| reference::swiglu(gate.clone(), up.clone()).sum()),
        ),
        (
            "rope (q)",
            format!("[{b},{h},{s},{d}]"),
            Box::new(|| fused::rope(q.clone(), &cos, &sin).sum()),
            Box::new(|| reference::rope(q.clone(), &cos, &sin).sum()),
        ),
        (
            "nll (cross-entropy)",
            format!("[{},{}]", b * s, args.vocab),
            Box::new(|| fused::nll(logits.clone(), &targets).sum()),
            Box::new(|| reference::nll(logits.clone(), &targets).sum()),
        ),
    ];
    println!(
        "forward+backward, flex CPU f32, median of {} (after {} warm-up); fused kernels vs the Burn ops they replace",
        args.iters, args.warmup
    );
    println!("| op | shape | fused ms | unfused ms | fused / unfused |");
    println!("|---|---|---|---|---|");
    for (name, shape, fused_op, unfused_op) in &rows {
        let f = time(&args, fused_op.as_ref());
        let u = time(&args, unfused_op.as_ref());
        println!(
            "| {name} | {shape} | {:.2} | {:.2} | {:.2} |",
            f * 1e3,
            u * 1e3,
            f / u
        );
    }
    Ok(())
}
