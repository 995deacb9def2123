//! Alerts as JSON Lines: the final state of every alert, one per line, in a fixed order
//! (start, activation, type, id) so that the same alerts always give the same bytes.

use crate::model::Alert;
use std::io::Write;

/// Sorts alerts into output order.
pub fn sort_alerts(alerts: &mut [Alert]) {
    alerts.sort_by(|a, b| {
        (a.start, &a.activation, a.alert_type, &a.id).cmp(&(
            b.start,
            &b.activation,
            b.alert_type,
            &b.id,
        ))
    });
}

/// Writes alerts (already in output order) as JSON Lines.
pub fn write_alerts<'a>(
    out: &mut impl Write,
    alerts: impl IntoIterator<Item = &'a Alert>,
) -> std::io::Result<()> {
    for alert in alerts {
        serde_json::to_writer(&mut *out, alert).map_err(std::io::Error::other)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
