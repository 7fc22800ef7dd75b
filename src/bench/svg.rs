//! Line charts as SVG text, for the bench report: axes with round ticks, a linear x axis
//! or the percentile axis latency curves use (p50, p90, p99, p99.9, p99.99 evenly apart:
//! `-log10(1 - p/100)`), lines with a legend. Plain text out, no fonts needed: the browser
//! lays out the labels.

use std::fmt::Write;

use crate::xml::escape;

/// Line colours, in order of series.
const PALETTE: [&str; 6] = [
    "#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#57606a",
];

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 30.0;
/// Room for the title and, under it, the legend.
const TOP: f64 = 48.0;
const BOTTOM: f64 = 44.0;

/// How x values are placed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum XAxis {
    Linear,
    /// Percentiles from 50 to 99.99, each "nine" the same width.
    Percentile,
}

/// How a line is drawn: one of the palette's colours, solid or dashed (so that the same
/// quantity of two runs shares a colour and the runs differ by dash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub colour: usize,
    pub dashed: bool,
}

impl Style {
    pub fn solid(colour: usize) -> Style {
        Style {
            colour,
            dashed: false,
        }
    }

    pub fn dashed(colour: usize) -> Style {
        Style {
            colour,
            dashed: true,
        }
    }
}

/// One line.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub style: Style,
}

/// A horizontal mark across the plot (an objective).
#[derive(Debug, Clone)]
pub struct Mark {
    pub label: String,
    pub y: f64,
}

/// A chart.
#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_axis: XAxis,
    pub lines: Vec<Line>,
    pub marks: Vec<Mark>,
}

impl Chart {
    pub fn new(title: &str, x_label: &str, y_label: &str, x_axis: XAxis) -> Chart {
        Chart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_axis,
            lines: Vec::new(),
            marks: Vec::new(),
        }
    }

    pub fn line(mut self, name: &str, points: Vec<(f64, f64)>, style: Style) -> Chart {
        self.lines.push(Line {
            name: name.into(),
            points,
            style,
        });
        self
    }

    pub fn mark(mut self, label: &str, y: f64) -> Chart {
        self.marks.push(Mark {
            label: label.into(),
            y,
        });
        self
    }

    /// The chart as one `<svg>` element.
    pub fn svg(&self) -> String {
        let place_x = |x: f64| match self.x_axis {
            XAxis::Linear => x,
            XAxis::Percentile => percentile_position(x),
        };
        let mut points: Vec<(f64, f64)> = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|&(x, y)| (place_x(x), y)))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        let (x_min, x_max) = match self.x_axis {
            XAxis::Percentile => (percentile_position(50.0), percentile_position(99.99)),
            XAxis::Linear => {
                let min = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
                let max = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
                if min.is_finite() && max > min {
                    (min.min(0.0), max)
                } else {
                    (0.0, 1.0)
                }
            }
        };
        // Only what is drawn sets the height.
        points.retain(|(x, _)| *x >= x_min && *x <= x_max);
        let y_top = points
            .iter()
            .map(|p| p.1)
            .chain(self.marks.iter().map(|m| m.y))
            .fold(0.0, f64::max);
        let y_ticks = ticks(y_top);
        let y_max = y_ticks.last().copied().unwrap_or(1.0);
        let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
        let sx = |x: f64| LEFT + (x - x_min) / (x_max - x_min) * plot_w;
        let sy = |y: f64| TOP + plot_h - y / y_max * plot_h;

        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{title}" font-family="system-ui, sans-serif" font-size="12">"#,
            title = escape(&self.title)
        );
        let _ = write!(
            out,
            r#"<text x="{LEFT}" y="18" font-size="14" font-weight="600">{}</text>"#,
            escape(&self.title)
        );
        // The y grid and its labels.
        for &t in &y_ticks {
            let y = sy(t);
            let _ = write!(
                out,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#d0d7de" stroke-width="1"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#57606a">{}</text>"##,
                WIDTH - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                number(t)
            );
        }
        // The x ticks.
        let x_ticks: Vec<(f64, String)> = match self.x_axis {
            XAxis::Percentile => [50.0, 90.0, 99.0, 99.9, 99.99]
                .iter()
                .map(|&p| (percentile_position(p), format!("p{}", number(p))))
                .collect(),
            XAxis::Linear => ticks(x_max)
                .into_iter()
                .filter(|&t| t >= x_min)
                .map(|t| (t, number(t)))
                .collect(),
        };
        for (x, label) in x_ticks {
            let px = sx(x);
            let _ = write!(
                out,
                r##"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="#8c959f"/><text x="{px:.1}" y="{:.1}" text-anchor="middle" fill="#57606a">{}</text>"##,
                TOP + plot_h,
                TOP + plot_h + 4.0,
                TOP + plot_h + 16.0,
                escape(&label)
            );
        }
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#57606a"/><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#24292f">{}</text><text transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle" fill="#24292f">{}</text>"##,
            TOP + plot_h,
            WIDTH - RIGHT,
            TOP + plot_h,
            LEFT + plot_w / 2.0,
            HEIGHT - 8.0,
            escape(&self.x_label),
            TOP + plot_h / 2.0,
            escape(&self.y_label)
        );
        for mark in &self.marks {
            let y = sy(mark.y);
            let _ = write!(
                out,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#cf222e" stroke-dasharray="2 3"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#cf222e">{}</text>"##,
                WIDTH - RIGHT,
                WIDTH - RIGHT - 4.0,
                y - 4.0,
                escape(&mark.label)
            );
        }
        // The lines, and their legend under the title.
        let mut legend_x = LEFT;
        for line in &self.lines {
            let colour = PALETTE[line.style.colour % PALETTE.len()];
            let path: Vec<String> = line
                .points
                .iter()
                .map(|&(x, y)| (place_x(x), y))
                .filter(|(x, y)| x.is_finite() && y.is_finite() && *x >= x_min && *x <= x_max)
                .map(|(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect();
            let dash = if line.style.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            if !path.is_empty() {
                let _ = write!(
                    out,
                    r#"<polyline fill="none" stroke="{colour}" stroke-width="1.8"{dash} points="{}"><title>{}</title></polyline>"#,
                    path.join(" "),
                    escape(&line.name)
                );
            }
            let _ = write!(
                out,
                r#"<line x1="{legend_x:.1}" y1="32" x2="{:.1}" y2="32" stroke="{colour}" stroke-width="2"{dash}/><text x="{:.1}" y="36" fill="{colour}">{}</text>"#,
                legend_x + 16.0,
                legend_x + 20.0,
                escape(&line.name)
            );
            legend_x += 32.0 + 6.5 * line.name.chars().count() as f64;
        }
        out.push_str("</svg>");
        out
    }
}

/// Where percentile `p` sits on the percentile axis.
fn percentile_position(p: f64) -> f64 {
    -(1.0 - p.min(99.999) / 100.0).log10()
}

/// Round tick values from 0 to at least `top`: about five, a step of 1, 2 or 5 × 10^k.
fn ticks(top: f64) -> Vec<f64> {
    if !(top.is_finite() && top > 0.0) {
        return vec![0.0, 1.0];
    }
    let rough = top / 5.0;
    let magnitude = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * magnitude);
    let count = usize::try_from(crate::units::saturating_u64((top / step).ceil())).unwrap_or(1);
    (0..=count.max(1)).map(|i| i as f64 * step).collect()
}

/// A number as short as it can be said.
pub fn number(x: f64) -> String {
    if (x == x.round() && x.abs() < 1e15) || x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 1.0 {
        let s = format!("{x:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        let s = format!("{x:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_top() {
        assert_eq!(ticks(9.3), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(100.0), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(ticks(0.0), vec![0.0, 1.0]);
        let small = ticks(0.031);
        assert!(
            *small.last().unwrap() >= 0.031 && small.len() <= 8,
            "{small:?}"
        );
    }

    #[test]
    fn each_nine_is_the_same_width() {
        let gap = |a: f64, b: f64| percentile_position(b) - percentile_position(a);
        assert!((gap(90.0, 99.0) - 1.0).abs() < 1e-9);
        assert!((gap(99.0, 99.9) - 1.0).abs() < 1e-9);
        assert!(percentile_position(100.0).is_finite());
    }

    #[test]
    fn a_chart_is_svg_with_its_lines_and_escaped_names() {
        let svg = Chart::new("Latency <ms>", "second", "ms", XAxis::Linear)
            .line(
                "p99 \"direct\"",
                vec![(0.0, 1.0), (1.0, 2.5)],
                Style::dashed(1),
            )
            .mark("objective", 2.0)
            .svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
        assert!(svg.contains("Latency &lt;ms&gt;"));
        assert!(svg.contains("p99 &quot;direct&quot;"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains("stroke-dasharray=\"6 4\""));
    }
}
