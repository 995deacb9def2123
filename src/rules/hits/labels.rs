//! Sequence labels for evidence positions, as the hub's review screens show them: `A1`, `A2`, …
//! in time order, and a new letter (`B1`, …) after a gap longer than the label gap. After `Z`
//! come `AA`, `AB`, … like spreadsheet columns.

use crate::model::TimeMs;

/// One label per time (times sorted ascending).
pub fn sequence_labels(times: &[TimeMs], gap_ms: TimeMs) -> Vec<String> {
    let mut labels = Vec::with_capacity(times.len());
    let (mut letter, mut number) = (0usize, 0u32);
    for (i, t) in times.iter().enumerate() {
        if i > 0 && t - times[i - 1] > gap_ms {
            letter += 1;
            number = 0;
        }
        number += 1;
        labels.push(format!("{}{number}", letters(letter)));
    }
    labels
}

fn letters(mut index: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (index % 26) as u8);
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_starts_a_new_letter() {
        let min = 60_000;
        let times = [0, min, 2 * min, 10 * min, 11 * min, 30 * min];
        assert_eq!(
            sequence_labels(&times, 5 * min),
            ["A1", "A2", "A3", "B1", "B2", "C1"]
        );
        assert_eq!(sequence_labels(&[], 5 * min), Vec::<String>::new());
    }

    #[test]
    fn letters_continue_past_z() {
        assert_eq!(letters(0), "A");
        assert_eq!(letters(25), "Z");
        assert_eq!(letters(26), "AA");
        assert_eq!(letters(27), "AB");
        assert_eq!(letters(26 + 26 * 26), "AAA");
    }
}
