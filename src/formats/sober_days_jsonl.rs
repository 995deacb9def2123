//! Sober days as JSON Lines (`sober_days.jsonl`): the latest classification of every day, one
//! per line, sorted by (activation, order, date) so that the same days always give the same bytes.

use crate::model::SoberDay;
use std::io::Write;

/// Sorts days into output order.
pub fn sort_sober_days(days: &mut [SoberDay]) {
    days.sort_by(|a, b| a.key().cmp(&b.key()));
}

/// Writes days (already in output order) as JSON Lines.
pub fn write_sober_days<'a>(
    out: &mut impl Write,
    days: impl IntoIterator<Item = &'a SoberDay>,
) -> std::io::Result<()> {
    for day in days {
        serde_json::to_writer(&mut *out, day).map_err(std::io::Error::other)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
