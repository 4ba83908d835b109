//! Helpers shared by svlm-perception's integration tests.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use svlm_model::WeightDType;
use svlm_model::io::read_safetensors_file;

/// Copies a fixture folder — `files` and `model.safetensors` with `edit` applied to its tensors (name -> (shape,
/// f32 values)) — into a temporary folder.
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
