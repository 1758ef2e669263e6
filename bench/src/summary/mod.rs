//! `ssehub-bench report`: turns one results directory of `scripts/bench/compare.sh`
//! into the material of BENCHMARKS.md: markdown tables of ssehub against Nchan with
//! ratios, a pass/fail verdict per target of the issue, and SVG charts of the sweep.
//!
//! The reports are read as plain JSON values rather than typed back into
//! [`crate::report::Report`]: a results directory from an older generator with a
//! missing or extra field still summarises, its gaps shown as "–".

mod charts;
mod tables;
mod targets;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::cli::ReportArgs;

/// The two servers compared, in column order.
pub const TARGETS: [&str; 2] = ["ssehub", "nchan"];

/// The reference peers (`compare.sh` TARGETS `tokio-peer`, `actix-peer`) and their
/// column titles: shown after the ratio when a results directory has them.
pub const PEERS: [(&str, &str); 2] = [("tokio-peer", "tokio peer"), ("actix-peer", "actix peer")];

/// Case names of the subscriber sweep are this prefix plus the subscriber count.
pub const SWEEP_PREFIX: &str = "sweep-";

/// The case names `scripts/bench/compare.sh` gives its reports (`<case>.<target>.json`).
pub mod case {
    pub const FANOUT_20: &str = "fanout-1000x20";
    pub const FANOUT_1000: &str = "fanout-1000x1000";
    pub const IDLE: &str = "idle-5000";
    pub const CONNECT: &str = "connect-10000";
    pub const BROADCAST: &str = "broadcast-19000";
    pub const SLOW: &str = "slow-stalled";
    pub const SLOW_BASELINE: &str = "slow-baseline";
    pub const CHURN: &str = "churn-100000";
    pub const PUBLISH: &str = "publish";
}

pub fn run(args: &ReportArgs) -> Result<(), String> {
    let results = Results::load(&args.results_dir)?;
    let mut out = String::new();
    targets::write(&results, &mut out);
    tables::write(&results, &mut out);
    print!("{out}");
    if results.sweep_sizes().is_empty() {
        eprintln!("no sweep-N results: no charts drawn");
        return Ok(());
    }
    std::fs::create_dir_all(&args.svg_dir)
        .map_err(|e| format!("creating {}: {e}", args.svg_dir.display()))?;
    charts::render(&results, &args.svg_dir)?;
    eprintln!(
        "wrote latency.svg and throughput.svg to {}",
        args.svg_dir.display()
    );
    Ok(())
}

/// Every `<case>.<target>.json` of a results directory.
pub struct Results {
    /// case → target → report.
    cases: BTreeMap<String, BTreeMap<String, Value>>,
}

impl Results {
    fn load(dir: &Path) -> Result<Self, String> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
        let mut cases: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let Some((case, target)) = name
                .strip_suffix(".json")
                .and_then(|stem| stem.rsplit_once('.'))
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| format!("parsing {}: {e}", path.display()))?;
            cases
                .entry(case.to_owned())
                .or_default()
                .insert(target.to_owned(), value);
        }
        if cases.is_empty() {
            return Err(format!(
                "no <case>.<target>.json files in {}",
                dir.display()
            ));
        }
        Ok(Results { cases })
    }

    /// The number at `path` (dot-separated keys) in `case`'s report for `target`.
    pub fn num(&self, case: &str, target: &str, path: &str) -> Option<f64> {
        let mut v = self.cases.get(case)?.get(target)?;
        for key in path.split('.') {
            v = v.get(key)?;
        }
        v.as_f64()
    }

    /// The peers that have a report in any case, in [`PEERS`] order.
    pub fn peers(&self) -> Vec<(&'static str, &'static str)> {
        PEERS
            .into_iter()
            .filter(|(target, _)| self.cases.values().any(|c| c.contains_key(*target)))
            .collect()
    }

    /// Subscriber counts of the sweep, ascending.
    pub fn sweep_sizes(&self) -> Vec<u64> {
        let mut sizes: Vec<u64> = self
            .cases
            .keys()
            .filter_map(|c| c.strip_prefix(SWEEP_PREFIX)?.parse().ok())
            .collect();
        sizes.sort_unstable();
        sizes
    }
}

/// A figure for a table cell: "–" when missing, thousands grouped, a few decimals
/// only for small numbers.
pub fn fmt_num(v: Option<f64>) -> String {
    let Some(v) = v else {
        return "–".into();
    };
    if v.abs() >= 1000.0 {
        let digits = format!("{:.0}", v.abs());
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if v < 0.0 {
            format!("-{grouped}")
        } else {
            grouped
        }
    } else if v.abs() >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// ssehub ÷ Nchan, when both exist and the divisor is not zero.
pub fn ratio(ssehub: Option<f64>, nchan: Option<f64>) -> Option<f64> {
    match (ssehub, nchan) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_for_tables() {
        assert_eq!(fmt_num(None), "–");
        assert_eq!(fmt_num(Some(970_565.4)), "970,565");
        assert_eq!(fmt_num(Some(1000.0)), "1,000");
        assert_eq!(fmt_num(Some(-12_345.0)), "-12,345");
        assert_eq!(fmt_num(Some(42.4)), "42");
        assert_eq!(fmt_num(Some(3.0)), "3");
        assert_eq!(fmt_num(Some(0.456)), "0.46");
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
    }

    #[test]
    fn reads_a_results_directory() {
        let dir = std::env::temp_dir().join(format!("ssehub-bench-summary-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let report = r#"{"scenario":"fanout","deliveries":{"per_sec":5.5}}"#;
        std::fs::write(dir.join("sweep-100.ssehub.json"), report).unwrap();
        std::fs::write(dir.join("sweep-20.nchan.json"), report).unwrap();
        std::fs::write(dir.join("idle-5000.actix-peer.json"), report).unwrap();
        std::fs::write(dir.join("commands.txt"), "not a report").unwrap();
        let results = Results::load(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            results.num("sweep-100", "ssehub", "deliveries.per_sec"),
            Some(5.5)
        );
        assert_eq!(
            results.num("sweep-100", "nchan", "deliveries.per_sec"),
            None
        );
        assert_eq!(
            results.num("sweep-20", "nchan", "deliveries.per_sec"),
            Some(5.5)
        );
        assert_eq!(results.sweep_sizes(), vec![20, 100]);
        assert_eq!(results.peers(), vec![("actix-peer", "actix peer")]);
        let mut tables = String::new();
        tables::write(&results, &mut tables);
        assert!(tables.contains("| | ssehub | Nchan | ssehub/Nchan | actix peer |\n"));
    }
}
