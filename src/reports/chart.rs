//! The report's chart: conversations new and resolved per row, as a PNG rendered in-process with
//! plotters. Text is drawn with the bundled DejaVu Sans (`assets/fonts/`, its licence beside it),
//! so Cyrillic team and operator names render the same on every machine.

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::Report;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Why no chart was drawn.
#[derive(Debug, thiserror::Error)]
#[error("chart: {0}")]
pub struct ChartError(String);

fn err(e: impl std::fmt::Display) -> ChartError {
    ChartError(e.to_string())
}

/// Width and height of the chart in pixels.
pub const SIZE: (u32, u32) = (900, 420);

/// Render the chart as PNG bytes.
pub fn png(report: &Report) -> Result<Vec<u8>, ChartError> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if !*REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok()) {
        return Err(ChartError("the bundled font cannot be read".into()));
    }
    let (w, h) = SIZE;
    let mut rows: Vec<(String, u64, u64)> = report
        .rows
        .iter()
        .map(|(k, f)| (k.clone(), f.new, f.resolved))
        .collect();
    rows.push(("all".into(), report.total.new, report.total.resolved));
    let top = rows.iter().map(|r| r.1.max(r.2)).max().unwrap_or(0).max(1) + 1;
    let slots = rows.len() as i32 * 3;
    let mut pixels = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let title = report
            .period
            .as_ref()
            .map_or("Conversations".to_string(), |p| {
                format!("Conversations, {}", p.label)
            });
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FAMILY, 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0..slots, 0..top as i64)
            .map_err(err)?;
        let labels = rows.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(slots as usize)
            .x_label_formatter(&|x| {
                if x % 3 == 1 {
                    labels
                        .get((*x / 3) as usize)
                        .map(|r| r.0.clone())
                        .unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .label_style((FAMILY, 14))
            .draw()
            .map_err(err)?;
        let bars = |value: fn(&(String, u64, u64)) -> u64, offset: i32, color: RGBColor| {
            rows.iter()
                .enumerate()
                .map(move |(i, r)| {
                    let x = i as i32 * 3 + offset;
                    Rectangle::new([(x, 0), (x + 1, value(r) as i64)], color.filled())
                })
                .collect::<Vec<_>>()
        };
        let blue = RGBColor(52, 101, 164);
        let green = RGBColor(78, 154, 6);
        chart
            .draw_series(bars(|r| r.1, 0, blue))
            .map_err(err)?
            .label("new")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], blue.filled()));
        chart
            .draw_series(bars(|r| r.2, 1, green))
            .map_err(err)?
            .label("resolved")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], green.filled()));
        chart
            .configure_series_labels()
            .label_font((FAMILY, 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(err)?;
        writer.write_image_data(&pixels).map_err(err)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::Figures;

    #[test]
    fn the_chart_is_a_png_with_bars_and_cyrillic_text() {
        let mut report = Report::default();
        report.rows.insert(
            "поддержка".into(),
            Figures {
                new: 5,
                resolved: 3,
                ..Default::default()
            },
        );
        report.total = Figures {
            new: 5,
            resolved: 3,
            ..Default::default()
        };
        let bytes = png(&report).unwrap();
        if let Some(path) = std::env::var_os("SWITCHBOARD_CHART_OUT") {
            std::fs::write(path, &bytes).unwrap();
        }
        let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), SIZE);
        let pixels = &buf[..info.buffer_size()];
        let count = |rgb: [u8; 3]| pixels.chunks(3).filter(|p| *p == rgb).count();
        // Not blank: both bar colours cover a good area, and there is dark text.
        assert!(count([52, 101, 164]) > 2_000, "blue bars");
        assert!(count([78, 154, 6]) > 1_000, "green bars");
        let dark = pixels
            .chunks(3)
            .filter(|p| p.iter().all(|c| *c < 100))
            .count();
        assert!(dark > 500, "text and axes: {dark}");
    }
}
