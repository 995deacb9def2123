//! `application/x-www-form-urlencoded` text, the query string's format too: `name=value` pairs
//! joined by `&`, `+` for a space, `%XX` for any byte. Decoding is strict: a `%` not followed by
//! two hex digits is refused (not passed through, as lenient decoders do), and so is a name or
//! value that is not UTF-8 once decoded. Empty segments (`a=1&&b=2`) are skipped; a segment
//! without `=` is a name with an empty value.

use super::error::{quoted, OsmandError};
use std::borrow::Cow;

/// One decoded `name=value` pair.
pub type Param<'a> = (Cow<'a, str>, Cow<'a, str>);

/// Decodes the pairs of `text` onto `params`, refusing to hold more than `max_params` in all.
pub fn decode_params<'a>(
    text: &'a [u8],
    params: &mut Vec<Param<'a>>,
    max_params: usize,
) -> Result<(), OsmandError> {
    for segment in text.split(|b| *b == b'&').filter(|s| !s.is_empty()) {
        if params.len() >= max_params {
            return Err(OsmandError::TooManyParameters { max_params });
        }
        let index = params.len();
        let (name, value) = match segment.iter().position(|b| *b == b'=') {
            Some(eq) => (&segment[..eq], &segment[eq + 1..]),
            None => (segment, &segment[segment.len()..]),
        };
        params.push((
            percent_decode(name, index, "name")?,
            percent_decode(value, index, "value")?,
        ));
    }
    Ok(())
}

/// Percent-decodes one name or value (`part`) of parameter `index`; borrows when nothing is
/// escaped, which is most of what apps send.
fn percent_decode<'a>(
    raw: &'a [u8],
    index: usize,
    part: &'static str,
) -> Result<Cow<'a, str>, OsmandError> {
    let not_utf8 = || OsmandError::NotUtf8 { index, part };
    if !raw.iter().any(|b| matches!(b, b'%' | b'+')) {
        return std::str::from_utf8(raw)
            .map(Cow::Borrowed)
            .map_err(|_| not_utf8());
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let byte = raw
                    .get(i + 1..i + 3)
                    .and_then(|hex| Some(hex_value(hex[0])? << 4 | hex_value(hex[1])?))
                    .ok_or_else(|| OsmandError::BadPercentEncoding {
                        index,
                        part,
                        offset: i,
                        text: quoted(&String::from_utf8_lossy(raw)),
                    })?;
                out.push(byte);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| not_utf8())
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).map(|v| v as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::osmand::public_vectors::pairs;

    fn decode(text: &str) -> Result<Vec<(String, String)>, OsmandError> {
        let mut params = Vec::new();
        decode_params(text.as_bytes(), &mut params, 8)?;
        Ok(params
            .into_iter()
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect())
    }

    #[test]
    fn pairs_are_split_and_decoded() {
        assert_eq!(
            decode("id=1&timestamp=2016-01-27T18%3A55%3A47Z&&t=2014-06-04+09%3A10%3A11&flag"),
            Ok(pairs(&[
                ("id", "1"),
                ("timestamp", "2016-01-27T18:55:47Z"),
                ("t", "2014-06-04 09:10:11"),
                ("flag", ""),
            ]))
        );
        assert_eq!(decode("a%3Db=%C3%BC%2b"), Ok(pairs(&[("a=b", "ü+")])));
        assert_eq!(decode(""), Ok(vec![]));
    }

    #[test]
    fn bad_escapes_non_utf8_and_too_many_are_refused() {
        assert_eq!(
            decode("id=1&lat=12%G0"),
            Err(OsmandError::BadPercentEncoding {
                index: 1,
                part: "value",
                offset: 2,
                text: "12%G0".into()
            })
        );
        assert!(matches!(
            decode("id%=1"),
            Err(OsmandError::BadPercentEncoding { part: "name", .. })
        ));
        assert!(matches!(
            decode("id=1%"),
            Err(OsmandError::BadPercentEncoding { .. })
        ));
        assert!(matches!(
            decode("id=1%4"),
            Err(OsmandError::BadPercentEncoding { .. })
        ));
        assert_eq!(
            decode("id=%FF"),
            Err(OsmandError::NotUtf8 {
                index: 0,
                part: "value"
            })
        );
        let mut params = Vec::new();
        assert_eq!(
            decode_params(b"id=%C3", &mut params, 8),
            Err(OsmandError::NotUtf8 {
                index: 0,
                part: "value"
            })
        );
        assert_eq!(
            decode("a&b&c&d&e&f&g&h&i"),
            Err(OsmandError::TooManyParameters { max_params: 8 })
        );
    }
}
