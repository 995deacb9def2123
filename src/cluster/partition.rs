//! Which partition a tag's readings belong to: a stable hash of the tag id, the same on every
//! node, every build and every Rust release (xxh3 with seed 0, a published algorithm — not the
//! standard library's `DefaultHasher`, whose output may change between releases and would move
//! tags between partitions after an upgrade).

use xxhash_rust::xxh3::xxh3_64;

/// The partition (0..`partitions`) of `tag`. `partitions` of 0 is treated as 1.
pub fn partition_of(tag: &str, partitions: u32) -> u32 {
    (xxh3_64(tag.as_bytes()) % u64::from(partitions.max(1))) as u32
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
}
