//! CreateTrainingJob, DescribeTrainingJob, ListTrainingJobs, StopTrainingJob, and the rules
//! SageMaker applies to a training job beyond its shape: a training image (sagedock runs
//! images, not algorithms by name), a known instance type, one homogeneous cluster,
//! channels with unique names and S3 sources, an input mode sagedock runs, S3 locations it
//! can read and write, metric regexes that compile, an environment within SageMaker's
//! limits. The job itself runs in [`crate::training`].

use std::collections::HashSet;
use std::sync::Arc;

use super::error::AwsError;
use super::shapes::{
    CreateTrainingJobInput, DescribeTrainingJobOutput, Empty, ListInput, ModelArtifacts,
    TrainingJobArn, TrainingJobName, TrainingJobSummary,
};
use super::{list, ControlPlane, OpResult, Settings};
use crate::state::training_job::{InputMode, S3DataType};
use crate::state::Store;
use crate::state::{now, TrainingJob, TrainingJobSpec};
use crate::training::metrics::Metrics;
use crate::training::Trainer;

/// Taking training jobs in: the control plane's, and the tuner's for its trials.
pub struct Jobs {
    pub settings: Settings,
    pub store: Arc<Store>,
    pub trainer: Arc<Trainer>,
}

impl ControlPlane {
    pub(super) fn create_training_job(
        &self,
        input: CreateTrainingJobInput,
    ) -> Result<TrainingJobArn, AwsError> {
        let job = self.jobs.accept(input.spec, None)?;
        self.put_tags(&job.arn, &input.tags)?;
        let arn = job.arn.clone();
        drop(self.jobs.trainer.start(job));
        Ok(TrainingJobArn {
            training_job_arn: arn,
        })
    }

    pub(super) fn training_job(&self, name: &str) -> Result<TrainingJob, AwsError> {
        self.store
            .get(name)?
            .ok_or_else(|| AwsError::validation("Requested resource not found."))
    }

    pub(super) fn describe_training_job(&self, input: TrainingJobName) -> OpResult {
        let job = self.training_job(&input.training_job_name)?;
        let seconds = match (job.training_start, job.training_end) {
            (Some(start), Some(end)) => {
                std::time::Duration::try_from_secs_f64((end - start).max(0.0))
                    .ok()
                    .map(|d| d.as_secs())
            }
            _ => None,
        };
        super::answer(Ok(DescribeTrainingJobOutput {
            spec: &job.spec,
            training_job_arn: &job.arn,
            tuning_job_arn: job.tuning_job_arn.as_deref(),
            model_artifacts: ModelArtifacts {
                s3_model_artifacts: job.model_artifacts(),
            },
            training_job_status: job.status,
            secondary_status: job.secondary_status,
            failure_reason: job.failure_reason.as_deref(),
            creation_time: job.created,
            training_start_time: job.training_start,
            training_end_time: job.training_end,
            last_modified_time: job.last_modified,
            secondary_status_transitions: &job.transitions,
            final_metric_data_list: &job.final_metrics,
            training_time_in_seconds: seconds,
            billable_time_in_seconds: seconds,
        }))
    }

    pub(super) fn list_training_jobs(&self, input: &ListInput) -> OpResult {
        let items = self
            .store
            .list::<TrainingJob>()?
            .into_iter()
            .map(|j| TrainingJobSummary {
                training_job_name: j.name,
                training_job_arn: j.arn,
                creation_time: j.created,
                training_end_time: j.training_end,
                last_modified_time: j.last_modified,
                training_job_status: j.status,
                secondary_status: j.secondary_status,
            })
            .collect();
        list::page(items, input)
    }

    pub(super) fn stop_training_job(&self, input: TrainingJobName) -> Result<Empty, AwsError> {
        let job = self.training_job(&input.training_job_name)?;
        if job.status.is_terminal() || !self.jobs.trainer.stop(&job.name) {
            return Err(AwsError::validation(format!(
                "The training job {} is not in progress: its status is {}.",
                job.name,
                job.status.as_str()
            )));
        }
        Ok(Empty {})
    }
}

impl Jobs {
    /// Checks a job, stores it (`InProgress`, `Starting`) and returns it, ready to start.
    /// A tuning job's trials pass the tuning job's ARN.
    pub fn accept(
        &self,
        mut spec: TrainingJobSpec,
        tuning_job_arn: Option<String>,
    ) -> Result<TrainingJob, AwsError> {
        crate::training::algorithm::add_metric_definitions(&mut spec.algorithm_specification);
        self.check(&spec)?;
        let name = spec.training_job_name.clone();
        let arn = self.settings.arn("training-job", &name);
        let requested = spec
            .algorithm_specification
            .training_image
            .clone()
            .unwrap_or_default();
        let image = self.trainer.image_for(&requested);
        let mut job = TrainingJob::accepted(
            name.clone(),
            arn.clone(),
            spec.with_defaults(),
            image,
            now(),
        );
        job.tuning_job_arn = tuning_job_arn;
        if !self.store.insert_new(&name, &job)? {
            return Err(AwsError::resource_in_use(format!(
                "Training job names must be unique within an AWS account and region, and a training job with this name already exists ({arn})"
            )));
        }
        Ok(job)
    }

    /// SageMaker's rules for a training job beyond its shape.
    pub(super) fn check(&self, spec: &TrainingJobSpec) -> Result<(), AwsError> {
        let algorithm = &spec.algorithm_specification;
        if algorithm.training_image.is_none() {
            return Err(AwsError::validation(match &algorithm.algorithm_name {
                Some(name) => format!("AlgorithmSpecification.AlgorithmName '{name}': sagedock runs training images, not algorithms by name; give AlgorithmSpecification.TrainingImage (an image in the local Docker engine, or one of AWS's image URIs the image map knows)"),
                None => "AlgorithmSpecification.TrainingImage is required (sagedock runs training images, not algorithms by name).".to_string(),
            }));
        }
        if spec.resource_config.echoed.contains_key("InstanceGroups") {
            return Err(AwsError::validation(
                "ResourceConfig.InstanceGroups (heterogeneous clusters) is not served by sagedock: give InstanceType and InstanceCount.",
            ));
        }
        let Some(instance_type) = &spec.resource_config.instance_type else {
            return Err(AwsError::validation(
                "ResourceConfig.InstanceType is required.",
            ));
        };
        crate::runtime::instance::lookup(instance_type)
            .map_err(|e| AwsError::validation(format!("ResourceConfig.InstanceType: {e}")))?;
        if algorithm.training_input_mode == InputMode::Pipe {
            return Err(pipe_refused("AlgorithmSpecification.TrainingInputMode"));
        }
        let mut names = HashSet::new();
        for channel in spec.channels() {
            let at = format!("InputDataConfig channel '{}'", channel.channel_name);
            if matches!(channel.channel_name.as_str(), "." | "..") {
                return Err(AwsError::validation(format!(
                    "ChannelName '{}' is not a name a channel folder can have.",
                    channel.channel_name
                )));
            }
            if !names.insert(channel.channel_name.as_str()) {
                return Err(AwsError::validation(format!(
                    "Channel names must be unique: '{}' appears more than once.",
                    channel.channel_name
                )));
            }
            if channel.input_mode == Some(InputMode::Pipe) {
                return Err(pipe_refused(&at));
            }
            let Some(source) = &channel.data_source.s3_data_source else {
                return Err(AwsError::validation(format!(
                    "{at}: only DataSource.S3DataSource is served by sagedock."
                )));
            };
            if !matches!(
                source.s3_data_type,
                S3DataType::S3Prefix | S3DataType::ManifestFile
            ) {
                return Err(AwsError::validation(format!(
                    "{at}: S3DataType {:?} is read in Pipe mode only, which sagedock does not run; use S3Prefix or ManifestFile.",
                    source.s3_data_type
                )));
            }
            super::s3_location(
                self.trainer.has_s3(),
                &source.s3_uri,
                &format!("{at} S3Uri"),
            )?;
        }
        super::s3_location(
            self.trainer.has_s3(),
            &spec.output_data_config.s3_output_path,
            "OutputDataConfig.S3OutputPath",
        )?;
        if let Some(checkpoints) = &spec.checkpoint_config {
            super::s3_location(
                self.trainer.has_s3(),
                &checkpoints.s3_uri,
                "CheckpointConfig.S3Uri",
            )?;
            if !checkpoints.local_path().starts_with('/') {
                return Err(AwsError::validation(
                    "CheckpointConfig.LocalPath must be an absolute path.",
                ));
            }
        }
        Metrics::new(algorithm.metric_definitions.as_deref().unwrap_or(&[]))
            .map_err(|e| AwsError::validation(e.to_string()))?;
        if let Some(env) = &spec.environment {
            crate::runtime::spec::validate_env(env)
                .map_err(|e| AwsError::validation(format!("Environment: {e}")))?;
        }
        Ok(())
    }
}

fn pipe_refused(what: &str) -> AwsError {
    AwsError::validation(format!(
        "{what}: Pipe input mode is not served by sagedock (it would need the algorithm's FIFO protocol, which is not run faithfully here); use File or FastFile."
    ))
}
