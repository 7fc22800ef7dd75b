//! CreateTransformJob, DescribeTransformJob, ListTransformJobs, StopTransformJob, and the
//! rules SageMaker applies to a transform job beyond its shape: an existing model that
//! batch transform can run (not a multi-model or Direct-mode one), a known instance type,
//! an S3 input sagedock reads (S3Prefix or ManifestFile) and an output location, a payload
//! within MaxPayloadInMB's ceiling (also times MaxConcurrentTransforms), DataProcessing
//! paths SageMaker takes on CSV or JSON. The job itself runs in [`crate::transform`].

use super::error::AwsError;
use super::shapes::{
    CreateTransformJobInput, DescribeTransformJobOutput, Empty, ListInput, TransformJobArn,
    TransformJobName, TransformJobSummary,
};
use super::{list, ControlPlane, OpResult};
use crate::state::training_job::S3DataType;
use crate::state::transform_job::{SplitType, TransformJobSpec};
use crate::state::{now, JobStatus, Model, TransformJob};
use crate::transform::filter::{Format, JsonPath};

impl ControlPlane {
    pub(super) fn create_transform_job(
        &self,
        input: CreateTransformJobInput,
    ) -> Result<TransformJobArn, AwsError> {
        let spec = input.spec;
        let model: Model = self
            .store
            .get(&spec.model_name)?
            .ok_or_else(|| self.not_found("model", "model", &spec.model_name))?;
        self.check_transform(&spec, &model)?;
        let plan = super::plan::transform_plan(&model, &spec, self.health_timeout)
            .map_err(AwsError::validation)?;
        let name = spec.transform_job_name.clone();
        let arn = self.settings.arn("transform-job", &name);
        let job = TransformJob::accepted(name.clone(), arn.clone(), spec, now());
        if !self.store.insert_new(&name, &job)? {
            return Err(AwsError::resource_in_use(format!(
                "Job name must be unique within an AWS account and region, and a job with this name already exists ({arn})"
            )));
        }
        self.put_tags(&arn, &input.tags)?;
        drop(self.transformer.start(job, plan));
        Ok(TransformJobArn {
            transform_job_arn: arn,
        })
    }

    fn transform_job(&self, name: &str) -> Result<TransformJob, AwsError> {
        self.store.get(name)?.ok_or_else(|| {
            AwsError::validation(format!("Could not find requested job with name {name}"))
        })
    }

    pub(super) fn describe_transform_job(&self, input: TransformJobName) -> OpResult {
        let job = self.transform_job(&input.transform_job_name)?;
        super::answer(Ok(DescribeTransformJobOutput {
            spec: &job.spec,
            transform_job_arn: &job.arn,
            transform_job_status: job.status,
            failure_reason: job.failure_reason.as_deref(),
            creation_time: job.created,
            transform_start_time: job.transform_start,
            transform_end_time: job.transform_end,
        }))
    }

    pub(super) fn list_transform_jobs(&self, input: &ListInput) -> OpResult {
        let items = self
            .store
            .list::<TransformJob>()?
            .into_iter()
            .map(|j| TransformJobSummary {
                transform_job_name: j.name,
                transform_job_arn: j.arn,
                creation_time: j.created,
                transform_end_time: j.transform_end,
                last_modified_time: j.last_modified,
                transform_job_status: j.status,
                failure_reason: j.failure_reason,
            })
            .collect();
        list::page(items, input)
    }

    pub(super) fn stop_transform_job(&self, input: TransformJobName) -> Result<Empty, AwsError> {
        let job = self.transform_job(&input.transform_job_name)?;
        if job.status == JobStatus::Stopping {
            return Ok(Empty {});
        }
        if job.status.is_terminal() || !self.transformer.stop(&job.name) {
            return Err(AwsError::validation(format!(
                "The transform job {} is not in progress: its status is {}.",
                job.name,
                job.status.as_str()
            )));
        }
        self.transformer.update(&job.name, |j| {
            if !j.status.is_terminal() {
                j.status = JobStatus::Stopping;
                j.last_modified = now();
            }
        });
        Ok(Empty {})
    }

    /// SageMaker's rules for a transform job beyond its shape.
    fn check_transform(&self, spec: &TransformJobSpec, model: &Model) -> Result<(), AwsError> {
        let containers = model.spec.containers();
        if containers.iter().any(|c| c.is_multi_model()) {
            return Err(AwsError::validation(format!(
                "Model {} is a multi-model one (Mode MultiModel); batch transform runs single-model containers.",
                spec.model_name
            )));
        }
        if matches!(
            super::plan::mode(&model.spec),
            crate::endpoint::Mode::Direct
        ) {
            return Err(AwsError::validation(format!(
                "Model {} invokes its containers directly (InferenceExecutionConfig Mode Direct); batch transform sends every record through the containers in order (Serial).",
                spec.model_name
            )));
        }
        crate::runtime::instance::lookup(&spec.transform_resources.instance_type)
            .map_err(|e| AwsError::validation(format!("TransformResources.InstanceType: {e}")))?;
        let source = &spec.transform_input.data_source.s3_data_source;
        if !matches!(
            source.s3_data_type,
            S3DataType::S3Prefix | S3DataType::ManifestFile
        ) {
            return Err(AwsError::validation(format!(
                "TransformInput.DataSource.S3DataSource.S3DataType {:?} is not compatible with batch transform; use S3Prefix or ManifestFile.",
                source.s3_data_type
            )));
        }
        super::s3_location(
            self.transformer.has_s3(),
            &source.s3_uri,
            "TransformInput.DataSource.S3DataSource.S3Uri",
        )?;
        super::s3_location(
            self.transformer.has_s3(),
            &spec.transform_output.s3_output_path,
            "TransformOutput.S3OutputPath",
        )?;
        let payload = spec
            .max_payload_in_mb
            .unwrap_or(TransformJobSpec::DEFAULT_MAX_PAYLOAD_MB);
        let ceiling = TransformJobSpec::MAX_PAYLOAD_MB;
        if payload > ceiling {
            return Err(AwsError::validation(format!(
                "MaxPayloadInMB {payload} is more than {ceiling}."
            )));
        }
        if let Some(n) = spec.max_concurrent_transforms.filter(|n| *n > 0) {
            if u64::from(n) * u64::from(payload) > u64::from(ceiling) {
                return Err(AwsError::validation(format!(
                    "MaxConcurrentTransforms ({n}) times MaxPayloadInMB ({payload}) is more than {ceiling}; lower one of them."
                )));
            }
        }
        if let Some(env) = &spec.environment {
            crate::runtime::spec::validate_env(env)
                .map_err(|e| AwsError::validation(format!("Environment: {e}")))?;
        }
        if let Some(dp) = spec.processing() {
            for (what, path) in [
                ("InputFilter", &dp.input_filter),
                ("OutputFilter", &dp.output_filter),
            ] {
                if let Some(path) = path {
                    JsonPath::parse(path)
                        .map_err(|e| AwsError::validation(format!("DataProcessing.{what}: {e}")))?;
                }
            }
            let format = |what: &str, value: Option<&str>| {
                match value {
                None if what == "TransformOutput.Accept" => Ok(None),
                Some(v) if Format::of(v).is_some() => Ok(Format::of(v)),
                _ => Err(AwsError::validation(format!(
                    "DataProcessing works on CSV and JSON records: {what} must be text/csv, application/json or application/jsonlines (it is {}).",
                    value.unwrap_or("not set")
                ))),
            }
            };
            let input = format(
                "TransformInput.ContentType",
                spec.transform_input.content_type.as_deref(),
            )?;
            format(
                "TransformOutput.Accept",
                spec.transform_output.accept.as_deref(),
            )?;
            if input == Some(Format::Csv) && spec.split_type() != SplitType::Line {
                return Err(AwsError::validation(
                    "DataProcessing on CSV records needs TransformInput.SplitType Line.",
                ));
            }
        }
        Ok(())
    }
}
