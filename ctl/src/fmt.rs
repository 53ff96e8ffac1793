//! Numbers for people, as every part of the view prints them: sizes in KiB/MiB/GiB (never
//! "258019 MiB"), rates per second, percentages that survive NaN, uptimes, and the text bars
//! of the gauges. Pure functions, unit-tested.

use ratatui::style::{Color, Style};
use ratatui::text::Span;
pub use smon_runtime::cli::{human_bytes, terminal_safe};

/// A rate: `1.5 MiB/s`.
pub fn rate(bytes_per_s: u64) -> String {
    format!("{}/s", human_bytes(bytes_per_s))
}

/// A percentage with one decimal (`37.5%`), or `-` for a value that is not a number.
pub fn pct(p: f32) -> String {
    if p.is_finite() {
        format!("{p:.1}%")
    } else {
        "-".to_owned()
    }
}

/// `used / total` in human sizes.
pub fn of(used: u64, total: u64) -> String {
    format!("{} / {}", human_bytes(used), human_bytes(total))
}

/// Time since boot: `3d 04:05` (days, hours, minutes), or `04:05` under a day.
pub fn uptime(s: u64) -> String {
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    if d > 0 {
        format!("{d}d {h:02}:{m:02}")
    } else {
        format!("{h:02}:{m:02}")
    }
}

/// The colour of a use level: green, yellow from 60 %, red from 85 %.
pub fn level(p: f32) -> Color {
    if !p.is_finite() || p < 60.0 {
        Color::Green
    } else if p < 85.0 {
        Color::Yellow
    } else {
        Color::Red
    }
}

/// An htop-style bar `[|||||      37.5%]` of `width` columns (brackets included), coloured by
/// level; the percentage is written inside, at the right, as htop does.
pub fn bar(p: f32, width: u16) -> Vec<Span<'static>> {
    let inner = usize::from(width.saturating_sub(2));
    let mut label = pct(p);
    if label.len() > inner {
        label.clear();
    }
    let frac = if p.is_finite() {
        (p / 100.0).clamp(0.0, 1.0)
    } else {
        0.0
    };
    // Rounded to the nearest column: 50 % of 10 is 5 bars.
    let filled = ((frac * inner as f32).round() as usize).min(inner);
    let room = inner.saturating_sub(label.len());
    let bars = filled.min(room);
    let gap = room - bars;
    vec![
        Span::raw("["),
        Span::styled("|".repeat(bars), Style::default().fg(level(p))),
        Span::raw(" ".repeat(gap)),
        Span::styled(label, Style::default().fg(Color::Gray)),
        Span::raw("]"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(spans: &[Span<'_>]) -> String {
        spans.iter().map(|s| s.content.as_ref()).collect()
    }

    #[test]
    fn rates_percentages_and_uptimes_read_well() {
        assert_eq!(rate(1536), "1.5 KiB/s");
        assert_eq!(rate(0), "0 B/s");
        assert_eq!(pct(37.46), "37.5%");
        assert_eq!(pct(f32::NAN), "-");
        assert_eq!(
            of(258_019 << 20, 270_532_608 << 10),
            "252.0 GiB / 258.0 GiB"
        );
        assert_eq!(uptime(59), "00:00");
        assert_eq!(uptime(3 * 86_400 + 4 * 3600 + 5 * 60 + 9), "3d 04:05");
    }

    #[test]
    fn bars_fill_in_proportion_and_keep_their_width() {
        let b = text(&bar(50.0, 22));
        assert_eq!(b, "[||||||||||     50.0%]");
        assert_eq!(b.chars().count(), 22);
        assert_eq!(text(&bar(100.0, 12)), "[||||100.0%]");
        assert_eq!(text(&bar(0.0, 12)), "[      0.0%]");
        // NaN, negative and too narrow: still a bar, never a panic.
        assert_eq!(text(&bar(f32::NAN, 6)), "[   -]");
        assert_eq!(text(&bar(-5.0, 2)), "[]");
        assert_eq!(text(&bar(250.0, 4)), "[||]");
    }
}
