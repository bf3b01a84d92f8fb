//! CSV data files: a header row naming the columns, then one sample per row. Parsed by hand:
//! fields are split at commas and may be wrapped in double quotes, but a quoted field cannot
//! itself contain a comma (numeric data never needs one). Blank lines are skipped.

use std::collections::HashMap;
use std::path::Path;

use super::{assemble, class_index, error, read_file, Labels, LoadOptions, Origin};
use crate::diag::{nearest, Diagnostic};

/// Load a CSV file: the `label_column` holds the labels and the `feature_columns` (or every
/// other column) the features, scaled and reshaped as `opts` says. Errors name the file and the
/// 1-based line.
pub fn load_csv(path: &Path, opts: &LoadOptions) -> Result<super::Dataset, Diagnostic> {
    let name = path.display().to_string();
    let bytes = read_file(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        error(format!("{name}: not a text file (invalid UTF-8 at byte {})", e.valid_up_to()))
            .help("a CSV file is UTF-8 text: a header row, then comma-separated numbers")
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty());

    let Some((header_line, header)) = lines.next() else {
        return Err(
            error(format!("{name}: the file is empty")).help("a CSV file needs a header row naming its columns")
        );
    };
    let columns: Vec<&str> = header.split(',').map(unquote).collect();
    if columns.iter().all(|c| c.parse::<f64>().is_ok()) {
        return Err(error(format!("{name}:{header_line}: missing header: the first row is numbers, not column names"))
            .help(format!(
                "add a header row naming the columns, with the labels in one called `{}`",
                opts.label_column
            )));
    }
    // Column names by position, found in one pass: a header of a million columns is read in
    // linear time.
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(columns.len());
    for (i, c) in columns.iter().enumerate() {
        if index.insert(c, i).is_some() {
            return Err(error(format!("{name}:{header_line}: column `{c}` appears twice in the header")));
        }
    }
    let find = |wanted: &str, role: &str| -> Result<usize, Diagnostic> {
        index.get(wanted).copied().ok_or_else(|| {
            let mut d = error(format!("{name}:{header_line}: no column named `{wanted}` for the {role}"));
            if let Some(near) = suggest(wanted, &columns) {
                d = d.help(format!("did you mean `{near}`?"));
            }
            d.note(format!("the columns are: {}", list(&columns)))
        })
    };
    let label = find(&opts.label_column, "labels")?;
    let features: Vec<usize> = match &opts.feature_columns {
        Some(wanted) => wanted.iter().map(|w| find(w, "features")).collect::<Result<_, _>>()?,
        None => (0..columns.len()).filter(|&c| c != label).collect(),
    };

    let mut values: Vec<f32> = Vec::new();
    let mut classes: Vec<u32> = Vec::new();
    let mut targets: Vec<f32> = Vec::new();
    let mut row_lines: Vec<usize> = Vec::new();
    for (line, row) in lines {
        row_lines.push(line);
        let fields: Vec<&str> = row.split(',').map(unquote).collect();
        if fields.len() != columns.len() {
            return Err(error(format!(
                "{name}:{line}: expected {} fields as in the header, found {}",
                columns.len(),
                fields.len()
            )));
        }
        for &c in &features {
            values.push(
                number(fields[c]).map_err(|why| error(format!("{name}:{line}: column `{}`: {why}", columns[c])))?,
            );
        }
        let at = |why: String| error(format!("{name}:{line}: column `{}`: {why}", columns[label]));
        if opts.targets {
            targets.push(number(fields[label]).map_err(at)?);
        } else {
            let raw = fields[label].parse::<f64>().map_err(|_| at(not_a_number(fields[label])))?;
            classes.push(class_index(raw).map_err(at)?);
        }
    }
    if row_lines.is_empty() {
        return Err(error(format!("{name}: no data rows after the header")));
    }
    let labels =
        if opts.targets { Labels::Targets { shape: vec![], values: targets } } else { Labels::Classes(classes) };
    // `assemble` checks the labels against the declared class count, naming the line.
    assemble(Origin::new(&name, &name, Some(row_lines)), vec![features.len()], values, labels, opts)
}

/// The column a misspelt name most likely meant: the nearest by edit distance, or else one with
/// the same letters in another order or case (`lable` for `label`, which is two edits away).
fn suggest<'a>(wanted: &str, columns: &[&'a str]) -> Option<&'a str> {
    let letters = |s: &str| {
        let mut l: Vec<char> = s.to_lowercase().chars().collect();
        l.sort_unstable();
        l
    };
    nearest(wanted, columns.iter().copied()).or_else(|| columns.iter().copied().find(|c| letters(c) == letters(wanted)))
}

/// A field without surrounding spaces and double quotes.
fn unquote(field: &str) -> &str {
    let f = field.trim();
    f.strip_prefix('"').and_then(|f| f.strip_suffix('"')).unwrap_or(f).trim()
}

/// A finite number; the error says why not.
fn number(field: &str) -> Result<f32, String> {
    match field.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!("`{field}` is not a finite number")),
        Err(_) => Err(not_a_number(field)),
    }
}

fn not_a_number(field: &str) -> String {
    if field.is_empty() {
        "the field is empty".to_string()
    } else {
        format!("`{field}` is not a number")
    }
}

/// The column names for a note, shortened when there are many.
fn list(columns: &[&str]) -> String {
    if columns.len() <= 12 {
        columns.join(", ")
    } else {
        format!(
            "{}, ..., {} ({} in all)",
            columns[..6].join(", "),
            columns[columns.len() - 3..].join(", "),
            columns.len()
        )
    }
}
