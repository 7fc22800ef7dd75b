//! The List operations' rules, shared by ListModels, ListEndpointConfigs, ListEndpoints and
//! ListTrainingJobs, ListHyperParameterTuningJobs:
//! filters, sort (newest first by default), pages of MaxResults (10 by default) with an
//! opaque NextToken.

use serde::Serialize;
use serde_json::{Map, Value};

use super::error::AwsError;
use super::shapes::{
    EndpointConfigSummary, EndpointSummary, ListInput, ModelSummary, SortBy, SortOrder,
    TrainingJobSummary, TransformJobSummary, TuningJobSummary,
};

/// MaxResults when the caller gives none.
const DEFAULT_PAGE: u32 = 10;
const TOKEN_PREFIX: &str = "sagedock-page-";

/// An entry a List operation returns.
pub trait Listed: Serialize {
    /// The member holding the entries (`Models`, …).
    const KEY: &'static str;
    fn name(&self) -> &str;
    fn creation_time(&self) -> f64;
    fn last_modified_time(&self) -> Option<f64> {
        None
    }
    fn status(&self) -> Option<&'static str> {
        None
    }
}

impl Listed for ModelSummary {
    const KEY: &'static str = "Models";
    fn name(&self) -> &str {
        &self.model_name
    }
    fn creation_time(&self) -> f64 {
        self.creation_time
    }
}

impl Listed for EndpointConfigSummary {
    const KEY: &'static str = "EndpointConfigs";
    fn name(&self) -> &str {
        &self.endpoint_config_name
    }
    fn creation_time(&self) -> f64 {
        self.creation_time
    }
}

impl Listed for EndpointSummary {
    const KEY: &'static str = "Endpoints";
    fn name(&self) -> &str {
        &self.endpoint_name
    }
    fn creation_time(&self) -> f64 {
        self.creation_time
    }
    fn last_modified_time(&self) -> Option<f64> {
        Some(self.last_modified_time)
    }
    fn status(&self) -> Option<&'static str> {
        Some(self.endpoint_status.as_str())
    }
}

impl Listed for TrainingJobSummary {
    const KEY: &'static str = "TrainingJobSummaries";
    fn name(&self) -> &str {
        &self.training_job_name
    }
    fn creation_time(&self) -> f64 {
        self.creation_time
    }
    fn last_modified_time(&self) -> Option<f64> {
        Some(self.last_modified_time)
    }
    fn status(&self) -> Option<&'static str> {
        Some(self.training_job_status.as_str())
    }
}

impl Listed for TuningJobSummary {
    const KEY: &'static str = "HyperParameterTuningJobSummaries";
    fn name(&self) -> &str {
        &self.hyper_parameter_tuning_job_name
    }
    fn creation_time(&self) -> f64 {
        self.creation_time
    }
    fn last_modified_time(&self) -> Option<f64> {
        Some(self.last_modified_time)
    }
    fn status(&self) -> Option<&'static str> {
        Some(self.hyper_parameter_tuning_job_status.as_str())
    }
}

impl Listed for TransformJobSummary {
    const KEY: &'static str = "TransformJobSummaries";
    fn name(&self) -> &str {
        &self.transform_job_name
    }
    fn creation_time(&self) -> f64 {
        self.creation_time
    }
    fn last_modified_time(&self) -> Option<f64> {
        Some(self.last_modified_time)
    }
    fn status(&self) -> Option<&'static str> {
        Some(self.transform_job_status.as_str())
    }
}

/// Filters, sorts and pages `items` as `input` asks; returns the operation's answer.
pub fn page<T: Listed>(mut items: Vec<T>, input: &ListInput) -> Result<Value, AwsError> {
    if let Some(part) = &input.name_contains {
        let part = part.to_lowercase();
        items.retain(|v| v.name().to_lowercase().contains(&part));
    }
    if let Some(status) = &input.status_equals {
        items.retain(|v| v.status() == Some(status.as_str()));
    }
    let bounds = [
        (input.creation_time_before, true, false),
        (input.creation_time_after, false, false),
        (input.last_modified_time_before, true, true),
        (input.last_modified_time_after, false, true),
    ];
    for (limit, before, modified) in bounds {
        if let Some(limit) = limit {
            items.retain(|v| {
                let time = if modified {
                    v.last_modified_time().unwrap_or(0.0)
                } else {
                    v.creation_time()
                };
                if before {
                    time < limit
                } else {
                    time > limit
                }
            });
        }
    }
    match input.sort_by.unwrap_or(SortBy::CreationTime) {
        SortBy::Name => items.sort_by(|a, b| a.name().cmp(b.name())),
        SortBy::Status => items.sort_by_key(|v| v.status()),
        SortBy::CreationTime => items.sort_by(|a, b| {
            a.creation_time()
                .total_cmp(&b.creation_time())
                .then_with(|| a.name().cmp(b.name()))
        }),
    }
    if input.sort_order.unwrap_or(SortOrder::Descending) == SortOrder::Descending {
        items.reverse();
    }
    page_sorted(
        items,
        input.max_results,
        input.next_token.as_deref(),
        T::KEY,
    )
}

/// One page of `items` (already filtered and sorted) under the member `key`.
pub fn page_sorted<T: Serialize>(
    items: Vec<T>,
    max_results: Option<u32>,
    next_token: Option<&str>,
    key: &str,
) -> Result<Value, AwsError> {
    let max = usize::try_from(max_results.unwrap_or(DEFAULT_PAGE).clamp(1, 100)).unwrap_or(100);
    let start = match next_token {
        None => 0,
        Some(token) => token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n <= items.len())
            .ok_or_else(|| AwsError::validation(format!("Invalid NextToken '{token}'.")))?,
    };
    let end = start.saturating_add(max).min(items.len());
    let next = (end < items.len()).then(|| format!("{TOKEN_PREFIX}{end}"));
    let page: Vec<T> = items.into_iter().skip(start).take(end - start).collect();
    let mut out = Map::new();
    out.insert(
        key.into(),
        serde_json::to_value(page).map_err(|e| AwsError::internal(e.to_string()))?,
    );
    if let Some(token) = next {
        out.insert("NextToken".into(), Value::String(token));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: u32) -> Vec<ModelSummary> {
        (0..n)
            .map(|i| ModelSummary {
                model_name: format!("m{i:02}"),
                model_arn: format!("arn:m{i:02}"),
                creation_time: f64::from(i),
            })
            .collect()
    }

    fn names(v: &Value) -> Vec<String> {
        v["Models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["ModelName"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn lists_page_sort_and_filter() {
        let first = page(items(25), &ListInput::default()).unwrap();
        assert_eq!(names(&first).len(), 10);
        assert_eq!(names(&first)[0], "m24", "newest first by default");
        let input = ListInput {
            next_token: first["NextToken"].as_str().map(str::to_string),
            ..Default::default()
        };
        let second = page(items(25), &input).unwrap();
        assert_eq!(names(&second)[0], "m14");
        assert!(second["NextToken"].is_string());
        let all = page(
            items(25),
            &ListInput {
                sort_by: Some(SortBy::Name),
                sort_order: Some(SortOrder::Ascending),
                max_results: Some(100),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(names(&all).len(), 25);
        assert_eq!(names(&all)[0], "m00");
        assert!(all.get("NextToken").is_none());
        let filtered = page(
            items(25),
            &ListInput {
                name_contains: Some("M1".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(names(&filtered).len(), 10);
        for bogus in ["bogus", "sagedock-page-99", "sagedock-page-x"] {
            let input = ListInput {
                next_token: Some(bogus.into()),
                ..Default::default()
            };
            assert!(page(items(2), &input).is_err(), "{bogus}");
        }
    }
}
