//! ggml tensor types and bit-exact dequantization of F32/F16/BF16/Q8_0/Q4_0/Q4_1 blocks.

use std::fmt;

/// A ggml tensor type id as stored in the file, with the block layout of every type ggml knows
/// (so a file with types this crate cannot dequantize still opens and is bounds-checked).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GgmlType(pub u32);

/// (id, name, elements per block, bytes per block), from ggml's type traits.
pub(super) const GGML_TYPES: &[(u32, &str, u64, u64)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 36),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
    (40, "NVFP4", 64, 36),
    (41, "Q1_0", 128, 18),
];

impl GgmlType {
    pub const F32: Self = Self(0);
    pub const F16: Self = Self(1);
    pub const Q4_0: Self = Self(2);
    pub const Q4_1: Self = Self(3);
    pub const Q8_0: Self = Self(8);
    pub const BF16: Self = Self(30);

    pub(super) fn entry(self) -> Option<&'static (u32, &'static str, u64, u64)> {
        GGML_TYPES.iter().find(|entry| entry.0 == self.0)
    }

    /// ggml's name for the type, or `type#N` for an id ggml does not define.
    pub fn name(self) -> String {
        match self.entry() {
            Some(entry) => entry.1.to_string(),
            None => format!("type#{}", self.0),
        }
    }

    /// `(elements per block, bytes per block)`, `None` for an unknown id.
    pub fn block_layout(self) -> Option<(u64, u64)> {
        self.entry().map(|entry| (entry.2, entry.3))
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The tensor types this crate dequantizes to f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantKind {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
}

impl QuantKind {
    pub fn from_ggml(ggml_type: GgmlType) -> Option<Self> {
        match ggml_type {
            GgmlType::F32 => Some(Self::F32),
            GgmlType::F16 => Some(Self::F16),
            GgmlType::BF16 => Some(Self::BF16),
            GgmlType::Q8_0 => Some(Self::Q8_0),
            GgmlType::Q4_0 => Some(Self::Q4_0),
            GgmlType::Q4_1 => Some(Self::Q4_1),
            _ => None,
        }
    }

    pub fn ggml_type(self) -> GgmlType {
        match self {
            Self::F32 => GgmlType::F32,
            Self::F16 => GgmlType::F16,
            Self::BF16 => GgmlType::BF16,
            Self::Q8_0 => GgmlType::Q8_0,
            Self::Q4_0 => GgmlType::Q4_0,
            Self::Q4_1 => GgmlType::Q4_1,
        }
    }

    /// `(elements per block, bytes per block)`.
    pub fn block_layout(self) -> (usize, usize) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 | Self::BF16 => (1, 2),
            Self::Q8_0 => (32, 34),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
        }
    }

    /// Bytes holding `n_elements` values, `None` when `n_elements` is not a whole number of blocks.
    pub fn byte_len(self, n_elements: usize) -> Option<usize> {
        let (block, bytes) = self.block_layout();
        if !n_elements.is_multiple_of(block) {
            return None;
        }
        (n_elements / block).checked_mul(bytes)
    }
}

/// The byte length of `data` does not hold exactly `out.len()` values of the given type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?} data of {got} bytes cannot hold {elements} values (expected {expected:?} bytes)")]
pub struct DequantizeLengthError {
    pub kind: QuantKind,
    pub elements: usize,
    pub got: usize,
    pub expected: Option<usize>,
}

pub(super) fn f16_at(bytes: &[u8], at: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]])).to_f32()
}

/// Dequantizes `data` (the raw bytes of one ggml tensor or row) into `out`, bit-identical to ggml's
/// `dequantize_row_*` reference code: f16/bf16 widen exactly, `Q8_0` is `q * d`, `Q4_0` is
/// `(nibble - 8) * d`, `Q4_1` is `nibble * d + m`, all in f32 with the low nibbles filling the
/// first half of each 32-value block and the high nibbles the second half.
pub fn dequantize(
    kind: QuantKind,
    data: &[u8],
    out: &mut [f32],
) -> Result<(), DequantizeLengthError> {
    let expected = kind.byte_len(out.len());
    if expected != Some(data.len()) {
        return Err(DequantizeLengthError {
            kind,
            elements: out.len(),
            got: data.len(),
            expected,
        });
    }
    dequantize_exact(kind, data, out);
    Ok(())
}

/// The loops behind [`dequantize`]; callers have checked that the lengths match (the zips then
/// cover every value exactly once).
pub(super) fn dequantize_exact(kind: QuantKind, data: &[u8], out: &mut [f32]) {
    match kind {
        QuantKind::F32 => {
            for (value, bytes) in out.iter_mut().zip(data.chunks_exact(4)) {
                *value = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            }
        }
        QuantKind::F16 => {
            for (value, bytes) in out.iter_mut().zip(data.chunks_exact(2)) {
                *value = f16_at(bytes, 0);
            }
        }
        QuantKind::BF16 => {
            for (value, bytes) in out.iter_mut().zip(data.chunks_exact(2)) {
                *value = half::bf16::from_bits(u16::from_le_bytes([bytes[0], bytes[1]])).to_f32();
            }
        }
        QuantKind::Q8_0 => {
            for (values, block) in out.chunks_exact_mut(32).zip(data.chunks_exact(34)) {
                let d = f16_at(block, 0);
                for (value, &q) in values.iter_mut().zip(&block[2..34]) {
                    *value = f32::from(q as i8) * d;
                }
            }
        }
        QuantKind::Q4_0 => {
            for (values, block) in out.chunks_exact_mut(32).zip(data.chunks_exact(18)) {
                let d = f16_at(block, 0);
                let (low, high) = values.split_at_mut(16);
                for (j, &q) in block[2..18].iter().enumerate() {
                    low[j] = f32::from(i16::from(q & 0x0F) - 8) * d;
                    high[j] = f32::from(i16::from(q >> 4) - 8) * d;
                }
            }
        }
        QuantKind::Q4_1 => {
            for (values, block) in out.chunks_exact_mut(32).zip(data.chunks_exact(20)) {
                let d = f16_at(block, 0);
                let m = f16_at(block, 2);
                let (low, high) = values.split_at_mut(16);
                for (j, &q) in block[4..20].iter().enumerate() {
                    low[j] = f32::from(q & 0x0F) * d + m;
                    high[j] = f32::from(q >> 4) * d + m;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_1_low_nibbles_fill_the_first_half() {
        let mut block = vec![0u8; 20];
        block[0..2].copy_from_slice(&half::f16::from_f32(0.5).to_bits().to_le_bytes());
        block[2..4].copy_from_slice(&half::f16::from_f32(-1.0).to_bits().to_le_bytes());
        block[4] = 0x3A; // low 10, high 3
        let mut out = vec![0f32; 32];
        dequantize(QuantKind::Q4_1, &block, &mut out).unwrap();
        assert_eq!(out[0], 10.0 * 0.5 - 1.0);
        assert_eq!(out[16], 3.0 * 0.5 - 1.0);
        assert_eq!(out[1], -1.0);
        assert!(dequantize(QuantKind::Q4_1, &block[..19], &mut out).is_err());
    }
}
