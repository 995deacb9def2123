//! An SVG chart of one wearer's alcohol readings over a period: TAC, IR voltage and skin
//! temperature in three stacked panels on one time axis, alcohol alerts as shaded spans (peak
//! marked), and the sober-day classification as a band of coloured days. Hand-written SVG, no
//! dependencies; the same inputs give the same bytes.

use crate::model::{Alert, AlertType, SoberDay, SoberDayStatus, TacSample, TimeMs};
use std::fmt::Write;

const WIDTH: f64 = 960.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const HEIGHT: f64 = 560.0;
/// Readings further apart than this are not joined by the line (not monitored in between).
const LINE_BREAK_MS: TimeMs = 90 * 60 * 1000;
/// The default confirmation threshold, drawn as a reference line.
const PEAK_LINE_GDL: f64 = 0.02;

struct Panel {
    title: &'static str,
    unit: &'static str,
    top: f64,
    height: f64,
    min: f64,
    max: f64,
}

impl Panel {
    fn y(&self, v: f64) -> f64 {
        let span = (self.max - self.min).max(1e-9);
        self.top + self.height - (v - self.min) / span * self.height
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An instant as people read it beside the rest of the console: UK local time.
fn time_label(t_ms: TimeMs) -> String {
    chrono::DateTime::from_timestamp_millis(t_ms)
        .map(|t| {
            t.with_timezone(&chrono_tz::Europe::London)
                .format("%d %b %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

/// Europe/London's offset from UTC at `t_ms` (0 or one hour), so ticks fall on local hours.
fn london_offset_ms(t_ms: TimeMs) -> TimeMs {
    use chrono::Offset;
    chrono::DateTime::from_timestamp_millis(t_ms)
        .map(|t| {
            i64::from(
                t.with_timezone(&chrono_tz::Europe::London)
                    .offset()
                    .fix()
                    .local_minus_utc(),
            ) * 1000
        })
        .unwrap_or(0)
}

/// The colour a day of `status` is drawn in (the chart's band, the sober-day calendar).
pub fn status_colour(status: SoberDayStatus) -> &'static str {
    match status {
        SoberDayStatus::Sober => "#4caf50",
        SoberDayStatus::Drinking => "#e53935",
        SoberDayStatus::Tamper => "#8e24aa",
        SoberDayStatus::Partial => "#fbc02d",
        SoberDayStatus::NotWorn => "#9e9e9e",
    }
}

fn alert_colour(alert_type: AlertType) -> Option<&'static str> {
    match alert_type {
        AlertType::DrinkingEvent => Some("#e53935"),
        AlertType::EnvironmentalAlcohol => Some("#fb8c00"),
        AlertType::AlcoholObstruction => Some("#8e24aa"),
        AlertType::AlcoholRemoval => Some("#6d4c41"),
        _ => None,
    }
}

/// Tick spacing giving at most about a dozen ticks over `span_ms`.
fn tick_step_ms(span_ms: TimeMs) -> TimeMs {
    const H: TimeMs = 3_600_000;
    [
        H,
        2 * H,
        3 * H,
        6 * H,
        12 * H,
        24 * H,
        48 * H,
        7 * 24 * H,
        14 * 24 * H,
        28 * 24 * H,
    ]
    .into_iter()
    .find(|step| span_ms / step <= 12)
    .unwrap_or(28 * 24 * H)
}

/// Draws `readings` (event time, sample) between `from_ms` and `to_ms`, with the alcohol
/// `alerts` and sober `days` that fall in the period. Readings outside the period are ignored.
pub fn tac_chart_svg(
    readings: &[(i64, TacSample)],
    alerts: &[Alert],
    days: &[SoberDay],
    from_ms: i64,
    to_ms: i64,
) -> String {
    let to_ms = to_ms.max(from_ms + 1);
    let x = |t: TimeMs| {
        LEFT + (t.clamp(from_ms, to_ms) - from_ms) as f64 / (to_ms - from_ms) as f64 * PLOT_W
    };
    let mut shown: Vec<(i64, TacSample)> = readings
        .iter()
        .filter(|(t, _)| *t >= from_ms && *t <= to_ms)
        .copied()
        .collect();
    shown.sort_by_key(|(t, _)| *t);

    let range = |f: &dyn Fn(&TacSample) -> f64, floor: (f64, f64)| {
        let (lo, hi) = shown
            .iter()
            .map(|(_, s)| f(s))
            .fold(floor, |(lo, hi), v| (lo.min(v), hi.max(v)));
        let pad = ((hi - lo) * 0.08).max(1e-3);
        (lo - pad, hi + pad)
    };
    let tac_max = shown
        .iter()
        .map(|(_, s)| s.tac_gdl())
        .fold(0.05f64, f64::max)
        * 1.1;
    let (ir_lo, ir_hi) = range(&|s| s.ir_v(), (f64::INFINITY, f64::NEG_INFINITY));
    let (temp_lo, temp_hi) = range(&|s| s.temp_c(), (f64::INFINITY, f64::NEG_INFINITY));
    let (ir_lo, ir_hi) = if shown.is_empty() {
        (0.0, 2.0)
    } else {
        (ir_lo, ir_hi)
    };
    let (temp_lo, temp_hi) = if shown.is_empty() {
        (15.0, 40.0)
    } else {
        (temp_lo, temp_hi)
    };
    let panels = [
        Panel {
            title: "TAC",
            unit: "g/dL",
            top: 70.0,
            height: 200.0,
            min: 0.0,
            max: tac_max,
        },
        Panel {
            title: "IR",
            unit: "V",
            top: 300.0,
            height: 100.0,
            min: ir_lo,
            max: ir_hi,
        },
        Panel {
            title: "Temperature",
            unit: "°C",
            top: 430.0,
            height: 90.0,
            min: temp_lo,
            max: temp_hi,
        },
    ];

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        svg,
        r##"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/><text x="{LEFT}" y="16" font-size="13">TAC, IR and temperature, {} to {} UK time</text>"##,
        escape(&time_label(from_ms)),
        escape(&time_label(to_ms))
    );

    // Day classification band.
    svg.push_str(r#"<g class="days">"#);
    for day in days {
        let (start, end) = super::sober_days::local_day_bounds(day.date);
        if end <= from_ms || start >= to_ms {
            continue;
        }
        let (x0, x1) = (x(start), x(end));
        let _ = write!(
            svg,
            r#"<rect x="{x0:.1}" y="28" width="{:.1}" height="22" fill="{}" fill-opacity="0.8" stroke="white"><title>{} {} {}</title></rect>"#,
            (x1 - x0).max(0.5),
            status_colour(day.status),
            escape(&day.order),
            day.date,
            day.status.as_str()
        );
        if x1 - x0 > 70.0 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="43" text-anchor="middle" fill="black">{} {}</text>"#,
                (x0 + x1) / 2.0,
                day.date,
                day.status.as_str()
            );
        }
    }
    svg.push_str("</g>");

    // Alert spans across all panels, peak markers on the TAC panel.
    svg.push_str(r#"<g class="alerts">"#);
    for alert in alerts {
        let Some(colour) = alert_colour(alert.alert_type) else {
            continue;
        };
        let end = alert.end.unwrap_or(to_ms);
        if end < from_ms || alert.start > to_ms {
            continue;
        }
        let (x0, x1) = (x(alert.start), x(end));
        let _ = write!(
            svg,
            r#"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}" fill-opacity="0.15"><title>{} {} {}</title></rect>"#,
            panels[0].top,
            (x1 - x0).max(1.0),
            panels[2].top + panels[2].height - panels[0].top,
            alert.alert_type.as_str(),
            escape(&alert.id),
            if alert.late { "(late)" } else { "" }
        );
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" fill="{colour}">{}</text>"#,
            x0 + 2.0,
            panels[0].top + 12.0,
            alert.alert_type.as_str()
        );
        if let Some((peak, tac)) = alert
            .details
            .as_ref()
            .and_then(|d| d.peak.zip(d.peak_tac_gdl))
        {
            if (from_ms..=to_ms).contains(&peak) {
                let _ = write!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{colour}"><title>peak {tac} g/dL at {}</title></circle>"#,
                    x(peak),
                    panels[0].y(tac),
                    escape(&time_label(peak))
                );
            }
        }
    }
    svg.push_str("</g>");

    // Time axis.
    let step = tick_step_ms(to_ms - from_ms);
    let axis_y = panels[2].top + panels[2].height;
    svg.push_str(r#"<g class="axis">"#);
    let offset_ms = london_offset_ms(from_ms);
    let mut tick = (from_ms + offset_ms).div_euclid(step) * step - offset_ms;
    while tick <= to_ms {
        if tick >= from_ms {
            let tx = x(tick);
            let _ = write!(
                svg,
                r##"<line x1="{tx:.1}" y1="{:.1}" x2="{tx:.1}" y2="{axis_y:.1}" stroke="#ddd"/><text x="{tx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                panels[0].top,
                axis_y + 14.0,
                escape(&time_label(tick))
            );
        }
        tick += step;
    }
    svg.push_str("</g>");

    // Panels: frame, scale, line.
    let values: [&dyn Fn(&TacSample) -> f64; 3] =
        [&|s| s.tac_gdl(), &|s| s.ir_v(), &|s| s.temp_c()];
    let colours = ["#c62828", "#1565c0", "#2e7d32"];
    for ((panel, value), colour) in panels.iter().zip(values).zip(colours) {
        let _ = write!(
            svg,
            r##"<g class="panel"><rect x="{LEFT}" y="{}" width="{PLOT_W}" height="{}" fill="none" stroke="#999"/><text x="{LEFT}" y="{:.1}">{} ({})</text><text x="{:.1}" y="{:.1}" text-anchor="end">{:.3}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{:.3}</text>"##,
            panel.top,
            panel.height,
            panel.top - 4.0,
            panel.title,
            panel.unit,
            LEFT - 4.0,
            panel.top + 10.0,
            panel.max,
            LEFT - 4.0,
            panel.top + panel.height,
            panel.min
        );
        if panel.title == "TAC" {
            let y = panel.y(PEAK_LINE_GDL);
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#555" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">{PEAK_LINE_GDL} g/dL</text>"##,
                LEFT + PLOT_W,
                LEFT + PLOT_W - 2.0,
                y - 3.0
            );
        }
        let mut prev_t: Option<TimeMs> = None;
        let mut line = String::new();
        let flush = |line: &mut String, svg: &mut String| {
            if !line.is_empty() {
                let _ = write!(
                    svg,
                    r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
                    line.trim_end()
                );
                line.clear();
            }
        };
        for (t, s) in &shown {
            if prev_t.is_some_and(|p| t - p > LINE_BREAK_MS) {
                flush(&mut line, &mut svg);
            }
            let _ = write!(line, "{:.1},{:.1} ", x(*t), panel.y(value(s)));
            prev_t = Some(*t);
        }
        flush(&mut line, &mut svg);
        for (t, s) in &shown {
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="1.5" fill="{colour}"/>"#,
                x(*t),
                panel.y(value(s))
            );
        }
        svg.push_str("</g>");
    }

    // On top: each reading a strip across the panels, its time and values on hover (its
    // `<title>`) and to the console's keyboard readout (`data-t`: the event time, UTC).
    svg.push_str(r#"<g class="readings">"#);
    for (i, (t, s)) in shown.iter().enumerate() {
        let at = x(*t);
        let before = i.checked_sub(1).map(|j| x(shown[j].0));
        let after = shown.get(i + 1).map(|(n, _)| x(*n));
        let half = |neighbour: Option<f64>| {
            neighbour.map_or(READING_HALF_WIDTH, |n| {
                ((at - n).abs() / 2.0).min(READING_HALF_WIDTH)
            })
        };
        let (x0, x1) = (at - half(before), at + half(after));
        let _ = write!(
            svg,
            r##"<rect class="reading" data-t="{}" x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#000" fill-opacity="0" pointer-events="all"><title>{}</title></rect>"##,
            crate::model::time::format_time(*t),
            panels[0].top,
            (x1 - x0).max(0.5),
            panels[2].top + panels[2].height - panels[0].top,
            escape(&reading_label(*t, s))
        );
    }
    svg.push_str("</g>");

    svg.push_str("</svg>\n");
    svg
}

/// The widest a reading's hover strip reaches either side of it (px).
const READING_HALF_WIDTH: f64 = 4.0;

/// A reading's time (UK) and values, as its hover says them.
fn reading_label(t_ms: TimeMs, s: &TacSample) -> String {
    format!(
        "{} UK time: TAC {:.3} g/dL, IR {:.2} V, temperature {:.1} °C",
        time_label(t_ms),
        s.tac_gdl(),
        s.ir_v(),
        s.temp_c()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reading_says_its_uk_time_and_values_on_hover() {
        // 1 July 2026 00:00 UTC is 01:00 in the UK (BST).
        let from_ms = 1_782_864_000_000;
        let sample = |tac_ugdl, ir_uv, temp_mc| TacSample {
            tac_ugdl,
            ir_uv,
            temp_mc,
        };
        let readings = [
            (from_ms + 1_800_000, sample(21_000, 1_120_000, 33_400)),
            (from_ms + 3_600_000, sample(0, 1_100_000, 33_260)),
        ];
        let svg = tac_chart_svg(&readings, &[], &[], from_ms, from_ms + 86_400_000);
        assert_eq!(svg.matches(r#"class="reading""#).count(), 2, "{svg}");
        assert!(svg.contains(r#"data-t="2026-07-01T00:30:00Z""#), "{svg}");
        assert!(
            svg.contains("<title>01 Jul 01:30 UK time: TAC 0.021 g/dL, IR 1.12 V, temperature 33.4 °C</title>"),
            "{svg}"
        );
        assert!(
            svg.contains("<title>01 Jul 02:00 UK time: TAC 0.000 g/dL, IR 1.10 V, temperature 33.3 °C</title>"),
            "{svg}"
        );
    }

    #[test]
    fn times_are_uk_local_and_ticks_fall_on_local_hours() {
        // 1 July 2026 00:00 UTC is 01:00 in the UK (BST).
        let from_ms = 1_782_864_000_000;
        let svg = tac_chart_svg(&[], &[], &[], from_ms, from_ms + 86_400_000);
        assert!(
            svg.contains("01 Jul 01:00 to 02 Jul 01:00 UK time"),
            "{svg}"
        );
        // A day's span has a tick every 2 hours, on even UK hours (on UTC's, they would read
        // 03:00, 05:00 … in BST).
        assert!(svg.contains(">01 Jul 02:00<"), "{svg}");
        assert!(!svg.contains(">01 Jul 03:00<"), "{svg}");
    }
}
