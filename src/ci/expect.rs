//! What a sample request's answer must be, and every way an answer differs from it.

use std::time::Duration;

use super::Expect;

/// The HTTP status of the runtime API's errors, by type.
fn status_of(error: &str) -> Option<u16> {
    Some(match error {
        "ValidationError" => 400,
        "ModelError" => 424,
        "ModelNotReadyException" => 429,
        "InternalFailure" => 500,
        "ServiceUnavailable" => 503,
        "InternalDependencyException" => 530,
        _ => return None,
    })
}

impl Expect {
    /// The status expected: the one given, else the expected error's, else 200.
    pub fn status(&self) -> u16 {
        self.status
            .or_else(|| self.error.as_deref().and_then(status_of))
            .unwrap_or(200)
    }
}

/// A media type without its parameters, for comparing.
fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether `got` is the content type `want` asks for: the same media type, and the same
/// parameters only when `want` names some (`text/csv` accepts `text/csv; charset=utf-8`).
fn content_type_matches(want: &str, got: &str) -> bool {
    if want.contains(';') {
        let normal = |v: &str| {
            v.split(';')
                .map(|p| p.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        };
        normal(want) == normal(got)
    } else {
        media_type(want) == media_type(got)
    }
}

/// What InvokeEndpoint answered.
pub struct Answer<'a> {
    pub status: u16,
    pub error_type: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub text: &'a str,
    pub latency: Duration,
}

impl Answer<'_> {
    /// Every way the answer differs from what was expected, said as such.
    pub fn mismatches(&self, expect: &Expect) -> Vec<String> {
        let mut out = Vec::new();
        let status = expect.status();
        if self.status != status {
            let error = self
                .error_type
                .map(|t| format!(" ({t})"))
                .unwrap_or_default();
            out.push(format!("status {}{error}, expected {status}", self.status));
        }
        if let Some(want) = &expect.error {
            if self.error_type != Some(want.as_str()) {
                out.push(format!(
                    "error {}, expected {want}",
                    self.error_type.unwrap_or("none")
                ));
            }
        }
        if let Some(want) = &expect.content_type {
            if !self
                .content_type
                .is_some_and(|got| content_type_matches(want, got))
            {
                out.push(format!(
                    "content type {}, expected {want}",
                    self.content_type.unwrap_or("none")
                ));
            }
        }
        for needle in &expect.body_contains {
            if !self.text.contains(needle.as_str()) {
                out.push(format!("the body does not contain {needle:?}"));
            }
        }
        if !expect.json.is_empty() {
            match serde_json::from_str::<serde_json::Value>(self.text) {
                Err(e) => out.push(format!("the body is not JSON ({e})")),
                Ok(body) => {
                    for (pointer, want) in &expect.json {
                        match body.pointer(pointer) {
                            Some(got) if got == want => {}
                            Some(got) => out.push(format!("{pointer} is {got}, expected {want}")),
                            None => out.push(format!("{pointer} is missing, expected {want}")),
                        }
                    }
                }
            }
        }
        if let Some(max) = expect.max_latency {
            if self.latency > max {
                out.push(format!(
                    "took {:.1} ms, more than {}",
                    self.latency.as_secs_f64() * 1000.0,
                    humantime::format_duration(max)
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str) -> Answer<'_> {
        Answer {
            status: 424,
            error_type: Some("ModelError"),
            content_type: Some("application/json"),
            text,
            latency: Duration::from_millis(30),
        }
    }

    fn expect(value: serde_json::Value) -> Expect {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn every_mismatch_is_said() {
        let e = expect(serde_json::json!({
            "status": 200,
            "error": "ValidationError",
            "content_type": "text/csv",
            "body_contains": ["positive", "{"],
            "json": {"/score": 1, "/label": "x"},
            "max_latency": "10ms",
        }));
        let got = answer(r#"{"score": 0}"#).mismatches(&e);
        assert_eq!(
            got,
            [
                "status 424 (ModelError), expected 200",
                "error ModelError, expected ValidationError",
                "content type application/json, expected text/csv",
                "the body does not contain \"positive\"",
                "/label is missing, expected \"x\"",
                "/score is 0, expected 1",
                "took 30.0 ms, more than 10ms",
            ]
        );
        let e = expect(
            serde_json::json!({"status": 424, "error": "ModelError", "json": {"/score": 0}}),
        );
        assert!(answer(r#"{"score": 0}"#).mismatches(&e).is_empty());
        let e = expect(serde_json::json!({"status": 424, "json": {"/a": 1}}));
        assert_eq!(answer("not json").mismatches(&e).len(), 1);
    }

    #[test]
    fn an_expected_error_implies_its_status() {
        let e = expect(serde_json::json!({"error": "ModelError"}));
        assert_eq!(e.status(), 424);
        assert!(answer("{}").mismatches(&e).is_empty());
        assert_eq!(expect(serde_json::json!({})).status(), 200);
        assert_eq!(expect(serde_json::json!({"error": "Custom"})).status(), 200);
    }

    #[test]
    fn content_types_compare_by_media_type_unless_parameters_are_asked_for() {
        assert!(content_type_matches("text/csv", "text/csv; charset=utf-8"));
        assert!(content_type_matches("text/CSV", "text/csv"));
        assert!(!content_type_matches("text/csv", "application/json"));
        assert!(content_type_matches(
            "text/csv; charset=utf-8",
            "text/csv;charset=UTF-8"
        ));
        assert!(!content_type_matches("text/csv; charset=utf-8", "text/csv"));
    }
}
