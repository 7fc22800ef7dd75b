//! Input checks as SageMaker makes them, with its message format:
//! `1 validation error detected: Value 'x' at 'modelName' failed to satisfy constraint: …`.

use serde_json::Value;

use super::error::AwsError;

fn constraint(value: &str, at: &str, rule: &str) -> AwsError {
    AwsError::validation(format!(
        "1 validation error detected: Value '{value}' at '{at}' failed to satisfy constraint: {rule}"
    ))
}

/// `[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`: endpoint, endpoint config and variant names.
pub fn hyphenated_name(value: &str, at: &str) -> Result<(), AwsError> {
    let ok = value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric())
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else if value.len() > 63 {
        Err(constraint(
            value,
            at,
            "Member must have length less than or equal to 63",
        ))
    } else {
        Err(constraint(
            value,
            at,
            "Member must satisfy regular expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
        ))
    }
}

/// `[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?`: model names (same set of names).
pub fn model_name(value: &str, at: &str) -> Result<(), AwsError> {
    hyphenated_name(value, at).map_err(|_| {
        if value.len() > 63 {
            constraint(value, at, "Member must have length less than or equal to 63")
        } else {
            constraint(value, at, "Member must satisfy regular expression pattern: [a-zA-Z0-9]([\\-a-zA-Z0-9]*[a-zA-Z0-9])?")
        }
    })
}

/// A required string member.
pub fn required_str<'a>(input: &'a Value, member: &str) -> Result<&'a str, AwsError> {
    input.get(member).and_then(Value::as_str).ok_or_else(|| {
        AwsError::validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            lower_first(member)
        ))
    })
}

/// SageMaker names members in messages with a lower-case first letter.
pub fn lower_first(member: &str) -> String {
    let mut chars = member.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_sagemaker_patterns() {
        assert!(hyphenated_name("my-endpoint-1", "endpointName").is_ok());
        assert!(hyphenated_name("a--b", "endpointName").is_ok());
        assert!(hyphenated_name("-a", "endpointName").is_err());
        assert!(hyphenated_name("a-", "endpointName").is_err());
        assert!(hyphenated_name("bad_name!", "endpointName").is_err());
        let err = model_name("bad_name!", "modelName").unwrap_err();
        assert_eq!(err.code, "ValidationException");
        assert!(err
            .message
            .starts_with("1 validation error detected: Value 'bad_name!' at 'modelName'"));
        assert!(hyphenated_name(&"a".repeat(64), "x")
            .unwrap_err()
            .message
            .contains("length"));
    }
}
