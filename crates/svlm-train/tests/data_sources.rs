//! Data sources: every supported format reads to the same samples; bad rows are counted, named and bounded.

mod common;

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, ListArray, RecordBatch, StringArray, StructArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields, Schema};
use common::{ByteEncoder, TinyVlm, config_text, write_png};
use svlm_train::config::{RunConfig, SourceConfig, SourceFormat};
use svlm_train::data::{DataError, DataSource, ImageRef, SamplePart};
use svlm_train::trainer::{TrainError, TrainOptions, train};

fn source(path: &Path, format: SourceFormat) -> SourceConfig {
    SourceConfig {
        name: "s".into(),
        path: path.to_path_buf(),
        format,
        image_root: None,
        weight: 1.0,
        max_samples: None,
        epochs: None,
        holdout: 0,
    }
}

fn expect_two_turn_sample(ds: &DataSource) {
    assert_eq!(
        ds.len(),
        2,
        "bad rows: {:?}",
        ds.bad.lock().map(|b| b.clone())
    );
    let s = ds.get(1, 0).expect("row 1");
    assert_eq!(s.messages.len(), 2);
    assert_eq!(s.messages[0].role, "user");
    assert_eq!(s.messages[0].content[0], SamplePart::Image);
    assert_eq!(
        s.messages[0].content[1],
        SamplePart::Text("Where is the cube?".into())
    );
    assert_eq!(s.messages[1].role, "assistant");
    assert_eq!(
        s.messages[1].content,
        vec![SamplePart::Text("On the left.".into())]
    );
    assert_eq!(s.images.len(), 1);
    assert!(s.images[0].load().is_ok());
}

#[test]
fn llava_json_jsonl_chat_and_synth_formats_read_the_same_sample() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_png(&dir.path().join("a.png"), [10, 20, 30]);
    let llava = |id: i32| {
        serde_json::json!({"id": id, "image": "a.png", "conversations": [
            {"from": "human", "value": "<image>\nWhere is the cube?"}, {"from": "gpt", "value": "On the left."}]})
    };
    // JSON array, pretty-printed over many lines, with a bracket and an escaped quote inside strings.
    let array = serde_json::to_string_pretty(&vec![
        serde_json::json!({"id": "x", "image": "a.png", "conversations": [
            {"from": "human", "value": "<image>\nSay \"[hi]\""}, {"from": "gpt", "value": "[hi] }"}]}),
        llava(1),
    ])
    .expect("json");
    let json_path = dir.path().join("set.json");
    std::fs::write(&json_path, array).expect("write");
    let ds = DataSource::open(&source(&json_path, SourceFormat::Auto), 0).expect("json array");
    assert_eq!(ds.format, SourceFormat::LlavaJson);
    expect_two_turn_sample(&ds);
    assert_eq!(
        ds.get(0, 0).expect("row 0").messages[1].content,
        vec![SamplePart::Text("[hi] }".into())]
    );

    let jsonl_path = dir.path().join("set.jsonl");
    std::fs::write(&jsonl_path, format!("{}\n\n{}\n", llava(0), llava(1))).expect("write");
    let ds = DataSource::open(&source(&jsonl_path, SourceFormat::Auto), 0).expect("jsonl");
    assert_eq!(ds.format, SourceFormat::LlavaJsonl);
    expect_two_turn_sample(&ds);

    let chat = serde_json::json!({"messages": [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Where is the cube?"}]},
        {"role": "assistant", "content": "On the left."}], "images": ["a.png"]});
    let chat_path = dir.path().join("chat.jsonl");
    std::fs::write(&chat_path, format!("{chat}\n{chat}\n")).expect("write");
    let ds = DataSource::open(&source(&chat_path, SourceFormat::Auto), 0).expect("chat");
    assert_eq!(ds.format, SourceFormat::ChatJsonl);
    expect_two_turn_sample(&ds);

    let record = svlm_synth::record::SpatialRecord {
        id: "s1".into(),
        image: "a.png".into(),
        conversations: vec![
            svlm_synth::record::Turn {
                from: svlm_synth::record::Role::Human,
                value: "<image>\nWhere is the cube?".into(),
            },
            svlm_synth::record::Turn {
                from: svlm_synth::record::Role::Gpt,
                value: "On the left.".into(),
            },
        ],
        spatial: vec![],
        provenance: None,
    };
    let line = serde_json::to_string(&record).expect("record");
    let synth_path = dir.path().join("synth.jsonl");
    std::fs::write(&synth_path, format!("{line}\n{line}\n")).expect("write");
    let ds = DataSource::open(&source(&synth_path, SourceFormat::SynthJsonl), 0).expect("synth");
    expect_two_turn_sample(&ds);
}

#[test]
fn parquet_with_embedded_image_bytes_reads_lazily_by_row_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let png_path = dir.path().join("a.png");
    write_png(&png_path, [200, 0, 0]);
    let png = std::fs::read(&png_path).expect("png bytes");

    // HF datasets layout: images: list<struct<bytes: binary, path: string>>, messages: list<struct<role, content>>.
    let image_fields = Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ]);
    let message_fields = Fields::from(vec![
        Field::new("role", DataType::Utf8, false),
        Field::new("content", DataType::Utf8, false),
    ]);
    let rows = 5usize;
    let images = StructArray::new(
        image_fields.clone(),
        vec![
            Arc::new(BinaryArray::from_iter_values(
                (0..rows).map(|_| png.as_slice()),
            )) as ArrayRef,
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| format!("img{i}.png")),
            )) as ArrayRef,
        ],
        None,
    );
    let images = ListArray::new(
        Arc::new(Field::new("item", DataType::Struct(image_fields), true)),
        OffsetBuffer::from_lengths(vec![1; rows]),
        Arc::new(images),
        None,
    );
    let roles: Vec<&str> = (0..rows).flat_map(|_| ["user", "assistant"]).collect();
    let contents: Vec<String> = (0..rows)
        .flat_map(|i| {
            [
                "<image>Where is the cube?".to_string(),
                format!("Answer {i}."),
            ]
        })
        .collect();
    let messages = StructArray::new(
        message_fields.clone(),
        vec![
            Arc::new(StringArray::from(roles)) as ArrayRef,
            Arc::new(StringArray::from(contents)) as ArrayRef,
        ],
        None,
    );
    let messages = ListArray::new(
        Arc::new(Field::new("item", DataType::Struct(message_fields), true)),
        OffsetBuffer::from_lengths(vec![2; rows]),
        Arc::new(messages),
        None,
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("images", images.data_type().clone(), true),
        Field::new("messages", messages.data_type().clone(), true),
    ]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(images), Arc::new(messages)])
        .expect("batch");
    let path = dir.path().join("set.parquet");
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_size(2)
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&path).expect("create"),
        schema,
        Some(props),
    )
    .expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");

    let ds = DataSource::open(&source(&path, SourceFormat::Auto), 0).expect("parquet");
    assert_eq!(ds.format, SourceFormat::Parquet);
    assert_eq!(ds.len(), rows);
    let s = ds.get(4, 0).expect("last row (third row group)");
    assert_eq!(
        s.messages[1].content,
        vec![SamplePart::Text("Answer 4.".into())]
    );
    assert!(matches!(&s.images[0], ImageRef::Bytes(b) if *b == png));
    assert_eq!(
        s.images[0].load().expect("decode").get_pixel(0, 0).0,
        [200, 0, 0]
    );
    assert!(s.origin.contains("#group2/row0"), "{}", s.origin);
}

#[test]
fn malformed_rows_and_missing_images_are_counted_named_and_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_png(&dir.path().join("ok.png"), [1, 2, 3]);
    let good = serde_json::json!({"image": "ok.png", "conversations": [
        {"from": "human", "value": "<image>\nColour?"}, {"from": "gpt", "value": "Dark."}]});
    let missing = serde_json::json!({"image": "gone.png", "conversations": [
        {"from": "human", "value": "<image>\nColour?"}, {"from": "gpt", "value": "Dark."}]});
    let mut lines = Vec::new();
    for i in 0..18 {
        lines.push(match i {
            3 => "{\"conversations\": [".to_string(),
            11 => missing.to_string(),
            _ => good.to_string(),
        });
    }
    let path = dir.path().join("rows.jsonl");
    std::fs::write(&path, lines.join("\n")).expect("write");

    let ds = DataSource::open(&source(&path, SourceFormat::LlavaJsonl), 0).expect("open");
    assert_eq!((ds.len(), ds.bad_count(), ds.scanned), (16, 2, 18));
    let bad = ds.bad.lock().expect("lock").clone();
    assert!(
        bad[0].origin.ends_with("rows.jsonl:4") && bad[0].reason.contains("malformed JSON"),
        "{bad:?}"
    );
    assert!(
        bad[1].origin.ends_with("rows.jsonl:12") && bad[1].reason.contains("gone.png"),
        "{bad:?}"
    );

    // 2 of 18 = 11%: fine under 20%, a failure under 5% that names the rows.
    assert!(ds.check_bad_fraction(0.2).is_ok());
    let err = ds.check_bad_fraction(0.05).expect_err("too many");
    assert!(matches!(
        err,
        DataError::TooManyBad {
            bad: 2,
            total: 18,
            ..
        }
    ));
    assert!(err.to_string().contains("rows.jsonl:4"), "{err}");

    // The same through a run: it fails before training with the source named.
    let dev = burn::tensor::Device::flex().autodiff();
    let cfg = RunConfig::from_toml_str(&config_text(&[("rows", &path, 1.0)], ""), dir.path())
        .expect("config")
        .with_overrides(&["data.max_bad_fraction=0.05".into()])
        .expect("override");
    let err = train(
        &cfg,
        &dir.path().join("run"),
        TinyVlm::new(&dev, 0),
        &ByteEncoder,
        &dev,
        &TrainOptions::default(),
    )
    .expect_err("too many bad rows");
    assert!(
        matches!(err, TrainError::Data(DataError::TooManyBad { .. })),
        "{err}"
    );
    let ok = cfg
        .with_overrides(&["data.max_bad_fraction=0.2".into()])
        .expect("override");
    let outcome = train(
        &ok,
        &dir.path().join("run2"),
        TinyVlm::new(&dev, 0),
        &ByteEncoder,
        &dev,
        &TrainOptions::default(),
    )
    .expect("trains past the bad rows");
    assert_eq!(outcome.sources[0].bad_rows, 2);
    let bad_log =
        std::fs::read_to_string(dir.path().join("run2/bad_rows.jsonl")).expect("bad_rows.jsonl");
    assert!(bad_log.contains("rows.jsonl:12") && bad_log.contains("gone.png"));
}

/// A LLaVA JSONL source of `rows` rows in `dir`: every 100th row (from `offset`) is malformed JSON and every 100th
/// (from `offset + 50`) names an image whose bytes are not an image (found only when the row is drawn). Returns
/// the file and the (line, why) of each bad row.
fn source_with_bad_rows(dir: &Path, name: &str, rows: usize, offset: usize) -> std::path::PathBuf {
    write_png(&dir.join("ok.png"), [9, 9, 9]);
    let row = |image: &str, i: usize| {
        serde_json::json!({"image": image, "conversations": [
            {"from": "human", "value": "<image>\nHow far?"},
            {"from": "gpt", "value": format!("{i} cm.")}]})
        .to_string()
    };
    let mut lines = Vec::new();
    for i in 0..rows {
        lines.push(if i % 100 == offset {
            "{\"image\": \"ok.png\", \"conversations\": [{\"from\": \"hu".to_string()
        } else if i % 100 == offset + 50 {
            let image = format!("{name}_corrupt_{i}.png");
            std::fs::write(dir.join(&image), b"\x89PNG\r\n\x1a\nnot really").expect("write");
            row(&image, i)
        } else {
            row("ok.png", i)
        });
    }
    let path = dir.join(format!("{name}.jsonl"));
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    path
}

#[test]
fn one_percent_corrupt_images_and_one_percent_malformed_rows_train_through_or_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alpha = source_with_bad_rows(dir.path(), "alpha", 600, 7);
    let beta = source_with_bad_rows(dir.path(), "beta", 400, 21);
    let config = |max_bad: f64| {
        let text = format!(
            "seed = 3\n[model]\nconfig = \"unused.json\"\nmax_seq_len = 64\n[train]\nstage = \"full\"\n\
             batch_size = 8\npacking = false\n[optim]\nlr = 1e-3\nwarmup_steps = 2\n[log]\nprogress = false\n\
             tensorboard = false\n[checkpoint]\nevery = 1000\n[data]\nstop = \"all_exhausted\"\n\
             max_bad_fraction = {max_bad}\n\
             [[data.sources]]\nname = \"alpha\"\npath = \"{}\"\nweight = 0.6\nepochs = 2\n\
             [[data.sources]]\nname = \"beta\"\npath = \"{}\"\nweight = 0.4\nepochs = 2\n",
            alpha.display(),
            beta.display()
        );
        RunConfig::from_toml_str(&text, dir.path()).expect("config")
    };
    let dev = burn::tensor::Device::flex().autodiff();

    // 2% bad under a 5% limit: every epoch of both sources is trained, each bad row counted once per source
    // (although drawn in both epochs) and listed with its line and reason.
    let run = dir.path().join("run");
    let outcome = train(
        &config(0.05),
        &run,
        TinyVlm::new(&dev, 0),
        &ByteEncoder,
        &dev,
        &TrainOptions::default(),
    )
    .expect("trains through 2% bad rows");
    let counted: Vec<(&str, usize, u64)> = outcome
        .sources
        .iter()
        .map(|s| (s.name.as_str(), s.bad_rows, s.samples))
        .collect();
    assert_eq!(
        counted,
        vec![("alpha", 12, 2 * 588), ("beta", 8, 2 * 392)],
        "(source, bad rows, samples trained)"
    );
    let listed: Vec<serde_json::Value> = std::fs::read_to_string(run.join("bad_rows.jsonl"))
        .expect("bad_rows.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(listed.len(), 20);
    for (name, rows, offset) in [("alpha", 600, 7), ("beta", 400, 21)] {
        let mut lines: Vec<(usize, bool)> = listed
            .iter()
            .filter(|v| v["source"] == name)
            .map(|v| {
                let origin = v["origin"].as_str().expect("origin");
                let line: usize = origin
                    .rsplit(':')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("file:line");
                assert!(origin.contains(&format!("{name}.jsonl:")), "{origin}");
                let reason = v["reason"].as_str().expect("reason");
                (line, reason.contains("corrupt"))
            })
            .collect();
        lines.sort();
        let mut expected: Vec<(usize, bool)> = (0..rows)
            .filter(|i| i % 100 == offset || i % 100 == offset + 50)
            .map(|i| (i + 1, i % 100 == offset + 50))
            .collect();
        expected.sort();
        assert_eq!(
            lines, expected,
            "{name}: (line, image corrupt) of each listed row"
        );
    }

    // Under a 1.5% limit the scan's 1% malformed rows pass, and the run stops once the corrupt images it draws
    // take a source past the limit, with a message that names the source, the counts and the rows.
    let err = train(
        &config(0.015),
        &dir.path().join("run_refused"),
        TinyVlm::new(&dev, 0),
        &ByteEncoder,
        &dev,
        &TrainOptions::default(),
    )
    .expect_err("2% bad rows over a 1.5% limit");
    let message = err.to_string();
    assert!(
        matches!(err, TrainError::Data(DataError::TooManyBad { .. }))
            && message.contains("max_bad_fraction 1.50%")
            && message.contains(".jsonl:"),
        "{message}"
    );
    assert!(
        message.contains("`alpha`") || message.contains("`beta`"),
        "{message}"
    );
}
