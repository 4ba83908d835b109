//! Object names in free text: reading the two objects of a reward task, splitting lists of objects, and matching
//! a name someone wrote ("the can") to the names a frame or scene gives ("red can").

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("no object named {query:?} (known: {known})")]
    NotFound { query: String, known: String },
    #[error("{query:?} is ambiguous: it matches {matches}")]
    Ambiguous { query: String, matches: String },
}

/// Lower case, trimmed, trailing punctuation and a leading article ("the", "a", "an") removed.
pub fn clean_name(text: &str) -> String {
    let t = text
        .trim()
        .trim_end_matches(['?', '.', '!', ',', ';', ':'])
        .trim()
        .to_lowercase();
    for article in ["the ", "a ", "an "] {
        if let Some(rest) = t.strip_prefix(article) {
            return rest.trim().to_string();
        }
    }
    t
}

/// The two objects of a reward task: "distance between the gripper and the red can", "distance from X to Y",
/// "how far is X from Y", "X to Y".
pub fn parse_task(task: &str) -> anyhow::Result<[String; 2]> {
    let lower = task.trim().trim_end_matches(['?', '.', '!']).to_lowercase();
    let body = ["how far is ", "how far apart are "]
        .iter()
        .find_map(|p| lower.strip_prefix(p).map(|r| r.to_string()))
        .or_else(|| {
            ["distance between ", "gap between ", "between "]
                .iter()
                .find_map(|p| lower.find(p).map(|at| lower[at + p.len()..].to_string()))
        })
        .or_else(|| {
            ["distance from ", "from "]
                .iter()
                .find_map(|p| lower.find(p).map(|at| lower[at + p.len()..].to_string()))
        })
        .unwrap_or_else(|| lower.clone());
    for separator in [" and ", " from ", " to "] {
        if let Some((a, b)) = body.split_once(separator) {
            let (a, b) = (clean_name(a), clean_name(b));
            if !a.is_empty() && !b.is_empty() && a != b {
                return Ok([a, b]);
            }
        }
    }
    anyhow::bail!(
        "cannot read two objects from the task {task:?}; write it like \"distance between the gripper and the red can\""
    )
}

/// Splits "A, B and C" / "A, B, and C" / "A and B" into cleaned names.
pub fn split_list(text: &str) -> Vec<String> {
    let normalized = text.replace(", and ", ", ").replace(" and ", ", ");
    normalized
        .split(',')
        .map(clean_name)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Index of the name in `names` that `query` means: an exact (cleaned, case-insensitive) match, else the only
/// name that ends with the query as whole words ("can" -> "red can"), else the only name containing it.
pub fn match_name<S: AsRef<str>>(query: &str, names: &[S]) -> Result<usize, NameError> {
    let q = clean_name(query);
    let cleaned: Vec<String> = names.iter().map(|n| clean_name(n.as_ref())).collect();
    let exact: Vec<usize> = (0..cleaned.len()).filter(|&i| cleaned[i] == q).collect();
    if exact.len() == 1 {
        return Ok(exact[0]);
    }
    let suffix: Vec<usize> = (0..cleaned.len())
        .filter(|&i| cleaned[i].ends_with(&format!(" {q}")))
        .collect();
    let contains: Vec<usize> = (0..cleaned.len())
        .filter(|&i| format!(" {} ", cleaned[i]).contains(&format!(" {q} ")))
        .collect();
    for candidates in [&exact, &suffix, &contains] {
        match candidates.len() {
            0 => continue,
            1 => return Ok(candidates[0]),
            _ => {
                return Err(NameError::Ambiguous {
                    query: q,
                    matches: candidates
                        .iter()
                        .map(|&i| names[i].as_ref().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
    }
    Err(NameError::NotFound {
        query: q,
        known: names
            .iter()
            .map(|n| n.as_ref().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_task_shapes() {
        let want = ["gripper".to_string(), "red can".to_string()];
        assert_eq!(
            parse_task("distance between the gripper and the red can").unwrap(),
            want
        );
        assert_eq!(
            parse_task("Distance from the gripper to the red can.").unwrap(),
            want
        );
        assert_eq!(
            parse_task("How far is the gripper from the red can?").unwrap(),
            want
        );
        assert_eq!(parse_task("gripper to red can").unwrap(), want);
        assert!(parse_task("pick up the can").is_err());
        assert!(parse_task("distance between the can and the can").is_err());
    }

    #[test]
    fn splits_lists() {
        assert_eq!(
            split_list("the blue can, the red can and the green sponge"),
            vec!["blue can", "red can", "green sponge"]
        );
        assert_eq!(split_list("A, B, and C"), vec!["a", "b", "c"]);
    }

    #[test]
    fn matches_names() {
        let names = ["red can", "blue can", "gripper", "green sponge"];
        assert_eq!(match_name("the gripper", &names), Ok(2));
        assert_eq!(match_name("Red Can", &names), Ok(0));
        assert_eq!(match_name("sponge", &names), Ok(3));
        assert!(matches!(
            match_name("can", &names),
            Err(NameError::Ambiguous { .. })
        ));
        assert!(matches!(
            match_name("table", &names),
            Err(NameError::NotFound { .. })
        ));
    }
}
