//! Deterministic sharding: `--shard i/n` gives shard `i` (0-based) a contiguous range of the item indices
//! (scene indices for the procedural world, positions in the sorted frame list for RGB-D folders).
//!
//! Contiguous ranges (not `index % n`) keep every shard's records in index order, so concatenating shard files
//! 0..n reproduces the unsharded output exactly. Shard sizes differ by at most one item.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// Shard `index` of `count` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    pub index: usize,
    pub count: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShardError {
    #[error("shard spec {0:?} must look like i/n (e.g. 0/8)")]
    Format(String),
    #[error(
        "shard spec {spec:?}: index {index} must be below the shard count {count} (and count >= 1)"
    )]
    Range {
        spec: String,
        index: usize,
        count: usize,
    },
}

impl Default for ShardSpec {
    fn default() -> Self {
        ShardSpec { index: 0, count: 1 }
    }
}

impl ShardSpec {
    pub fn new(index: usize, count: usize) -> Result<Self, ShardError> {
        if count == 0 || index >= count {
            return Err(ShardError::Range {
                spec: format!("{index}/{count}"),
                index,
                count,
            });
        }
        Ok(ShardSpec { index, count })
    }

    /// The item indices of this shard among `total` items.
    pub fn range(&self, total: usize) -> Range<usize> {
        let start = self.index * total / self.count;
        let end = (self.index + 1) * total / self.count;
        start..end
    }

    /// File stem shared by every file of this shard, e.g. `shard-00003-of-00008`.
    pub fn stem(&self) -> String {
        format!("shard-{:05}-of-{:05}", self.index, self.count)
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for ShardSpec {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (i, n) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| ShardError::Format(s.to_string()))?;
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| ShardError::Format(s.to_string()))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| ShardError::Format(s.to_string()))?;
        ShardSpec::new(index, count).map_err(|_| ShardError::Range {
            spec: s.to_string(),
            index,
            count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            "2/5".parse::<ShardSpec>(),
            Ok(ShardSpec { index: 2, count: 5 })
        );
        assert!(matches!(
            "5/5".parse::<ShardSpec>(),
            Err(ShardError::Range { .. })
        ));
        assert!(matches!(
            "0/0".parse::<ShardSpec>(),
            Err(ShardError::Range { .. })
        ));
        assert!(matches!(
            "a/5".parse::<ShardSpec>(),
            Err(ShardError::Format(_))
        ));
        assert!(matches!(
            "3".parse::<ShardSpec>(),
            Err(ShardError::Format(_))
        ));
    }

    #[test]
    fn shards_partition_the_items_in_order() {
        for total in [0usize, 1, 7, 100, 101] {
            for count in [1usize, 2, 3, 8, 13] {
                let mut next = 0;
                for index in 0..count {
                    let r = ShardSpec::new(index, count).expect("valid").range(total);
                    assert_eq!(r.start, next, "total {total} count {count} shard {index}");
                    assert!(r.len() <= total.div_ceil(count));
                    next = r.end;
                }
                assert_eq!(next, total);
            }
        }
    }
}
