//! SageMaker hosting instance types: vCPUs, memory and accelerators, applied as container
//! limits so that a model that does not fit its instance fails here, not in the cloud.
//!
//! `local` (the SageMaker Python SDK's local-mode type) means no limits.

use std::fmt;

/// Accelerators an instance type carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accelerator {
    None,
    NvidiaGpu(u32),
    Inferentia(u32),
}

/// CPU and memory limits of a container, as the engine takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub nano_cpus: i64,
    pub memory_bytes: i64,
}

/// One instance type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceType {
    pub name: &'static str,
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    pub accelerator: Accelerator,
}

impl fmt::Display for InstanceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name == "local" {
            return write!(f, "local (no limits)");
        }
        write!(
            f,
            "{}: {} vCPU, {} GiB",
            self.name,
            self.vcpus,
            self.memory_mib / 1024
        )?;
        match self.accelerator {
            Accelerator::None => Ok(()),
            Accelerator::NvidiaGpu(n) => {
                write!(f, ", {n} NVIDIA GPU{}", if n == 1 { "" } else { "s" })
            }
            Accelerator::Inferentia(n) => {
                write!(f, ", {n} Inferentia chip{}", if n == 1 { "" } else { "s" })
            }
        }
    }
}

impl InstanceType {
    /// What a serverless variant of `memory_mib` runs on: that much memory, and compute in
    /// proportion as SageMaker describes it (it publishes no figures: one vCPU per 2 GiB
    /// here, at least one).
    pub fn serverless(memory_mib: u32) -> InstanceType {
        InstanceType {
            name: "serverless",
            vcpus: memory_mib.div_ceil(2048).max(1),
            memory_mib: u64::from(memory_mib),
            accelerator: Accelerator::None,
        }
    }

    /// True for `local`, which applies no limits.
    pub fn is_local(&self) -> bool {
        self.name == "local"
    }

    /// The limits a container of this type gets on a machine of `host_cpus` CPUs: its
    /// CPUs in billionths (an instance bigger than the machine gets what the machine has)
    /// and its memory in bytes; `None` for `local`.
    pub fn limits(&self, host_cpus: u32) -> Option<Limits> {
        if self.is_local() {
            return None;
        }
        let cpus = self.vcpus.min(host_cpus).max(1);
        Some(Limits {
            nano_cpus: i64::from(cpus) * 1_000_000_000,
            memory_bytes: self
                .memory_mib
                .checked_mul(1 << 20)
                .and_then(|b| i64::try_from(b).ok())
                .unwrap_or(i64::MAX),
        })
    }

    /// The CPU architecture an image must be built for, as Docker names it (`amd64`, or
    /// `arm64` for Graviton types: a family whose generation number is followed by `g`,
    /// as in ml.c6g or ml.m7g); `None` for `local` and serverless, which take either.
    pub fn architecture(&self) -> Option<&'static str> {
        let family = self.name.strip_prefix("ml.")?.split('.').next()?;
        let after_generation = family
            .trim_start_matches(|c: char| c.is_ascii_alphabetic())
            .trim_start_matches(|c: char| c.is_ascii_digit());
        Some(if after_generation.starts_with('g') {
            "arm64"
        } else {
            "amd64"
        })
    }
}

const fn it(
    name: &'static str,
    vcpus: u32,
    memory_gib: u64,
    accelerator: Accelerator,
) -> InstanceType {
    InstanceType {
        name,
        vcpus,
        memory_mib: memory_gib * 1024,
        accelerator,
    }
}

use Accelerator::{Inferentia as Inf, None as Cpu, NvidiaGpu as Gpu};

/// Hosting instance types (AWS's published sizes).
pub const INSTANCE_TYPES: &[InstanceType] = &[
    InstanceType {
        name: "local",
        vcpus: 0,
        memory_mib: 0,
        accelerator: Cpu,
    },
    it("ml.t2.medium", 2, 4, Cpu),
    it("ml.t2.large", 2, 8, Cpu),
    it("ml.t2.xlarge", 4, 16, Cpu),
    it("ml.t2.2xlarge", 8, 32, Cpu),
    it("ml.t3.medium", 2, 4, Cpu),
    it("ml.t3.large", 2, 8, Cpu),
    it("ml.t3.xlarge", 4, 16, Cpu),
    it("ml.t3.2xlarge", 8, 32, Cpu),
    it("ml.m4.xlarge", 4, 16, Cpu),
    it("ml.m4.2xlarge", 8, 32, Cpu),
    it("ml.m4.4xlarge", 16, 64, Cpu),
    it("ml.m4.10xlarge", 40, 160, Cpu),
    it("ml.m4.16xlarge", 64, 256, Cpu),
    it("ml.m5.large", 2, 8, Cpu),
    it("ml.m5.xlarge", 4, 16, Cpu),
    it("ml.m5.2xlarge", 8, 32, Cpu),
    it("ml.m5.4xlarge", 16, 64, Cpu),
    it("ml.m5.12xlarge", 48, 192, Cpu),
    it("ml.m5.24xlarge", 96, 384, Cpu),
    it("ml.m6i.large", 2, 8, Cpu),
    it("ml.m6i.xlarge", 4, 16, Cpu),
    it("ml.m6i.2xlarge", 8, 32, Cpu),
    it("ml.m6i.4xlarge", 16, 64, Cpu),
    it("ml.m6i.8xlarge", 32, 128, Cpu),
    it("ml.m6i.12xlarge", 48, 192, Cpu),
    it("ml.m6i.16xlarge", 64, 256, Cpu),
    it("ml.m6i.24xlarge", 96, 384, Cpu),
    it("ml.m6i.32xlarge", 128, 512, Cpu),
    it("ml.c5.large", 2, 4, Cpu),
    it("ml.c5.xlarge", 4, 8, Cpu),
    it("ml.c5.2xlarge", 8, 16, Cpu),
    it("ml.c5.4xlarge", 16, 32, Cpu),
    it("ml.c5.9xlarge", 36, 72, Cpu),
    it("ml.c5.18xlarge", 72, 144, Cpu),
    it("ml.c6i.large", 2, 4, Cpu),
    it("ml.c6i.xlarge", 4, 8, Cpu),
    it("ml.c6i.2xlarge", 8, 16, Cpu),
    it("ml.c6i.4xlarge", 16, 32, Cpu),
    it("ml.c6i.8xlarge", 32, 64, Cpu),
    it("ml.c6i.12xlarge", 48, 96, Cpu),
    it("ml.c6i.16xlarge", 64, 128, Cpu),
    it("ml.c6i.24xlarge", 96, 192, Cpu),
    it("ml.c6i.32xlarge", 128, 256, Cpu),
    // Graviton (arm64).
    it("ml.c6g.large", 2, 4, Cpu),
    it("ml.c6g.xlarge", 4, 8, Cpu),
    it("ml.c6g.2xlarge", 8, 16, Cpu),
    it("ml.c6g.4xlarge", 16, 32, Cpu),
    it("ml.m6g.large", 2, 8, Cpu),
    it("ml.m6g.xlarge", 4, 16, Cpu),
    it("ml.m6g.2xlarge", 8, 32, Cpu),
    it("ml.m6g.4xlarge", 16, 64, Cpu),
    it("ml.r6g.large", 2, 16, Cpu),
    it("ml.r6g.xlarge", 4, 32, Cpu),
    it("ml.r6g.2xlarge", 8, 64, Cpu),
    it("ml.c7g.large", 2, 4, Cpu),
    it("ml.c7g.xlarge", 4, 8, Cpu),
    it("ml.c7g.2xlarge", 8, 16, Cpu),
    it("ml.m7g.large", 2, 8, Cpu),
    it("ml.m7g.xlarge", 4, 16, Cpu),
    it("ml.r7g.large", 2, 16, Cpu),
    it("ml.r7g.xlarge", 4, 32, Cpu),
    it("ml.r5.large", 2, 16, Cpu),
    it("ml.r5.xlarge", 4, 32, Cpu),
    it("ml.r5.2xlarge", 8, 64, Cpu),
    it("ml.r5.4xlarge", 16, 128, Cpu),
    it("ml.r5.12xlarge", 48, 384, Cpu),
    it("ml.r5.24xlarge", 96, 768, Cpu),
    it("ml.g4dn.xlarge", 4, 16, Gpu(1)),
    it("ml.g4dn.2xlarge", 8, 32, Gpu(1)),
    it("ml.g4dn.4xlarge", 16, 64, Gpu(1)),
    it("ml.g4dn.8xlarge", 32, 128, Gpu(1)),
    it("ml.g4dn.12xlarge", 48, 192, Gpu(4)),
    it("ml.g4dn.16xlarge", 64, 256, Gpu(1)),
    it("ml.g5.xlarge", 4, 16, Gpu(1)),
    it("ml.g5.2xlarge", 8, 32, Gpu(1)),
    it("ml.g5.4xlarge", 16, 64, Gpu(1)),
    it("ml.g5.8xlarge", 32, 128, Gpu(1)),
    it("ml.g5.12xlarge", 48, 192, Gpu(4)),
    it("ml.g5.16xlarge", 64, 256, Gpu(1)),
    it("ml.g5.24xlarge", 96, 384, Gpu(4)),
    it("ml.g5.48xlarge", 192, 768, Gpu(8)),
    it("ml.p3.2xlarge", 8, 61, Gpu(1)),
    it("ml.p3.8xlarge", 32, 244, Gpu(4)),
    it("ml.p3.16xlarge", 64, 488, Gpu(8)),
    it("ml.inf1.xlarge", 4, 8, Inf(1)),
    it("ml.inf1.2xlarge", 8, 16, Inf(1)),
    it("ml.inf1.6xlarge", 24, 48, Inf(4)),
    it("ml.inf1.24xlarge", 96, 192, Inf(16)),
];

/// Looks an instance type up by name; the error lists the closest known names.
pub fn lookup(name: &str) -> Result<InstanceType, String> {
    if let Some(found) = INSTANCE_TYPES.iter().find(|t| t.name == name) {
        return Ok(*found);
    }
    let mut scored: Vec<(usize, &str)> = INSTANCE_TYPES
        .iter()
        .map(|t| (distance(name, t.name), t.name))
        .collect();
    scored.sort();
    let close: Vec<&str> = scored
        .iter()
        .take_while(|(d, _)| *d <= 4)
        .take(5)
        .map(|(_, n)| *n)
        .collect();
    let hint = if close.is_empty() {
        "known families: t2, t3, m4, m5, m6i, c5, c6i, r5, c6g, m6g, r6g, c7g, m7g, r7g, g4dn, g5, p3, inf1 (e.g. ml.m5.xlarge), or local".to_string()
    } else {
        format!("did you mean {}?", close.join(", "))
    };
    Err(format!("unknown instance type '{name}'; {hint}"))
}

/// Levenshtein distance, for suggestions.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_types_resolve() {
        let t = lookup("ml.m5.xlarge").unwrap();
        assert_eq!((t.vcpus, t.memory_mib), (4, 16 * 1024));
        assert_eq!(
            lookup("ml.g4dn.12xlarge").unwrap().accelerator,
            Accelerator::NvidiaGpu(4)
        );
        assert!(lookup("local").unwrap().is_local());
    }

    #[test]
    fn unknown_types_suggest_close_matches() {
        let err = lookup("ml.m5.xlarg").unwrap_err();
        assert!(err.contains("did you mean ml.m5.xlarge"), "{err}");
        let err = lookup("m5.large").unwrap_err();
        assert!(err.contains("ml.m5.large"), "{err}");
        let err = lookup("banana").unwrap_err();
        assert!(err.contains("known families"), "{err}");
    }

    #[test]
    fn graviton_types_are_arm64() {
        let arch = |name: &str| lookup(name).unwrap().architecture();
        assert_eq!(arch("ml.c6g.large"), Some("arm64"));
        assert_eq!(arch("ml.m7g.xlarge"), Some("arm64"));
        assert_eq!(arch("ml.g4dn.xlarge"), Some("amd64"));
        assert_eq!(arch("ml.g5.xlarge"), Some("amd64"));
        assert_eq!(arch("ml.m6i.large"), Some("amd64"));
        assert_eq!(arch("ml.inf1.xlarge"), Some("amd64"));
        assert_eq!(arch("local"), None);
        assert_eq!(InstanceType::serverless(2048).architecture(), None);
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = INSTANCE_TYPES.iter().map(|t| t.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }
}
