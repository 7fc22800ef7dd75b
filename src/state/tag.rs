//! Tags on a resource, kept by its ARN.

use serde::{Deserialize, Serialize};

/// A tag, in the API's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// The tags of one resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TagSet(pub Vec<Tag>);

impl TagSet {
    /// A resource may carry at most this many tags.
    pub const MAX: usize = 50;

    /// Adds or replaces tags by key.
    pub fn merge(&mut self, tags: &[Tag]) {
        for tag in tags {
            self.0.retain(|t| t.key != tag.key);
            self.0.push(tag.clone());
        }
    }

    pub fn remove(&mut self, keys: &[String]) {
        self.0.retain(|t| !keys.contains(&t.key));
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
