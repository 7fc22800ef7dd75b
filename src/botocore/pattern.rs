//! botocore's patterns, compiled as AWS matches them: anchored at both ends, in Java's
//! dialect where the `regex` crate cannot take it as written.

use regex::Regex;

/// Patterns botocore states in Java's regular-expression dialect that the `regex` crate
/// cannot compile as written (look-around, `\p{Print}`), each with an equivalent.
pub(super) const TRANSLATED: [(&str, &str); 8] = [
    // "Not only white space".
    (r"(?!\s*$).+", r"[^\n]*\S[^\n]*"),
    // 1–63 characters, the first alphanumeric, the last not a hyphen.
    (
        r"(arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:[a-z\-]*\/)?([a-zA-Z0-9]([a-zA-Z0-9-]){0,62})(?<!-)(\/[0-9]{1,9})?",
        r"(arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:[a-z\-]*\/)?([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]{0,61}[a-zA-Z0-9])(\/[0-9]{1,9})?",
    ),
    // The same without the version suffix (tuning and training job names).
    (
        r"(arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:[a-z\-]*\/)?([a-zA-Z0-9]([a-zA-Z0-9-]){0,62})(?<!-)",
        r"(arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:[a-z\-]*\/)?([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]{0,61}[a-zA-Z0-9])",
    ),
    // Java's \p{Alnum} is ASCII's letters and digits (a Lambda function ARN).
    (
        r"arn:[\p{Alnum}\-]+:lambda:[\p{Alnum}\-]+:[0-9]{12}:function:.*",
        r"arn:[a-zA-Z0-9\-]+:lambda:[a-zA-Z0-9\-]+:[0-9]{12}:function:.*",
    ),
    // The class has no ':', so the look-ahead for `s3:` / `https:` can never matter.
    (
        r"^(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]+$",
        r"^[a-zA-Z0-9!_.*'()/-]+$",
    ),
    // At most one '.', not first.
    (
        r"^(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9-_\.]*$",
        r"^[a-zA-Z0-9][a-zA-Z0-9_-]*(\.[a-zA-Z0-9_-]*)?$",
    ),
    // A path from '/' with no '..' in it.
    (
        r"/(?!.*\.\.)[a-zA-Z0-9/_.\-]+",
        r"/(?:(?:\.?[a-zA-Z0-9/_\-])+\.?|\.)",
    ),
    // Java's \p{Print} is ASCII's printable range.
    (r"\A\S[\p{Print}]*\z", r"\A\S[\x20-\x7E]*\z"),
];

/// Compiles a botocore pattern, anchored at both ends as AWS matches it.
pub(super) fn compile(pattern: &str) -> Regex {
    let translated = TRANSLATED
        .iter()
        .find(|(from, _)| *from == pattern)
        .map_or(pattern, |(_, to)| to);
    Regex::new(&format!("^(?:{translated})$"))
        .unwrap_or_else(|e| panic!("botocore pattern {pattern:?} does not compile: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translated_patterns_mean_what_botocore_says() {
        let check = |pattern: &str, text: &str| compile(pattern).is_match(text);
        let not_blank = TRANSLATED[0].0;
        assert!(check(not_blank, "x") && check(not_blank, " a ") && !check(not_blank, "  "));
        let name = TRANSLATED[1].0;
        assert!(check(name, "a") && check(name, "model-1") && check(name, "m/12"));
        assert!(!check(name, "model-") && !check(name, "-m") && !check(name, &"a".repeat(64)));
        assert!(check(name, &"a".repeat(63)));
        let job = TRANSLATED[2].0;
        assert!(check(job, "tuning-1") && !check(job, "tuning-") && !check(job, "m/12"));
        let lambda = TRANSLATED[3].0;
        assert!(check(
            lambda,
            "arn:aws:lambda:us-east-1:123456789012:function:f"
        ));
        assert!(!check(lambda, "arn:aws:lambda:us-east-1:1234:function:f"));
        let extension = TRANSLATED[4].0;
        assert!(check(extension, "a/b(1)") && !check(extension, "s3://x"));
        let file = TRANSLATED[5].0;
        assert!(check(file, "out.json") && check(file, "a_b-c"));
        assert!(!check(file, "a.b.c") && !check(file, ".x") && !check(file, "a/b"));
        let path = TRANSLATED[6].0;
        assert!(check(path, "/opt/ml/a.b") && check(path, "/.") && check(path, "/a."));
        assert!(!check(path, "/a/../b") && !check(path, "a") && !check(path, "/"));
        let printable = TRANSLATED[7].0;
        assert!(check(printable, "a b") && !check(printable, " a") && !check(printable, "a\u{7f}"));
    }
}
