//! AddTags, ListTags, DeleteTags: tags kept by resource ARN, at most 50 per resource, on
//! models, endpoint configs, endpoints and training jobs that exist.

use super::error::AwsError;
use super::shapes::{AddTagsInput, DeleteTagsInput, Empty, ListTagsInput, TagsOutput};
use super::{ControlPlane, OpResult};
use crate::state::{
    Endpoint, EndpointConfig, Model, Record, Tag, TagSet, TrainingJob, TransformJob, TuningJob,
};

impl ControlPlane {
    fn tags_of(&self, arn: &str) -> Result<TagSet, AwsError> {
        Ok(self.store.get::<TagSet>(arn)?.unwrap_or_default())
    }

    /// Adds (or replaces by key) tags on the resource `arn`.
    pub(super) fn put_tags(&self, arn: &str, tags: &[Tag]) -> Result<(), AwsError> {
        if tags.is_empty() {
            return Ok(());
        }
        let mut all = self.tags_of(arn)?;
        all.merge(tags);
        if all.len() > TagSet::MAX {
            return Err(AwsError::validation(format!(
                "A resource can have at most {} tags.",
                TagSet::MAX
            )));
        }
        self.store.put(arn, &all)?;
        Ok(())
    }

    /// The resource an ARN names must exist.
    fn check_arn(&self, arn: &str) -> Result<(), AwsError> {
        let (kind, name) = arn
            .rsplit_once(':')
            .and_then(|(_, rest)| rest.split_once('/'))
            .unwrap_or(("", ""));
        let found = match kind {
            "model" => self.names_arn::<Model>(arn, |r| &r.arn)?,
            "endpoint-config" => self.names_arn::<EndpointConfig>(arn, |r| &r.arn)?,
            "endpoint" => self.names_arn::<Endpoint>(arn, |r| &r.arn)?,
            "training-job" => self.names_arn::<TrainingJob>(arn, |r| &r.arn)?,
            "hyper-parameter-tuning-job" => self.names_arn::<TuningJob>(arn, |r| &r.arn)?,
            "transform-job" => self.names_arn::<TransformJob>(arn, |r| &r.arn)?,
            _ => {
                return Err(AwsError::validation(format!(
                    "Resource {arn} is not a model, endpoint-config, endpoint, training-job, hyper-parameter-tuning-job or transform-job ARN."
                )))
            }
        };
        if found && !name.is_empty() {
            Ok(())
        } else {
            Err(AwsError::validation(format!(
                "Resource {arn} does not exist."
            )))
        }
    }

    /// Whether a record of kind `T` has ARN `arn` (names in ARNs are lower-cased).
    fn names_arn<T: Record>(&self, arn: &str, arn_of: fn(&T) -> &str) -> Result<bool, AwsError> {
        Ok(self.store.list::<T>()?.iter().any(|r| arn_of(r) == arn))
    }

    pub(super) fn add_tags(&self, input: AddTagsInput) -> OpResult {
        self.check_arn(&input.resource_arn)?;
        self.put_tags(&input.resource_arn, &input.tags)?;
        super::answer(Ok(TagsOutput { tags: &input.tags }))
    }

    pub(super) fn list_tags(&self, input: ListTagsInput) -> OpResult {
        self.check_arn(&input.resource_arn)?;
        let tags = self.tags_of(&input.resource_arn)?;
        super::answer(Ok(TagsOutput { tags: &tags.0 }))
    }

    pub(super) fn delete_tags(&self, input: DeleteTagsInput) -> Result<Empty, AwsError> {
        self.check_arn(&input.resource_arn)?;
        let mut all = self.tags_of(&input.resource_arn)?;
        all.remove(&input.tag_keys);
        self.store.put(&input.resource_arn, &all)?;
        Ok(Empty {})
    }
}
