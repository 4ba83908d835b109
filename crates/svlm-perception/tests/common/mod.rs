//! Helpers shared by svlm-perception's integration tests. Each test binary compiles this module and uses a part
//! of it, hence the `dead_code` allowances.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::tensor::TensorView;
use svlm_model::WeightDType;
use svlm_model::io::{CheckpointTensor, read_safetensors_file};

/// `tests/fixtures` of this crate.
#[allow(dead_code)]
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The committed test photo (`chelsea_small.png`, 96 x 64) every parity fixture script runs on.
#[allow(dead_code)]
pub fn photo() -> image::RgbImage {
    image::open(fixtures().join("chelsea_small.png"))
        .unwrap()
        .to_rgb8()
}

/// A fixture script's reference tensors (a safetensors file), by name.
#[allow(dead_code)]
pub struct Reference(pub BTreeMap<String, CheckpointTensor>);

#[allow(dead_code)]
impl Reference {
    pub fn open(path: &Path) -> Self {
        Self(read_safetensors_file(path).unwrap())
    }

    pub fn get(&self, name: &str) -> &CheckpointTensor {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("no `{name}` in reference"))
    }

    /// Values as f32 and the shape.
    pub fn floats(&self, name: &str) -> (Vec<f32>, Vec<usize>) {
        let t = self.get(name);
        let v = t
            .to_data(name, WeightDType::F32)
            .unwrap()
            .try_into_vec::<f32>()
            .unwrap();
        (v, t.shape.clone())
    }

    /// An int64 tensor's values.
    pub fn ints(&self, name: &str) -> Vec<i64> {
        self.get(name)
            .bytes()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    /// A u8 tensor's bytes.
    pub fn bytes(&self, name: &str) -> Vec<u8> {
        self.get(name).bytes().to_vec()
    }

    pub fn tensor<const D: usize>(&self, name: &str, device: &Device) -> Tensor<D> {
        let (v, shape) = self.floats(name);
        Tensor::from_data(TensorData::new(v, shape), device)
    }
}

/// A tensor's values as f32.
#[allow(dead_code)]
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

/// Copies a fixture folder — `files` and `model.safetensors` with `edit` applied to its tensors (name -> (shape,
/// f32 values)) — into a temporary folder.
#[allow(dead_code)]
pub fn edited_copy(
    dir: &Path,
    files: &[&str],
    edit: impl FnOnce(&mut BTreeMap<String, (Vec<usize>, Vec<f32>)>),
) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for name in files {
        std::fs::copy(dir.join(name), tmp.path().join(name)).unwrap();
    }
    let tensors = read_safetensors_file(&dir.join("model.safetensors")).unwrap();
    let mut plain: BTreeMap<String, (Vec<usize>, Vec<f32>)> = tensors
        .iter()
        .map(|(k, t)| {
            let v = t
                .to_data(k, WeightDType::F32)
                .unwrap()
                .try_into_vec::<f32>()
                .unwrap();
            (k.clone(), (t.shape.clone(), v))
        })
        .collect();
    edit(&mut plain);
    let bytes: BTreeMap<&String, (Vec<usize>, Vec<u8>)> = plain
        .iter()
        .map(|(k, (s, v))| {
            (
                k,
                (s.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            )
        })
        .collect();
    let views: Vec<(&str, TensorView<'_>)> = bytes
        .iter()
        .map(|(k, (s, b))| {
            (
                k.as_str(),
                TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &tmp.path().join("model.safetensors")).unwrap();
    tmp
}
