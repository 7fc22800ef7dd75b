//! DataProcessing: InputFilter selects what of a record the model sees, JoinSource `Input`
//! joins the record with the model's output, OutputFilter selects what is written
//! (CONTRACT-serving-extras A.8).
//!
//! Records are CSV or JSON. A CSV record is read as a JSON array of its fields (so only
//! index selectors apply) and written back as a CSV line; a join appends the output's
//! columns. A JSON join puts the output under `SageMakerOutput` of the input object, or
//! makes `{"SageMakerInput": …, "SageMakerOutput": …}` when the input is not an object.
//!
//! The JSONPath subset SageMaker documents: `$`, `.name`, `*`, `['a','b']`, `[n]`,
//! `[n,m,…]` with negative indexes, and slices `[start:end]` whose end is inclusive (as
//! SageMaker's examples have it: `$[1:4]` is the 2nd to 5th column).

use serde_json::{Map, Value};

/// How records are read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    /// The format of a content type DataProcessing takes: `text/csv`, `application/json`
    /// or `application/jsonlines`.
    pub fn of(content_type: &str) -> Option<Format> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        match essence.to_ascii_lowercase().as_str() {
            "text/csv" => Some(Format::Csv),
            "application/json" | "application/jsonlines" | "application/x-jsonlines" => {
                Some(Format::Json)
            }
            _ => None,
        }
    }

    /// A record as a value.
    pub fn read(self, record: &[u8]) -> Result<Value, String> {
        let text =
            std::str::from_utf8(record).map_err(|_| "the record is not UTF-8".to_string())?;
        match self {
            Format::Csv => Ok(Value::Array(
                csv_fields(text.trim_end_matches(['\r', '\n']))
                    .into_iter()
                    .map(Value::String)
                    .collect(),
            )),
            Format::Json => serde_json::from_str(text.trim())
                .map_err(|e| format!("the record is not JSON: {e}")),
        }
    }

    /// A value as a record (one line).
    pub fn write(self, value: &Value) -> Vec<u8> {
        match self {
            Format::Json => value.to_string().into_bytes(),
            Format::Csv => {
                let fields: Vec<String> = match value {
                    Value::Array(items) => items.iter().map(csv_field).collect(),
                    other => vec![csv_field(other)],
                };
                fields.join(",").into_bytes()
            }
        }
    }
}

/// The fields of one CSV line (RFC 4180 quoting).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

fn csv_field(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => return items.iter().map(csv_field).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Keys(Vec<String>),
    Wildcard,
    /// `[n]`: the element itself.
    Index(i64),
    /// `[n,m,a:b,…]`: an array of the elements.
    Indexes(Vec<Selector>),
}

#[derive(Debug, Clone, PartialEq)]
enum Selector {
    One(i64),
    /// Both ends included.
    Slice(Option<i64>, Option<i64>),
}

/// A parsed InputFilter or OutputFilter.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    text: String,
    steps: Vec<Step>,
}

impl JsonPath {
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let bad = |why: &str| format!("'{text}' is not a JSONPath SageMaker takes: {why}");
        let rest = text
            .trim()
            .strip_prefix('$')
            .ok_or_else(|| bad("it must begin with $"))?;
        let mut steps = Vec::new();
        let mut rest = rest;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                if after.starts_with('[') {
                    rest = after;
                    continue;
                }
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let name = &after[..end];
                if name.is_empty() {
                    return Err(bad("an empty name after '.'"));
                }
                steps.push(if name == "*" {
                    Step::Wildcard
                } else {
                    Step::Key(name.to_string())
                });
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after
                    .find(']')
                    .ok_or_else(|| bad("a '[' without its ']'"))?;
                steps.push(bracket(&after[..end]).map_err(|why| bad(&why))?);
                rest = &after[end + 1..];
            } else {
                return Err(bad("expected '.' or '['"));
            }
        }
        Ok(JsonPath {
            text: text.to_string(),
            steps,
        })
    }

    /// What the path selects from `value`.
    pub fn select(&self, value: &Value) -> Result<Value, String> {
        select(value, &self.steps).map_err(|why| format!("{} {why}", self.text))
    }
}

fn bracket(inside: &str) -> Result<Step, String> {
    let inside = inside.trim();
    if inside == "*" {
        return Ok(Step::Wildcard);
    }
    if inside.starts_with('\'') || inside.starts_with('"') {
        let keys = inside
            .split(',')
            .map(|k| {
                let k = k.trim();
                let unquoted = k
                    .strip_prefix('\'')
                    .and_then(|k| k.strip_suffix('\''))
                    .or_else(|| k.strip_prefix('"').and_then(|k| k.strip_suffix('"')))
                    .ok_or_else(|| format!("{k} is not a quoted name"))?;
                if unquoted.contains(['.', '[']) {
                    return Err(format!("{k}: paths inside brackets are not taken"));
                }
                Ok(unquoted.to_string())
            })
            .collect::<Result<Vec<_>, String>>()?;
        return Ok(if keys.len() == 1 {
            Step::Key(keys.into_iter().next().unwrap_or_default())
        } else {
            Step::Keys(keys)
        });
    }
    let number = |s: &str| -> Result<Option<i64>, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        s.parse()
            .map(Some)
            .map_err(|_| format!("'{s}' is not an index"))
    };
    let mut selectors = Vec::new();
    for part in inside.split(',') {
        selectors.push(match part.split_once(':') {
            Some((a, b)) => Selector::Slice(number(a)?, number(b)?),
            None => Selector::One(number(part)?.ok_or("an empty index")?),
        });
    }
    Ok(match selectors.as_slice() {
        [Selector::One(n)] => Step::Index(*n),
        _ => Step::Indexes(selectors),
    })
}

fn position(n: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let at = if n < 0 { len + n } else { n };
    (0..len)
        .contains(&at)
        .then(|| usize::try_from(at).ok())
        .flatten()
}

fn select(value: &Value, steps: &[Step]) -> Result<Value, String> {
    let Some((step, rest)) = steps.split_first() else {
        return Ok(value.clone());
    };
    match (step, value) {
        (Step::Key(k), Value::Object(map)) => {
            let child = map.get(k).ok_or_else(|| format!("finds no '{k}'"))?;
            select(child, rest)
        }
        (Step::Keys(keys), Value::Object(map)) => {
            let mut out = Map::new();
            for k in keys {
                if let Some(child) = map.get(k) {
                    out.insert(k.clone(), select(child, rest)?);
                }
            }
            Ok(Value::Object(out))
        }
        (Step::Wildcard, Value::Object(map)) => map
            .values()
            .map(|v| select(v, rest))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        (Step::Wildcard, Value::Array(items)) => items
            .iter()
            .map(|v| select(v, rest))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        (Step::Index(n), Value::Array(items)) => {
            let at = position(*n, items.len()).ok_or_else(|| {
                format!("index {n} is out of range (the record has {})", items.len())
            })?;
            select(&items[at], rest)
        }
        (Step::Indexes(selectors), Value::Array(items)) => {
            let len = items.len();
            let mut out = Vec::new();
            for selector in selectors {
                match selector {
                    Selector::One(n) => {
                        let at = position(*n, len).ok_or_else(|| {
                            format!("index {n} is out of range (the record has {len})")
                        })?;
                        out.push(select(&items[at], rest)?);
                    }
                    Selector::Slice(a, b) => {
                        let last = i64::try_from(len).unwrap_or(i64::MAX) - 1;
                        let from = a.map_or(0, |a| if a < 0 { last + 1 + a } else { a }).max(0);
                        let to = b
                            .map_or(last, |b| if b < 0 { last + 1 + b } else { b })
                            .min(last);
                        for at in from..=to {
                            if let Some(at) = position(at, len) {
                                out.push(select(&items[at], rest)?);
                            }
                        }
                    }
                }
            }
            Ok(Value::Array(out))
        }
        (_, other) => Err(format!(
            "cannot be applied to {}",
            match other {
                Value::Array(_) => "an array (use an index)",
                Value::Object(_) => "an object (use a name)",
                _ => "a single value",
            }
        )),
    }
}

/// A job's DataProcessing, parsed once.
#[derive(Debug, Clone)]
pub struct Processing {
    pub input: Format,
    pub output: Format,
    input_filter: Option<JsonPath>,
    output_filter: Option<JsonPath>,
    join: bool,
}

impl Processing {
    pub fn new(
        input: Format,
        output: Format,
        input_filter: Option<&str>,
        output_filter: Option<&str>,
        join: bool,
    ) -> Result<Processing, String> {
        let parse = |f: Option<&str>| {
            f.filter(|f| f.trim() != "$")
                .map(JsonPath::parse)
                .transpose()
        };
        Ok(Processing {
            input,
            output,
            input_filter: parse(input_filter)?,
            output_filter: parse(output_filter)?,
            join,
        })
    }

    /// What the model is sent for `record` (None: the record as it is).
    pub fn model_input(&self, record: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let Some(filter) = &self.input_filter else {
            return Ok(None);
        };
        let value = self.input.read(record)?;
        Ok(Some(self.input.write(&filter.select(&value)?)))
    }

    /// What is written for `record`, whose model output was `output`.
    pub fn written(&self, record: &[u8], output: &[u8]) -> Result<Vec<u8>, String> {
        let out = match self.output.read(output) {
            Ok(v) => v,
            Err(_) => Value::String(String::from_utf8_lossy(output).trim().to_string()),
        };
        let joined = if self.join {
            let input = self.input.read(record)?;
            match (input, out) {
                (Value::Array(mut fields), Value::Array(more)) if self.input == Format::Csv => {
                    fields.extend(more);
                    Value::Array(fields)
                }
                (Value::Array(mut fields), single) if self.input == Format::Csv => {
                    fields.push(single);
                    Value::Array(fields)
                }
                (Value::Object(mut map), out) => {
                    map.insert("SageMakerOutput".into(), out);
                    Value::Object(map)
                }
                (input, out) => {
                    let mut map = Map::new();
                    map.insert("SageMakerInput".into(), input);
                    map.insert("SageMakerOutput".into(), out);
                    Value::Object(map)
                }
            }
        } else {
            out
        };
        let selected = match &self.output_filter {
            Some(filter) => filter.select(&joined)?,
            None => joined,
        };
        // A joined record is written in the input's format; the model's alone in its own.
        let format = if self.join { self.input } else { self.output };
        Ok(format.write(&selected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(path: &str, value: Value) -> Result<Value, String> {
        JsonPath::parse(path)?.select(&value)
    }

    #[test]
    fn the_documented_paths_select_what_sagemaker_says() {
        let row = json!(["0", "1", "2", "3", "4", "5", "6"]);
        assert_eq!(sel("$", row.clone()).unwrap(), row);
        assert_eq!(
            sel("$[1:]", row.clone()).unwrap(),
            json!(["1", "2", "3", "4", "5", "6"])
        );
        assert_eq!(
            sel("$[1:4]", row.clone()).unwrap(),
            json!(["1", "2", "3", "4"])
        );
        assert_eq!(
            sel("$[:5]", row.clone()).unwrap(),
            json!(["0", "1", "2", "3", "4", "5"])
        );
        assert_eq!(sel("$[0,5:]", row.clone()).unwrap(), json!(["0", "5", "6"]));
        assert_eq!(sel("$[0,-1]", row.clone()).unwrap(), json!(["0", "6"]));
        assert_eq!(sel("$[-1]", row.clone()).unwrap(), json!("6"));
        let doc = json!({"id": 7, "features": [1, 2], "SageMakerOutput": {"p": 0.5}});
        assert_eq!(sel("$.features", doc.clone()).unwrap(), json!([1, 2]));
        assert_eq!(
            sel("$['id','SageMakerOutput']", doc.clone()).unwrap(),
            json!({"id": 7, "SageMakerOutput": {"p": 0.5}})
        );
        assert_eq!(sel("$.SageMakerOutput.p", doc.clone()).unwrap(), json!(0.5));
        assert_eq!(sel("$.features[*]", doc).unwrap(), json!([1, 2]));
    }

    #[test]
    fn bad_paths_and_out_of_range_indexes_say_what_is_wrong() {
        assert!(JsonPath::parse("features")
            .unwrap_err()
            .contains("must begin with $"));
        assert!(JsonPath::parse("$.f.['c1','c2.g']")
            .unwrap_err()
            .contains("inside brackets"));
        assert!(JsonPath::parse("$[1")
            .unwrap_err()
            .contains("without its ']'"));
        let err = sel("$[9]", json!(["a"])).unwrap_err();
        assert!(err.contains("out of range"), "{err}");
    }

    #[test]
    fn csv_fields_keep_quoted_commas() {
        assert_eq!(
            csv_fields("a,\"b,c\",\"d\"\"e\","),
            ["a", "b,c", "d\"e", ""]
        );
        assert_eq!(Format::Csv.write(&json!(["a", "b,c", 1])), b"a,\"b,c\",1");
    }

    #[test]
    fn a_csv_join_appends_the_output_and_the_output_filter_picks_columns() {
        let p = Processing::new(
            Format::Csv,
            Format::Csv,
            Some("$[1:]"),
            Some("$[0,-1]"),
            true,
        )
        .unwrap();
        assert_eq!(p.model_input(b"id7,1.5,2.5").unwrap().unwrap(), b"1.5,2.5");
        assert_eq!(p.written(b"id7,1.5,2.5", b"0.9\n").unwrap(), b"id7,0.9");
    }

    #[test]
    fn a_json_join_puts_the_output_under_sagemakeroutput() {
        let p = Processing::new(Format::Json, Format::Json, None, None, true).unwrap();
        let out = p
            .written(br#"{"x": [1, 2]}"#, br#"{"predictions": [3]}"#)
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&out).unwrap(),
            json!({"x": [1, 2], "SageMakerOutput": {"predictions": [3]}})
        );
        let out = p.written(b"[1, 2]", b"3").unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&out).unwrap(),
            json!({"SageMakerInput": [1, 2], "SageMakerOutput": 3})
        );
    }
}
