//! CreateHyperParameterTuningJob, DescribeHyperParameterTuningJob,
//! ListHyperParameterTuningJobs, ListTrainingJobsForHyperParameterTuningJob,
//! StopHyperParameterTuningJob, and the tuner that runs each tuning job: it launches
//! trials (training jobs named `<tuning job>-<NNN>-<8 hex>`, each given the static
//! hyperparameters, its tuned values and `_tuning_objective_metric`) up to
//! MaxParallelTrainingJobs at a time and MaxNumberOfTrainingJobs in all, reads each
//! finished trial's objective from its final metrics, and chooses the next values with
//! the job's strategy ([`crate::tuning`]). A failed trial does not stop the tuning job;
//! stopping it stops the running trials.
//!
//! CONTRACT-training A.6 and C: the SDK's `HyperparameterTuner.fit()`, `wait()`,
//! `best_training_job()` and `deploy()` read what is answered here.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::watch;

use super::error::AwsError;
use super::shapes::{
    CreateTuningJobInput, DescribeTuningJobOutput, Empty, ListInput, ListTrialsInput,
    ObjectiveCounters, ObjectiveMetric, SortOrder, StatusCounters, TrialSortBy, TrialSummary,
    TuningJobArn, TuningJobName, TuningJobSummary,
};
use super::training_jobs::Jobs;
use super::{list, ControlPlane, OpResult};
use crate::jobs::Running;
use crate::state::training_job::TrainingJobSpec;
use crate::state::tuning_job::{ObjectiveType, Trial, TuningJobSpec, OBJECTIVE_HYPERPARAMETER};
use crate::state::{now, JobStatus, TrainingJob, TuningJob};
use crate::tuning::{Range, Searcher, Space, Strategy, Values};

/// Runs tuning jobs.
pub struct Tuner {
    jobs: Arc<Jobs>,
    /// The running tuning jobs, and how to ask each to stop.
    running: Running,
}

impl Tuner {
    pub fn new(jobs: Arc<Jobs>) -> Arc<Tuner> {
        Arc::new(Tuner {
            jobs,
            running: Running::default(),
        })
    }

    /// Changes a tuning job's record (in one store transaction).
    fn update(&self, name: &str, change: impl FnOnce(&mut TuningJob)) {
        if let Err(e) = self.jobs.store.update(name, change) {
            tracing::warn!(job = name, error = %e, "could not write the tuning job's record");
        }
    }

    /// After a restart: tuning jobs that were running are marked Failed.
    pub fn restore(&self) -> Result<(), crate::state::StoreError> {
        crate::jobs::fail_unfinished::<TuningJob>(&self.jobs.store, crate::training::INTERRUPTED)
    }

    /// The end of a run: running tuning jobs are marked Failed.
    pub fn shutdown(&self) {
        self.running
            .close_failing::<TuningJob>(&self.jobs.store, crate::training::INTERRUPTED);
    }

    fn start(self: &Arc<Self>, job: TuningJob, plan: Plan) {
        let rx = self.running.enter(&job.name);
        let tuner = self.clone();
        tokio::spawn(async move {
            let name = job.name.clone();
            tuner.run(job, plan, rx).await;
            tuner.running.leave(&name);
        });
    }

    /// Launches and follows the trials until the budget is spent, the grid is exhausted,
    /// the job is stopped or its MaxRuntimeInSeconds has passed.
    async fn run(&self, job: TuningJob, mut plan: Plan, mut stop: watch::Receiver<bool>) {
        let mut running = FuturesUnordered::new();
        let mut pending: HashMap<String, Values> = HashMap::new();
        let mut done: Vec<(Values, f64)> = Vec::new();
        let mut launched = 0u32;
        let deadline = tokio::time::sleep(plan.max_runtime);
        tokio::pin!(deadline);
        let mut stopped = false;
        let mut failure: Option<String> = None;
        loop {
            while !stopped && running.len() < plan.parallel as usize && launched < plan.max_jobs {
                let busy: Vec<Values> = pending.values().cloned().collect();
                let Some(values) = plan.searcher.next(&done, &busy) else {
                    plan.max_jobs = launched;
                    break;
                };
                launched += 1;
                let trial_name = trial_name(&job.name, launched);
                let spec = trial_spec(&plan.definition, &trial_name, &values);
                let trial = match self.jobs.accept(spec, Some(job.arn.clone())) {
                    Ok(trial) => trial,
                    Err(e) => {
                        failure = Some(format!(
                            "A training job could not be created: {}",
                            e.message
                        ));
                        stopped = true;
                        break;
                    }
                };
                self.update(&job.name, |j| {
                    j.trials.push(Trial {
                        training_job_name: trial_name.clone(),
                        tuned: values.clone(),
                    });
                    j.last_modified = now();
                });
                pending.insert(trial_name.clone(), values);
                running.push(self.jobs.trainer.start(trial));
            }
            if running.is_empty() {
                break;
            }
            tokio::select! {
                Some(finished) = running.next() => {
                    let Ok(trial): Result<TrainingJob, _> = finished else { continue };
                    if let Some(values) = pending.remove(&trial.name) {
                        if let Some(value) = objective_of(&trial, &plan.metric) {
                            done.push((values, if plan.maximize { value } else { -value }));
                        }
                    }
                    self.update(&job.name, |j| j.last_modified = now());
                }
                _ = stop.wait_for(|s| *s), if !stopped => {
                    stopped = true;
                    for name in pending.keys() {
                        self.jobs.trainer.stop(name);
                    }
                }
                _ = &mut deadline, if !stopped => {
                    stopped = true;
                    for name in pending.keys() {
                        self.jobs.trainer.stop(name);
                    }
                }
            }
        }
        let asked_to_stop = *stop.borrow();
        let (status, reason) = if let Some(reason) = failure {
            (JobStatus::Failed, Some(reason))
        } else if asked_to_stop || stopped {
            (JobStatus::Stopped, None)
        } else if done.is_empty() {
            (
                JobStatus::Failed,
                Some("No training job succeeded with an objective metric: see each training job's FailureReason, and check that the objective's MetricDefinition matches what the algorithm prints.".to_string()),
            )
        } else {
            (JobStatus::Completed, None)
        };
        self.update(&job.name, |j| j.finish(status, reason.as_deref(), now()));
    }
}

/// What a tuning job runs, checked and read once.
struct Plan {
    definition: crate::state::tuning_job::TrainingJobDefinition,
    searcher: Searcher,
    metric: String,
    maximize: bool,
    max_jobs: u32,
    parallel: u32,
    max_runtime: std::time::Duration,
}

/// `<tuning job>-<NNN>-<8 hex>`, as SageMaker names trials.
fn trial_name(tuning_job: &str, n: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mix = nanos ^ n.rotate_left(20) ^ std::process::id();
    format!("{tuning_job}-{n:03}-{mix:08x}")
}

/// A trial's CreateTrainingJob: the definition with its static hyperparameters, the tuned
/// values, and the objective's metric name.
fn trial_spec(
    definition: &crate::state::tuning_job::TrainingJobDefinition,
    name: &str,
    values: &Values,
) -> TrainingJobSpec {
    let mut hyperparameters = definition
        .static_hyper_parameters
        .clone()
        .unwrap_or_default();
    hyperparameters.extend(values.clone());
    TrainingJobSpec {
        training_job_name: name.to_string(),
        hyper_parameters: Some(hyperparameters),
        algorithm_specification: definition.algorithm_specification.clone(),
        role_arn: definition.role_arn.clone(),
        input_data_config: definition.input_data_config.clone(),
        output_data_config: definition.output_data_config.clone(),
        resource_config: definition
            .resource_config
            .clone()
            .or_else(|| definition.hyper_parameter_tuning_resource_config.clone())
            .unwrap_or_default(),
        stopping_condition: definition.stopping_condition.clone(),
        enable_network_isolation: definition.enable_network_isolation,
        checkpoint_config: definition.checkpoint_config.clone(),
        environment: definition.environment.clone(),
        echoed: Default::default(),
    }
}

/// The trial's objective: the final value of the objective's metric.
fn objective_of(trial: &TrainingJob, metric: &str) -> Option<f64> {
    if !matches!(trial.status, JobStatus::Completed | JobStatus::Stopped) {
        return None;
    }
    trial
        .final_metrics
        .iter()
        .find(|m| m.metric_name == metric)
        .map(|m| m.value)
}

impl ControlPlane {
    pub(super) fn create_tuning_job(
        &self,
        input: CreateTuningJobInput,
    ) -> Result<TuningJobArn, AwsError> {
        let mut spec = input.spec;
        let plan = self.plan_tuning_job(&mut spec)?;
        let name = spec.hyper_parameter_tuning_job_name.clone();
        let arn = self.settings.arn("hyper-parameter-tuning-job", &name);
        let created = now();
        let job = TuningJob {
            name: name.clone(),
            arn: arn.clone(),
            created,
            spec,
            status: JobStatus::InProgress,
            failure_reason: None,
            last_modified: created,
            end_time: None,
            trials: Vec::new(),
        };
        if !self.store.insert_new(&name, &job)? {
            return Err(AwsError::resource_in_use(format!(
                "Hyperparameter tuning job names must be unique within an AWS account and region, and a tuning job with this name already exists ({arn})"
            )));
        }
        self.put_tags(&arn, &input.tags)?;
        self.tuner.start(job, plan);
        Ok(TuningJobArn {
            hyper_parameter_tuning_job_arn: arn,
        })
    }

    /// SageMaker's rules for a tuning job; adds `_tuning_objective_metric` to the static
    /// hyperparameters (as SageMaker does, and as the SDK's `attach` expects to find).
    fn plan_tuning_job(&self, spec: &mut TuningJobSpec) -> Result<Plan, AwsError> {
        for refused in ["TrainingJobDefinitions", "WarmStartConfig", "Autotune"] {
            if spec.echoed.contains_key(refused) {
                return Err(AwsError::validation(format!(
                    "{refused} is not served by sagedock: give one TrainingJobDefinition, no warm start."
                )));
            }
        }
        let config = &spec.hyper_parameter_tuning_job_config;
        let Some(definition) = spec.training_job_definition.as_mut() else {
            return Err(AwsError::validation(
                "TrainingJobDefinition is required (sagedock runs one training job definition per tuning job).",
            ));
        };
        let Some(objective) = config.hyper_parameter_tuning_job_objective.clone() else {
            return Err(AwsError::validation(
                "HyperParameterTuningJobConfig.HyperParameterTuningJobObjective is required.",
            ));
        };
        crate::training::algorithm::add_metric_definitions(&mut definition.algorithm_specification);
        let defined: Vec<&str> = definition
            .algorithm_specification
            .metric_definitions
            .iter()
            .flatten()
            .map(|d| d.name.as_str())
            .collect();
        if !defined.contains(&objective.metric_name.as_str()) {
            return Err(AwsError::validation(format!(
                "The objective metric '{}' is not one of the algorithm's MetricDefinitions ({}).",
                objective.metric_name,
                if defined.is_empty() {
                    "none defined".to_string()
                } else {
                    defined.join(", ")
                }
            )));
        }
        let space = space_of(config.parameter_ranges.as_ref())?;
        let strategy = match config.strategy.as_str() {
            "Random" => Strategy::Random,
            "Grid" => Strategy::Grid,
            "Bayesian" => Strategy::Bayesian,
            other => {
                return Err(AwsError::validation(format!(
                    "Strategy {other} is not served by sagedock: use Bayesian, Random or Grid."
                )))
            }
        };
        let limits = &config.resource_limits;
        let max_jobs = match (strategy, limits.max_number_of_training_jobs) {
            (Strategy::Grid, given) => {
                let Some(grid) = space.grid() else {
                    return Err(AwsError::validation(
                        "The Grid strategy supports only categorical parameter ranges.",
                    ));
                };
                let combinations = u32::try_from(grid.len()).unwrap_or(u32::MAX);
                if given.is_some_and(|n| n != combinations) {
                    return Err(AwsError::validation(format!(
                        "With the Grid strategy, MaxNumberOfTrainingJobs must equal the number of combinations of the categorical values ({combinations}), or be left out."
                    )));
                }
                combinations
            }
            (_, Some(n)) => n,
            (_, None) => return Err(AwsError::validation(
                "ResourceLimits.MaxNumberOfTrainingJobs is required unless the strategy is Grid.",
            )),
        };
        let mut statics = definition
            .static_hyper_parameters
            .clone()
            .unwrap_or_default();
        for range in &space.ranges {
            if statics.contains_key(range.name()) {
                return Err(AwsError::validation(format!(
                    "Hyperparameter '{}' is both static and tuned.",
                    range.name()
                )));
            }
        }
        statics.insert(
            OBJECTIVE_HYPERPARAMETER.to_string(),
            objective.metric_name.clone(),
        );
        if statics.len() + space.ranges.len() > 100 {
            return Err(AwsError::validation(
                "A tuning job's static and tuned hyperparameters (with _tuning_objective_metric) are limited to 100.",
            ));
        }
        definition.static_hyper_parameters = Some(statics);
        // The definition must make a valid training job.
        let example = trial_spec(
            definition,
            &format!("{}-001-00000000", spec.hyper_parameter_tuning_job_name),
            &space.values_at(&vec![0.5; space.ranges.len()]),
        );
        self.jobs.check(&example)?;
        let seed = config.random_seed.map_or_else(
            || {
                spec.hyper_parameter_tuning_job_name
                    .bytes()
                    .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                    })
            },
            u64::from,
        );
        Ok(Plan {
            definition: definition.clone(),
            searcher: Searcher::new(space, strategy, seed, max_jobs as usize),
            metric: objective.metric_name,
            maximize: objective.kind == ObjectiveType::Maximize,
            max_jobs,
            parallel: limits.max_parallel_training_jobs.max(1),
            max_runtime: std::time::Duration::from_secs(
                limits.max_runtime_in_seconds.unwrap_or(30 * 86_400),
            ),
        })
    }

    fn tuning_job(&self, name: &str) -> Result<TuningJob, AwsError> {
        self.store.get(name)?.ok_or_else(|| {
            AwsError::resource_not_found(format!(
                "Amazon SageMaker can't find a tuning job with name {name}"
            ))
        })
    }

    /// Each trial's summary, with the job's record.
    fn trials(&self, job: &TuningJob) -> Result<Vec<(TrialSummary, Option<f64>)>, AwsError> {
        let objective = job
            .spec
            .hyper_parameter_tuning_job_config
            .hyper_parameter_tuning_job_objective
            .clone();
        let mut out = Vec::with_capacity(job.trials.len());
        for trial in &job.trials {
            let Some(record) = self.store.get::<TrainingJob>(&trial.training_job_name)? else {
                continue;
            };
            let value = objective
                .as_ref()
                .and_then(|o| objective_of(&record, &o.metric_name));
            let objective_status = match (value, record.status.is_terminal()) {
                (Some(_), _) => "Succeeded",
                (None, false) => "Pending",
                (None, true) => "Failed",
            };
            out.push((
                TrialSummary {
                    training_job_name: record.name.clone(),
                    training_job_arn: record.arn.clone(),
                    tuning_job_name: job.name.clone(),
                    creation_time: record.created,
                    training_start_time: record.training_start,
                    training_end_time: record.training_end,
                    training_job_status: record.status,
                    tuned_hyper_parameters: trial.tuned.clone(),
                    failure_reason: record.failure_reason.clone(),
                    final_hyper_parameter_tuning_job_objective_metric: value
                        .zip(objective.as_ref())
                        .map(|(v, o)| ObjectiveMetric {
                            kind: o.kind,
                            metric_name: o.metric_name.clone(),
                            value: v,
                        }),
                    objective_status,
                },
                value,
            ));
        }
        Ok(out)
    }

    fn counters(trials: &[(TrialSummary, Option<f64>)]) -> (StatusCounters, ObjectiveCounters) {
        let mut status = StatusCounters::default();
        let mut objective = ObjectiveCounters::default();
        for (t, _) in trials {
            match t.training_job_status {
                JobStatus::Completed => status.completed += 1,
                JobStatus::InProgress | JobStatus::Stopping => status.in_progress += 1,
                JobStatus::Failed => status.non_retryable_error += 1,
                JobStatus::Stopped => status.stopped += 1,
            }
            match t.objective_status {
                "Succeeded" => objective.succeeded += 1,
                "Pending" => objective.pending += 1,
                _ => objective.failed += 1,
            }
        }
        (status, objective)
    }

    pub(super) fn describe_tuning_job(&self, input: TuningJobName) -> OpResult {
        let job = self.tuning_job(&input.hyper_parameter_tuning_job_name)?;
        let trials = self.trials(&job)?;
        let (status_counters, objective_counters) = Self::counters(&trials);
        let maximize = job
            .spec
            .hyper_parameter_tuning_job_config
            .hyper_parameter_tuning_job_objective
            .as_ref()
            .is_none_or(|o| o.kind == ObjectiveType::Maximize);
        let best = trials
            .iter()
            .filter_map(|(t, v)| v.map(|v| (t, v)))
            .max_by(|(_, a), (_, b)| {
                if maximize {
                    a.total_cmp(b)
                } else {
                    b.total_cmp(a)
                }
            })
            .map(|(t, _)| t.clone());
        super::answer(Ok(DescribeTuningJobOutput {
            spec: &job.spec,
            hyper_parameter_tuning_job_arn: &job.arn,
            hyper_parameter_tuning_job_status: job.status,
            creation_time: job.created,
            hyper_parameter_tuning_end_time: job.end_time,
            last_modified_time: job.last_modified,
            training_job_status_counters: status_counters,
            objective_status_counters: objective_counters,
            best_training_job: best,
            failure_reason: job.failure_reason.as_deref(),
        }))
    }

    pub(super) fn list_tuning_jobs(&self, input: &ListInput) -> OpResult {
        let mut items = Vec::new();
        for job in self.store.list::<TuningJob>()? {
            let trials = self.trials(&job)?;
            let (status, objective) = Self::counters(&trials);
            let config = &job.spec.hyper_parameter_tuning_job_config;
            items.push(TuningJobSummary {
                hyper_parameter_tuning_job_name: job.name.clone(),
                hyper_parameter_tuning_job_arn: job.arn.clone(),
                hyper_parameter_tuning_job_status: job.status,
                strategy: config.strategy.clone(),
                creation_time: job.created,
                hyper_parameter_tuning_end_time: job.end_time,
                last_modified_time: job.last_modified,
                training_job_status_counters: status,
                objective_status_counters: objective,
                resource_limits: config.resource_limits.clone(),
            });
        }
        list::page(items, input)
    }

    pub(super) fn list_trials(&self, input: ListTrialsInput) -> OpResult {
        let job = self.tuning_job(&input.hyper_parameter_tuning_job_name)?;
        let mut trials = self.trials(&job)?;
        if let Some(status) = &input.status_equals {
            trials.retain(|(t, _)| t.training_job_status.as_str() == status);
        }
        match input.sort_by.unwrap_or(TrialSortBy::Name) {
            TrialSortBy::Name => {
                trials.sort_by(|a, b| a.0.training_job_name.cmp(&b.0.training_job_name))
            }
            TrialSortBy::CreationTime => {
                trials.sort_by(|a, b| a.0.creation_time.total_cmp(&b.0.creation_time))
            }
            TrialSortBy::Status => trials.sort_by_key(|t| t.0.training_job_status.as_str()),
            TrialSortBy::FinalObjectiveMetricValue => {
                trials.retain(|(_, v)| v.is_some());
                trials.sort_by(|a, b| a.1.unwrap_or(0.0).total_cmp(&b.1.unwrap_or(0.0)));
            }
        }
        if input.sort_order.unwrap_or(SortOrder::Ascending) == SortOrder::Descending {
            trials.reverse();
        }
        let summaries: Vec<TrialSummary> = trials.into_iter().map(|(t, _)| t).collect();
        list::page_sorted(
            summaries,
            input.max_results,
            input.next_token.as_deref(),
            "TrainingJobSummaries",
        )
    }

    pub(super) fn stop_tuning_job(&self, input: TuningJobName) -> Result<Empty, AwsError> {
        let job = self.tuning_job(&input.hyper_parameter_tuning_job_name)?;
        if job.status.is_terminal() || !self.tuner.running.contains(&job.name) {
            return Err(AwsError::validation(format!(
                "The hyperparameter tuning job {} is not in progress: its status is {}.",
                job.name,
                job.status.as_str()
            )));
        }
        self.tuner.update(&job.name, |j| {
            j.status = JobStatus::Stopping;
            j.last_modified = now();
        });
        self.tuner.running.stop(&job.name);
        Ok(Empty {})
    }
}

/// The ranges of a tuning job as a search space (at most 30, no name twice).
fn space_of(ranges: Option<&crate::state::tuning_job::ParameterRanges>) -> Result<Space, AwsError> {
    let Some(ranges) = ranges else {
        return Err(AwsError::validation("ParameterRanges is required."));
    };
    if ranges.echoed.contains_key("AutoParameters") {
        return Err(AwsError::validation(
            "AutoParameters (Autotune) is not served by sagedock: give the ranges.",
        ));
    }
    let bad = |e: crate::tuning::RangeError| AwsError::validation(e.0);
    let mut all = Vec::new();
    for r in ranges.integer_parameter_ranges.iter().flatten() {
        all.push(
            Range::integer(
                &r.name,
                &r.min_value,
                &r.max_value,
                r.scaling_type.as_deref(),
            )
            .map_err(bad)?,
        );
    }
    for r in ranges.continuous_parameter_ranges.iter().flatten() {
        all.push(
            Range::continuous(
                &r.name,
                &r.min_value,
                &r.max_value,
                r.scaling_type.as_deref(),
            )
            .map_err(bad)?,
        );
    }
    for r in ranges.categorical_parameter_ranges.iter().flatten() {
        all.push(Range::categorical(&r.name, &r.values).map_err(bad)?);
    }
    if all.is_empty() {
        return Err(AwsError::validation(
            "ParameterRanges holds no range: give at least one hyperparameter to tune.",
        ));
    }
    if all.len() > 30 {
        return Err(AwsError::validation(format!(
            "{} hyperparameters are tuned; SageMaker allows at most 30.",
            all.len()
        )));
    }
    let mut seen = BTreeMap::new();
    for r in &all {
        if seen.insert(r.name().to_string(), ()).is_some() {
            return Err(AwsError::validation(format!(
                "Hyperparameter '{}' has more than one range.",
                r.name()
            )));
        }
    }
    Ok(Space { ranges: all })
}
