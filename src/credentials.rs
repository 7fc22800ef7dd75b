//! The access keys sagedock accepts where a service checks signatures (S3), and who STS
//! says the caller is.
//!
//! Every run accepts the pair `sagedock up` prints ([`DEFAULT_ACCESS_KEY`]), and the pair
//! in sagedock's own environment (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`) when set,
//! so that a client started from the same shell signs with a key sagedock knows.
//!
//! Does not: check signatures (the S3 implementation does, with these secrets), or guard
//! the SageMaker APIs (they accept any signature, as local tools do).

/// The access key id `sagedock up` prints.
pub const DEFAULT_ACCESS_KEY: &str = "sagedock";
/// The secret that goes with it.
pub const DEFAULT_SECRET_KEY: &str = "sagedock";

/// One access key and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The access keys this run accepts.
#[derive(Debug, Clone)]
pub struct Credentials {
    keys: Vec<AccessKey>,
}

impl Credentials {
    /// The default pair, and the environment's pair when both of its variables are set.
    pub fn from_env() -> Credentials {
        let id = std::env::var("AWS_ACCESS_KEY_ID").ok();
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY").ok();
        Credentials::with(id.zip(secret))
    }

    /// The default pair, and `extra` (an id and its secret) beside it.
    pub fn with(extra: Option<(String, String)>) -> Credentials {
        let mut keys = vec![AccessKey {
            id: DEFAULT_ACCESS_KEY.into(),
            secret: DEFAULT_SECRET_KEY.into(),
        }];
        if let Some((id, secret)) = extra.filter(|(id, s)| !id.is_empty() && !s.is_empty()) {
            keys.retain(|k| k.id != id);
            keys.push(AccessKey { id, secret });
        }
        Credentials { keys }
    }

    /// The secret of `id`, if this run knows it.
    pub fn secret(&self, id: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|k| k.id == id)
            .map(|k| k.secret.as_str())
    }

    /// The access key ids this run knows, for error messages.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_pair_is_always_known_and_the_environment_pair_beside_it() {
        let c = Credentials::with(None);
        assert_eq!(c.secret("sagedock"), Some("sagedock"));
        assert_eq!(c.secret("AKIA"), None);
        let c = Credentials::with(Some(("AKIA".into(), "s3cret".into())));
        assert_eq!(c.secret("AKIA"), Some("s3cret"));
        assert_eq!(c.ids(), ["sagedock", "AKIA"]);
        // An environment pair named like the default replaces it.
        let c = Credentials::with(Some(("sagedock".into(), "other".into())));
        assert_eq!(c.secret("sagedock"), Some("other"));
        // Half a pair is no pair.
        let c = Credentials::with(Some(("AKIA".into(), String::new())));
        assert_eq!(c.ids(), ["sagedock"]);
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let c = Credentials::with(Some(("AKIA".into(), "s3cret".into())));
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
