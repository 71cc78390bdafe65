//! Reading datasets with polars (JSONL, CSV, Parquet) in alpaca form (instruction / input /
//! output) or chat form (messages), into [`Record`]s with their declared classification.

use std::io::BufRead;
use std::path::Path;

use polars::prelude::*;

use super::classify::Level;
use super::template::Message;
use crate::recipe::DatasetFormat;

/// One training example as read from a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The dataset file it came from.
    pub source: String,
    /// 1-based row (line for JSONL, data row for CSV/Parquet).
    pub row: usize,
    pub messages: Vec<Message>,
    /// The label column's value, if present.
    pub label: Option<Level>,
}

/// Dataset reading failures; each names the file and the row or column.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: row {row}: {why}")]
    Row {
        path: String,
        row: usize,
        why: String,
    },
    #[error("{path}: column `{column}`: {why}")]
    Column {
        path: String,
        column: String,
        why: String,
    },
    #[error("{path}: {why}")]
    Format { path: String, why: String },
}

/// Text fields that must hold strings when present.
const TEXT_KEYS: [&str; 4] = ["instruction", "input", "output", "system"];

/// Checks each JSONL line parses as a JSON object with text fields of the right types, so an
/// error can name the line (polars would coerce or fail without a row number).
fn prevalidate_jsonl(path: &Path) -> Result<(), IngestError> {
    let f = std::fs::File::open(path).map_err(|source| IngestError::Io {
        path: path.display().to_string(),
        source,
    })?;
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|source| IngestError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(serde_json::Value::Object(map)) => {
                let row_err = |why: String| IngestError::Row {
                    path: path.display().to_string(),
                    row: i + 1,
                    why,
                };
                for key in TEXT_KEYS {
                    if let Some(v) = map.get(key) {
                        if !(v.is_string() || v.is_null()) {
                            return Err(row_err(format!("`{key}` must be a string (got {v})")));
                        }
                    }
                }
                if let Some(m) = map.get("messages") {
                    let ok = m.as_array().is_some_and(|a| {
                        a.iter().all(|x| {
                            x.get("role").is_some_and(|r| r.is_string())
                                && x.get("content").is_some_and(|c| c.is_string())
                        })
                    });
                    if !ok {
                        return Err(row_err(
                            "`messages` must be a list of {\"role\": string, \"content\": string}"
                                .into(),
                        ));
                    }
                }
            }
            Ok(_) => {
                return Err(IngestError::Row {
                    path: path.display().to_string(),
                    row: i + 1,
                    why: "not a JSON object".into(),
                });
            }
            Err(e) => {
                return Err(IngestError::Row {
                    path: path.display().to_string(),
                    row: i + 1,
                    why: format!("malformed JSON: {e}"),
                });
            }
        }
    }
    Ok(())
}

/// Reads a file into a polars DataFrame by its extension.
pub fn read_frame(path: &Path) -> Result<DataFrame, IngestError> {
    let p = path.display().to_string();
    let polars_err = |e: PolarsError| IngestError::Format {
        path: p.clone(),
        why: e.to_string(),
    };
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let open = || {
        std::fs::File::open(path).map_err(|source| IngestError::Io {
            path: p.clone(),
            source,
        })
    };
    match ext.as_str() {
        "jsonl" | "ndjson" => {
            prevalidate_jsonl(path)?;
            if std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) == 0 {
                return Err(IngestError::Format {
                    path: p.clone(),
                    why: "the dataset is empty".into(),
                });
            }
            JsonReader::new(open()?)
                .with_json_format(JsonFormat::JsonLines)
                .finish()
                .map_err(polars_err)
        }
        "csv" => CsvReadOptions::default()
            .with_has_header(true)
            .try_into_reader_with_file_path(Some(path.to_path_buf().into()))
            .and_then(|r| r.finish())
            .map_err(polars_err),
        "parquet" => ParquetReader::new(open()?).finish().map_err(polars_err),
        other => Err(IngestError::Format {
            path: p,
            why: format!("unsupported extension {other:?} (expected .jsonl, .csv or .parquet)"),
        }),
    }
}

fn str_column<'a>(
    df: &'a DataFrame,
    name: &str,
    path: &str,
) -> Result<Option<&'a StringChunked>, IngestError> {
    match df.column(name) {
        Err(_) => Ok(None),
        Ok(c) => c
            .as_materialized_series()
            .str()
            .map(Some)
            .map_err(|e| IngestError::Column {
                path: path.to_string(),
                column: name.to_string(),
                why: format!("expected strings: {e}"),
            }),
    }
}

/// Reads every record of a dataset.
pub fn read_records(
    path: &Path,
    format: DatasetFormat,
    level_column: &str,
) -> Result<Vec<Record>, IngestError> {
    let p = path.display().to_string();
    let df = read_frame(path)?;
    if df.height() == 0 {
        return Err(IngestError::Format {
            path: p,
            why: "the dataset has no rows".into(),
        });
    }
    let has = |c: &str| df.column(c).is_ok();
    let format = match format {
        DatasetFormat::Auto if has("messages") => DatasetFormat::Chat,
        DatasetFormat::Auto if has("instruction") && has("output") => DatasetFormat::Alpaca,
        DatasetFormat::Auto => {
            return Err(IngestError::Format {
                path: p,
                why: format!(
                    "cannot tell the format: expected a `messages` column (chat) or `instruction` and `output` columns (alpaca); found {:?}",
                    df.get_column_names()
                ),
            });
        }
        f => f,
    };
    let labels = str_column(&df, level_column, &p)?;
    let label_at = |i: usize| -> Result<Option<Level>, IngestError> {
        match labels.and_then(|l| l.get(i)) {
            None => Ok(None),
            Some(s) if s.trim().is_empty() => Ok(None),
            Some(s) => s.parse::<Level>().map(Some).map_err(|_| IngestError::Row {
                path: p.clone(),
                row: i + 1,
                why: format!("column `{level_column}`: unknown classification {s:?} (expected PUBLIC, INTERNAL, CONFIDENTIAL, SECRET or ÖFFENTLICH, INTERN, VERTRAULICH, GEHEIM)"),
            }),
        }
    };
    let mut out = Vec::with_capacity(df.height());
    match format {
        DatasetFormat::Alpaca => {
            let need = |c: &str| {
                str_column(&df, c, &p)?.ok_or_else(|| IngestError::Column {
                    path: p.clone(),
                    column: c.into(),
                    why: "missing".into(),
                })
            };
            let instruction = need("instruction")?;
            let output = need("output")?;
            let input = str_column(&df, "input", &p)?;
            let system = str_column(&df, "system", &p)?;
            for i in 0..df.height() {
                let row_err = |why: &str| IngestError::Row {
                    path: p.clone(),
                    row: i + 1,
                    why: why.into(),
                };
                let ins = instruction
                    .get(i)
                    .ok_or_else(|| row_err("`instruction` is empty"))?;
                let outp = output
                    .get(i)
                    .filter(|o| !o.trim().is_empty())
                    .ok_or_else(|| row_err("`output` is empty"))?;
                let user = match input
                    .and_then(|c| c.get(i))
                    .filter(|s| !s.trim().is_empty())
                {
                    Some(inp) => format!("{ins}\n\n{inp}"),
                    None => ins.to_string(),
                };
                let mut messages = Vec::new();
                if let Some(sys) = system
                    .and_then(|c| c.get(i))
                    .filter(|s| !s.trim().is_empty())
                {
                    messages.push(Message::new("system", sys));
                }
                messages.push(Message::new("user", &user));
                messages.push(Message::new("assistant", outp));
                out.push(Record {
                    source: p.clone(),
                    row: i + 1,
                    messages,
                    label: label_at(i)?,
                });
            }
        }
        DatasetFormat::Chat | DatasetFormat::Auto => {
            let col = df.column("messages").map_err(|_| IngestError::Column {
                path: p.clone(),
                column: "messages".into(),
                why: "missing".into(),
            })?;
            let list = col
                .as_materialized_series()
                .list()
                .map_err(|e| IngestError::Column {
                    path: p.clone(),
                    column: "messages".into(),
                    why: format!("expected a list of {{role, content}}: {e}"),
                })?;
            for i in 0..list.len() {
                let item = list.get_as_series(i);
                let row_err = |why: String| IngestError::Row {
                    path: p.clone(),
                    row: i + 1,
                    why,
                };
                let s = item.ok_or_else(|| row_err("`messages` is empty".into()))?;
                let st = s
                    .struct_()
                    .map_err(|e| row_err(format!("`messages` entries must be objects: {e}")))?;
                let field = |name: &str| -> Result<Series, IngestError> {
                    st.field_by_name(name)
                        .map_err(|_| row_err(format!("a message lacks `{name}`")))
                };
                let roles = field("role")?;
                let contents = field("content")?;
                let roles = roles
                    .str()
                    .map_err(|e| row_err(format!("`role` must be a string: {e}")))?;
                let contents = contents
                    .str()
                    .map_err(|e| row_err(format!("`content` must be a string: {e}")))?;
                let mut messages = Vec::new();
                for j in 0..roles.len() {
                    let role = roles
                        .get(j)
                        .ok_or_else(|| row_err(format!("message {j} has no role")))?;
                    let content = contents
                        .get(j)
                        .ok_or_else(|| row_err(format!("message {j} has no `content`")))?;
                    if role == "assistant" && content.trim().is_empty() {
                        return Err(row_err(format!(
                            "message {j}: the assistant's `content` is empty"
                        )));
                    }
                    if !matches!(role, "system" | "user" | "assistant") {
                        return Err(row_err(format!("message {j}: unknown role {role:?}")));
                    }
                    messages.push(Message::new(role, content));
                }
                if !messages.iter().any(|m| m.role == "user") {
                    return Err(row_err(
                        "a conversation needs a user message before the assistant's answer".into(),
                    ));
                }
                if messages.last().is_none_or(|m| m.role != "assistant") {
                    return Err(row_err("the last message must be the assistant's".into()));
                }
                out.push(Record {
                    source: p.clone(),
                    row: i + 1,
                    messages,
                    label: label_at(i)?,
                });
            }
        }
    }
    Ok(out)
}
