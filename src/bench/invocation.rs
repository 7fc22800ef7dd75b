//! An InvokeEndpoint request's headers as flags and specs give them: what `bench`, `ci` and
//! `check` send, made one way.

use hyper::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};

/// The headers of an invocation; `None` leaves a header out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Invocation<'a> {
    pub content_type: Option<&'a str>,
    pub accept: Option<&'a str>,
    pub custom_attributes: Option<&'a str>,
    pub target_variant: Option<&'a str>,
    pub target_model: Option<&'a str>,
}

/// A value that cannot be sent as a header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{header} {value:?} is not a valid header value")]
pub struct InvalidHeader {
    pub header: String,
    pub value: String,
}

impl Invocation<'_> {
    pub fn headers(&self) -> Result<HeaderMap, InvalidHeader> {
        let pairs = [
            (CONTENT_TYPE, self.content_type),
            (ACCEPT, self.accept),
            (
                HeaderName::from_static("x-amzn-sagemaker-custom-attributes"),
                self.custom_attributes,
            ),
            (
                HeaderName::from_static("x-amzn-sagemaker-target-variant"),
                self.target_variant,
            ),
            (
                HeaderName::from_static("x-amzn-sagemaker-target-model"),
                self.target_model,
            ),
        ];
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            let Some(value) = value else { continue };
            let parsed = HeaderValue::from_str(value).map_err(|_| InvalidHeader {
                header: name.to_string(),
                value: value.to_string(),
            })?;
            headers.insert(name, parsed);
        }
        Ok(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_headers_only_and_bad_values_named() {
        let headers = Invocation {
            content_type: Some("text/csv"),
            custom_attributes: Some("a=1"),
            ..Invocation::default()
        }
        .headers()
        .unwrap();
        assert_eq!(headers.len(), 2);
        assert_eq!(headers[CONTENT_TYPE], "text/csv");
        let err = Invocation {
            accept: Some("bad\nvalue"),
            ..Invocation::default()
        }
        .headers()
        .unwrap_err();
        assert_eq!(err.header, "accept");
        assert!(
            err.to_string().contains("not a valid header value"),
            "{err}"
        );
    }
}
