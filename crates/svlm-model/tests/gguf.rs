//! GGUF reader, dequantization and HF conversion, on GGUF files built here byte by byte (a tiny
//! writer below) and on a fixture written by the `gguf` Python package
//! (`scripts/make_gguf_reference.py quants`).

use std::path::{Path, PathBuf};

use svlm_model::gguf::{
    self, GgmlType, GgufError, GgufFile, GgufValue, QuantKind, gguf_to_hf_folder,
};

// ---------------------------------------------------------------------------------------------
// A minimal GGUF v3 writer (little-endian), independent of the reader under test.

#[derive(Clone)]
enum Meta {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    Str(String),
    StrArray(Vec<String>),
    I32Array(Vec<i32>),
}

#[derive(Clone)]
struct TensorSpec {
    name: String,
    /// ggml order (fastest first).
    dims: Vec<u64>,
    ggml_type: u32,
    data: Vec<u8>,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn put_meta(out: &mut Vec<u8>, value: &Meta) {
    let (ty, body): (u32, Vec<u8>) = match value {
        Meta::U8(v) => (0, vec![*v]),
        Meta::I8(v) => (1, v.to_le_bytes().to_vec()),
        Meta::U16(v) => (2, v.to_le_bytes().to_vec()),
        Meta::I16(v) => (3, v.to_le_bytes().to_vec()),
        Meta::U32(v) => (4, v.to_le_bytes().to_vec()),
        Meta::I32(v) => (5, v.to_le_bytes().to_vec()),
        Meta::F32(v) => (6, v.to_le_bytes().to_vec()),
        Meta::Bool(v) => (7, vec![u8::from(*v)]),
        Meta::Str(s) => {
            let mut b = Vec::new();
            put_str(&mut b, s);
            (8, b)
        }
        Meta::StrArray(items) => {
            let mut b = 8u32.to_le_bytes().to_vec();
            b.extend((items.len() as u64).to_le_bytes());
            for s in items {
                put_str(&mut b, s);
            }
            (9, b)
        }
        Meta::I32Array(items) => {
            let mut b = 5u32.to_le_bytes().to_vec();
            b.extend((items.len() as u64).to_le_bytes());
            for v in items {
                b.extend(v.to_le_bytes());
            }
            (9, b)
        }
        Meta::U64(v) => (10, v.to_le_bytes().to_vec()),
        Meta::I64(v) => (11, v.to_le_bytes().to_vec()),
        Meta::F64(v) => (12, v.to_le_bytes().to_vec()),
    };
    out.extend(ty.to_le_bytes());
    out.extend(body);
}

fn write_gguf(meta: &[(&str, Meta)], tensors: &[TensorSpec], alignment: u64) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((meta.len() as u64).to_le_bytes());
    for (key, value) in meta {
        put_str(&mut out, key);
        put_meta(&mut out, value);
    }
    let mut offset = 0u64;
    let mut offsets = Vec::new();
    for t in tensors {
        put_str(&mut out, &t.name);
        out.extend((t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(t.ggml_type.to_le_bytes());
        out.extend(offset.to_le_bytes());
        offsets.push(offset);
        offset = (offset + t.data.len() as u64).div_ceil(alignment) * alignment;
    }
    while !(out.len() as u64).is_multiple_of(alignment) {
        out.push(0);
    }
    let data_start = out.len() as u64;
    for (t, off) in tensors.iter().zip(offsets) {
        out.resize((data_start + off) as usize, 0);
        out.extend(&t.data);
    }
    out
}

fn f16_bits(v: f32) -> [u8; 2] {
    half::f16::from_f32(v).to_bits().to_le_bytes()
}

fn f32_data(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f16_data(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| f16_bits(*v)).collect()
}

fn tensor(name: &str, dims: &[u64], ggml_type: u32, data: Vec<u8>) -> TensorSpec {
    TensorSpec {
        name: name.to_string(),
        dims: dims.to_vec(),
        ggml_type,
        data,
    }
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

// ---------------------------------------------------------------------------------------------
// Dequantization against hand-computed values.

/// Q8_0: d = 0.5, q = i - 16.
fn q8_0_block() -> (Vec<u8>, Vec<f32>) {
    let mut block = f16_bits(0.5).to_vec();
    block.extend((0..32).map(|i| (i as i8 - 16) as u8));
    let expected = (0..32).map(|i| (i as f32 - 16.0) * 0.5).collect();
    (block, expected)
}

/// Q4_0: d = 0.25, byte j holds nibbles (j, 15 - j): low nibbles are values 0..16, high 16..32.
fn q4_0_block() -> (Vec<u8>, Vec<f32>) {
    let mut block = f16_bits(0.25).to_vec();
    block.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    let mut expected: Vec<f32> = (0..16).map(|j| (j as f32 - 8.0) * 0.25).collect();
    expected.extend((0..16).map(|j| ((15 - j) as f32 - 8.0) * 0.25));
    (block, expected)
}

/// Q4_1: d = 0.5, m = -1.0, same nibbles as Q4_0.
fn q4_1_block() -> (Vec<u8>, Vec<f32>) {
    let mut block = f16_bits(0.5).to_vec();
    block.extend(f16_bits(-1.0));
    block.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    let mut expected: Vec<f32> = (0..16).map(|j| j as f32 * 0.5 - 1.0).collect();
    expected.extend((0..16).map(|j| (15 - j) as f32 * 0.5 - 1.0));
    (block, expected)
}

#[test]
fn dequantizes_hand_computed_blocks_of_every_supported_type() {
    let tmp = tempfile::tempdir().unwrap();
    let (q8, q8_expected) = q8_0_block();
    let (q40, q40_expected) = q4_0_block();
    let (q41, q41_expected) = q4_1_block();
    // Two rows of Q8_0 with different scales: row 1 uses d = -2.
    let mut q8_rows = q8.clone();
    q8_rows.extend(f16_bits(-2.0));
    q8_rows.extend(&q8[2..]);
    let smallest_subnormal = f32::from_bits(0x3380_0000); // 2^-24
    let tensors = vec![
        tensor("f32", &[4], 0, f32_data(&[1.5, -2.0, 0.0, 3.25])),
        tensor(
            "f16",
            &[4],
            1,
            f16_data(&[0.5, -1.0, 65504.0, smallest_subnormal]),
        ),
        tensor(
            "bf16",
            &[2],
            30,
            [0x3F80u16, 0xC020]
                .iter()
                .flat_map(|b| b.to_le_bytes())
                .collect(),
        ),
        tensor("q8_0", &[32], 8, q8),
        tensor("q4_0", &[32], 2, q40),
        tensor("q4_1", &[32], 3, q41),
        tensor("q8_0_rows", &[32, 2], 8, q8_rows),
    ];
    let path = write_file(tmp.path(), "blocks.gguf", &write_gguf(&[], &tensors, 32));
    let file = GgufFile::open(&path).unwrap();

    assert_eq!(
        file.dequantize("f32").unwrap().data,
        vec![1.5, -2.0, 0.0, 3.25]
    );
    assert_eq!(
        file.dequantize("f16").unwrap().data,
        vec![0.5, -1.0, 65504.0, smallest_subnormal]
    );
    assert_eq!(file.dequantize("bf16").unwrap().data, vec![1.0, -2.5]);
    assert_eq!(file.dequantize("q8_0").unwrap().data, q8_expected);
    assert_eq!(file.dequantize("q4_0").unwrap().data, q40_expected);
    assert_eq!(file.dequantize("q4_1").unwrap().data, q41_expected);
    let rows = file.dequantize("q8_0_rows").unwrap();
    assert_eq!(
        rows.shape,
        vec![2, 32],
        "HF shape is the GGUF dims reversed"
    );
    assert_eq!(&rows.data[..32], &q8_expected[..]);
    let row1: Vec<f32> = (0..32).map(|i| (i as f32 - 16.0) * -2.0).collect();
    assert_eq!(&rows.data[32..], &row1[..]);

    let info = file.tensor("q4_1").unwrap();
    assert_eq!(
        (info.ggml_type, info.n_bytes, info.hf_shape()),
        (GgmlType::Q4_1, 20, vec![32])
    );
    assert_eq!(file.version(), 3);
    assert_eq!(file.data_offset() % 32, 0);
}

#[test]
fn reads_metadata_of_every_value_type_and_custom_alignment() {
    let tmp = tempfile::tempdir().unwrap();
    let meta = vec![
        ("general.alignment", Meta::U32(64)),
        ("t.u8", Meta::U8(200)),
        ("t.i8", Meta::I8(-100)),
        ("t.u16", Meta::U16(60000)),
        ("t.i16", Meta::I16(-30000)),
        ("t.u32", Meta::U32(4_000_000_000)),
        ("t.i32", Meta::I32(-2_000_000_000)),
        ("t.u64", Meta::U64(u64::MAX)),
        ("t.i64", Meta::I64(i64::MIN)),
        ("t.f32", Meta::F32(1e-5)),
        ("t.f64", Meta::F64(0.1)),
        ("t.bool", Meta::Bool(true)),
        ("t.str", Meta::Str("héllo".into())),
        (
            "t.strs",
            Meta::StrArray(vec!["a".into(), "".into(), "Ġb c".into()]),
        ),
        ("t.ints", Meta::I32Array(vec![1, -2, 3])),
    ];
    let tensors = vec![
        tensor("a", &[3], 0, f32_data(&[1.0, 2.0, 3.0])),
        tensor("b", &[2], 0, f32_data(&[4.0, 5.0])),
    ];
    let path = write_file(tmp.path(), "meta.gguf", &write_gguf(&meta, &tensors, 64));
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.alignment(), 64);
    assert_eq!(file.data_offset() % 64, 0);
    assert_eq!(file.tensor("b").unwrap().offset, 64);
    assert_eq!(file.dequantize("b").unwrap().data, vec![4.0, 5.0]);
    assert_eq!(file.get("t.u8"), Some(&GgufValue::U8(200)));
    assert_eq!(file.get("t.i8").and_then(GgufValue::as_i64), Some(-100));
    assert_eq!(file.get("t.u16").and_then(GgufValue::as_u64), Some(60000));
    assert_eq!(file.get("t.i16").and_then(GgufValue::as_i64), Some(-30000));
    assert_eq!(
        file.get("t.u32").and_then(GgufValue::as_u64),
        Some(4_000_000_000)
    );
    assert_eq!(
        file.get("t.i32").and_then(GgufValue::as_u64),
        None,
        "negative is not unsigned"
    );
    assert_eq!(
        file.get("t.u64").and_then(GgufValue::as_u64),
        Some(u64::MAX)
    );
    assert_eq!(file.get("t.i64"), Some(&GgufValue::I64(i64::MIN)));
    assert_eq!(file.get("t.f32"), Some(&GgufValue::F32(1e-5)));
    assert_eq!(
        file.get("t.f32").and_then(GgufValue::as_f64),
        Some(1e-5),
        "shortest decimal of the f32"
    );
    assert_eq!(file.get("t.f64").and_then(GgufValue::as_f64), Some(0.1));
    assert_eq!(file.get("t.bool").and_then(GgufValue::as_bool), Some(true));
    assert_eq!(file.get("t.str").and_then(GgufValue::as_str), Some("héllo"));
    let strs: Vec<&str> = file
        .get("t.strs")
        .and_then(GgufValue::as_array)
        .unwrap()
        .iter()
        .filter_map(GgufValue::as_str)
        .collect();
    assert_eq!(strs, vec!["a", "", "Ġb c"]);
    assert_eq!(
        file.get("t.ints").unwrap(),
        &GgufValue::Array(vec![
            GgufValue::I32(1),
            GgufValue::I32(-2),
            GgufValue::I32(3)
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// Parity with the `gguf` Python package (fixture made by scripts/make_gguf_reference.py quants).

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

#[test]
fn matches_gguf_python_package_dequantization_bit_for_bit() {
    let file = GgufFile::open(fixture("gguf_quants.gguf")).unwrap();
    let text = std::fs::read_to_string(fixture("gguf_quants_ref.json")).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    let tensors = reference["tensors"].as_object().unwrap();
    let mut seen_types = Vec::new();
    for (name, entry) in tensors {
        let info = file
            .tensor(name)
            .unwrap_or_else(|| panic!("fixture lacks tensor {name}"));
        assert_eq!(
            info.ggml_type.name(),
            entry["type"].as_str().unwrap(),
            "{name}"
        );
        let shape: Vec<usize> = entry["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let values: Vec<f32> = entry["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let dense = file.dequantize(name).unwrap();
        assert_eq!(dense.shape, shape, "{name}");
        assert_eq!(dense.data.len(), values.len(), "{name}");
        for (i, (got, want)) in dense.data.iter().zip(&values).enumerate() {
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{name}[{i}]: {got} vs {want}"
            );
        }
        seen_types.push(info.ggml_type);
    }
    for kind in [
        QuantKind::F32,
        QuantKind::F16,
        QuantKind::BF16,
        QuantKind::Q8_0,
        QuantKind::Q4_0,
        QuantKind::Q4_1,
    ] {
        assert!(
            seen_types.contains(&kind.ggml_type()),
            "fixture covers {kind:?}"
        );
    }
    // Metadata written by the Python writer reads back.
    let meta = reference["metadata"].as_object().unwrap();
    for (key, want) in meta {
        let got = file
            .get(key)
            .unwrap_or_else(|| panic!("missing metadata {key}"));
        match want {
            serde_json::Value::String(s) => assert_eq!(got.as_str(), Some(s.as_str()), "{key}"),
            serde_json::Value::Bool(b) => assert_eq!(got.as_bool(), Some(*b), "{key}"),
            serde_json::Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    assert_eq!(got.as_u64(), Some(u), "{key}");
                } else if let Some(i) = n.as_i64() {
                    assert_eq!(got.as_i64(), Some(i), "{key}");
                } else {
                    assert_eq!(got.as_f64(), n.as_f64(), "{key}");
                }
            }
            serde_json::Value::Array(items) => assert_eq!(
                got.as_array().map(<[GgufValue]>::len),
                Some(items.len()),
                "{key}"
            ),
            other => panic!("unexpected reference metadata {key}: {other}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A tiny Llama GGUF -> HF folder.

const HIDDEN: usize = 8;
const HEADS: usize = 2;
const KV_HEADS: usize = 1;
const HEAD_DIM: usize = 4;
const INTER: usize = 16;

/// GPT-2's byte -> unicode table: printable bytes map to themselves, the rest to U+0100 upwards.
fn byte_level_alphabet() -> Vec<String> {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut next = 256u32;
    (0u32..256)
        .map(|b| {
            let c = if printable(b) {
                b
            } else {
                let c = next;
                next += 1;
                c
            };
            char::from_u32(c).unwrap().to_string()
        })
        .collect()
}

struct TinyVocab {
    tokens: Vec<String>,
    types: Vec<i32>,
    merges: Vec<String>,
}

/// Specials `<|endoftext|>` (0), `<|im_start|>` (1), `<|im_end|>` (2), a user-defined `<extra>` (3),
/// the 256 byte tokens, then merges building "he", "ll", "hell", "hello", "Ġw".
fn tiny_vocab() -> TinyVocab {
    let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<extra>"]
        .map(String::from)
        .to_vec();
    let mut types = vec![3, 3, 3, 4];
    for t in byte_level_alphabet() {
        tokens.push(t);
        types.push(1);
    }
    let merges: Vec<String> = ["h e", "l l", "he ll", "hell o", "Ġ w"]
        .map(String::from)
        .to_vec();
    for m in &merges {
        tokens.push(m.replace(' ', ""));
        types.push(1);
    }
    TinyVocab {
        tokens,
        types,
        merges,
    }
}

fn tiny_vocab_size() -> usize {
    tiny_vocab().tokens.len()
}

/// HF-layout values of a tensor: element (r, c) = base + r * 100 + c, so every row is distinct.
fn hf_values(rows: usize, cols: usize, base: f32) -> Vec<f32> {
    (0..rows)
        .flat_map(|r| (0..cols).map(move |c| base + (r * 100 + c) as f32))
        .collect()
}

/// The rows of `hf` in the order given by `order` (GGUF row i = HF row order[i]).
fn reorder(hf: &[f32], cols: usize, order: &[usize]) -> Vec<f32> {
    order
        .iter()
        .flat_map(|&r| hf[r * cols..(r + 1) * cols].to_vec())
        .collect()
}

/// llama.cpp's Q/K order, written out by hand: each head's rows [a0 a1 | b0 b1] (the two rotary
/// halves) are stored interleaved as [a0 b0 a1 b1].
const Q_GGUF_ORDER: [usize; 8] = [0, 2, 1, 3, 4, 6, 5, 7];
const K_GGUF_ORDER: [usize; 4] = [0, 2, 1, 3];

/// (HF name, HF shape, HF values, GGUF tensor) of the tiny model.
fn tiny_llama_tensors() -> Vec<(String, Vec<usize>, Vec<f32>, TensorSpec)> {
    let vocab = tiny_vocab_size();
    let mut out = Vec::new();
    let mut add = |gguf_name: &str,
                   hf_name: &str,
                   rows: usize,
                   cols: usize,
                   base: f32,
                   order: Option<&[usize]>,
                   f16: bool| {
        let hf = hf_values(rows, cols, base);
        let stored = match order {
            Some(order) => reorder(&hf, cols, order),
            None => hf.clone(),
        };
        let (ty, data) = if f16 {
            (1, f16_data(&stored))
        } else {
            (0, f32_data(&stored))
        };
        let dims: Vec<u64> = if rows == 1 {
            vec![cols as u64]
        } else {
            vec![cols as u64, rows as u64]
        };
        let shape = if rows == 1 {
            vec![cols]
        } else {
            vec![rows, cols]
        };
        out.push((
            hf_name.to_string(),
            shape,
            hf,
            tensor(gguf_name, &dims, ty, data),
        ));
    };
    add(
        "token_embd.weight",
        "model.embed_tokens.weight",
        vocab,
        HIDDEN,
        0.5,
        None,
        false,
    );
    add(
        "output_norm.weight",
        "model.norm.weight",
        1,
        HIDDEN,
        0.25,
        None,
        false,
    );
    add(
        "blk.0.attn_norm.weight",
        "model.layers.0.input_layernorm.weight",
        1,
        HIDDEN,
        1.0,
        None,
        false,
    );
    add(
        "blk.0.attn_q.weight",
        "model.layers.0.self_attn.q_proj.weight",
        HEADS * HEAD_DIM,
        HIDDEN,
        2.0,
        Some(&Q_GGUF_ORDER),
        false,
    );
    add(
        "blk.0.attn_k.weight",
        "model.layers.0.self_attn.k_proj.weight",
        KV_HEADS * HEAD_DIM,
        HIDDEN,
        3.0,
        Some(&K_GGUF_ORDER),
        false,
    );
    add(
        "blk.0.attn_v.weight",
        "model.layers.0.self_attn.v_proj.weight",
        KV_HEADS * HEAD_DIM,
        HIDDEN,
        4.0,
        None,
        false,
    );
    add(
        "blk.0.attn_output.weight",
        "model.layers.0.self_attn.o_proj.weight",
        HIDDEN,
        HEADS * HEAD_DIM,
        5.0,
        None,
        false,
    );
    add(
        "blk.0.ffn_norm.weight",
        "model.layers.0.post_attention_layernorm.weight",
        1,
        HIDDEN,
        6.0,
        None,
        false,
    );
    add(
        "blk.0.ffn_gate.weight",
        "model.layers.0.mlp.gate_proj.weight",
        INTER,
        HIDDEN,
        7.0,
        None,
        true,
    );
    add(
        "blk.0.ffn_up.weight",
        "model.layers.0.mlp.up_proj.weight",
        INTER,
        HIDDEN,
        8.0,
        None,
        true,
    );
    add(
        "blk.0.ffn_down.weight",
        "model.layers.0.mlp.down_proj.weight",
        HIDDEN,
        INTER,
        9.0,
        None,
        true,
    );
    out
}

const CHAT_TEMPLATE: &str = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}";

fn tiny_llama_meta() -> Vec<(&'static str, Meta)> {
    let vocab = tiny_vocab();
    vec![
        ("general.architecture", Meta::Str("llama".into())),
        ("general.name", Meta::Str("tiny".into())),
        ("llama.context_length", Meta::U32(256)),
        ("llama.embedding_length", Meta::U32(HIDDEN as u32)),
        ("llama.block_count", Meta::U32(1)),
        ("llama.feed_forward_length", Meta::U32(INTER as u32)),
        ("llama.attention.head_count", Meta::U32(HEADS as u32)),
        ("llama.attention.head_count_kv", Meta::U32(KV_HEADS as u32)),
        ("llama.rope.dimension_count", Meta::U32(HEAD_DIM as u32)),
        ("llama.rope.freq_base", Meta::F32(100_000.0)),
        ("llama.attention.layer_norm_rms_epsilon", Meta::F32(1e-5)),
        ("llama.vocab_size", Meta::U32(vocab.tokens.len() as u32)),
        ("tokenizer.ggml.model", Meta::Str("gpt2".into())),
        ("tokenizer.ggml.pre", Meta::Str("smollm".into())),
        ("tokenizer.ggml.tokens", Meta::StrArray(vocab.tokens)),
        ("tokenizer.ggml.token_type", Meta::I32Array(vocab.types)),
        ("tokenizer.ggml.merges", Meta::StrArray(vocab.merges)),
        ("tokenizer.ggml.bos_token_id", Meta::U32(1)),
        ("tokenizer.ggml.eos_token_id", Meta::U32(2)),
        ("tokenizer.ggml.unknown_token_id", Meta::U32(0)),
        ("tokenizer.ggml.padding_token_id", Meta::U32(2)),
        ("tokenizer.ggml.add_bos_token", Meta::Bool(false)),
        ("tokenizer.chat_template", Meta::Str(CHAT_TEMPLATE.into())),
    ]
}

fn tiny_llama_gguf(dir: &Path) -> PathBuf {
    let tensors: Vec<TensorSpec> = tiny_llama_tensors().into_iter().map(|t| t.3).collect();
    write_file(
        dir,
        "tiny.gguf",
        &write_gguf(&tiny_llama_meta(), &tensors, 32),
    )
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn converts_tiny_llama_undoing_the_qk_permutation() {
    let tmp = tempfile::tempdir().unwrap();
    let gguf_path = tiny_llama_gguf(tmp.path());
    let out = tmp.path().join("hf");
    gguf_to_hf_folder(&gguf_path, &out).unwrap();

    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let expected = tiny_llama_tensors();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    let mut expected_names: Vec<String> = expected.iter().map(|t| t.0.clone()).collect();
    expected_names.sort();
    assert_eq!(names, expected_names, "tied embeddings: no lm_head.weight");
    for (name, shape, values, _) in &expected {
        let view = st.tensor(name).unwrap();
        assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
        assert_eq!(view.shape(), &shape[..], "{name}");
        let got: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(&got, values, "{name}");
    }
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(
        metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get("format"))
            .map(String::as_str),
        Some("pt")
    );

    let config = read_json(&out.join("config.json"));
    let want = serde_json::json!({
        "model_type": "llama", "hidden_size": HIDDEN, "intermediate_size": INTER, "num_hidden_layers": 1,
        "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM,
        "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "vocab_size": tiny_vocab_size(),
        "max_position_embeddings": 256, "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2,
        "pad_token_id": 2, "hidden_act": "silu", "attention_bias": false, "rope_scaling": null,
    });
    for (key, value) in want.as_object().unwrap() {
        assert_eq!(&config[key], value, "config.json {key}");
    }
    assert_eq!(config["architectures"][0], "LlamaForCausalLM");

    let generation = read_json(&out.join("generation_config.json"));
    assert_eq!(
        generation,
        serde_json::json!({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2})
    );
    let tok_config = read_json(&out.join("tokenizer_config.json"));
    assert_eq!(tok_config["chat_template"], CHAT_TEMPLATE);
    assert_eq!(tok_config["bos_token"], "<|im_start|>");
    assert_eq!(tok_config["eos_token"], "<|im_end|>");
    assert_eq!(tok_config["pad_token"], "<|im_end|>");
    assert_eq!(tok_config["unk_token"], "<|endoftext|>");
    assert_eq!(tok_config["add_bos_token"], false);

    // No temp folders are left beside the output.
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".gguf-convert"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn converted_tokenizer_is_byte_level_bpe_with_individual_digits_and_specials() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("hf");
    gguf_to_hf_folder(&tiny_llama_gguf(tmp.path()), &out).unwrap();
    let tokenizer = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    let vocab = tiny_vocab();
    let id = |t: &str| vocab.tokens.iter().position(|x| x == t).unwrap() as u32;
    let byte = |b: u8| 4 + u32::from(b);

    let encoding = tokenizer
        .encode("<|im_start|>hello w12<|im_end|><extra>", false)
        .unwrap();
    let want = [1, id("hello"), id("Ġw"), byte(b'1'), byte(b'2'), 2, 3];
    assert_eq!(encoding.get_ids(), &want[..]);
    // Digits are split one by one; bytes outside ASCII go
    // through the byte alphabet.
    let encoding = tokenizer.encode("hell 99é", false).unwrap();
    let want = vec![
        id("hell"),
        byte(b' '),
        byte(b'9'),
        byte(b'9'),
        byte(0xC3),
        byte(0xA9),
    ];
    assert_eq!(encoding.get_ids(), &want[..]);
    assert_eq!(tokenizer.decode(&want, false).unwrap(), "hell 99é");
    assert_eq!(
        tokenizer.decode(&[1, id("hello"), 2], true).unwrap(),
        "hello",
        "specials are skipped"
    );
}

// ---------------------------------------------------------------------------------------------
// Bad inputs: every error names the file (and the tensor where there is one), never a panic.

fn open_err(path: &Path) -> String {
    match GgufFile::open(path) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_magic_and_versions_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = write_gguf(&[], &[], 32);
    bytes[3] = b'X';
    let path = write_file(tmp.path(), "magic.gguf", &bytes);
    let err = open_err(&path);
    assert!(
        err.contains("magic.gguf") && err.contains("not a GGUF file"),
        "{err}"
    );

    for (version, hint) in [(1u32, "v1"), (0x0300_0000, "big-endian"), (4, "")] {
        let mut bytes = write_gguf(&[], &[], 32);
        bytes[4..8].copy_from_slice(&version.to_le_bytes());
        let path = write_file(tmp.path(), "version.gguf", &bytes);
        let err = open_err(&path);
        assert!(
            err.contains(&format!("version {version}")) && err.contains(hint),
            "{err}"
        );
    }
}

#[test]
fn every_truncation_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let tensors: Vec<TensorSpec> = tiny_llama_tensors().into_iter().map(|t| t.3).collect();
    let bytes = write_gguf(&tiny_llama_meta(), &tensors, 32);
    let path = tmp.path().join("cut.gguf");
    let header_end = {
        std::fs::write(&path, &bytes).unwrap();
        GgufFile::open(&path).unwrap().data_offset() as usize
    };
    let mut cuts: Vec<usize> = (0..header_end.min(64)).collect();
    cuts.extend((64..header_end).step_by(13));
    cuts.extend([header_end - 1, header_end, header_end + 1, bytes.len() - 1]);
    for cut in cuts {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = open_err(&path);
        assert!(err.contains("cut.gguf"), "cut at {cut}: {err}");
        if cut >= header_end {
            assert!(err.contains("outside the file"), "cut at {cut}: {err}");
            assert!(err.contains("tensor '"), "cut at {cut}: {err}");
            if cut == bytes.len() - 1 {
                assert!(
                    err.contains("'blk.0.ffn_down.weight'"),
                    "the last tensor is named: {err}"
                );
            }
        } else {
            assert!(
                err.contains("truncated") || err.contains("not a GGUF"),
                "cut at {cut}: {err}"
            );
        }
    }
}

#[test]
fn corrupt_counts_and_offsets_are_errors_not_allocations() {
    let tmp = tempfile::tempdir().unwrap();
    // A string array claiming 2^60 elements.
    let mut bytes = write_gguf(&[("k", Meta::StrArray(vec!["a".into()]))], &[], 32);
    // header (24 bytes), key "k" (8 + 1), value type (4), element type (4), then the count.
    let count_at = 24 + 9 + 4 + 4;
    bytes[count_at..count_at + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let err = open_err(&write_file(tmp.path(), "count.gguf", &bytes));
    assert!(
        err.contains("metadata value 'k'") && err.contains("truncated"),
        "{err}"
    );

    // A tensor whose offset points past the end of the file.
    let mut t = tensor("far.weight", &[4], 0, f32_data(&[1.0; 4]));
    let mut moved = write_gguf(&[], std::slice::from_ref(&t), 32);
    // header (24 bytes), name (8 + len), n_dims (4), one dim (8), type (4), then the offset.
    let offset_at = 24 + 8 + t.name.len() + 4 + 8 + 4;
    moved[offset_at..offset_at + 8].copy_from_slice(&(1u64 << 20).to_le_bytes());
    let err = open_err(&write_file(tmp.path(), "far.gguf", &moved));
    assert!(
        err.contains("far.gguf")
            && err.contains("'far.weight'")
            && err.contains("outside the file"),
        "{err}"
    );

    // Unknown ggml type id and a misaligned offset.
    t.ggml_type = 99;
    let err = open_err(&write_file(
        tmp.path(),
        "type.gguf",
        &write_gguf(&[], &[t.clone()], 32),
    ));
    assert!(err.contains("'far.weight'") && err.contains("99"), "{err}");
    t.ggml_type = 0;
    moved[offset_at..offset_at + 8].copy_from_slice(&4u64.to_le_bytes());
    let err = open_err(&write_file(tmp.path(), "align.gguf", &moved));
    assert!(
        err.contains("'far.weight'") && err.contains("alignment"),
        "{err}"
    );
}

#[test]
fn unsupported_quant_type_is_named_on_dequantize_and_conversion() {
    let tmp = tempfile::tempdir().unwrap();
    // One Q4_K block (256 values, 144 bytes).
    let q4k = tensor("blk.0.ffn_up.weight", &[256], 12, vec![0u8; 144]);
    let path = write_file(tmp.path(), "q4k.gguf", &write_gguf(&[], &[q4k], 32));
    let file = GgufFile::open(&path).unwrap();
    let err = file.dequantize("blk.0.ffn_up.weight").unwrap_err();
    assert!(matches!(err, GgufError::UnsupportedType { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("q4k.gguf") && msg.contains("Q4_K") && msg.contains("blk.0.ffn_up.weight"),
        "{msg}"
    );

    // In a whole model: the conversion fails before writing anything.
    let mut tensors: Vec<TensorSpec> = tiny_llama_tensors().into_iter().map(|t| t.3).collect();
    let down = tensors
        .iter_mut()
        .find(|t| t.name == "blk.0.ffn_down.weight")
        .unwrap();
    *down = tensor("blk.0.ffn_down.weight", &[256, 1], 12, vec![0u8; 144]);
    let path = write_file(
        tmp.path(),
        "mixed.gguf",
        &write_gguf(&tiny_llama_meta(), &tensors, 32),
    );
    let out = tmp.path().join("never");
    let msg = gguf_to_hf_folder(&path, &out).unwrap_err().to_string();
    assert!(
        msg.contains("mixed.gguf") && msg.contains("Q4_K") && msg.contains("blk.0.ffn_down.weight"),
        "{msg}"
    );
    assert!(!out.exists(), "a failed conversion leaves no output folder");
}

#[test]
fn conversion_rejects_missing_unknown_tensors_and_a_full_output_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let all: Vec<TensorSpec> = tiny_llama_tensors().into_iter().map(|t| t.3).collect();

    let without_up: Vec<TensorSpec> = all
        .iter()
        .filter(|t| t.name != "blk.0.ffn_up.weight")
        .cloned()
        .collect();
    let path = write_file(
        tmp.path(),
        "missing.gguf",
        &write_gguf(&tiny_llama_meta(), &without_up, 32),
    );
    let msg = gguf_to_hf_folder(&path, &tmp.path().join("a"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("model.layers.0.mlp.up_proj.weight"), "{msg}");

    let mut with_extra = all.clone();
    with_extra.push(tensor("blk.0.mystery.weight", &[4], 0, f32_data(&[0.0; 4])));
    let path = write_file(
        tmp.path(),
        "extra.gguf",
        &write_gguf(&tiny_llama_meta(), &with_extra, 32),
    );
    let msg = gguf_to_hf_folder(&path, &tmp.path().join("b"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("blk.0.mystery.weight"), "{msg}");

    let mut meta = tiny_llama_meta();
    meta.retain(|(k, _)| *k != "llama.attention.head_count");
    let path = write_file(tmp.path(), "nohead.gguf", &write_gguf(&meta, &all, 32));
    let msg = gguf_to_hf_folder(&path, &tmp.path().join("c"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("nohead.gguf") && msg.contains("llama.attention.head_count"),
        "{msg}"
    );

    let mut meta = tiny_llama_meta();
    meta[0] = ("general.architecture", Meta::Str("mamba".into()));
    let path = write_file(tmp.path(), "arch.gguf", &write_gguf(&meta, &all, 32));
    let msg = gguf_to_hf_folder(&path, &tmp.path().join("d"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("mamba"), "{msg}");

    let full = tmp.path().join("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("keep.txt"), "x").unwrap();
    let good = write_file(
        tmp.path(),
        "good.gguf",
        &write_gguf(&tiny_llama_meta(), &all, 32),
    );
    let msg = gguf_to_hf_folder(&good, &full).unwrap_err().to_string();
    assert!(msg.contains("not empty"), "{msg}");
    assert!(full.join("keep.txt").exists());
    // An existing empty folder is filled.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    gguf_to_hf_folder(&good, &empty).unwrap();
    assert!(empty.join("model.safetensors").is_file());
}

#[test]
fn gguf_spec_resolves_to_a_cached_conversion_once() {
    let tmp = tempfile::tempdir().unwrap();
    let gguf_path = tiny_llama_gguf(tmp.path());
    let options = svlm_model::hub::HubOptions {
        hf_cache: tmp.path().join("hub"),
        endpoint: "http://127.0.0.1:9".to_string(),
        token: None,
        offline: true,
        svlm_cache: tmp.path().join("svlm"),
    };
    let spec = gguf_path.to_str().unwrap();
    let first = svlm_model::hub::resolve_model_with(spec, None, &options).unwrap();
    assert!(
        first.starts_with(tmp.path().join("svlm").join("gguf")),
        "{}",
        first.display()
    );
    assert!(first.join("model.safetensors").is_file() && first.join("tokenizer.json").is_file());
    // Reused: a marker written into the folder survives the second resolution.
    std::fs::write(first.join("marker"), "x").unwrap();
    let second = svlm_model::hub::resolve_model_with(spec, None, &options).unwrap();
    assert_eq!(first, second);
    assert!(second.join("marker").exists());
    assert_eq!(
        svlm_model::hub::safetensors_files(&second).unwrap(),
        vec![second.join("model.safetensors")]
    );
}

#[test]
fn public_permutation_helpers_match_the_hand_written_order() {
    let hf = hf_values(HEADS * HEAD_DIM, 3, 0.0);
    let permuted = gguf::permute_qk_rows(&hf, HEADS * HEAD_DIM, HEADS).unwrap();
    assert_eq!(permuted, reorder(&hf, 3, &Q_GGUF_ORDER));
    assert_eq!(
        gguf::unpermute_qk_rows(&permuted, HEADS * HEAD_DIM, HEADS).unwrap(),
        hf
    );
    let k = hf_values(KV_HEADS * HEAD_DIM, 3, 0.0);
    assert_eq!(
        gguf::permute_qk_rows(&k, KV_HEADS * HEAD_DIM, KV_HEADS).unwrap(),
        reorder(&k, 3, &K_GGUF_ORDER)
    );
}
