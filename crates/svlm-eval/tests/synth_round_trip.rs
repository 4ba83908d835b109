//! svlm's own synthesis output through the evaluator: procedural scenes -> `svlm-synth` shard -> `read_synth` ->
//! answers. The synthesised reference answers must score 100% (the answer language round-trips), a constant
//! answerer must land in between.

use std::path::PathBuf;
use svlm_eval::{EvalOptions, FnAnswerer, evaluate, read_synth};
use svlm_synth::{
    EstimateParams, OutputFormat, QaConfig, ShardSpec, SynthOptions, TruthSource, VisibilityParams,
    WorldSource, run_shard,
};

#[test]
fn synthesised_answers_score_perfectly_and_a_constant_answer_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = WorldSource {
        scenes: 6,
        seed: 11,
        config: svlm_world::SceneConfig::default(),
        truth: TruthSource::Exact,
        estimate: EstimateParams::default(),
        visibility: VisibilityParams::default(),
    };
    let options = SynthOptions {
        out: dir.path().to_path_buf(),
        format: OutputFormat::Jsonl,
        shard: ShardSpec::new(0, 1).expect("shard"),
        seed: 3,
        qa: QaConfig::default(),
        chunk_size: 8,
        progress: false,
    };
    run_shard(&source, &options).expect("synth");
    let set = read_synth(dir.path(), None).expect("read shard folder");
    assert!(set.items.len() > 50, "{} items", set.items.len());
    assert!(
        set.items.iter().all(|i| i.image.exists()),
        "images resolve next to the shard"
    );

    let references: std::collections::HashMap<String, String> = set
        .items
        .iter()
        .map(|i| {
            (
                format!("{}|{}", i.image.display(), i.question),
                i.reference_answer.clone().unwrap_or_default(),
            )
        })
        .collect();
    let mut oracle = FnAnswerer(|batch: &[(PathBuf, String)]| {
        Ok(batch
            .iter()
            .map(|(img, q)| {
                references
                    .get(&format!("{}|{q}", img.display()))
                    .cloned()
                    .unwrap_or_default()
            })
            .collect())
    });
    let report = evaluate(
        &set,
        &mut oracle,
        &EvalOptions {
            batch_size: 16,
            ..Default::default()
        },
    )
    .expect("eval");
    let m = &report.overall;
    assert_eq!(
        m.valid_format_rate,
        Some(1.0),
        "{:#?}",
        report.predictions.iter().find(|p| !p.score.is_valid())
    );
    assert_eq!(
        m.accuracy.over_all,
        Some(1.0),
        "{:#?}",
        report.predictions.iter().find(|p| !p.score.correct)
    );
    assert!(m.binary.total > 0 && m.within_2x.total > 0);

    let mut constant = FnAnswerer(|batch: &[(PathBuf, String)]| {
        Ok(vec!["Yes, about 1 m.".to_string(); batch.len()])
    });
    let report = evaluate(&set, &mut constant, &EvalOptions::default()).expect("eval");
    let binary = report.overall.binary.over_all.unwrap_or(0.0);
    assert!(binary < 1.0, "a constant yes cannot answer every predicate");
    assert!(report.overall.within_2x.over_all.unwrap_or(1.0) < 1.0);
}
