//! The record format is stable through its types: records written by `svlm synth` (committed in
//! `fixtures/records.jsonl`: exact and estimated truth, predicates, choices, quantities, general questions) read into
//! the typed `SpatialRecord` and write back byte for byte.

use svlm_synth::SpatialRecord;
use svlm_synth::qa::Relation;
use svlm_synth::record::{QuestionKind, Role, TruthSource};

const RECORDS: &str = include_str!("fixtures/records.jsonl");

#[test]
fn committed_records_round_trip_byte_identical() {
    let mut kinds = Vec::new();
    let mut sources = std::collections::BTreeSet::new();
    for (n, line) in RECORDS.lines().enumerate() {
        let record: SpatialRecord =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", n + 1));
        let back = serde_json::to_string(&record).expect("serialize");
        assert_eq!(back, line, "line {} changed", n + 1);
        assert_eq!(record.conversations[0].from, Role::Human);
        for qa in &record.spatial {
            kinds.push(qa.kind);
            sources.insert(qa.source.as_str());
            assert_eq!(qa.kind.as_str().parse::<QuestionKind>(), Ok(qa.kind));
        }
    }
    let has = |family: fn(&QuestionKind) -> bool| kinds.iter().any(family);
    assert!(
        has(|k| matches!(k, QuestionKind::Predicate(_))),
        "{kinds:?}"
    );
    assert!(has(|k| matches!(k, QuestionKind::Choice(_))), "{kinds:?}");
    assert!(has(|k| matches!(k, QuestionKind::Quantity(_))), "{kinds:?}");
    assert!(has(|k| matches!(k, QuestionKind::General(_))), "{kinds:?}");
    assert_eq!(
        sources.into_iter().collect::<Vec<_>>(),
        [TruthSource::Estimated.as_str(), TruthSource::Exact.as_str()]
    );
}

#[test]
fn unknown_names_are_errors_that_say_what() {
    let line = RECORDS.lines().next().expect("a record");
    let bad_type = line.replacen("\"type\":\"", "\"type\":\"sideways_", 1);
    let err = serde_json::from_str::<SpatialRecord>(&bad_type).expect_err("unknown type");
    assert!(err.to_string().contains("unknown question type"), "{err}");
    let bad_role = line.replacen("\"from\":\"human\"", "\"from\":\"narrator\"", 1);
    assert!(serde_json::from_str::<SpatialRecord>(&bad_role).is_err());
    let bad_source = line.replacen("\"source\":\"", "\"source\":\"guessed_", 1);
    assert!(serde_json::from_str::<SpatialRecord>(&bad_source).is_err());
}

#[test]
fn every_kind_has_a_distinct_name_that_parses_back() {
    let all: Vec<QuestionKind> = QuestionKind::all().collect();
    let names: std::collections::BTreeSet<&str> = all.iter().map(|k| k.as_str()).collect();
    assert_eq!(names.len(), all.len());
    for k in all {
        assert_eq!(k.as_str().parse::<QuestionKind>(), Ok(k));
    }
    assert_eq!(Relation::Front.word(), "front");
    assert_eq!(
        QuestionKind::Choice(Relation::Thinner).as_str(),
        "thinner_choice"
    );
}
