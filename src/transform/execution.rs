//! `GET /execution-parameters`: what a serving container offers a transform job
//! (CONTRACT §1: optional; JSON with `MaxConcurrentTransforms`, `BatchStrategy`,
//! `MaxPayloadInMB`). Transform jobs fill what the request leaves unset from it;
//! `sagedock check` reports it.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::endpoint::client;
use crate::state::transform_job::BatchStrategy;

/// What a container offers; a value it does not give (or gives wrongly) is `None`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Offered {
    pub concurrency: Option<u32>,
    pub max_payload_mb: Option<u32>,
    pub strategy: Option<BatchStrategy>,
}

/// A container's answer to `GET /execution-parameters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// 200 with a JSON object; `problems` names each member that could not be used.
    Offered {
        offered: Offered,
        problems: Vec<String>,
    },
    /// Another status: the container has no such route (SageMaker then goes by its
    /// defaults).
    Absent(u16),
    /// 200 with a body that is not a JSON object.
    NotJson(String),
    /// No answer within the time.
    NoAnswer(String),
}

impl Asked {
    /// What a transform job takes from the answer (nothing from a bad one).
    pub fn offered(&self) -> Offered {
        match self {
            Asked::Offered { offered, .. } => *offered,
            _ => Offered::default(),
        }
    }
}

/// How long a container may take to answer.
const WAIT: Duration = Duration::from_secs(5);

/// Asks the container at `addr`.
pub async fn ask(addr: SocketAddr) -> Asked {
    let Ok(uri) = format!("http://{addr}/execution-parameters").parse::<hyper::Uri>() else {
        return Asked::NoAnswer(format!("{addr} is not an address"));
    };
    let Ok(request) = hyper::Request::get(uri).body(Full::new(Bytes::new())) else {
        return Asked::NoAnswer("the request could not be made".into());
    };
    let response = match tokio::time::timeout(WAIT, client::client().request(request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => return Asked::NoAnswer(e.to_string()),
        Err(_) => return Asked::NoAnswer(format!("no answer within {} s", WAIT.as_secs())),
    };
    let status = response.status().as_u16();
    if !response.status().is_success() {
        return Asked::Absent(status);
    }
    match tokio::time::timeout(WAIT, response.into_body().collect()).await {
        Ok(Ok(body)) => parse(&body.to_bytes()),
        Ok(Err(e)) => Asked::NoAnswer(e.to_string()),
        Err(_) => Asked::NoAnswer(format!("the body did not end within {} s", WAIT.as_secs())),
    }
}

/// Reads a 200 answer's body.
pub fn parse(body: &[u8]) -> Asked {
    let value = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value @ serde_json::Value::Object(_)) => value,
        Ok(_) => return Asked::NotJson("the body is JSON but not an object".into()),
        Err(e) => return Asked::NotJson(format!("the body is not JSON: {e}")),
    };
    let mut problems = Vec::new();
    let mut number = |key: &str| {
        let found = value.get(key)?;
        let n = found.as_u64().and_then(|n| u32::try_from(n).ok());
        if n.is_none() {
            problems.push(format!("{key} {found} is not a whole number"));
        }
        n
    };
    let concurrency = number("MaxConcurrentTransforms");
    let max_payload_mb = number("MaxPayloadInMB");
    let strategy = value.get("BatchStrategy").and_then(|found| {
        let parsed = found.as_str().and_then(BatchStrategy::parse);
        if parsed.is_none() {
            problems.push(format!(
                "BatchStrategy {found} is not MultiRecord or SingleRecord"
            ));
        }
        parsed
    });
    Asked::Offered {
        offered: Offered {
            concurrency,
            max_payload_mb,
            strategy,
        },
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_and_bad_members() {
        let asked = parse(
            br#"{"MaxConcurrentTransforms": 4, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}"#,
        );
        assert_eq!(
            asked,
            Asked::Offered {
                offered: Offered {
                    concurrency: Some(4),
                    max_payload_mb: Some(6),
                    strategy: Some(BatchStrategy::MultiRecord),
                },
                problems: vec![],
            }
        );
        let Asked::Offered { offered, problems } =
            parse(br#"{"MaxConcurrentTransforms": "4", "BatchStrategy": "Lines"}"#)
        else {
            panic!("an object is offered")
        };
        assert_eq!(offered, Offered::default());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(matches!(parse(b"[1]"), Asked::NotJson(_)));
        assert!(matches!(parse(b"nope"), Asked::NotJson(_)));
    }
}
