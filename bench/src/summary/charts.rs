//! SVG charts of the subscriber sweep, drawn with plotters' SVG backend only: text is
//! written as SVG `<text>` elements that the viewer renders, so no font library is
//! linked (plotters then lays text out by an estimate of its width).

use std::error::Error;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Results, SWEEP_PREFIX, TARGETS};

type Res = Result<(), Box<dyn Error>>;

const SIZE: (u32, u32) = (960, 540);
const FONT: &str = "sans-serif";

/// One line of a chart: a label, a colour, and (subscribers, value) points.
struct Line {
    label: String,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

/// A target's colours: [lighter for p50 / per-second, darker for p99 / per-CPU].
fn colors(target: &str) -> [RGBColor; 2] {
    match target {
        "ssehub" => [RGBColor(86, 156, 214), RGBColor(17, 70, 160)],
        _ => [RGBColor(240, 150, 60), RGBColor(190, 30, 30)],
    }
}

/// Writes `latency.svg` and `throughput.svg` into `dir`.
pub fn render(r: &Results, dir: &Path) -> Result<(), String> {
    let latency = dir.join("latency.svg");
    draw_latency(r, &latency).map_err(|e| format!("drawing {}: {e}", latency.display()))?;
    let throughput = dir.join("throughput.svg");
    draw_throughput(r, &throughput).map_err(|e| format!("drawing {}: {e}", throughput.display()))
}

/// (subscribers, value × scale) for every sweep case where `target` has `path`.
fn series(r: &Results, target: &str, path: &str, scale: f64) -> Vec<(f64, f64)> {
    r.sweep_sizes()
        .into_iter()
        .filter_map(|n| {
            let v = r.num(&format!("{SWEEP_PREFIX}{n}"), target, path)?;
            Some((n as f64, v * scale))
        })
        .collect()
}

fn draw_latency(r: &Results, path: &Path) -> Res {
    let mut lines = Vec::new();
    for target in TARGETS {
        let [light, dark] = colors(target);
        for (q, color) in [("p50", light), ("p99", dark)] {
            lines.push(Line {
                label: format!("{target} {q}"),
                color,
                points: series(r, target, &format!("latency_us.{q}"), 1e-3),
            });
        }
    }
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let title = "Publish→receive latency, 20 events/s (log–log)";
    plot(&root, title, "latency from due time (ms)", &lines, true)?;
    root.present()?;
    Ok(())
}

fn draw_throughput(r: &Results, path: &Path) -> Res {
    let per = |path: &str| -> Vec<Line> {
        TARGETS
            .iter()
            .map(|&target| Line {
                label: target.to_owned(),
                color: colors(target)[1],
                points: series(r, target, path, 1.0),
            })
            .collect()
    };
    // What was offered, so a server that falls behind shows as a gap to this line.
    let mut per_sec = per("deliveries.per_sec");
    per_sec.push(Line {
        label: "offered".into(),
        color: RGBColor(150, 150, 150),
        points: series(r, "ssehub", "publish.rate_offered", 1.0)
            .into_iter()
            .map(|(n, rate)| (n, n * rate))
            .collect(),
    });
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(SIZE.0 / 2);
    plot(
        &left,
        "Deliveries per second, 20 events/s",
        "deliveries/s",
        &per_sec,
        false,
    )?;
    plot(
        &right,
        "Deliveries per server-CPU-second",
        "deliveries / CPU-s",
        &per("server.deliveries_per_cpu_sec"),
        false,
    )?;
    root.present()?;
    Ok(())
}

/// One chart on `area`: subscribers on a log x axis, `lines` against a log or linear
/// y axis, lines with dot markers and a legend.
fn plot(
    area: &DrawingArea<SVGBackend, Shift>,
    title: &str,
    y_desc: &str,
    lines: &[Line],
    log_y: bool,
) -> Res {
    let all = || lines.iter().flat_map(|l| l.points.iter().copied());
    let x_max = all().map(|p| p.0).fold(1.0, f64::max);
    let x_min = all().map(|p| p.0).fold(x_max, f64::min);
    let y_max = all().map(|p| p.1).fold(f64::MIN_POSITIVE, f64::max);
    let y_min = all()
        .map(|p| p.1)
        .filter(|y| *y > 0.0)
        .fold(y_max, f64::min);
    let x_range = (x_min * 0.8..x_max * 1.25).log_scale();
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(75);
    if log_y {
        let mut chart =
            builder.build_cartesian_2d(x_range, (y_min * 0.5..y_max * 2.0).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("subscribers")
            .y_desc(y_desc)
            .label_style((FONT, 13))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v}"))
            .draw()?;
        draw_lines(&mut chart, lines)?;
    } else {
        let mut chart = builder.build_cartesian_2d(x_range, 0.0..y_max * 1.15)?;
        chart
            .configure_mesh()
            .x_desc("subscribers")
            .y_desc(y_desc)
            .label_style((FONT, 13))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{:.0}k", v / 1e3))
            .draw()?;
        draw_lines(&mut chart, lines)?;
    }
    Ok(())
}

fn draw_lines<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    lines: &[Line],
) -> Res
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for line in lines {
        let style = ShapeStyle::from(line.color).stroke_width(2);
        chart
            .draw_series(LineSeries::new(line.points.iter().copied(), style))?
            .label(line.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart.draw_series(
            line.points
                .iter()
                .map(|&p| Circle::new(p, 3, line.color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
