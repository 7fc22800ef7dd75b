//! Endpoint lifecycles, reconciled into containers.
//!
//! The endpoint operations write desired state to the store and return at once; a task per
//! deployment drives the runtime toward it and writes the outcome back: `Creating` →
//! `InService` when every instance answers `/ping`, or `Failed` with a FailureReason a user
//! can act on. An update brings a new fleet up beside the old one and shifts traffic only
//! when it is healthy; a failed update leaves the old fleet serving (InService with
//! FailureReason). Deletion takes the endpoint out of the router, removes its containers,
//! then its record.
//!
//! Containers carry the endpoint, variant, generation and the data directory's owner
//! label; after a restart, [`Deployer::restore`] re-adopts the healthy containers of each
//! endpoint's current generation and redeploys what is missing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

mod fleet;
mod restore;

use fleet::{Fleet, FleetVariant, Member};

use super::error::AwsError;
use super::records::{now, EndpointConfigRecord, EndpointRecord, ModelRecord, VariantRecord};
use super::store::{Kind, Store};
use super::{validate, Settings};
use crate::artifact::Cache;
use crate::endpoint::Router;
use crate::runtime::Engine;

/// Label carrying the deployment generation.
const GENERATION: &str = "sagedock.generation";
/// Label carrying a container's position in a multi-container model.
const CONTAINER: &str = "sagedock.container";
/// FailureReason is at most 1024 characters in SageMaker.
const MAX_REASON: usize = 1024;

/// How deployments run.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// Default for ContainerStartupHealthCheckTimeoutInSeconds.
    pub health_timeout: Duration,
    pub pull: bool,
    pub cpu_only: bool,
    /// How long an invocation waits for a multi-model load (SageMaker: 60 s).
    pub model_load_wait: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Create,
    Update,
}

/// Drives endpoints toward their desired state.
pub struct Deployer {
    settings: Settings,
    store: Arc<Store>,
    router: Arc<Router>,
    engine: Engine,
    cache: Cache,
    owner: String,
    options: DeployOptions,
    fleets: Mutex<HashMap<String, Fleet>>,
    tasks: Mutex<HashMap<String, JoinHandle<()>>>,
}

type OpResult = Result<Value, AwsError>;

impl Deployer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: Settings,
        store: Arc<Store>,
        router: Arc<Router>,
        engine: Engine,
        cache: Cache,
        owner: String,
        options: DeployOptions,
    ) -> Arc<Self> {
        Arc::new(Deployer {
            settings,
            store,
            router,
            engine,
            cache,
            owner,
            options,
            fleets: Mutex::new(HashMap::new()),
            tasks: Mutex::new(HashMap::new()),
        })
    }

    fn not_found(&self, name: &str) -> AwsError {
        AwsError::validation(format!(
            "Could not find endpoint \"{}\".",
            self.settings.arn("endpoint", name)
        ))
    }

    fn endpoint(&self, name: &str) -> Result<EndpointRecord, AwsError> {
        self.store
            .get(Kind::Endpoint, name)?
            .ok_or_else(|| self.not_found(name))
    }

    fn config(&self, name: &str) -> Result<EndpointConfigRecord, AwsError> {
        self.store.get(Kind::EndpointConfig, name)?.ok_or_else(|| {
            AwsError::validation(format!(
                "Could not find endpoint configuration \"{}\".",
                self.settings.arn("endpoint-config", name)
            ))
        })
    }

    fn variant_records(config: &EndpointConfigRecord) -> Vec<VariantRecord> {
        config
            .variants()
            .iter()
            .map(|v| {
                let weight = v
                    .get("InitialVariantWeight")
                    .and_then(Value::as_f64)
                    .unwrap_or(1.0);
                VariantRecord {
                    name: v["VariantName"].as_str().unwrap_or_default().to_string(),
                    image: String::new(),
                    current_weight: weight,
                    desired_weight: weight,
                    current_count: 0,
                    desired_count: v
                        .get("InitialInstanceCount")
                        .and_then(Value::as_u64)
                        .unwrap_or(1) as u32,
                }
            })
            .collect()
    }

    pub async fn create_endpoint(self: &Arc<Self>, input: &Value) -> OpResult {
        let name = validate::required_str(input, "EndpointName")?;
        validate::hyphenated_name(name, "endpointName")?;
        let config = self.config(validate::required_str(input, "EndpointConfigName")?)?;
        let t = now();
        let record = EndpointRecord {
            name: name.to_string(),
            arn: self.settings.arn("endpoint", name),
            config_name: config.name.clone(),
            status: "Creating".into(),
            failure_reason: None,
            created: t,
            last_modified: t,
            variants: Self::variant_records(&config),
            generation: 1,
        };
        if !self.store.insert_new(Kind::Endpoint, name, &record)? {
            return Err(AwsError::validation(format!(
                "Cannot create already existing endpoint \"{}\".",
                record.arn
            )));
        }
        if let Some(Value::Array(tags)) = input.get("Tags") {
            self.store.put(Kind::Tags, &record.arn, tags)?;
        }
        self.spawn(name, config, 1, Mode::Create);
        Ok(json!({ "EndpointArn": record.arn }))
    }

    pub fn describe_endpoint(&self, input: &Value) -> OpResult {
        Ok(self
            .endpoint(validate::required_str(input, "EndpointName")?)?
            .describe())
    }

    pub async fn delete_endpoint(self: &Arc<Self>, input: &Value) -> OpResult {
        let name = validate::required_str(input, "EndpointName")?;
        let mut record = self.endpoint(name)?;
        if let Some(task) = self.tasks.lock().expect("tasks").remove(name) {
            task.abort();
        }
        self.router.withdraw(name);
        let fleet = self.fleets.lock().expect("fleets").remove(name);
        record.status = "Deleting".into();
        record.last_modified = now();
        self.store.put(Kind::Endpoint, name, &record)?;
        let this = self.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            if let Some(fleet) = fleet {
                fleet.remove().await;
            }
            this.remove_labelled(&name, None).await;
            let _ = this.store.delete(Kind::Endpoint, &name);
            let _ = this
                .store
                .delete(Kind::Tags, &this.settings.arn("endpoint", &name));
        });
        Ok(json!({}))
    }

    pub async fn update_endpoint(self: &Arc<Self>, input: &Value) -> OpResult {
        let name = validate::required_str(input, "EndpointName")?;
        let mut record = self.endpoint(name)?;
        let config = self.config(validate::required_str(input, "EndpointConfigName")?)?;
        if record.status != "InService" {
            return Err(AwsError::validation(format!(
                "Cannot update in-progress endpoint \"{}\".",
                record.arn
            )));
        }
        record.status = "Updating".into();
        record.generation += 1;
        record.last_modified = now();
        self.store.put(Kind::Endpoint, name, &record)?;
        self.spawn(name, config, record.generation, Mode::Update);
        Ok(json!({ "EndpointArn": record.arn }))
    }

    pub async fn update_weights_and_capacities(self: &Arc<Self>, input: &Value) -> OpResult {
        let name = validate::required_str(input, "EndpointName")?;
        let mut record = self.endpoint(name)?;
        if record.status != "InService" {
            return Err(AwsError::validation(format!(
                "Cannot update in-progress endpoint \"{}\".",
                record.arn
            )));
        }
        let desired = input
            .get("DesiredWeightsAndCapacities")
            .and_then(Value::as_array)
            .filter(|d| !d.is_empty())
            .ok_or_else(|| {
                AwsError::validation("DesiredWeightsAndCapacities must not be empty.")
            })?;
        let mut seen = std::collections::HashSet::new();
        for d in desired {
            let variant = validate::required_str(d, "VariantName")?;
            if !seen.insert(variant) {
                return Err(AwsError::validation(format!(
                    "The variant name {variant} appears more than once."
                )));
            }
            let Some(v) = record.variants.iter_mut().find(|v| v.name == variant) else {
                return Err(AwsError::validation(format!(
                    "The variant name(s) [{variant}] is/are not present in the endpoint \"{}\".",
                    record.arn
                )));
            };
            if let Some(w) = d.get("DesiredWeight").and_then(Value::as_f64) {
                v.desired_weight = w;
            }
            if let Some(c) = d.get("DesiredInstanceCount").and_then(Value::as_u64) {
                v.desired_count = c as u32;
            }
        }
        record.status = "Updating".into();
        record.last_modified = now();
        self.store.put(Kind::Endpoint, name, &record)?;
        let this = self.clone();
        let owned = name.to_string();
        let task = tokio::spawn(async move { this.rescale(&owned, record).await });
        self.tasks
            .lock()
            .expect("tasks")
            .insert(name.to_string(), task);
        Ok(json!({ "EndpointArn": self.settings.arn("endpoint", name) }))
    }

    fn spawn(
        self: &Arc<Self>,
        name: &str,
        config: EndpointConfigRecord,
        generation: u64,
        mode: Mode,
    ) {
        let this = self.clone();
        let owned = name.to_string();
        let task = tokio::spawn(async move { this.deploy(&owned, config, generation, mode).await });
        if let Some(old) = self
            .tasks
            .lock()
            .expect("tasks")
            .insert(name.to_string(), task)
        {
            old.abort();
        }
    }

    /// Whether the endpoint still exists at `generation` (not deleted, not redeployed).
    fn is_current(&self, name: &str, generation: u64) -> bool {
        matches!(
            self.store.get::<EndpointRecord>(Kind::Endpoint, name),
            Ok(Some(r)) if r.generation == generation && r.status != "Deleting"
        )
    }

    /// Applies `f` to the endpoint's record if it is still at `generation`.
    fn finish(&self, name: &str, generation: u64, f: impl FnOnce(&mut EndpointRecord)) -> bool {
        let Ok(Some(mut record)) = self.store.get::<EndpointRecord>(Kind::Endpoint, name) else {
            return false;
        };
        if record.generation != generation || record.status == "Deleting" {
            return false;
        }
        f(&mut record);
        record.last_modified = now();
        self.store.put(Kind::Endpoint, name, &record).is_ok()
    }

    async fn deploy(
        self: Arc<Self>,
        name: &str,
        config: EndpointConfigRecord,
        generation: u64,
        mode: Mode,
    ) {
        let built = self.build_fleet(name, &config, generation).await;
        match built {
            Ok(fleet) => {
                let live = fleet.live(name);
                let images: HashMap<String, String> = config
                    .variants()
                    .iter()
                    .filter_map(|v| {
                        Some((
                            v["VariantName"].as_str()?.to_string(),
                            self.image_of(v).ok()?,
                        ))
                    })
                    .collect();
                // Traffic moves to the new fleet before the record says InService, so a
                // client that sees InService reaches the new fleet. No await from the check
                // to the record update: a DeleteEndpoint cannot slip in between.
                if !self.is_current(name, generation) {
                    fleet.remove().await;
                    return;
                }
                self.router.publish(live);
                let old = self
                    .fleets
                    .lock()
                    .expect("fleets")
                    .insert(name.to_string(), fleet);
                self.finish(name, generation, |r| {
                    r.status = "InService".into();
                    r.failure_reason = None;
                    r.config_name = config.name.clone();
                    r.variants = Self::variant_records(&config);
                    for v in &mut r.variants {
                        v.current_count = v.desired_count;
                        v.image = images.get(&v.name).cloned().unwrap_or_default();
                    }
                });
                if let Some(old) = old {
                    old.remove().await;
                }
                tracing::info!(endpoint = name, generation, "endpoint in service");
            }
            Err(reason) => {
                let reason: String = reason.chars().take(MAX_REASON).collect();
                tracing::warn!(endpoint = name, %reason, "deployment failed");
                self.finish(name, generation, |r| {
                    r.failure_reason = Some(reason.clone());
                    if mode == Mode::Create {
                        r.status = "Failed".into();
                    } else {
                        // The old fleet keeps serving.
                        r.status = "InService".into();
                        r.generation = generation;
                    }
                });
            }
        }
    }

    fn image_of(&self, variant: &Value) -> Result<String, String> {
        let model = self.model_of(variant)?;
        let container = model
            .containers()
            .into_iter()
            .next()
            .ok_or("the model has no container")?;
        container["Image"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| "the model's container has no Image".to_string())
    }

    fn model_of(&self, variant: &Value) -> Result<ModelRecord, String> {
        let model_name = variant["ModelName"].as_str().unwrap_or_default();
        self.store
            .get::<ModelRecord>(Kind::Model, model_name)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!(
                    "Model {model_name} of variant {} no longer exists.",
                    variant["VariantName"]
                )
            })
    }

    /// UpdateEndpointWeightsAndCapacities: weights in place, instances added or removed.
    async fn rescale(self: Arc<Self>, name: &str, record: EndpointRecord) {
        let config = match self.config(&record.config_name) {
            Ok(c) => c,
            Err(e) => {
                self.finish(name, record.generation, |r| {
                    r.status = "InService".into();
                    r.failure_reason = Some(e.message.clone());
                });
                return;
            }
        };
        let mut failure = None;
        for want in &record.variants {
            let have = self.instance_count(name, &want.name);
            let variant = config
                .variants()
                .into_iter()
                .find(|v| v["VariantName"] == want.name.as_str());
            if want.desired_count > have {
                let Some(variant) = variant else { continue };
                match self
                    .launch_variant(
                        name,
                        &variant,
                        record.generation,
                        have,
                        want.desired_count - have,
                    )
                    .await
                {
                    Ok(extra) => self.with_variant(name, &want.name, |v| v.add_instances(extra)),
                    Err(e) => failure = Some(e),
                }
            } else if want.desired_count < have {
                let mut surplus = Vec::new();
                self.with_variant(name, &want.name, |v| {
                    surplus = v.instances.split_off(want.desired_count as usize)
                });
                join_all(surplus.into_iter().flatten().map(Member::remove)).await;
            }
            self.with_variant(name, &want.name, |v| v.weight = want.desired_weight);
        }
        let live = self.fleets.lock().expect("fleets").get(name).map(|f| {
            f.size_queue();
            f.live(name)
        });
        if let Some(live) = live {
            self.router.publish(live);
        }
        let counts: HashMap<String, u32> = record
            .variants
            .iter()
            .map(|v| (v.name.clone(), self.instance_count(name, &v.name)))
            .collect();
        self.finish(name, record.generation, |r| {
            r.status = "InService".into();
            r.failure_reason = failure.clone();
            for v in &mut r.variants {
                v.current_weight = v.desired_weight;
                v.current_count = counts.get(&v.name).copied().unwrap_or(0);
            }
        });
    }

    fn instance_count(&self, endpoint: &str, variant: &str) -> u32 {
        let fleets = self.fleets.lock().expect("fleets");
        fleets
            .get(endpoint)
            .and_then(|f| f.variants.iter().find(|v| v.name == variant))
            .map_or(0, |v| v.instances.len() as u32)
    }

    fn with_variant(&self, endpoint: &str, variant: &str, f: impl FnOnce(&mut FleetVariant)) {
        let mut fleets = self.fleets.lock().expect("fleets");
        if let Some(v) = fleets
            .get_mut(endpoint)
            .and_then(|f| f.variants.iter_mut().find(|v| v.name == variant))
        {
            f(v);
        }
    }

    /// Stops every deployment and removes every container (graceful shutdown).
    pub async fn shutdown(&self) {
        for (_, task) in self.tasks.lock().expect("tasks").drain() {
            task.abort();
        }
        let fleets: Vec<Fleet> = self
            .fleets
            .lock()
            .expect("fleets")
            .drain()
            .map(|(_, f)| f)
            .collect();
        join_all(fleets.into_iter().map(Fleet::remove)).await;
    }
}
