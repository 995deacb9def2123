//! Which partition a tag's readings belong to (the stream's subject, and the event-time clock
//! the pipeline keeps for it when `[pipeline] clock_partitions` > 1): a stable hash of the tag id, the same on every
//! node, every build and every Rust release (xxh3 with seed 0, a published algorithm — not the
//! standard library's `DefaultHasher`, whose output may change between releases and would move
//! tags between partitions after an upgrade).

use xxhash_rust::xxh3::xxh3_64;

/// The partition (0..`partitions`) of `tag`. `partitions` of 0 is treated as 1.
pub fn partition_of(tag: &str, partitions: u32) -> u32 {
    (xxh3_64(tag.as_bytes()) % u64::from(partitions.max(1))) as u32
}

/// A set of partitions (of `count`), as an operator writes it: `0-31`, `0,5,9-12`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSet {
    count: u32,
    owned: Vec<bool>,
}

/// Why a partition list was refused (the part named is the one at fault).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PartitionSetError {
    #[error(
        "partitions: {count} partition(s) in all: only one, so there is nothing to choose from"
    )]
    OnlyOne { count: u32 },
    #[error("partitions: {part:?} is not a partition number or a range like 0-31")]
    NotANumber { part: String },
    #[error("partitions: {part:?} names partition {partition}, but there are {count} (0 to {})", count - 1)]
    OutOfRange {
        part: String,
        partition: u32,
        count: u32,
    },
    #[error("partitions: the range {part:?} runs backwards")]
    Backwards { part: String },
    #[error("partitions: the list is empty (write `none` for a node that owns none)")]
    Empty,
}

impl PartitionSet {
    /// Parses `text` (comma-separated numbers and inclusive ranges) among `count` partitions;
    /// `none` is the empty set (a node that runs no rules and serves what others publish).
    pub fn parse(text: &str, count: u32) -> Result<Self, PartitionSetError> {
        if count <= 1 {
            return Err(PartitionSetError::OnlyOne { count });
        }
        let mut owned = vec![false; count as usize];
        if text.trim() == "none" {
            return Ok(Self { count, owned });
        }
        let number = |part: &str, n: &str| -> Result<u32, PartitionSetError> {
            let partition: u32 = n
                .trim()
                .parse()
                .map_err(|_| PartitionSetError::NotANumber {
                    part: part.to_string(),
                })?;
            if partition >= count {
                return Err(PartitionSetError::OutOfRange {
                    part: part.to_string(),
                    partition,
                    count,
                });
            }
            Ok(partition)
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => (number(part, a)?, number(part, b)?),
                None => {
                    let n = number(part, part)?;
                    (n, n)
                }
            };
            if last < first {
                return Err(PartitionSetError::Backwards {
                    part: part.to_string(),
                });
            }
            for p in first..=last {
                owned[p as usize] = true;
            }
        }
        if !owned.contains(&true) {
            return Err(PartitionSetError::Empty);
        }
        Ok(Self { count, owned })
    }

    /// How many partitions there are in all.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether partition `partition` is in the set.
    pub fn contains(&self, partition: u32) -> bool {
        self.owned.get(partition as usize).copied().unwrap_or(false)
    }

    /// Whether `tag`'s partition is in the set.
    pub fn holds_tag(&self, tag: &str) -> bool {
        self.contains(partition_of(tag, self.count))
    }

    /// The partitions in the set, in order.
    pub fn members(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.count).filter(|p| self.contains(*p))
    }

    /// The set written back as ranges (`0-3,9`; `none`).
    pub fn describe(&self) -> String {
        if !self.owned.contains(&true) {
            return "none".into();
        }
        let mut parts = Vec::new();
        let mut members = self.members().peekable();
        while let Some(first) = members.next() {
            let mut last = first;
            while members.peek() == Some(&(last + 1)) {
                last = members.next().unwrap_or(last);
            }
            parts.push(if first == last {
                first.to_string()
            } else {
                format!("{first}-{last}")
            });
        }
        parts.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partition_of_a_tag_is_pinned() {
        // Pinned to the published algorithm (values from the independent Python `xxhash`
        // package): a change here moves every tag to another partition (and subject) and must
        // be a deliberate, documented migration.
        assert_eq!(xxh3_64(b"T1"), 13_786_078_924_700_508_023);
        assert_eq!(xxh3_64(b"TAG-00042"), 1_004_733_057_283_222_164);
        assert_eq!(partition_of("T1", 64), 55);
        assert_eq!(partition_of("TAG-00042", 64), 20);
        assert_eq!(partition_of("", 64), 2);
    }

    #[test]
    fn tags_spread_over_the_partitions() {
        let partitions = 16;
        let mut counts = [0u32; 16];
        for i in 0..16_000 {
            counts[partition_of(&format!("TAG-{i:05}"), partitions) as usize] += 1;
        }
        for (p, n) in counts.iter().enumerate() {
            assert!(
                (800..1200).contains(n),
                "partition {p} holds {n} of 16,000 tags"
            );
        }
        assert_eq!(partition_of("anything", 0), 0);
    }

    #[test]
    fn partition_lists_parse_and_name_what_is_wrong() {
        let set = PartitionSet::parse("0-3, 9,12-13", 16).unwrap();
        assert_eq!(
            set.members().collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 9, 12, 13]
        );
        assert_eq!(set.describe(), "0-3,9,12-13");
        assert!(set.holds_tag("T1") == set.contains(partition_of("T1", 16)));
        assert_eq!(
            PartitionSet::parse("0-16", 16),
            Err(PartitionSetError::OutOfRange {
                part: "0-16".into(),
                partition: 16,
                count: 16
            })
        );
        assert_eq!(
            PartitionSet::parse("5-2", 16),
            Err(PartitionSetError::Backwards { part: "5-2".into() })
        );
        assert_eq!(
            PartitionSet::parse("a", 16),
            Err(PartitionSetError::NotANumber { part: "a".into() })
        );
        assert_eq!(
            PartitionSet::parse(" , ", 16),
            Err(PartitionSetError::Empty)
        );
        assert_eq!(
            PartitionSet::parse("0", 1),
            Err(PartitionSetError::OnlyOne { count: 1 })
        );
        let msg = PartitionSet::parse("0-70", 64).unwrap_err().to_string();
        assert!(msg.contains("\"0-70\"") && msg.contains("0 to 63"), "{msg}");
    }
}
