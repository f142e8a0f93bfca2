//! A report as CSV (one row per shot) and as an SVG chart (hand-written).

use super::*;

// ---------------------------------------------------------------------------------------------
// CSV

fn csv_field(out: &mut String, s: &str) {
    // Quote everything that could break a row; neutralise spreadsheet formulas.
    let formula = s.starts_with(['=', '+', '-', '@']) && s.parse::<f64>().is_err();
    if formula || s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        if formula {
            out.push('\'');
        }
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

fn opt_num(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_default()
}

pub fn to_csv(r: &Report) -> String {
    let mut out = String::from(
        "shot,slot,scheduled,sent,replied,timing_error_ms,duration_ms,result,error,skipped_before,late,files,tv,iso,av,exposure_ev,brightness,sun_alt\n",
    );
    for s in &r.shots {
        let cells = [
            s.shot.to_string(),
            s.slot.to_string(),
            label(s.scheduled_ms),
            s.sent_ms.map(label).unwrap_or_default(),
            s.replied_ms.map(label).unwrap_or_default(),
            opt_num(s.error_ms),
            opt_num(s.duration_ms),
            if s.ok { "ok" } else { "failed" }.to_string(),
            s.error.clone().unwrap_or_default(),
            s.skipped_before.to_string(),
            s.late.to_string(),
            s.files.join(" "),
            // Ramped sessions: what each frame was shot with (for a deflicker pass).
            s.settings
                .as_ref()
                .and_then(|x| x.tv.clone())
                .unwrap_or_default(),
            s.settings
                .as_ref()
                .and_then(|x| x.iso.clone())
                .unwrap_or_default(),
            s.settings
                .as_ref()
                .and_then(|x| x.av.clone())
                .unwrap_or_default(),
            s.exposure_ev.map(|e| format!("{e:.3}")).unwrap_or_default(),
            s.light
                .as_ref()
                .map(|l| format!("{:.5}", l.brightness))
                .unwrap_or_default(),
            s.light
                .as_ref()
                .map(|l| format!("{:.2}", l.sun_alt))
                .unwrap_or_default(),
        ];
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_field(&mut out, c);
        }
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// SVG

fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if c.is_control() => {}
            c => o.push(c),
        }
    }
    o
}

type SeriesFn = Box<dyn Fn(&ShotRecord) -> Option<f64>>;

/// Two stacked panels over shot number: timing error (ms) and shot duration (ms). Failed
/// shots are marked in red on the x axis. At most ~2000 points per series (evenly thinned).
pub fn to_svg(r: &Report) -> String {
    const W: f64 = 800.0;
    const PANEL_H: f64 = 180.0;
    const LEFT: f64 = 60.0;
    const RIGHT: f64 = 20.0;
    const TOP: f64 = 40.0;
    const GAP: f64 = 50.0;
    let h = TOP + 2.0 * PANEL_H + GAP + 40.0;
    let n = r.shots.len().max(1) as f64;
    let step = (r.shots.len() / 2000).max(1);
    let x = |i: usize| LEFT + (W - LEFT - RIGHT) * (i as f64 + 0.5) / n;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        svg,
        r##"<rect width="100%" height="100%" fill="#fff"/><text x="{LEFT}" y="20" font-size="14">{} — {} shots, mean error {} ms, p99 {} ms</text>"##,
        xml_escape(&r.title),
        r.shots.len(),
        opt_num(r.summary.mean_error_ms),
        opt_num(r.summary.p99_error_ms),
    );
    let panels: [(&str, &str, SeriesFn); 2] = [
        ("Timing error (ms)", "#1f77b4", Box::new(|s| s.error_ms)),
        ("Shot duration (ms)", "#2ca02c", Box::new(|s| s.duration_ms)),
    ];
    for (p, (name, color, value)) in panels.iter().enumerate() {
        let top = TOP + p as f64 * (PANEL_H + GAP);
        let vals: Vec<(usize, f64)> = r
            .shots
            .iter()
            .enumerate()
            .step_by(step)
            .filter_map(|(i, s)| value(s).map(|v| (i, v)))
            .collect();
        let (mut lo, mut hi) = vals.iter().fold((0.0f64, 0.0f64), |(lo, hi), (_, v)| {
            (lo.min(*v), hi.max(*v))
        });
        if hi - lo < 1e-9 {
            hi = lo + 1.0;
        }
        let pad = (hi - lo) * 0.05;
        lo -= if lo < 0.0 { pad } else { 0.0 };
        hi += pad;
        let y = |v: f64| top + PANEL_H - (v - lo) / (hi - lo) * PANEL_H;
        let _ = write!(
            svg,
            r##"<text x="{LEFT}" y="{}">{name}</text><rect x="{LEFT}" y="{top}" width="{}" height="{PANEL_H}" fill="none" stroke="#888"/>"##,
            top - 6.0,
            W - LEFT - RIGHT
        );
        // Enough decimals that the axis of a sub-millisecond error chart is not all "0.00".
        let decimals = match hi - lo {
            r if r >= 10.0 => 1,
            r if r >= 0.1 => 2,
            r if r >= 0.001 => 4,
            _ => 6,
        };
        for v in [lo, 0.0, hi] {
            if v < lo || v > hi {
                continue;
            }
            let _ = write!(
                svg,
                r##"<text x="{}" y="{:.1}" text-anchor="end">{v:.decimals$}</text><line x1="{LEFT}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/>"##,
                LEFT - 4.0,
                y(v) + 4.0,
                W - RIGHT,
                y(v),
                y(v)
            );
        }
        if !vals.is_empty() {
            svg.push_str(r#"<polyline fill="none" stroke-width="1" stroke=""#);
            svg.push_str(color);
            svg.push_str(r#"" points=""#);
            for (i, v) in &vals {
                let _ = write!(svg, "{:.1},{:.1} ", x(*i), y(*v));
            }
            svg.push_str(r#""/>"#);
        }
        for (i, s) in r.shots.iter().enumerate().filter(|(_, s)| !s.ok) {
            let _ = write!(
                svg,
                r##"<circle cx="{:.1}" cy="{:.1}" r="2" fill="#d62728"><title>shot {} failed</title></circle>"##,
                x(i),
                top + PANEL_H,
                s.shot
            );
        }
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">shot number (1 – {})</text></svg>"#,
        (W + LEFT) / 2.0,
        h - 10.0,
        r.shots.len()
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intervalometer::report::tests::log;

    #[test]
    fn csv_has_one_row_per_shot_and_quotes_errors() {
        let csv = to_csv(&Report::from_log(&log(5), None, 0));
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 6);
        assert!(lines[0].starts_with("shot,slot,scheduled"));
        assert!(
            lines[1].starts_with("1,0,1970-01-01T00:16:40.000Z,"),
            "{}",
            lines[1]
        );
        assert!(
            // Not ramped: the settings columns are empty.
            lines[1].ends_with(",ok,,0,false,IMG_1.CR3 IMG_1.JPG,,,,,,"),
            "{}",
            lines[1]
        );
        assert!(
            lines[3].contains(r#",failed,"camera offline: busy, ""503""",0,"#),
            "{}",
            lines[3]
        );
    }

    #[test]
    fn svg_is_well_formed_and_escapes_the_title() {
        let svg = to_svg(&Report::from_log(&log(5), None, 0));
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
        assert!(svg.contains("Stars &lt;&amp;&gt; &quot;night&quot;"));
        assert!(!svg.contains("<&>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("shot 3 failed"));
        // An empty report still renders.
        let empty = to_svg(&Report::from_log(&log(0), None, 0));
        assert!(empty.ends_with("</svg>"));
    }
}
