//! Report building blocks shared by every command that writes one: PNG charts with an embedded font, markdown
//! tables, and atomic file writes.

use std::path::Path;
use std::sync::Once;

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FONT_FAMILY: &str = "sans-serif";
static REGISTER_FONT: Once = Once::new();

fn ensure_font() {
    REGISTER_FONT.call_once(|| {
        // The embedded font is known-good; a failure here would be a build defect, not user input.
        let _ = plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT);
    });
}

/// Colours cycled through by series and bar groups.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// One named line of (x, y) points.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Palette entry of the line (default: the series' position in the plot), so that related series (a
    /// sequence's truth and a model's answers for it) can share a colour.
    pub color: Option<usize>,
    /// A thin line without markers: a reference drawn under the measured series.
    pub thin: bool,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points,
            color: None,
            thin: false,
        }
    }

    /// The line in palette colour `index`.
    pub fn colored(mut self, index: usize) -> Self {
        self.color = Some(index);
        self
    }

    /// A thin reference line without markers.
    pub fn thin(mut self) -> Self {
        self.thin = true;
        self
    }
}

/// A line chart (loss curves, metrics against a swept value, reward curves).
#[derive(Debug, Clone)]
pub struct LinePlot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Logarithmic y axis (only positive values are drawn).
    pub log_y: bool,
    /// Draw a marker at every point (useful for few points, e.g. sweeps).
    pub markers: bool,
    pub width: u32,
    pub height: u32,
}

impl LinePlot {
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: Vec::new(),
            log_y: false,
            markers: false,
            width: 900,
            height: 540,
        }
    }

    pub fn with_series(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    /// Render to a PNG file (written atomically).
    pub fn save_png(&self, path: &Path) -> Result<()> {
        draw_png(path, self.width, self.height, &self.title, |root| {
            self.draw(root)
        })
    }

    fn draw(&self, root: &Canvas<'_>) -> Result<()> {
        let finite: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_y || *y > 0.0))
            .collect();
        let (x_range, y_range) = bounds(&finite);
        let mut builder = ChartBuilder::on(root);
        builder
            .caption(&self.title, (FONT_FAMILY, 22))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(64);
        if self.log_y {
            let (lo, hi) = log_bounds(finite.iter().map(|&(_, y)| y));
            let mut chart = builder
                .build_cartesian_2d(
                    x_range.0..x_range.1,
                    (lo..hi).log_scale().with_key_points(log_ticks(lo, hi)),
                )
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .x_label_formatter(&|v| axis_label(*v))
                .y_label_formatter(&|v| axis_label(*v))
                .label_style((FONT_FAMILY, 14))
                .draw()
                .map_err(plot_err)?;
            self.draw_series(&mut chart)?;
        } else {
            let mut chart = builder
                .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .x_label_formatter(&|v| axis_label(*v))
                .y_label_formatter(&|v| axis_label(*v))
                .label_style((FONT_FAMILY, 14))
                .draw()
                .map_err(plot_err)?;
            self.draw_series(&mut chart)?;
        }
        Ok(())
    }

    fn draw_series<'a, X, Y>(
        &self,
        chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>,
    ) -> Result<()>
    where
        X: Ranged<ValueType = f64>,
        Y: Ranged<ValueType = f64>,
    {
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[s.color.unwrap_or(i) % PALETTE.len()];
            let width = if s.thin { 1 } else { 2 };
            let points: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_y || *y > 0.0))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(width)))
                .map_err(plot_err)?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(width))
                });
            if self.markers && !s.thin {
                chart
                    .draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))
                    .map_err(plot_err)?;
            }
        }
        if self.series.iter().any(|s| !s.name.is_empty()) {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font((FONT_FAMILY, 14))
                .draw()
                .map_err(plot_err)?;
        }
        Ok(())
    }
}

/// Predicted against true values on log-log axes (one colour per series of points), with the line of perfect
/// answers (y = x) and the band within [0.5x, 2x] of it. Only positive values are drawn.
#[derive(Debug, Clone)]
pub struct ScatterPlot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub width: u32,
    pub height: u32,
}

impl ScatterPlot {
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: Vec::new(),
            width: 700,
            height: 640,
        }
    }

    pub fn with_series(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    /// Render to a PNG file (written atomically).
    pub fn save_png(&self, path: &Path) -> Result<()> {
        draw_png(path, self.width, self.height, &self.title, |root| {
            self.draw(root)
        })
    }

    fn draw(&self, root: &Canvas<'_>) -> Result<()> {
        let positive = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && x > 0.0 && y > 0.0;
        // One range for both axes, so that y = x is the diagonal.
        let (lo, hi) = log_bounds(
            self.series
                .iter()
                .flat_map(|s| s.points.iter().filter(|p| positive(p)))
                .flat_map(|&(x, y)| [x, y]),
        );
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT_FAMILY, 22))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(
                (lo..hi).log_scale().with_key_points(log_ticks(lo, hi)),
                (lo..hi).log_scale().with_key_points(log_ticks(lo, hi)),
            )
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_label_formatter(&|v| axis_label(*v))
            .y_label_formatter(&|v| axis_label(*v))
            .label_style((FONT_FAMILY, 14))
            .draw()
            .map_err(plot_err)?;
        let grey = RGBColor(150, 150, 150);
        chart
            .draw_series(LineSeries::new(
                vec![(lo, lo), (hi, hi)],
                BLACK.stroke_width(1),
            ))
            .map_err(plot_err)?
            .label("y = x")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.stroke_width(1)));
        chart
            .draw_series(LineSeries::new(
                vec![(lo, 2.0 * lo), (hi / 2.0, hi)],
                grey.stroke_width(1),
            ))
            .map_err(plot_err)?
            .label("y = 2x and y = x/2")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], grey.stroke_width(1))
            });
        chart
            .draw_series(LineSeries::new(
                vec![(2.0 * lo, lo), (hi, hi / 2.0)],
                grey.stroke_width(1),
            ))
            .map_err(plot_err)?;
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(
                    s.points
                        .iter()
                        .filter(|p| positive(p))
                        .map(|p| Circle::new(*p, 3, color.mix(0.6).filled())),
                )
                .map_err(plot_err)?
                .label(s.name.clone())
                .legend(move |(x, y)| Circle::new((x + 9, y), 4, color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT_FAMILY, 14))
            .draw()
            .map_err(plot_err)?;
        Ok(())
    }
}

/// A grouped bar chart: one cluster per category, one bar per group (e.g. accuracy per question type per model).
#[derive(Debug, Clone)]
pub struct BarChart {
    pub title: String,
    pub y_label: String,
    pub categories: Vec<String>,
    /// (group name, one value per category).
    pub groups: Vec<(String, Vec<f64>)>,
    /// Fixed top of the y axis (e.g. 1.0 for rates); otherwise from the data.
    pub y_max: Option<f64>,
    pub width: u32,
    pub height: u32,
}

impl BarChart {
    pub fn new(
        title: impl Into<String>,
        y_label: impl Into<String>,
        categories: Vec<String>,
    ) -> Self {
        Self {
            title: title.into(),
            y_label: y_label.into(),
            categories,
            groups: Vec::new(),
            y_max: None,
            width: 1000,
            height: 560,
        }
    }

    pub fn with_group(mut self, name: impl Into<String>, values: Vec<f64>) -> Self {
        self.groups.push((name.into(), values));
        self
    }

    /// Render to a PNG file (written atomically).
    pub fn save_png(&self, path: &Path) -> Result<()> {
        for (name, values) in &self.groups {
            anyhow::ensure!(
                values.len() == self.categories.len(),
                "bar group {name:?} has {} values for {} categories",
                values.len(),
                self.categories.len()
            );
        }
        draw_png(path, self.width, self.height, &self.title, |root| {
            self.draw(root)
        })
    }

    fn draw(&self, root: &Canvas<'_>) -> Result<()> {
        let data_max = self
            .groups
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        let y_max = self
            .y_max
            .unwrap_or(if data_max > 0.0 { data_max * 1.1 } else { 1.0 });
        let n_cat = self.categories.len().max(1);
        let n_groups = self.groups.len().max(1);
        let label_area = if self.categories.iter().any(|c| c.len() > 8) {
            110
        } else {
            42
        };
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT_FAMILY, 22))
            .margin(12)
            .x_label_area_size(label_area)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..n_cat as f64, 0.0..y_max)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc(&self.y_label)
            .label_style((FONT_FAMILY, 14))
            .draw()
            .map_err(plot_err)?;
        let bar_width = 0.8 / n_groups as f64;
        for (g, (name, values)) in self.groups.iter().enumerate() {
            let color = PALETTE[g % PALETTE.len()];
            chart
                .draw_series(
                    values
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| v.is_finite())
                        .map(|(c, v)| {
                            let x0 = c as f64 + 0.1 + g as f64 * bar_width;
                            Rectangle::new(
                                [(x0, 0.0), (x0 + bar_width * 0.95, v.min(y_max))],
                                color.filled(),
                            )
                        }),
                )
                .map_err(plot_err)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled())
                });
        }
        if self.groups.len() > 1 || self.groups.iter().any(|(n, _)| !n.is_empty()) {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font((FONT_FAMILY, 14))
                .draw()
                .map_err(plot_err)?;
        }
        // Category names are drawn by hand under each cluster: plotters' numeric ticks rarely land on cluster centres.
        let label_style = (FONT_FAMILY, 12)
            .into_font()
            .transform(FontTransform::Rotate90)
            .color(&BLACK);
        for (i, name) in self.categories.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            root.draw(&Text::new(
                name.clone(),
                (px - 6, py + 6),
                label_style.clone(),
            ))
            .map_err(plot_err)?;
        }
        Ok(())
    }
}

fn bounds(points: &[(f64, f64)]) -> ((f64, f64), (f64, f64)) {
    if points.is_empty() {
        return ((0.0, 1.0), (0.0, 1.0));
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    let pad = |lo: f64, hi: f64| {
        if (hi - lo).abs() < 1e-12 {
            let d = if lo.abs() > 1e-12 {
                lo.abs() * 0.1
            } else {
                1.0
            };
            (lo - d, hi + d)
        } else {
            let d = (hi - lo) * 0.05;
            (lo - d, hi + d)
        }
    };
    let (x0, x1) = if (x1 - x0).abs() < 1e-12 {
        pad(x0, x1)
    } else {
        (x0, x1)
    };
    ((x0, x1), pad(y0, y1))
}

/// The y range of a log axis: the positive values' range widened by a quarter at each end (multiplicatively, so
/// the axis never reaches towards zero), and at least one decade so the axis has labels.
fn log_bounds(ys: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for y in ys.filter(|y| y.is_finite() && *y > 0.0) {
        lo = lo.min(y);
        hi = hi.max(y);
    }
    if lo > hi {
        return (0.1, 10.0);
    }
    let (mut lo, mut hi) = (lo / 1.25, hi * 1.25);
    if hi < lo * 10.0 {
        // Centre a decade on the data (geometric middle).
        let mid = (lo * hi).sqrt();
        lo = mid / 10f64.sqrt();
        hi = mid * 10f64.sqrt();
    }
    (lo, hi)
}

/// The labelled ticks of a log axis over `lo..hi`: 1, 2 and 5 times each power of ten inside it (only the powers of
/// ten when the axis spans more than three decades), so that a reader can place a point between two labels.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi > lo && lo.is_finite() && hi.is_finite()) {
        return Vec::new();
    }
    let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let steps: &[f64] = if hi / lo > 1e3 {
        &[1.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    (first..=last)
        .flat_map(|e| steps.iter().map(move |m| m * 10f64.powi(e)))
        .filter(|v| (lo..=hi).contains(v))
        .collect()
}

/// An axis label with at most three significant digits: "0.5", "2", "120", and "1e-5" / "2.5e6" outside
/// 0.001..100000. Log-axis key points carry float noise (0.999999998) that the default format prints whole.
fn axis_label(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let magnitude = v.abs().log10().floor();
    if !(-3.0..5.0).contains(&magnitude) {
        let text = format!("{v:.1e}");
        return text.replacen(".0e", "e", 1);
    }
    let decimals = (2.0 - magnitude).max(0.0) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// The drawing area every chart draws on: an RGB buffer.
type Canvas<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Draws a chart on a white `width x height` canvas and writes it to `path` as a PNG (atomically); `title` names
/// the chart in errors.
fn draw_png(
    path: &Path,
    width: u32,
    height: u32,
    title: &str,
    draw: impl FnOnce(&Canvas<'_>) -> Result<()>,
) -> Result<()> {
    ensure_font();
    let mut buffer = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        draw(&root).with_context(|| format!("drawing chart {title:?}"))?;
        root.present().map_err(plot_err)?;
    }
    save_rgb_png(path, width, height, buffer)
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plotting failed: {e:?}")
}

fn save_rgb_png(path: &Path, width: u32, height: u32, buffer: Vec<u8>) -> Result<()> {
    let img = image::RgbImage::from_raw(width, height, buffer).ok_or_else(|| {
        anyhow::anyhow!("internal: plot buffer size does not match {width}x{height}")
    })?;
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .with_context(|| format!("encoding PNG for {}", path.display()))?;
    Ok(write_atomic(path, &bytes)?)
}

pub use svlm_io::write_atomic;

/// A GitHub-flavoured markdown table. Cells containing `|` are escaped.
pub fn markdown_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let escape = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = String::new();
    out.push_str("| ");
    out.push_str(
        &headers
            .iter()
            .map(|h| escape(h))
            .collect::<Vec<_>>()
            .join(" | "),
    );
    out.push_str(" |\n|");
    for _ in headers {
        out.push_str("---|");
    }
    out.push('\n');
    for row in rows {
        out.push_str("| ");
        let mut cells: Vec<String> = row.iter().map(|c| escape(c)).collect();
        cells.resize(headers.len(), String::new());
        out.push_str(&cells.join(" | "));
        out.push_str(" |\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn non_white_fraction(path: &Path) -> f64 {
        let img = image::open(path).expect("png readable").to_rgb8();
        let non_white = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
        non_white as f64 / (img.width() * img.height()) as f64
    }

    #[test]
    fn line_plot_writes_a_png_with_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/loss.png");
        LinePlot::new("loss", "step", "loss")
            .with_series(Series::new(
                "train",
                (0..50)
                    .map(|i| (i as f64, 3.0 / (1.0 + i as f64)))
                    .collect(),
            ))
            .with_series(Series::new(
                "val",
                vec![(0.0, 3.0), (25.0, 0.4), (49.0, 0.2)],
            ))
            .save_png(&path)
            .expect("save");
        if let Ok(keep) = std::env::var("SVLM_KEEP_PLOT") {
            std::fs::copy(&path, keep).expect("copy");
        }
        let frac = non_white_fraction(&path);
        assert!(frac > 0.01 && frac < 0.5, "non-white fraction {frac}");
    }

    #[test]
    fn axis_labels_are_short_whatever_the_float_noise() {
        for (v, want) in [
            (0.999999998, "1"),
            (9.99997e-6, "1e-5"),
            (0.1, "0.1"),
            (0.30000000000000004, "0.3"),
            (2.0, "2"),
            (12.5, "12.5"),
            (123.456, "123"),
            (0.001, "0.001"),
            (2.5e6, "2.5e6"),
            (0.0, "0"),
        ] {
            assert_eq!(axis_label(v), want, "{v}");
        }
    }

    #[test]
    fn log_ticks_label_one_two_five_per_decade() {
        assert_eq!(log_ticks(0.15, 2.4), vec![0.2, 0.5, 1.0, 2.0]);
        assert_eq!(
            log_ticks(0.08, 12.0),
            vec![0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]
        );
        // Over more than three decades, the powers of ten alone.
        let wide = log_ticks(2e-9, 50.0);
        assert_eq!(wide.len(), 10, "{wide:?}");
        assert!(
            wide.iter()
                .all(|v| (v.log10() - v.log10().round()).abs() < 1e-9)
        );
        assert!(log_ticks(0.0, 1.0).is_empty());
    }

    #[test]
    fn log_bounds_stay_near_the_data() {
        // A loss curve from 4 down to 0.5: the axis spans the data, not down to 1e-12.
        let (lo, hi) = log_bounds([4.0, 2.0, 0.5, -1.0, f64::NAN].into_iter());
        assert!(
            (0.3..0.5).contains(&lo) && (4.0..6.0).contains(&hi),
            "{lo}..{hi}"
        );
        // Flat data still gets a decade.
        let (lo, hi) = log_bounds([1.0, 1.0].into_iter());
        assert!(
            lo < 1.0 && hi > 1.0 && (hi / lo - 10.0).abs() < 1e-9,
            "{lo}..{hi}"
        );
        assert_eq!(log_bounds(std::iter::empty()), (0.1, 10.0));
    }

    #[test]
    fn scatter_plot_draws_points_and_survives_degenerate_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("scatter.png");
        ScatterPlot::new("distance", "true (m)", "predicted (m)")
            .with_series(Series::new(
                "ratio 0.75",
                (1..40)
                    .map(|i| (0.05 * i as f64, 0.06 * i as f64))
                    .collect(),
            ))
            .with_series(Series::new(
                "prior",
                vec![(0.1, 0.5), (2.0, 0.5), (-1.0, 0.5)],
            ))
            .save_png(&path)
            .expect("save");
        assert!(non_white_fraction(&path) > 0.02);
        ScatterPlot::new("empty", "x", "y")
            .save_png(&dir.path().join("empty.png"))
            .expect("no points");
    }

    #[test]
    fn log_plot_and_degenerate_data_do_not_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut plot =
            LinePlot::new("single", "x", "y").with_series(Series::new("one", vec![(1.0, 1.0)]));
        plot.log_y = true;
        plot.save_png(&dir.path().join("a.png"))
            .expect("single point");
        LinePlot::new("empty", "x", "y")
            .save_png(&dir.path().join("b.png"))
            .expect("empty");
        LinePlot::new("nan", "x", "y")
            .with_series(Series::new("nan", vec![(0.0, f64::NAN), (1.0, 2.0)]))
            .save_png(&dir.path().join("c.png"))
            .expect("nan skipped");
    }

    #[test]
    fn bar_chart_checks_lengths_and_draws() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cats = vec!["left_predicate".to_string(), "distance".to_string()];
        let bad = BarChart::new("acc", "accuracy", cats.clone()).with_group("a", vec![0.5]);
        assert!(bad.save_png(&dir.path().join("bad.png")).is_err());
        let mut ok = BarChart::new("acc", "accuracy", cats)
            .with_group("ratio 0", vec![0.5, 0.1])
            .with_group("ratio 0.5", vec![0.9, 0.7]);
        ok.y_max = Some(1.0);
        let path = dir.path().join("ok.png");
        ok.save_png(&path).expect("save");
        if let Ok(keep) = std::env::var("SVLM_KEEP_BAR") {
            std::fs::copy(&path, keep).expect("copy");
        }
        assert!(non_white_fraction(&path) > 0.02);
        // The category labels are drawn below the plot area: the bottom band must hold dark text pixels.
        let img = image::open(&path).expect("png").to_rgb8();
        let dark_below = (img.height() - 100..img.height())
            .flat_map(|y| (0..img.width()).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|&c| c < 100))
            .count();
        assert!(
            dark_below > 50,
            "no category labels under the bars ({dark_below} dark pixels)"
        );
    }

    #[test]
    fn markdown_table_escapes_and_pads() {
        let t = markdown_table(
            &["type", "acc"],
            &[vec!["a|b".into(), "0.5".into()], vec!["c".into()]],
        );
        assert_eq!(t, "| type | acc |\n|---|---|\n| a\\|b | 0.5 |\n| c |  |\n");
    }
}
