//! CSV data files: a header row naming the columns, then one sample per row. Parsed by hand:
//! fields are split at commas and may be wrapped in double quotes, but a quoted field cannot
//! itself contain a comma (numeric data never needs one). Blank lines are skipped.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::{
    assemble, class_index, error, read_file, reserve, scale_values, Columns, Field, FieldSpec, FieldType, Labels,
    LoadOptions, Origin,
};
use crate::diag::{nearest, Diagnostic};

/// A CSV file's text split into its header and data lines.
struct Table<'a> {
    name: String,
    header_line: usize,
    columns: Vec<&'a str>,
    /// Each column's position by name, so that finding the columns of a header of a million
    /// is linear in its length, not quadratic.
    index: HashMap<&'a str, usize>,
    /// The data lines (1-based numbers), blank lines skipped.
    rows: Vec<(usize, &'a str)>,
}

impl<'a> Table<'a> {
    fn parse(name: String, text: &'a str, label_hint: &str) -> Result<Table<'a>, Diagnostic> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty());
        let Some((header_line, header)) = lines.next() else {
            return Err(
                error(format!("{name}: the file is empty")).help("a CSV file needs a header row naming its columns")
            );
        };
        let columns: Vec<&str> = header.split(',').map(unquote).collect();
        if columns.iter().all(|c| c.parse::<f64>().is_ok()) {
            return Err(error(format!(
                "{name}:{header_line}: missing header: the first row is numbers, not column names"
            ))
            .help(format!("add a header row naming the columns, with the labels in one called `{label_hint}`")));
        }
        let mut index = HashMap::with_capacity(columns.len());
        for (i, c) in columns.iter().enumerate() {
            if index.insert(*c, i).is_some() {
                return Err(error(format!("{name}:{header_line}: column `{c}` appears twice in the header")));
            }
        }
        let rows: Vec<(usize, &str)> = lines.collect();
        if rows.is_empty() {
            return Err(error(format!("{name}: no data rows after the header")));
        }
        Ok(Table { name, header_line, columns, index, rows })
    }

    fn find(&self, wanted: &str, role: &str) -> Result<usize, Diagnostic> {
        let (name, header_line) = (&self.name, self.header_line);
        self.index.get(wanted).copied().ok_or_else(|| {
            let mut d = error(format!("{name}:{header_line}: no column named `{wanted}` for the {role}"));
            if let Some(near) = suggest(wanted, &self.columns) {
                d = d.help(format!("did you mean `{near}`?"));
            }
            d.note(format!("the columns are: {}", list(&self.columns)))
        })
    }

    /// The fields of each row, checked to be as many as the header's columns.
    fn split_rows(&self) -> impl Iterator<Item = Result<(usize, Vec<&'a str>), Diagnostic>> + '_ {
        self.rows.iter().map(|&(line, row)| {
            let fields: Vec<&str> = row.split(',').map(unquote).collect();
            if fields.len() != self.columns.len() {
                return Err(error(format!(
                    "{}:{line}: expected {} fields as in the header, found {}",
                    self.name,
                    self.columns.len(),
                    fields.len()
                )));
            }
            Ok((line, fields))
        })
    }

    fn lines(&self) -> Vec<usize> {
        self.rows.iter().map(|r| r.0).collect()
    }
}

fn read_text(path: &Path) -> Result<(String, String), Diagnostic> {
    let name = path.display().to_string();
    let bytes = read_file(path)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        error(format!("{name}: not a text file (invalid UTF-8 at byte {})", e.utf8_error().valid_up_to()))
            .help("a CSV file is UTF-8 text: a header row, then comma-separated numbers")
    })?;
    Ok((name, text))
}

/// Load a CSV file: the `label_column` holds the labels and the `feature_columns` (or every
/// other column) the features, scaled and reshaped as `opts` says. The data set's fields are
/// `x` and `labels`. Errors name the file and the 1-based line.
pub fn load_csv(path: &Path, opts: &LoadOptions) -> Result<super::Dataset, Diagnostic> {
    let (name, text) = read_text(path)?;
    let table = Table::parse(name.clone(), &text, &opts.label_column)?;
    let label = table.find(&opts.label_column, "labels")?;
    let features: Vec<usize> = match &opts.feature_columns {
        Some(wanted) => wanted.iter().map(|w| table.find(w, "features")).collect::<Result<_, _>>()?,
        None => (0..table.columns.len()).filter(|&c| c != label).collect(),
    };

    let mut values: Vec<f32> = Vec::new();
    let mut classes: Vec<u32> = Vec::new();
    let mut targets: Vec<f32> = Vec::new();
    for row in table.split_rows() {
        let (line, fields) = row?;
        for &c in &features {
            values.push(
                number(fields[c])
                    .map_err(|why| error(format!("{name}:{line}: column `{}`: {why}", table.columns[c])))?,
            );
        }
        let at = |why: String| error(format!("{name}:{line}: column `{}`: {why}", table.columns[label]));
        if opts.targets {
            targets.push(number(fields[label]).map_err(at)?);
        } else {
            let raw = fields[label].parse::<f64>().map_err(|_| at(not_a_number(fields[label])))?;
            classes.push(class_index(raw).map_err(at)?);
        }
    }
    let labels =
        if opts.targets { Labels::Targets { shape: vec![], values: targets } } else { Labels::Classes(classes) };
    let origin = Origin::new(&name, Some(table.lines()));
    // `assemble` checks the labels against the declared class count, naming the line.
    assemble(origin.clone(), origin, vec![features.len()], values, labels, opts)
}

/// Load the columns `columns` of a CSV file as the field `spec.name`: one sample per row,
/// `[columns]` values each (before `load_field` applies a declared shape).
pub(super) fn load_field(spec: &FieldSpec, columns: &Columns) -> Result<Field, Diagnostic> {
    let (name, text) = read_text(&spec.path)?;
    let table = Table::parse(name.clone(), &text, &spec.name)?;
    let role = format!("field `{}`", spec.name);
    let picked: Vec<usize> = match columns {
        Columns::Names(names) => names.iter().map(|n| table.find(n, &role)).collect::<Result<_, _>>()?,
        Columns::Range(first, last) => {
            let (a, b) = (table.find(first, &role)?, table.find(last, &role)?);
            if a > b {
                return Err(error(format!(
                    "{name}:{}: the column range `{first}:{last}` runs backwards (`{last}` comes before `{first}`)",
                    table.header_line
                )));
            }
            (a..=b).collect()
        }
        Columns::Rest => {
            let taken: HashSet<usize> =
                spec.exclude.iter().filter_map(|n| table.index.get(n.as_str()).copied()).collect();
            (0..table.columns.len()).filter(|c| !taken.contains(c)).collect()
        }
    };
    if picked.is_empty() {
        return Err(error(format!("{name}: field `{}` gets no columns: other fields take them all", spec.name)));
    }
    let mut values = reserve(picked.len().saturating_mul(table.rows.len()), &name)?;
    for row in table.split_rows() {
        let (line, fields) = row?;
        for &c in &picked {
            let v = number(fields[c]).map_err(|why| {
                error(format!("{name}:{line}: column `{}` of field `{}`: {why}", table.columns[c], spec.name))
            })?;
            values.push(v);
        }
    }
    if spec.ty == FieldType::Float {
        scale_values(&name, &mut values, spec.scale)?;
    }
    Field::from_parts(&spec.name, spec.ty, vec![picked.len()], values, Origin::new(&name, Some(table.lines())))
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
