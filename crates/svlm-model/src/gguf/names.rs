//! llama.cpp tensor names <-> HF Llama names, and llama.cpp's Q/K row permutation (rotary halves interleaved).

/// The per-layer llama.cpp tensor names and their HF Llama counterparts (one table for both
/// directions).
pub(super) const LAYER_NAMES: &[(&str, &str)] = &[
    ("attn_norm", "input_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("ffn_norm", "post_attention_layernorm"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];

pub(super) const GLOBAL_NAMES: &[(&str, &str)] = &[
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];

/// The HF Llama name of a llama.cpp tensor name (`blk.3.attn_q.weight` ->
/// `model.layers.3.self_attn.q_proj.weight`), `None` for a name outside the Llama table.
pub fn hf_tensor_name(gguf_name: &str) -> Option<String> {
    if let Some((_, hf)) = GLOBAL_NAMES.iter().find(|(g, _)| *g == gguf_name) {
        return Some((*hf).to_string());
    }
    let rest = gguf_name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (stem, suffix) = rest.rsplit_once('.')?;
    if suffix != "weight" && suffix != "bias" {
        return None;
    }
    let (_, hf) = LAYER_NAMES.iter().find(|(g, _)| *g == stem)?;
    Some(format!("model.layers.{layer}.{hf}.{suffix}"))
}

/// The llama.cpp name of an HF Llama tensor name (inverse of [`hf_tensor_name`]).
pub fn gguf_tensor_name(hf_name: &str) -> Option<String> {
    if let Some((g, _)) = GLOBAL_NAMES.iter().find(|(_, h)| *h == hf_name) {
        return Some((*g).to_string());
    }
    let rest = hf_name.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (stem, suffix) = rest.rsplit_once('.')?;
    if suffix != "weight" && suffix != "bias" {
        return None;
    }
    let (g, _) = LAYER_NAMES.iter().find(|(_, h)| *h == stem)?;
    Some(format!("blk.{layer}.{g}.{suffix}"))
}

/// Row index in llama.cpp's order of the HF row `row` of a Q or K projection with `n_head` heads
/// of `rows / n_head` rows each. convert_hf_to_gguf.py's `permute` views each head's rows as
/// (2, head_dim/2) — the two rotary halves — and swaps them to (head_dim/2, 2), interleaving the
/// halves for ggml's RoPE.
pub(super) fn gguf_row_of_hf_row(row: usize, head_dim: usize) -> usize {
    let half = head_dim / 2;
    let (head, within) = (row / head_dim, row % head_dim);
    let (s, i) = (within / half, within % half);
    head * head_dim + i * 2 + s
}

/// Rows that llama.cpp's Q/K permutation does not apply to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermuteError {
    #[error("{rows} rows cannot be split into {n_head} heads of an even size")]
    HeadSplit { rows: usize, n_head: usize },
    #[error("{values} values do not form {rows} rows")]
    Shape { values: usize, rows: usize },
}

pub(super) fn check_permutable(rows: usize, n_head: usize) -> Result<usize, PermuteError> {
    if n_head == 0 || !rows.is_multiple_of(n_head) || !(rows / n_head).is_multiple_of(2) {
        return Err(PermuteError::HeadSplit { rows, n_head });
    }
    Ok(rows / n_head)
}

pub(super) fn reorder_rows(
    data: &[f32],
    rows: usize,
    n_head: usize,
    to_hf: bool,
) -> Result<Vec<f32>, PermuteError> {
    let head_dim = check_permutable(rows, n_head)?;
    if rows == 0 || !data.len().is_multiple_of(rows) {
        return Err(PermuteError::Shape {
            values: data.len(),
            rows,
        });
    }
    let cols = data.len() / rows;
    let mut out = vec![0f32; data.len()];
    for hf_row in 0..rows {
        let gguf_row = gguf_row_of_hf_row(hf_row, head_dim);
        let (src, dst) = if to_hf {
            (gguf_row, hf_row)
        } else {
            (hf_row, gguf_row)
        };
        out[dst * cols..(dst + 1) * cols].copy_from_slice(&data[src * cols..(src + 1) * cols]);
    }
    Ok(out)
}

/// Undoes llama.cpp's Q/K row permutation: `data` holds `rows` rows in GGUF order (a weight
/// `[rows, cols]` or a bias `[rows]`), the result holds them in HF order. `n_head` is the number of
/// attention heads for Q and of KV heads for K.
pub fn unpermute_qk_rows(
    data: &[f32],
    rows: usize,
    n_head: usize,
) -> Result<Vec<f32>, PermuteError> {
    reorder_rows(data, rows, n_head, true)
}

/// llama.cpp's Q/K row permutation (HF order -> GGUF order), the inverse of [`unpermute_qk_rows`].
pub fn permute_qk_rows(data: &[f32], rows: usize, n_head: usize) -> Result<Vec<f32>, PermuteError> {
    reorder_rows(data, rows, n_head, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_both_ways() {
        let pairs = [
            ("token_embd.weight", "model.embed_tokens.weight"),
            ("output_norm.weight", "model.norm.weight"),
            ("output.weight", "lm_head.weight"),
            (
                "blk.0.attn_q.weight",
                "model.layers.0.self_attn.q_proj.weight",
            ),
            (
                "blk.12.attn_k.bias",
                "model.layers.12.self_attn.k_proj.bias",
            ),
            (
                "blk.3.attn_output.weight",
                "model.layers.3.self_attn.o_proj.weight",
            ),
            (
                "blk.29.ffn_down.weight",
                "model.layers.29.mlp.down_proj.weight",
            ),
            (
                "blk.1.ffn_norm.weight",
                "model.layers.1.post_attention_layernorm.weight",
            ),
            (
                "blk.1.attn_norm.weight",
                "model.layers.1.input_layernorm.weight",
            ),
        ];
        for (gguf, hf) in pairs {
            assert_eq!(hf_tensor_name(gguf).as_deref(), Some(hf), "{gguf}");
            assert_eq!(gguf_tensor_name(hf).as_deref(), Some(gguf), "{hf}");
        }
        for bad in [
            "blk.x.attn_q.weight",
            "blk.0.attn_qq.weight",
            "rope_freqs.weight",
            "blk.0.attn_q.scale",
        ] {
            assert_eq!(hf_tensor_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn permutation_interleaves_rotary_halves() {
        // One head of 4 rows: HF rows [a0 a1 | b0 b1] become llama.cpp rows [a0 b0 a1 b1].
        let hf: Vec<f32> = vec![0., 1., 2., 3.];
        assert_eq!(permute_qk_rows(&hf, 4, 1).unwrap(), vec![0., 2., 1., 3.]);
        assert_eq!(unpermute_qk_rows(&[0., 2., 1., 3.], 4, 1).unwrap(), hf);
        assert!(
            permute_qk_rows(&[0.; 6], 6, 2).is_err(),
            "odd head size must be rejected"
        );
    }
}
