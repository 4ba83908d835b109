//! Photo files end to end: EXIF orientation and focal length, depth at the upright size, the record; Depth Pro's
//! predicted field of view as the intrinsics of photos without user values or EXIF.

use std::path::Path;

use burn::tensor::Device;
use image::ImageEncoder;
use svlm_perception::{
    CameraSpec, DepthAnything, DepthEstimator, DepthModel, GivenBoxes, IntrinsicsOptions,
    IntrinsicsSource, ModelDepth, PhotoSettings, PhotoSource, load_photo,
};

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Little-endian EXIF: IFD0 {Orientation = `orientation`, ExifIFD pointer}, Exif IFD {FocalLengthIn35mmFilm}.
fn exif_block(orientation: u16, f35: u16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"II");
    b.extend_from_slice(&42u16.to_le_bytes());
    b.extend_from_slice(&8u32.to_le_bytes());
    // IFD0 at 8: 2 entries (2 + 24 + 4 bytes) -> Exif IFD at 38.
    b.extend_from_slice(&2u16.to_le_bytes());
    for (tag, kind, value) in [(0x0112u16, 3u16, u32::from(orientation)), (0x8769, 4, 38)] {
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&kind.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&value.to_le_bytes());
    }
    b.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(b.len(), 38);
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&0xA405u16.to_le_bytes());
    b.extend_from_slice(&3u16.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&u32::from(f35).to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b
}

fn chelsea() -> image::RgbImage {
    image::open(fixtures().join("chelsea_small.png"))
        .unwrap()
        .to_rgb8()
}

fn model() -> DepthAnything {
    DepthAnything::load(&fixtures().join("tiny-depth-anything"), &Device::flex()).unwrap()
}

/// `chelsea_small.png` as a JPEG with EXIF orientation and 35mm focal length, at `path`.
fn write_jpeg_with_exif(path: &Path, orientation: u16, f35: u16) {
    let img = chelsea();
    let mut bytes = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95);
    encoder
        .set_exif_metadata(exif_block(orientation, f35))
        .unwrap();
    encoder
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    std::fs::write(path, &bytes).unwrap();
}

#[test]
fn rotated_jpeg_with_focal_length_is_lifted_upright() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cat.jpg");
    let img = chelsea();
    write_jpeg_with_exif(&path, 6, 26);

    let photo = load_photo(&path).unwrap();
    assert_eq!(photo.orientation, 6);
    assert_eq!(photo.image.dimensions(), (img.height(), img.width()));

    let model = model();
    let lifted = model
        .lift_photo(&path, &IntrinsicsOptions::default())
        .unwrap();
    assert_eq!((lifted.depth.width, lifted.depth.height), (64, 96));
    assert_eq!(
        lifted.intrinsics.source,
        IntrinsicsSource::Exif35mm {
            focal_length_35mm: 26.0
        }
    );
    let diagonal = 64f64.hypot(96.0);
    assert!(
        (lifted.intrinsics.intrinsics.fx - 26.0 * diagonal / 43.266_615_305_567_87).abs() < 1e-9
    );
    assert_eq!(lifted.record.exif_orientation, 6);
    assert_eq!(lifted.record.image_size, (64, 96));
    assert_eq!(lifted.record.depth_estimation_type, "metric");
    // The pair feeds svlm-geometry directly; bicubic overshoot below 0 (as in transformers) counts as invalid.
    let (cloud, stats) =
        svlm_geometry::depth_to_points(&lifted.depth, &lifted.intrinsics.intrinsics, None).unwrap();
    assert_eq!(stats.valid + stats.invalid, 64 * 96);
    assert_eq!(cloud.len(), stats.valid);
    assert!(stats.valid > 64 * 96 / 2, "{stats:?}");

    // Orientation 6 = rotate 90 degrees clockwise: the same as predicting on the rotated raw pixels.
    let raw = image::open(&path).unwrap().to_rgb8();
    assert_eq!(raw.dimensions(), (96, 64));
    let rotated = image::imageops::rotate90(&raw);
    assert_eq!(model.predict(&rotated).unwrap(), lifted.depth);
}

#[test]
fn png_without_exif_uses_the_prior_or_user_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cat.png");
    chelsea().save(&path).unwrap();
    let model = model();
    let lifted = model
        .lift_photo(&path, &IntrinsicsOptions::default())
        .unwrap();
    assert_eq!(
        lifted.intrinsics.source,
        IntrinsicsSource::FovPrior { hfov_deg: 60.0 }
    );
    assert_eq!(lifted.record.exif_orientation, 1);
    assert_eq!(lifted.record.processed_size, (70, 112));
    assert_eq!(lifted.depth, model.predict(&chelsea()).unwrap());

    let mut options = IntrinsicsOptions::default();
    options
        .per_image
        .insert("cat.png".into(), CameraSpec::Fov { hfov_deg: 90.0 });
    let lifted = model.lift_photo(&path, &options).unwrap();
    assert_eq!(lifted.intrinsics.source, IntrinsicsSource::UserImage);
    assert!((lifted.intrinsics.intrinsics.fx - 48.0).abs() < 1e-9);
}

#[test]
fn unreadable_photo_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.jpg");
    std::fs::write(&path, b"\xff\xd8\xff\xe0 not a jpeg").unwrap();
    let err = match model().lift_photo(&path, &IntrinsicsOptions::default()) {
        Ok(_) => panic!("a broken file must fail"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("broken.jpg"), "{err}");
}

fn depth_pro() -> DepthModel {
    DepthModel::load(&fixtures().join("tiny-depth-pro"), &Device::flex()).unwrap()
}

#[test]
fn depth_model_is_chosen_by_model_type() {
    assert!(matches!(depth_pro(), DepthModel::DepthPro(_)));
    let da = DepthModel::load(&fixtures().join("tiny-depth-anything"), &Device::flex()).unwrap();
    assert!(matches!(da, DepthModel::DepthAnything(_)));
    // Depth Anything estimates no camera.
    let estimate = da.predict(&chelsea()).unwrap();
    assert_eq!(estimate.predicted_hfov_deg, None);
    assert_eq!(estimate.depth_focal_px, None);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"model_type": "dpt"}"#).unwrap();
    let err = format!(
        "{:#}",
        DepthModel::load(dir.path(), &Device::flex()).err().unwrap()
    );
    assert!(
        err.contains("dpt") && err.contains(&config.display().to_string()),
        "{err}"
    );
}

#[test]
fn depth_pro_gives_the_intrinsics_of_photos_without_exif() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cat.png");
    chelsea().save(&path).unwrap();
    let model = depth_pro();
    let DepthModel::DepthPro(pro) = &model else {
        panic!("not Depth Pro");
    };
    let prediction = pro.predict(&chelsea()).unwrap();
    let hfov = prediction.field_of_view_deg.unwrap();
    let focal = prediction.focal_length_px.unwrap();

    let lifted = model
        .lift_photo(&path, &IntrinsicsOptions::default())
        .unwrap();
    assert_eq!(
        lifted.intrinsics.source,
        IntrinsicsSource::PredictedFov { hfov_deg: hfov }
    );
    let k = &lifted.intrinsics.intrinsics;
    assert!(
        (k.fx - focal).abs() < 1e-3 && k.fx == k.fy,
        "{} vs {focal}",
        k.fx
    );
    assert_eq!((k.cx, k.cy), (47.5, 31.5));
    assert_eq!(lifted.depth, prediction.depth);
    assert_eq!(lifted.record.predicted_hfov_deg, Some(hfov));
    assert_eq!(lifted.record.depth_focal_px, Some(focal));
    assert_eq!(lifted.record.depth_rescaled_by, None);
    assert_eq!(lifted.record.max_depth, None);
    assert_eq!(lifted.record.processed_size, (64, 64));

    // User values win; the depth follows their focal length (depth = focal / (width * inverse depth)).
    let options = IntrinsicsOptions {
        folder: Some(CameraSpec::Fov { hfov_deg: 90.0 }),
        ..IntrinsicsOptions::default()
    };
    let lifted = model.lift_photo(&path, &options).unwrap();
    assert_eq!(lifted.intrinsics.source, IntrinsicsSource::UserFolder);
    let factor = 48.0 / focal;
    assert!((lifted.record.depth_rescaled_by.unwrap() - factor).abs() < 1e-6);
    for (a, b) in lifted.depth.data.iter().zip(&prediction.depth.data) {
        assert!((f64::from(*a) - f64::from(*b) * factor).abs() < 1e-5);
    }

    // So does an EXIF focal length.
    let jpeg = dir.path().join("cat.jpg");
    write_jpeg_with_exif(&jpeg, 1, 26);
    let lifted = model
        .lift_photo(&jpeg, &IntrinsicsOptions::default())
        .unwrap();
    assert_eq!(
        lifted.intrinsics.source,
        IntrinsicsSource::Exif35mm {
            focal_length_35mm: 26.0
        }
    );
    assert!(lifted.record.depth_rescaled_by.is_some());
}

#[test]
fn the_photo_source_records_the_predicted_field_of_view() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cat.png");
    chelsea().save(&path).unwrap();
    std::fs::write(
        dir.path().join("cat.objects.json"),
        r#"{"objects": [{"id": 1, "name": "cat", "bbox": [20, 10, 40, 40]}]}"#,
    )
    .unwrap();
    let depth = ModelDepth::new(depth_pro());
    assert_eq!(depth.describe()["model_type"], "depth_pro");
    let estimate = depth.depth(&path, &chelsea()).unwrap();
    let hfov = estimate.predicted_hfov_deg.unwrap();
    let source = PhotoSource::new(
        vec![path.clone()],
        Box::new(depth),
        Box::new(GivenBoxes {
            dir: dir.path().to_path_buf(),
        }),
        PhotoSettings::default(),
    );
    let (frame, provenance) = source.frame(&path).unwrap();
    assert_eq!(
        provenance["intrinsics"]["source"],
        serde_json::json!({"kind": "predicted_fov", "hfov_deg": hfov})
    );
    assert_eq!(provenance["predicted_hfov_deg"], serde_json::json!(hfov));
    assert!(provenance.get("depth_rescaled_by").is_none());
    assert!((frame.intrinsics.fx - estimate.depth_focal_px.unwrap()).abs() < 1e-3);
    assert_eq!(frame.depth, estimate.depth);
}
