//! Subjects on the JetStream stream. A tag's batches go to `<prefix>.in.<partition>.<tag>` so
//! that partitions can be owned and consumed separately; control records (people, orders,
//! decisions, users, crime batches) go to `<prefix>.ctl`. A tag id is any text the protocol
//! allows, so it is encoded into one subject token: letters, digits, `-` and `_` stay as they
//! are, every other byte becomes `~` and two upper-case hex digits. `.`, `*`, `>`, whitespace
//! and `~` itself can therefore never split a subject or act as a wildcard, and the encoding is
//! reversible.

/// Why a subject token is not an encoded tag id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("subject token {token:?}: {what} at byte {at}")]
    BadToken {
        token: String,
        what: &'static str,
        at: usize,
    },
    #[error("subject {0:?} is not a tag subject (<prefix>.in.<partition>.<tag>)")]
    NotATagSubject(String),
}

/// One subject token holding `tag` (see the module doc).
pub fn encode_tag(tag: &str) -> String {
    let mut token = String::with_capacity(tag.len());
    for byte in tag.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            token.push(byte as char);
        } else {
            token.push('~');
            token.push_str(&format!("{byte:02X}"));
        }
    }
    if token.is_empty() {
        // An empty token would leave `..` in the subject: the empty tag is `~`.
        token.push('~');
    }
    token
}

/// The tag id a token holds (the inverse of [`encode_tag`]).
pub fn decode_tag(token: &str) -> Result<String, SubjectError> {
    let bad = |what, at| SubjectError::BadToken {
        token: token.to_string(),
        what,
        at,
    };
    if token == "~" {
        return Ok(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'~' {
            let hex = token.get(i + 1..i + 3).ok_or(bad("a cut escape", i))?;
            let value = u8::from_str_radix(hex, 16).map_err(|_| bad("a bad escape", i))?;
            if value.is_ascii_alphanumeric() || value == b'-' || value == b'_' {
                // Only one spelling per tag, so two tokens never name the same tag.
                return Err(bad("an escape of a plain character", i));
            }
            if hex.bytes().any(|h| h.is_ascii_lowercase()) {
                return Err(bad("a lower-case escape", i));
            }
            out.push(value);
            i += 3;
        } else if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            out.push(byte);
            i += 1;
        } else {
            return Err(bad("a character a token may not hold", i));
        }
    }
    String::from_utf8(out).map_err(|_| bad("bytes that are not UTF-8", 0))
}

/// The subject of a tag's batches.
pub fn batch_subject(prefix: &str, partition: u32, tag: &str) -> String {
    format!("{prefix}.in.{partition}.{}", encode_tag(tag))
}

/// The subject of control records.
pub fn control_subject(prefix: &str) -> String {
    format!("{prefix}.ctl")
}

/// Every subject of the stream (its filter).
pub fn stream_subjects(prefix: &str) -> Vec<String> {
    vec![format!("{prefix}.in.>"), control_subject(prefix)]
}

/// `(partition, tag)` of a batch subject.
pub fn parse_batch_subject(prefix: &str, subject: &str) -> Result<(u32, String), SubjectError> {
    let not = || SubjectError::NotATagSubject(subject.to_string());
    let rest = subject
        .strip_prefix(prefix)
        .and_then(|s| s.strip_prefix(".in."))
        .ok_or_else(not)?;
    let (partition, token) = rest.split_once('.').ok_or_else(not)?;
    let partition = partition.parse().map_err(|_| not())?;
    Ok((partition, decode_tag(token)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wildcards_and_separators_cannot_break_a_subject() {
        for tag in ["T.1", "*", ">", "a b", "T~1", "", "tag.>", "ünï"] {
            let subject = batch_subject("ts", 7, tag);
            let tokens: Vec<&str> = subject.split('.').collect();
            assert_eq!(tokens.len(), 4, "{tag:?} → {subject}");
            assert!(
                !tokens[3].contains(['*', '>', ' ', '.']),
                "{tag:?} → {subject}"
            );
            assert_eq!(
                parse_batch_subject("ts", &subject),
                Ok((7, tag.to_string()))
            );
        }
        assert_eq!(encode_tag("TAG-0001_a"), "TAG-0001_a");
        assert_eq!(encode_tag("T.1"), "T~2E1");
    }

    #[test]
    fn a_token_that_is_not_an_encoded_tag_is_refused_with_where() {
        for (token, at) in [
            ("T~2", 1),
            ("T~ZZ", 1),
            ("T~41", 1),
            ("T~2e", 1),
            ("a*b", 1),
        ] {
            match decode_tag(token) {
                Err(SubjectError::BadToken { at: got, .. }) => assert_eq!(got, at, "{token}"),
                other => panic!("{token}: {other:?}"),
            }
        }
        assert!(parse_batch_subject("ts", "ts.ctl").is_err());
        assert!(parse_batch_subject("ts", "ts.in.x.T1").is_err());
    }

    proptest! {
        #[test]
        fn every_tag_round_trips_through_one_token(tag in "\\PC{0,40}") {
            let token = encode_tag(&tag);
            prop_assert!(!token.is_empty());
            prop_assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_~".contains(&b)));
            prop_assert_eq!(decode_tag(&token), Ok(tag));
        }
    }
}
