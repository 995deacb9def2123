//! `Content-Disposition` for downloads, built in one place (RFC 6266 with the RFC 5987
//! `filename*` parameter): an ASCII-only quoted `filename` fallback (anything but letters,
//! digits, `.`, `-` and `_` becomes `_`) and the exact name percent-encoded as UTF-8. Whatever a
//! name holds (quotes, CR/LF, non-ASCII), the header is valid and says only "attachment".

use axum::http::HeaderValue;

fn fallback(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// RFC 5987 `attr-char`s are sent as they are; every other byte is `%XX`.
fn percent_encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `attachment; filename="…"; filename*=UTF-8''…` for a file called `name`.
pub fn attachment(name: &str) -> HeaderValue {
    let value = format!(
        "attachment; filename=\"{}\"; filename*=UTF-8''{}",
        fallback(name),
        percent_encode(name)
    );
    // Only printable ASCII is ever in `value`, so this cannot fail; the fallback is belt and
    // braces.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_crlf_and_unicode_are_safe() {
        let v = attachment("AVS\"2026\r\nX-Evil: 1-hits.csv");
        let s = v.to_str().unwrap();
        assert_eq!(
            s,
            "attachment; filename=\"AVS_2026__X-Evil__1-hits.csv\"; \
             filename*=UTF-8''AVS%222026%0D%0AX-Evil%3A%201-hits.csv"
        );
        let v = attachment("Zoë.json");
        assert_eq!(
            v.to_str().unwrap(),
            "attachment; filename=\"Zo_.json\"; filename*=UTF-8''Zo%C3%AB.json"
        );
    }
}
