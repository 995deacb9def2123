//! The distance-to-crime-over-time chart of a hit: each position's distance from the crime (the
//! matcher's own `distance_m`, computed once server-side and served to the console with the
//! hit) with its precision as an error bar, the vicinity radius as a line, the crime's window
//! shaded, labels A1… beside the points. SVG, so the PDF embeds it as vector drawing.

use crate::model::{Hit, PositionSource, TimeMs};
use std::fmt::Write;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 48.0;
/// Above this many positions the labels would overlap: only every n-th is labelled.
const MAX_LABELS: usize = 40;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A round step giving at most about ten ticks over `span_ms`.
fn tick_step_ms(span_ms: TimeMs) -> TimeMs {
    const MIN: TimeMs = 60_000;
    [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440]
        .into_iter()
        .map(|m| m * MIN)
        .find(|step| span_ms / step <= 10)
        .unwrap_or(1440 * MIN)
}

/// A round step giving about five ticks up to `max_m`.
fn distance_step_m(max_m: f64) -> f64 {
    [
        10.0, 20.0, 25.0, 50.0, 100.0, 200.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0,
    ]
    .into_iter()
    .find(|step| max_m / step <= 6.0)
    .unwrap_or(10_000.0)
}

/// The chart of `hit`'s positions (empty axes when it has none).
pub fn distance_chart_svg(hit: &Hit) -> String {
    let times = hit.positions.iter().map(|p| p.t);
    let from_ms = times
        .clone()
        .min()
        .unwrap_or(hit.crime_from)
        .min(hit.crime_from);
    let to_ms = times
        .max()
        .unwrap_or(hit.crime_to)
        .max(hit.crime_to)
        .max(from_ms + 60_000);
    let max_m = hit
        .positions
        .iter()
        .map(|p| p.distance_m + p.precision_m.min(p.distance_m.max(hit.radius_m) * 2.0))
        .fold(hit.radius_m * 2.0, f64::max);
    let step_m = distance_step_m(max_m);
    let top_m = (max_m / step_m).ceil() * step_m;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |t: TimeMs| LEFT + (t - from_ms) as f64 / (to_ms - from_ms) as f64 * plot_w;
    let y = |m: f64| TOP + plot_h - (m.clamp(0.0, top_m) / top_m) * plot_h;

    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans" font-size="11">"##
    );
    let _ = write!(
        s,
        r##"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>"##
    );
    // The crime's window.
    let _ = write!(
        s,
        r##"<rect x="{:.1}" y="{TOP}" width="{:.1}" height="{plot_h}" fill="#fde7e7"/>"##,
        x(hit.crime_from),
        (x(hit.crime_to) - x(hit.crime_from)).max(1.0)
    );
    // Distance grid and axis.
    let mut m = 0.0;
    while m <= top_m + 1e-6 {
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#dddddd" stroke-width="0.6"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            y(m),
            y(m),
            LEFT - 6.0,
            y(m) + 4.0,
            if m >= 1000.0 {
                format!("{:.1} km", m / 1000.0)
            } else {
                format!("{m:.0} m")
            }
        );
        m += step_m;
    }
    // Time ticks on round UK local minutes.
    let step = tick_step_ms(to_ms - from_ms);
    let offset_ms = crate::rules::local_time::london_offset_ms(from_ms);
    let mut t = ((from_ms + offset_ms) / step + 1) * step - offset_ms;
    while t < to_ms {
        let _ = write!(
            s,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{TOP}" y2="{1:.1}" stroke="#eeeeee" stroke-width="0.6"/><text x="{0:.1}" y="{2:.1}" text-anchor="middle">{3}</text>"##,
            x(t),
            TOP + plot_h,
            TOP + plot_h + 16.0,
            super::text::uk_clock(t)
        );
        t += step;
    }
    let _ = write!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">UK local time ({}); shaded: the crime's window</text>"##,
        LEFT + plot_w / 2.0,
        HEIGHT - 8.0,
        super::text::uk_date(from_ms)
    );
    // The vicinity.
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" x2="{:.1}" y1="{1:.1}" y2="{1:.1}" stroke="#c62828" stroke-width="1.2" stroke-dasharray="5 3"/><text x="{2:.1}" y="{3:.1}" text-anchor="end" fill="#c62828">vicinity {4:.0} m</text>"##,
        WIDTH - RIGHT,
        y(hit.radius_m),
        WIDTH - RIGHT - 4.0,
        y(hit.radius_m) - 4.0,
        hit.radius_m
    );
    // The path, then each position with its precision as an error bar.
    let mut path = String::new();
    for (i, p) in hit.positions.iter().enumerate() {
        let _ = write!(
            path,
            "{}{:.1},{:.1}",
            if i == 0 { "M" } else { " L" },
            x(p.t),
            y(p.distance_m)
        );
    }
    if !path.is_empty() {
        let _ = write!(
            s,
            r##"<path d="{path}" fill="none" stroke="#1565c0" stroke-width="1"/>"##
        );
    }
    let every = hit.positions.len().div_ceil(MAX_LABELS).max(1);
    for (i, p) in hit.positions.iter().enumerate() {
        let (px, py) = (x(p.t), y(p.distance_m));
        let _ = write!(
            s,
            r##"<line x1="{px:.1}" x2="{px:.1}" y1="{:.1}" y2="{:.1}" stroke="#1565c0" stroke-width="0.6" opacity="0.6"/>"##,
            y(p.distance_m - p.precision_m),
            y(p.distance_m + p.precision_m)
        );
        let fill = if p.source == PositionSource::Gps {
            "#1565c0"
        } else {
            "#ffffff"
        };
        let _ = write!(
            s,
            r##"<circle cx="{px:.1}" cy="{py:.1}" r="3" fill="{fill}" stroke="#1565c0" stroke-width="1"/>"##
        );
        if i % every == 0 || i + 1 == hit.positions.len() {
            // Near the right edge the label goes to the left of its point.
            let (dx, anchor) = if px > WIDTH - RIGHT - 30.0 {
                (-4.0, "end")
            } else {
                (4.0, "start")
            };
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" font-size="9" text-anchor="{anchor}">{}</text>"##,
                px + dx,
                py - 4.0,
                escape(&p.label)
            );
        }
    }
    let _ = write!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#555555" stroke-width="0.8"/>"##
    );
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crime::test_fixtures::sample_hit;

    #[test]
    fn the_chart_draws_every_position_the_vicinity_and_the_window() {
        let hit = sample_hit();
        let svg = distance_chart_svg(&hit);
        assert_eq!(svg.matches("<circle").count(), hit.positions.len());
        assert!(svg.contains("vicinity"));
        assert!(svg.contains("#fde7e7"));
        for p in &hit.positions {
            assert!(svg.contains(&format!(">{}</text>", p.label)), "{}", p.label);
        }
        assert_eq!(svg, distance_chart_svg(&hit));
    }
}
