//! The networks sagedock's containers join: one per owner (and one more, internal, for
//! network-isolated containers), on which sagedock hands out every address itself.
//!
//! Why: the router reaches a container at its address. When Docker chooses addresses, the
//! address of a container that died is soon given to another container — another run's,
//! another endpoint's — and a request still routed to the dead instance is answered by a
//! stranger. Here an address is a [`Lease`], held by the container's instance and by the
//! router's backend; it is not handed out again while either lives, nor are the addresses
//! other containers held when the network was opened. Only the owner creates containers on
//! its network, so an address always reaches the container it was leased to, or nothing.
//!
//! The subnet is the one Docker would have chosen (it knows the host's routes and its other
//! networks): a probe network asks for it, then the owner's network is made with that subnet
//! named, which is what lets containers be given addresses.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use sha2::{Digest, Sha256};

use super::engine::is_not_found;
use super::{labels, Engine, RuntimeError};

use crate::sync::locked;

/// One owner's network.
#[derive(Debug)]
pub struct Network {
    pub name: String,
    /// No route outside this machine (EnableNetworkIsolation).
    pub internal: bool,
    /// The first and last address containers may have.
    first: u32,
    last: u32,
    pool: Mutex<Pool>,
}

#[derive(Debug)]
struct Pool {
    /// Where the next search starts: addresses are handed out in turn, so a released one
    /// is the last to come round again.
    next: u32,
    leased: HashSet<u32>,
    /// Held by containers that were on the network when it was opened.
    taken: HashSet<u32>,
}

/// An address on a network, reserved while the lease lives.
#[derive(Debug)]
pub struct Lease {
    network: Arc<Network>,
    pub address: Ipv4Addr,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut pool = locked(&self.network.pool);
        pool.leased.remove(&u32::from(self.address));
    }
}

impl Lease {
    pub fn network(&self) -> &str {
        &self.network.name
    }

    pub fn internal(&self) -> bool {
        self.network.internal
    }
}

/// The network name for `owner`: `sagedock-<hash>` (owner labels hold characters a
/// network name may not).
pub fn name_for(owner: &str, internal: bool) -> String {
    let digest = Sha256::digest(owner.as_bytes());
    let short = crate::artifact::hex(&digest[..6]);
    if internal {
        format!("sagedock-{short}-isolated")
    } else {
        format!("sagedock-{short}")
    }
}

/// `a.b.c.d/n` as (network address, prefix length).
fn parse_subnet(subnet: &str) -> Option<(u32, u32)> {
    let (addr, prefix) = subnet.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let prefix: u32 = prefix.parse().ok().filter(|p| (8..=30).contains(p))?;
    let mask = u32::MAX << (32 - prefix);
    Some((u32::from(addr) & mask, prefix))
}

impl Network {
    /// Opens `owner`'s network, creating it when there is none.
    pub async fn open(
        engine: &Engine,
        owner: &str,
        internal: bool,
    ) -> Result<Arc<Network>, RuntimeError> {
        let name = name_for(owner, internal);
        let mut last_error = None;
        for _ in 0..5 {
            match Self::inspect(engine, &name, internal).await? {
                Some(network) => return Ok(network),
                None => match Self::create(engine, &name, owner, internal).await {
                    Ok(()) => continue,
                    // Its subnet was taken meanwhile, or another process made it: look again.
                    Err(e) => last_error = Some(e),
                },
            }
        }
        Err(last_error.unwrap_or_else(|| RuntimeError::Network {
            name,
            detail: "it could not be created".into(),
        }))
    }

    async fn inspect(
        engine: &Engine,
        name: &str,
        internal: bool,
    ) -> Result<Option<Arc<Network>>, RuntimeError> {
        let info = match engine.docker.inspect_network(name, None).await {
            Ok(info) => info,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(RuntimeError::docker("inspect network", name, e)),
        };
        let config = info.ipam.and_then(|ipam| ipam.config).and_then(|c| {
            c.into_iter()
                .find(|c| c.subnet.as_deref().is_some_and(|s| !s.contains(':')))
        });
        let Some((base, prefix)) = config
            .as_ref()
            .and_then(|c| c.subnet.as_deref())
            .and_then(parse_subnet)
        else {
            return Err(RuntimeError::Network {
                name: name.to_string(),
                detail: "it has no IPv4 subnet of its own; remove it (`docker network rm`) and sagedock makes it again".into(),
            });
        };
        let gateway = config
            .and_then(|c| c.gateway)
            .and_then(|g| g.parse::<Ipv4Addr>().ok())
            .map(u32::from);
        // sagedock reaches an isolated container through the address this machine has on
        // its network (the gateway's). Without it, whatever answers the container's
        // address is somewhere else, down the default route.
        let host_has_gateway =
            gateway.is_some_and(|g| std::net::UdpSocket::bind((Ipv4Addr::from(g), 0)).is_ok());
        if internal && engine.local && !host_has_gateway {
            return Err(RuntimeError::Network {
                name: name.to_string(),
                detail: "this machine has no address on this internal network, so it cannot reach the containers on it (Podman makes internal networks so); network isolation needs an engine whose internal networks keep the host's address, such as Docker's".into(),
            });
        }
        let broadcast = base | (u32::MAX >> prefix);
        let mut taken: HashSet<u32> = info
            .containers
            .unwrap_or_default()
            .values()
            .filter_map(|c| {
                c.ipv4_address
                    .as_deref()?
                    .split('/')
                    .next()?
                    .parse::<Ipv4Addr>()
                    .ok()
            })
            .map(u32::from)
            .collect();
        taken.extend(gateway);
        // .1 is the gateway Docker picks when it picks one.
        taken.insert(base + 1);
        Ok(Some(Arc::new(Network {
            name: name.to_string(),
            internal,
            first: base + 2,
            last: broadcast - 1,
            pool: Mutex::new(Pool {
                next: base + 2,
                leased: HashSet::new(),
                taken,
            }),
        })))
    }

    /// Creates the network on the subnet Docker chooses for a probe network.
    async fn create(
        engine: &Engine,
        name: &str,
        owner: &str,
        internal: bool,
    ) -> Result<(), RuntimeError> {
        let network_labels: HashMap<String, String> = [
            (labels::MANAGED.to_string(), "true".to_string()),
            (labels::OWNER.to_string(), owner.to_string()),
        ]
        .into();
        let probe = format!("{name}-probe-{}", std::process::id());
        let request = NetworkCreateRequest {
            name: probe.clone(),
            driver: Some("bridge".into()),
            labels: Some(network_labels.clone()),
            ..Default::default()
        };
        engine
            .docker
            .create_network(request)
            .await
            .map_err(|e| RuntimeError::docker("create network", &probe, e))?;
        let chosen = engine.docker.inspect_network(&probe, None).await;
        let _ = engine.docker.remove_network(&probe).await;
        let config = chosen
            .map_err(|e| RuntimeError::docker("inspect network", &probe, e))?
            .ipam
            .and_then(|i| i.config)
            .and_then(|c| c.into_iter().next())
            .ok_or_else(|| RuntimeError::Network {
                name: name.to_string(),
                detail: "the engine gave a probe network no subnet".into(),
            })?;
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            internal: Some(internal),
            labels: Some(network_labels),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: config.subnet,
                    gateway: config.gateway,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        match engine.docker.create_network(request).await {
            Ok(_) => Ok(()),
            Err(e) => Err(RuntimeError::docker("create network", name, e)),
        }
    }

    /// The next free address.
    pub fn lease(self: &Arc<Self>) -> Result<Lease, RuntimeError> {
        let mut pool = locked(&self.pool);
        let size = self.last - self.first + 1;
        for _ in 0..size {
            let candidate = pool.next;
            pool.next = if candidate >= self.last {
                self.first
            } else {
                candidate + 1
            };
            if !pool.leased.contains(&candidate) && !pool.taken.contains(&candidate) {
                pool.leased.insert(candidate);
                return Ok(Lease {
                    network: self.clone(),
                    address: Ipv4Addr::from(candidate),
                });
            }
        }
        Err(RuntimeError::Network {
            name: self.name.clone(),
            detail: format!("all {size} addresses are in use"),
        })
    }

    /// The lease of an address a running container already has (re-adopted after a
    /// restart).
    pub fn claim(self: &Arc<Self>, address: Ipv4Addr) -> Lease {
        let mut pool = locked(&self.pool);
        let n = u32::from(address);
        pool.taken.remove(&n);
        pool.leased.insert(n);
        Lease {
            network: self.clone(),
            address,
        }
    }
}

/// One owner's two networks (plain, and internal for network isolation), opened on first
/// use: every container the owner starts (an endpoint's, a job's) takes its address here.
#[derive(Debug)]
pub struct OwnerNetworks {
    engine: Engine,
    owner: String,
    networks: [tokio::sync::OnceCell<Arc<Network>>; 2],
}

impl OwnerNetworks {
    pub fn new(engine: Engine, owner: String) -> OwnerNetworks {
        OwnerNetworks {
            engine,
            owner,
            networks: Default::default(),
        }
    }

    async fn network(&self, isolated: bool) -> Result<&Arc<Network>, RuntimeError> {
        self.networks[usize::from(isolated)]
            .get_or_try_init(|| Network::open(&self.engine, &self.owner, isolated))
            .await
    }

    /// An address on the owner's network (its internal one when `isolated`).
    pub async fn lease(&self, isolated: bool) -> Result<Arc<Lease>, RuntimeError> {
        self.network(isolated).await?.lease().map(Arc::new)
    }

    /// The lease of an address a running container of the owner already has.
    pub async fn claim(
        &self,
        isolated: bool,
        address: Ipv4Addr,
    ) -> Result<Arc<Lease>, RuntimeError> {
        Ok(Arc::new(self.network(isolated).await?.claim(address)))
    }
}

/// Removes `owner`'s networks when no container is on them any more.
pub async fn remove_if_empty(engine: &Engine, owner: &str) {
    for internal in [false, true] {
        remove_named_if_empty(engine, &name_for(owner, internal)).await;
    }
}

/// Removes the network `name` if no container is on it. A listing of networks does not
/// say who is attached: this asks.
pub(super) async fn remove_named_if_empty(engine: &Engine, name: &str) {
    let empty = engine
        .docker
        .inspect_network(name, None)
        .await
        .is_ok_and(|n| n.containers.unwrap_or_default().is_empty());
    if empty {
        let _ = engine.docker.remove_network(name).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(subnet: &str) -> Arc<Network> {
        let (base, prefix) = parse_subnet(subnet).unwrap();
        Arc::new(Network {
            name: "n".into(),
            internal: false,
            first: base + 2,
            last: (base | (u32::MAX >> prefix)) - 1,
            pool: Mutex::new(Pool {
                next: base + 2,
                leased: HashSet::new(),
                taken: [base + 1, base + 3].into(),
            }),
        })
    }

    #[test]
    fn addresses_are_not_handed_out_while_leased_or_taken() {
        let n = network("10.9.0.0/29"); // usable: .2 to .6
        let a = n.lease().unwrap();
        assert_eq!(a.address, Ipv4Addr::new(10, 9, 0, 2));
        let b = n.lease().unwrap();
        assert_eq!(
            b.address,
            Ipv4Addr::new(10, 9, 0, 4),
            ".3 was taken at open"
        );
        drop(a);
        let c = n.lease().unwrap();
        assert_eq!(
            c.address,
            Ipv4Addr::new(10, 9, 0, 5),
            "a released address comes last"
        );
        let d = n.lease().unwrap();
        assert_eq!(d.address, Ipv4Addr::new(10, 9, 0, 6));
        let e = n.lease().unwrap();
        assert_eq!(
            e.address,
            Ipv4Addr::new(10, 9, 0, 2),
            "round again, past the leased"
        );
        assert!(n.lease().is_err(), "full");
        let claimed = n.claim(Ipv4Addr::new(10, 9, 0, 3));
        drop(claimed);
        drop(b);
        assert_eq!(n.lease().unwrap().address, Ipv4Addr::new(10, 9, 0, 3));
    }

    #[test]
    fn names_and_subnets() {
        assert_eq!(parse_subnet("172.18.0.0/16"), Some((0xac12_0000, 16)));
        assert_eq!(parse_subnet("172.18.5.9/16"), Some((0xac12_0000, 16)));
        assert!(parse_subnet("fd00::/64").is_none());
        let a = name_for("pid:host:1:2", false);
        assert!(
            a.starts_with("sagedock-") && a.len() == "sagedock-".len() + 12,
            "{a}"
        );
        assert!(name_for("pid:host:1:2", true).ends_with("-isolated"));
        assert_ne!(a, name_for("pid:host:1:3", false));
    }
}
