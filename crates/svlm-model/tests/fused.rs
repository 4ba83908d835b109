//! Every fused kernel against the composition of Burn ops it replaces (`svlm_model::fused::reference`): values
//! on the plain CPU device, values and gradients of every input under autodiff, in f32, on shapes with odd sizes,
//! grouped KV heads, masked and fully masked rows, ignored targets.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use svlm_model::fused::{self, reference};

/// Deterministic values in about [-2, 2) (a small LCG; which values does not matter, only that both sides see them).
fn data(shape: &[usize], seed: u64) -> TensorData {
    let n: usize = shape.iter().product();
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let values: Vec<f32> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect();
    TensorData::new(values, shape.to_vec())
}

fn leaf<const D: usize>(d: &TensorData, device: &Device) -> Tensor<D> {
    Tensor::from_data(d.clone(), device).require_grad()
}

fn values(t: Tensor<1>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 data")
}

#[track_caller]
fn assert_close<const D: usize>(what: &str, got: Tensor<D>, want: Tensor<D>, tol: f32) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let n: usize = got.dims().iter().product();
    let (got, want) = (values(got.reshape([n])), values(want.reshape([n])));
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= tol * scale && g.is_finite(),
            "{what}[{i}]: fused {g} vs reference {w} (tolerance {tol} x {scale})"
        );
    }
}

/// A fixed random projection of an output to a scalar, so every output element gets its own gradient.
fn project<const D: usize>(y: Tensor<D>, seed: u64) -> Tensor<1> {
    let w = Tensor::<D>::from_data(data(&y.dims(), seed), &y.device());
    (y * w).sum()
}

fn autodiff() -> Device {
    Device::flex().autodiff()
}

#[test]
fn the_cpu_devices_take_the_kernels() {
    for device in [Device::flex(), autodiff()] {
        let x = Tensor::<2>::zeros([2, 3], &device);
        assert!(fused::runs_fused(&x), "{device:?}");
    }
}

#[test]
fn rms_norm_matches_reference() {
    for (shape, seed) in [([2usize, 5, 7], 1u64), ([1, 3, 64], 2), ([1, 1, 33], 3)] {
        let (x, w) = (data(&shape, seed), data(&[shape[2]], seed + 10));
        let plain = Device::flex();
        let y = fused::rms_norm::<3>(
            Tensor::from_data(x.clone(), &plain),
            Tensor::from_data(w.clone(), &plain),
            1e-6,
        );
        let want = reference::rms_norm::<3>(
            Tensor::from_data(x.clone(), &plain),
            Tensor::from_data(w.clone(), &plain),
            1e-6,
        );
        assert_close("rms_norm", y, want, 1e-5);

        let device = autodiff();
        let run = |fused_op: bool| {
            let (xt, wt) = (leaf::<3>(&x, &device), leaf::<1>(&w, &device));
            let y = if fused_op {
                fused::rms_norm(xt.clone(), wt.clone(), 1e-6)
            } else {
                reference::rms_norm(xt.clone(), wt.clone(), 1e-6)
            };
            let grads = project(y.clone(), seed + 20).backward();
            (y, xt.grad(&grads).unwrap(), wt.grad(&grads).unwrap())
        };
        let (y, dx, dw) = run(true);
        let (y_ref, dx_ref, dw_ref) = run(false);
        assert_close("rms_norm y", y, y_ref, 1e-5);
        assert_close("rms_norm dx", dx, dx_ref, 1e-4);
        assert_close("rms_norm dw", dw, dw_ref, 1e-4);
    }
}

#[test]
fn layer_norm_matches_reference() {
    for (shape, seed) in [([2usize, 5, 7], 31u64), ([1, 3, 64], 32), ([1, 1, 33], 33)] {
        let (x, w, b) = (
            data(&shape, seed),
            data(&[shape[2]], seed + 10),
            data(&[shape[2]], seed + 11),
        );
        let plain = Device::flex();
        let y = fused::layer_norm::<3>(
            Tensor::from_data(x.clone(), &plain),
            Tensor::from_data(w.clone(), &plain),
            Tensor::from_data(b.clone(), &plain),
            1e-6,
        );
        let want = reference::layer_norm::<3>(
            Tensor::from_data(x.clone(), &plain),
            Tensor::from_data(w.clone(), &plain),
            Tensor::from_data(b.clone(), &plain),
            1e-6,
        );
        assert_close("layer_norm", y, want, 1e-5);

        let device = autodiff();
        let run = |fused_op: bool| {
            let (xt, wt, bt) = (
                leaf::<3>(&x, &device),
                leaf::<1>(&w, &device),
                leaf::<1>(&b, &device),
            );
            let y = if fused_op {
                fused::layer_norm(xt.clone(), wt.clone(), bt.clone(), 1e-6)
            } else {
                reference::layer_norm(xt.clone(), wt.clone(), bt.clone(), 1e-6)
            };
            let grads = project(y.clone(), seed + 20).backward();
            (
                y,
                xt.grad(&grads).unwrap(),
                wt.grad(&grads).unwrap(),
                bt.grad(&grads).unwrap(),
            )
        };
        let (y, dx, dw, db) = run(true);
        let (y_ref, dx_ref, dw_ref, db_ref) = run(false);
        assert_close("layer_norm y", y, y_ref, 1e-5);
        assert_close("layer_norm dx", dx, dx_ref, 1e-4);
        assert_close("layer_norm dw", dw, dw_ref, 1e-4);
        assert_close("layer_norm db", db, db_ref, 1e-5);
    }
}

#[test]
fn gelu_tanh_matches_reference() {
    for (shape, seed) in [([2usize, 3, 5], 41u64), ([1, 7, 129], 42)] {
        // Spread the inputs to [-12, 12): the tails (saturated tanh) are where a shortcut would go wrong.
        let x = data(&shape, seed);
        let spread: Vec<f32> = x.iter::<f32>().map(|v| v * 6.0).collect();
        let x = TensorData::new(spread, shape.to_vec());
        let plain = Device::flex();
        assert_close(
            "gelu_tanh",
            fused::gelu_tanh::<3>(Tensor::from_data(x.clone(), &plain)),
            reference::gelu_tanh::<3>(Tensor::from_data(x.clone(), &plain)),
            1e-6,
        );
        let device = autodiff();
        let run = |fused_op: bool| {
            let xt = leaf::<3>(&x, &device);
            let y = if fused_op {
                fused::gelu_tanh(xt.clone())
            } else {
                reference::gelu_tanh(xt.clone())
            };
            let grads = project(y.clone(), seed + 2).backward();
            (y, xt.grad(&grads).unwrap())
        };
        let (y, dx) = run(true);
        let (y_ref, dx_ref) = run(false);
        assert_close("gelu_tanh y", y, y_ref, 1e-6);
        assert_close("gelu_tanh dx", dx, dx_ref, 1e-5);
    }
}

#[test]
fn swiglu_matches_reference() {
    for (shape, seed) in [([2usize, 3, 5], 4u64), ([1, 7, 129], 5)] {
        let (a, b) = (data(&shape, seed), data(&shape, seed + 1));
        let plain = Device::flex();
        assert_close(
            "swiglu",
            fused::swiglu::<3>(
                Tensor::from_data(a.clone(), &plain),
                Tensor::from_data(b.clone(), &plain),
            ),
            reference::swiglu::<3>(
                Tensor::from_data(a.clone(), &plain),
                Tensor::from_data(b.clone(), &plain),
            ),
            1e-6,
        );
        let device = autodiff();
        let run = |fused_op: bool| {
            let (at, bt) = (leaf::<3>(&a, &device), leaf::<3>(&b, &device));
            let y = if fused_op {
                fused::swiglu(at.clone(), bt.clone())
            } else {
                reference::swiglu(at.clone(), bt.clone())
            };
            let grads = project(y.clone(), seed + 2).backward();
            (y, at.grad(&grads).unwrap(), bt.grad(&grads).unwrap())
        };
        let (y, da, db) = run(true);
        let (y_ref, da_ref, db_ref) = run(false);
        assert_close("swiglu y", y, y_ref, 1e-6);
        assert_close("swiglu d gate", da, da_ref, 1e-5);
        assert_close("swiglu d up", db, db_ref, 1e-5);
    }
}

#[test]
fn rope_matches_reference() {
    let (b, h, s, d) = (2usize, 3, 5, 8);
    // `[B, S, H, D]`, read as `[B, H, S, D]` through a strided view, as the model's projections are.
    let x = data(&[b, s, h, d], 6);
    let (cos, sin) = (data(&[b, s, d], 7), data(&[b, s, d], 8));
    let plain = Device::flex();
    let (c, sn) = (
        Tensor::<3>::from_data(cos.clone(), &plain),
        Tensor::<3>::from_data(sin.clone(), &plain),
    );
    assert_close(
        "rope",
        fused::rope(
            Tensor::<4>::from_data(x.clone(), &plain).swap_dims(1, 2),
            &c,
            &sn,
        ),
        reference::rope(
            Tensor::<4>::from_data(x.clone(), &plain).swap_dims(1, 2),
            &c,
            &sn,
        ),
        1e-6,
    );
    let device = autodiff();
    let (c, sn) = (
        Tensor::<3>::from_data(cos, &device),
        Tensor::<3>::from_data(sin, &device),
    );
    let run = |fused_op: bool| {
        let xt = leaf::<4>(&x, &device);
        let view = xt.clone().swap_dims(1, 2);
        let y = if fused_op {
            fused::rope(view, &c, &sn)
        } else {
            reference::rope(view, &c, &sn)
        };
        let grads = project(y.clone(), 9).backward();
        (y, xt.grad(&grads).unwrap())
    };
    let (y, dx) = run(true);
    let (y_ref, dx_ref) = run(false);
    assert_close("rope y", y, y_ref, 1e-6);
    assert_close("rope dx", dx, dx_ref, 1e-5);
}

/// `[B, 1, S, T]`: causal with `T - S` cached positions, the first query row of batch 1 fully masked (a padding
/// row) and one extra masked key in batch 0 (a packed-sample boundary).
fn mask(b: usize, s: usize, t: usize, device: &Device) -> Tensor<4, Bool> {
    let mut m = vec![false; b * s * t];
    for bi in 0..b {
        for i in 0..s {
            for j in 0..t {
                let causal = j > i + (t - s);
                let padding = bi == 1 && i == 0;
                let boundary = bi == 0 && j == 0 && i >= 2;
                m[(bi * s + i) * t + j] = causal || padding || boundary;
            }
        }
    }
    Tensor::from_data(TensorData::new(m, [b, 1, s, t]), device)
}

#[allow(clippy::too_many_arguments)] // one case = its shape, mask and seed, read in a row of calls below
fn attention_case(
    b: usize,
    h: usize,
    kv: usize,
    s: usize,
    t: usize,
    d: usize,
    masked: bool,
    seed: u64,
) {
    let what = format!("attention b{b} h{h} kv{kv} s{s} t{t} d{d} masked={masked}");
    let (q, k, v) = (
        data(&[b, h, s, d], seed),
        data(&[b, kv, t, d], seed + 1),
        data(&[b, kv, t, d], seed + 2),
    );
    let scale = (d as f64).powf(-0.5);
    let plain = Device::flex();
    let m = masked.then(|| mask(b, s, t, &plain));
    assert_close(
        &what,
        fused::attention(
            Tensor::from_data(q.clone(), &plain),
            Tensor::from_data(k.clone(), &plain),
            Tensor::from_data(v.clone(), &plain),
            m.clone(),
            scale,
        ),
        reference::attention(
            Tensor::from_data(q.clone(), &plain),
            Tensor::from_data(k.clone(), &plain),
            Tensor::from_data(v.clone(), &plain),
            m,
            scale,
        ),
        1e-5,
    );
    let device = autodiff();
    let m = masked.then(|| mask(b, s, t, &device));
    let run = |fused_op: bool| {
        let (qt, kt, vt) = (
            leaf::<4>(&q, &device),
            leaf::<4>(&k, &device),
            leaf::<4>(&v, &device),
        );
        let y = if fused_op {
            fused::attention(qt.clone(), kt.clone(), vt.clone(), m.clone(), scale)
        } else {
            reference::attention(qt.clone(), kt.clone(), vt.clone(), m.clone(), scale)
        };
        let grads = project(y.clone(), seed + 3).backward();
        (
            y,
            qt.grad(&grads).unwrap(),
            kt.grad(&grads).unwrap(),
            vt.grad(&grads).unwrap(),
        )
    };
    let (y, dq, dk, dv) = run(true);
    let (y_ref, dq_ref, dk_ref, dv_ref) = run(false);
    assert_close(&format!("{what} y"), y, y_ref, 1e-5);
    assert_close(&format!("{what} dq"), dq, dq_ref, 1e-4);
    assert_close(&format!("{what} dk"), dk, dk_ref, 1e-4);
    assert_close(&format!("{what} dv"), dv, dv_ref, 1e-4);
}

#[test]
fn attention_matches_reference() {
    attention_case(1, 2, 2, 4, 4, 8, false, 10);
    attention_case(2, 6, 2, 5, 5, 7, true, 20);
    attention_case(2, 3, 1, 3, 7, 4, true, 30);
    attention_case(2, 4, 4, 9, 9, 16, true, 40);
}

/// Probabilities of 32 MiB and more are not kept: the kernel recomputes them block by block in the backward pass
/// (a vision encoder's 1024 patches per image). Grouped KV heads, without a mask and causal.
#[test]
fn attention_over_long_rows_recomputes_and_matches_reference() {
    attention_case(1, 8, 4, 1024, 1024, 16, false, 50);
    attention_case(1, 16, 2, 1024, 1024, 8, true, 60);
}

/// Packed rows: causal within each sample, nothing across samples, and a fully masked padding tail in batch 1.
/// Long enough that the blocked kernel (scores inside each row's run of keys only) takes over from the dense one.
#[test]
fn attention_over_packed_rows_matches_reference() {
    let (b, h, kv, s, d) = (2, 6, 2, 200, 8);
    let segments: [&[usize]; 2] = [&[60, 50, 90], &[45, 45, 45, 40]];
    let mut m = vec![true; b * s * s];
    for (bi, segs) in segments.iter().enumerate() {
        let mut id = Vec::new();
        for (k, &len) in segs.iter().enumerate() {
            id.extend(std::iter::repeat_n(k, len));
        }
        for i in 0..id.len() {
            for j in 0..=i {
                m[(bi * s + i) * s + j] = id[i] != id[j];
            }
        }
    }
    let (q, k, v) = (
        data(&[b, h, s, d], 61),
        data(&[b, kv, s, d], 62),
        data(&[b, kv, s, d], 63),
    );
    let scale = (d as f64).powf(-0.5);
    let device = autodiff();
    let mask = Tensor::<4, Bool>::from_data(TensorData::new(m, [b, 1, s, s]), &device);
    let run = |fused_op: bool| {
        let (qt, kt, vt) = (
            leaf::<4>(&q, &device),
            leaf::<4>(&k, &device),
            leaf::<4>(&v, &device),
        );
        let y = if fused_op {
            fused::attention(
                qt.clone(),
                kt.clone(),
                vt.clone(),
                Some(mask.clone()),
                scale,
            )
        } else {
            reference::attention(
                qt.clone(),
                kt.clone(),
                vt.clone(),
                Some(mask.clone()),
                scale,
            )
        };
        let grads = project(y.clone(), 64).backward();
        (
            y,
            qt.grad(&grads).unwrap(),
            kt.grad(&grads).unwrap(),
            vt.grad(&grads).unwrap(),
        )
    };
    let (y, dq, dk, dv) = run(true);
    let (y_ref, dq_ref, dk_ref, dv_ref) = run(false);
    assert_close("packed attention y", y, y_ref, 1e-5);
    assert_close("packed attention dq", dq, dq_ref, 1e-4);
    assert_close("packed attention dk", dk, dk_ref, 1e-4);
    assert_close("packed attention dv", dv, dv_ref, 1e-4);
}

#[test]
fn nll_matches_reference() {
    let (n, vocab) = (7usize, 37usize);
    let logits = data(&[n, vocab], 50);
    let targets = [3i64, -100, 36, 0, svlm_model::IGNORE_INDEX, 11, 36];
    let plain = Device::flex();
    assert_close(
        "nll",
        fused::nll(Tensor::from_data(logits.clone(), &plain), &targets),
        reference::nll(Tensor::from_data(logits.clone(), &plain), &targets),
        1e-6,
    );
    let device = autodiff();
    let run = |fused_op: bool| {
        let lt = leaf::<2>(&logits, &device);
        let y = if fused_op {
            fused::nll(lt.clone(), &targets)
        } else {
            reference::nll(lt.clone(), &targets)
        };
        let grads = project(y.clone(), 51).backward();
        (y, lt.grad(&grads).unwrap())
    };
    let (y, dl) = run(true);
    let (y_ref, dl_ref) = run(false);
    assert_close("nll y", y.clone(), y_ref, 1e-6);
    assert_close("nll d logits", dl, dl_ref, 1e-5);
    let ignored = values(y.clone())
        .iter()
        .zip(&targets)
        .filter(|(v, t)| **t < 0 && **v == 0.0)
        .count();
    assert_eq!(ignored, 2, "ignored targets carry no loss");
}

#[test]
fn causal_lm_loss_counts_only_supervised_positions() {
    let device = Device::flex();
    let logits = Tensor::<3>::from_data(data(&[1, 4, 5], 60), &device);
    let labels =
        Tensor::<2, Int>::from_data(TensorData::new(vec![0i64, 2, -100, 4], [1, 4]), &device);
    let loss = values(svlm_model::causal_lm_loss(logits.clone(), labels))[0];
    let per = values(reference::nll(
        logits.slice([0..1, 0..3, 0..5]).reshape([3, 5]),
        &[2, -100, 4],
    ));
    assert!(
        (loss - (per[0] + per[2]) / 2.0).abs() < 1e-6,
        "{loss} vs {per:?}"
    );
}

/// Forward+backward time of each kernel against its reference at SmolLM2-135M's layer shapes (batch 2 x 256).
/// Timing, not a check: `cargo test -p svlm-model --test fused -- --ignored --nocapture` (`svlm bench kernels` is
/// the same comparison from the CLI).
#[test]
#[ignore]
fn timing_at_smollm2_shapes() {
    use std::time::Instant;
    let device = autodiff();
    let (b, s, hidden, h, kv, d, inter, vocab) = (2, 256, 576, 9, 3, 64, 1536, 49152);
    let x = leaf::<3>(&data(&[b, s, hidden], 1), &device);
    let w = leaf::<1>(&data(&[hidden], 2), &device);
    let gate = leaf::<3>(&data(&[b, s, inter], 3), &device);
    let up = leaf::<3>(&data(&[b, s, inter], 4), &device);
    let q = leaf::<4>(&data(&[b, h, s, d], 5), &device);
    let k = leaf::<4>(&data(&[b, kv, s, d], 6), &device);
    let v = leaf::<4>(&data(&[b, kv, s, d], 7), &device);
    let cos = Tensor::<3>::from_data(data(&[b, s, d], 8), &device);
    let sin = Tensor::<3>::from_data(data(&[b, s, d], 9), &device);
    let m = mask(b, s, s, &device);
    let logits = leaf::<2>(&data(&[b * s, vocab], 10), &device);
    let targets: Vec<i64> = (0..b * s).map(|i| ((i * 7919) % vocab) as i64).collect();
    let scale = (d as f64).powf(-0.5);
    let time = |op: &dyn Fn() -> Tensor<1>| {
        let mut t: Vec<f64> = (0..5)
            .map(|_| {
                let start = Instant::now();
                let _g = op().backward();
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        t.sort_by(|a, b| a.total_cmp(b));
        t[2]
    };
    type Op<'a> = Box<dyn Fn() -> Tensor<1> + 'a>;
    let rows: Vec<(&str, Op, Op)> = vec![
        (
            "attention",
            Box::new(|| {
                fused::attention(q.clone(), k.clone(), v.clone(), Some(m.clone()), scale).sum()
            }),
            Box::new(|| {
                reference::attention(q.clone(), k.clone(), v.clone(), Some(m.clone()), scale).sum()
            }),
        ),
        (
            "rms_norm",
            Box::new(|| fused::rms_norm(x.clone(), w.clone(), 1e-5).sum()),
            Box::new(|| reference::rms_norm(x.clone(), w.clone(), 1e-5).sum()),
        ),
        (
            "layer_norm",
            Box::new(|| fused::layer_norm(x.clone(), w.clone(), w.clone(), 1e-5).sum()),
            Box::new(|| reference::layer_norm(x.clone(), w.clone(), w.clone(), 1e-5).sum()),
        ),
        (
            "gelu_tanh",
            Box::new(|| fused::gelu_tanh(gate.clone()).sum()),
            Box::new(|| reference::gelu_tanh(gate.clone()).sum()),
        ),
        (
            "swiglu",
            Box::new(|| fused::swiglu(gate.clone(), up.clone()).sum()),
            Box::new(|| reference::swiglu(gate.clone(), up.clone()).sum()),
        ),
        (
            "rope",
            Box::new(|| fused::rope(q.clone(), &cos, &sin).sum()),
            Box::new(|| reference::rope(q.clone(), &cos, &sin).sum()),
        ),
        (
            "nll",
            Box::new(|| fused::nll(logits.clone(), &targets).sum()),
            Box::new(|| reference::nll(logits.clone(), &targets).sum()),
        ),
    ];
    println!("| op | fused ms | unfused ms | fused / unfused |");
    for (name, f, u) in &rows {
        let (tf, tu) = (time(f.as_ref()), time(u.as_ref()));
        println!("| {name} | {tf:.2} | {tu:.2} | {:.2} |", tf / tu);
    }
}
