//! How many instances this machine runs: a cap per endpoint and one in all, so that no
//! request (`InitialInstanceCount: 1000000000000`) can make sagedock start more containers
//! than the machine can hold.

/// The caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub per_endpoint: u64,
    pub total: u64,
}

/// A request over a cap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapacityError {
    #[error("endpoint {endpoint} would run {wanted} instances; this sagedock runs at most {cap} per endpoint (raise it with --max-instances-per-endpoint)")]
    PerEndpoint {
        endpoint: String,
        wanted: u64,
        cap: u64,
    },
    #[error("endpoint {endpoint} would bring the instances this sagedock runs to {wanted}; it runs at most {cap} in all (raise it with --max-instances)")]
    Total {
        endpoint: String,
        wanted: u64,
        cap: u64,
    },
}

impl Capacity {
    /// One instance per this much of the engine's memory.
    const MEMORY_PER_INSTANCE: u64 = 256 << 20;

    /// The caps for an engine with `memory_bytes` of memory: an instance per 256 MiB, at
    /// least 8 and at most 1024, and the same per endpoint.
    pub fn for_memory(memory_bytes: u64) -> Capacity {
        let total = (memory_bytes / Self::MEMORY_PER_INSTANCE).clamp(8, 1024);
        Capacity {
            per_endpoint: total,
            total,
        }
    }

    /// Overrides from flags.
    pub fn with(mut self, per_endpoint: Option<u64>, total: Option<u64>) -> Capacity {
        if let Some(total) = total {
            self.total = total;
            self.per_endpoint = self.per_endpoint.min(total);
        }
        if let Some(per_endpoint) = per_endpoint {
            self.per_endpoint = per_endpoint;
        }
        self
    }

    /// Checks that `endpoint` may run `instances`, when the other endpoints run `others`.
    pub fn check(&self, endpoint: &str, instances: u64, others: u64) -> Result<(), CapacityError> {
        if instances > self.per_endpoint {
            return Err(CapacityError::PerEndpoint {
                endpoint: endpoint.to_string(),
                wanted: instances,
                cap: self.per_endpoint,
            });
        }
        let wanted = instances.saturating_add(others);
        if wanted > self.total {
            return Err(CapacityError::Total {
                endpoint: endpoint.to_string(),
                wanted,
                cap: self.total,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_follow_memory_and_flags() {
        let c = Capacity::for_memory(24 << 30);
        assert_eq!(c.total, 96);
        assert_eq!(Capacity::for_memory(0).total, 8);
        assert!(c.check("e", 96, 0).is_ok());
        let err = c.check("e", 97, 0).unwrap_err();
        assert!(
            err.to_string().contains("--max-instances-per-endpoint"),
            "{err}"
        );
        let err = c.check("e", 10, 90).unwrap_err();
        assert!(
            matches!(err, CapacityError::Total { wanted: 100, .. }),
            "{err}"
        );
        let c = c.with(Some(2), Some(3));
        assert!(c.check("e", 3, 0).is_err());
        assert!(c.check("e", 2, 1).is_ok());
        assert!(c.check("e", 2, 2).is_err());
        assert!(c.check("e", u64::MAX, u64::MAX).is_err());
    }
}
