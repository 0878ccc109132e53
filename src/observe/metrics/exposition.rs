//! Writers for the Prometheus text exposition format 0.0.4: family headers, samples, escaping.
//!
//! They write into `&mut dyn fmt::Write` so one code path serves a `String` scrape buffer and a
//! test's `String` alike without generics spreading through the renderer.

use std::fmt::{self, Write};

use super::histogram::{Bound, HistogramSnapshot, seconds};

/// The `# TYPE` of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic count; the family name ends in `_total`.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Buckets, sum and count.
    Histogram,
}

/// A sample value: integers print exactly, floats as Prometheus parses them.
#[derive(Clone, Copy, Debug)]
pub enum Value {
    /// A counter or an integer gauge.
    Unsigned(u64),
    /// A gauge that a caller bug could drive below zero; shown as is, to expose the bug.
    Signed(i64),
    /// Seconds, ratios, health levels.
    Float(f64),
}

/// Writes `# HELP` and `# TYPE` for a family.
pub fn header(out: &mut dyn Write, name: &str, kind: Kind, help: &str) -> fmt::Result {
    out.write_str("# HELP ")?;
    out.write_str(name)?;
    out.write_char(' ')?;
    for c in help.chars() {
        match c {
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            c => out.write_char(c)?,
        }
    }
    let kind = match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "histogram",
    };
    writeln!(out, "\n# TYPE {name} {kind}")
}

/// Writes one sample line: `name{k="v",...} value`.
pub fn sample(
    out: &mut dyn Write,
    name: &str,
    labels: &[(&str, &str)],
    value: Value,
) -> fmt::Result {
    out.write_str(name)?;
    write_labels(out, labels, None)?;
    out.write_char(' ')?;
    write_value(out, value)?;
    out.write_char('\n')
}

/// Writes the `_bucket`, `_sum` and `_count` lines of one histogram series.
pub fn histogram(
    out: &mut dyn Write,
    name: &str,
    labels: &[(&str, &str)],
    bounds: &[Bound],
    snapshot: &HistogramSnapshot,
) -> fmt::Result {
    histogram_with_sum(
        out,
        name,
        labels,
        bounds,
        snapshot,
        seconds(snapshot.sum_nanos),
    )
}

/// A histogram of sizes ([`super::histogram::Histogram::observe_units`]): its sum is a plain
/// count, not nanoseconds.
pub fn histogram_units(
    out: &mut dyn Write,
    name: &str,
    labels: &[(&str, &str)],
    bounds: &[Bound],
    snapshot: &HistogramSnapshot,
) -> fmt::Result {
    histogram_with_sum(
        out,
        name,
        labels,
        bounds,
        snapshot,
        snapshot.sum_nanos as f64,
    )
}

fn histogram_with_sum(
    out: &mut dyn Write,
    name: &str,
    labels: &[(&str, &str)],
    bounds: &[Bound],
    snapshot: &HistogramSnapshot,
    sum: f64,
) -> fmt::Result {
    let les = bounds.iter().map(|b| b.label).chain(["+Inf"]);
    for (le, count) in les.zip(&snapshot.cumulative) {
        write!(out, "{name}_bucket")?;
        write_labels(out, labels, Some(le))?;
        writeln!(out, " {count}")?;
    }
    write!(out, "{name}_sum")?;
    write_labels(out, labels, None)?;
    out.write_char(' ')?;
    write_value(out, Value::Float(sum))?;
    write!(out, "\n{name}_count")?;
    write_labels(out, labels, None)?;
    writeln!(out, " {}", snapshot.count())
}

/// Writes a label value with `\`, `"` and line feed escaped, as the format requires.
pub fn escape_label_value(out: &mut dyn Write, value: &str) -> fmt::Result {
    for c in value.chars() {
        match c {
            '\\' => out.write_str("\\\\")?,
            '"' => out.write_str("\\\"")?,
            '\n' => out.write_str("\\n")?,
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

/// Writes `{k="v",...}` (nothing when there are no labels), with `le` last when given.
fn write_labels(out: &mut dyn Write, labels: &[(&str, &str)], le: Option<&str>) -> fmt::Result {
    if labels.is_empty() && le.is_none() {
        return Ok(());
    }
    out.write_char('{')?;
    let all = labels.iter().copied().chain(le.map(|le| ("le", le)));
    for (i, (key, value)) in all.enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        out.write_str(key)?;
        out.write_str("=\"")?;
        escape_label_value(out, value)?;
        out.write_char('"')?;
    }
    out.write_char('}')
}

/// Writes a value; floats use Rust's shortest round-trip form, which never uses an exponent and
/// which Prometheus parses back to the same number.
fn write_value(out: &mut dyn Write, value: Value) -> fmt::Result {
    match value {
        Value::Unsigned(v) => write!(out, "{v}"),
        Value::Signed(v) => write!(out, "{v}"),
        Value::Float(v) if v.is_nan() => out.write_str("NaN"),
        Value::Float(v) if v == f64::INFINITY => out.write_str("+Inf"),
        Value::Float(v) if v == f64::NEG_INFINITY => out.write_str("-Inf"),
        Value::Float(v) => write!(out, "{v}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_escape_backslash_quote_and_newline_only() {
        let mut out = String::new();
        escape_label_value(&mut out, "a\\b\"c\nd\té").unwrap();
        assert_eq!(out, "a\\\\b\\\"c\\nd\té");
    }

    #[test]
    fn help_text_escapes_backslash_and_newline_but_not_quotes() {
        let mut out = String::new();
        header(&mut out, "x_total", Kind::Counter, "a \"b\"\\\nc").unwrap();
        assert_eq!(
            out,
            "# HELP x_total a \"b\"\\\\\\nc\n# TYPE x_total counter\n"
        );
    }

    #[test]
    fn samples_print_labels_in_order_and_special_floats_by_name() {
        let mut out = String::new();
        sample(&mut out, "g", &[], Value::Float(f64::NAN)).unwrap();
        sample(&mut out, "g", &[("a", "1"), ("b", "2")], Value::Float(0.5)).unwrap();
        sample(&mut out, "g", &[], Value::Float(f64::INFINITY)).unwrap();
        sample(&mut out, "g", &[], Value::Signed(-1)).unwrap();
        assert_eq!(out, "g NaN\ng{a=\"1\",b=\"2\"} 0.5\ng +Inf\ng -1\n");
    }
}
