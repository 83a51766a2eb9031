//! In-memory fakes of the ports, for unit tests of the logic above them. They keep the same
//! conditional-write rules as the DynamoDB and Secrets Manager adapters, and let a test run a
//! "concurrent" change right before the next write, to reproduce races deterministically.
//! `storage` and `sts` fake the customer's bucket and AWS STS, `lake` the platform's tables,
//! `runs` the runs table, `claims` its in-flight markers, `queue` the export queue and the
//! ingest queue the poll sends found files to.

pub mod claims;
#[cfg(feature = "lake")]
pub mod lake;
pub mod ledger;
pub mod queue;
pub mod runs;
pub mod storage;
pub mod sts;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::domain::connector::Connector;
use crate::domain::connector::spec::AccessKeyPair;
use crate::error::{SecretError, StoreError};
use crate::ports::{BucketClaims, ClaimsWrite, ConnectorStore, Page, SecretStore};

#[derive(Debug, Default, Clone)]
pub struct StoreState {
    pub connectors: BTreeMap<(String, String), Connector>,
    /// (tenant, bucket) → (version, connector id → prefix)
    pub claims: BTreeMap<(String, String), (u64, BTreeMap<String, String>)>,
}

type Interleave = Box<dyn FnOnce(&mut StoreState) + Send>;

#[derive(Default)]
pub struct MemoryConnectorStore {
    state: Mutex<StoreState>,
    before_write: Mutex<Vec<Interleave>>,
}

impl MemoryConnectorStore {
    pub fn state(&self) -> StoreState {
        self.state.lock().expect("not poisoned").clone()
    }

    /// Changes the stored state now (fixtures).
    pub fn seed(&self, change: impl FnOnce(&mut StoreState)) {
        change(&mut self.state.lock().expect("not poisoned"));
    }

    /// Runs `change` just before the next write, as a concurrent request would.
    pub fn before_next_write(&self, change: impl FnOnce(&mut StoreState) + Send + 'static) {
        self.before_write
            .lock()
            .expect("not poisoned")
            .push(Box::new(change));
    }

    fn write<T>(
        &self,
        apply: impl FnOnce(&mut StoreState) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pending = self.before_write.lock().expect("not poisoned").pop();
        let mut state = self.state.lock().expect("not poisoned");
        if let Some(change) = pending {
            change(&mut state);
        }
        apply(&mut state)
    }
}

fn claims_hold(state: &StoreState, tenant: &str, write: &ClaimsWrite) -> bool {
    let current = state
        .claims
        .get(&(tenant.to_owned(), write.bucket.clone()))
        .map(|(v, _)| *v);
    current == write.expected
}

fn apply_claims(state: &mut StoreState, tenant: &str, write: &ClaimsWrite) {
    state.claims.insert(
        (tenant.to_owned(), write.bucket.clone()),
        (write.expected.map_or(1, |v| v + 1), write.prefixes.clone()),
    );
}

fn key(c: &Connector) -> (String, String) {
    (c.tenant_id.clone(), c.connector_id.clone())
}

impl ConnectorStore for MemoryConnectorStore {
    async fn get(
        &self,
        tenant_id: &str,
        connector_id: &str,
    ) -> Result<Option<Connector>, StoreError> {
        let state = self.state.lock().expect("not poisoned");
        Ok(state
            .connectors
            .get(&(tenant_id.to_owned(), connector_id.to_owned()))
            .cloned())
    }

    async fn list(
        &self,
        tenant_id: &str,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Page<Connector>, StoreError> {
        let state = self.state.lock().expect("not poisoned");
        let mut items: Vec<Connector> = state
            .connectors
            .values()
            .filter(|c| c.tenant_id == tenant_id)
            .filter(|c| after.is_none_or(|a| c.connector_id.as_str() > a))
            .cloned()
            .collect();
        let next = (items.len() > limit as usize).then(|| {
            items.truncate(limit as usize);
            items.last().map(|c| c.connector_id.clone())
        });
        Ok(Page {
            items,
            next: next.flatten(),
        })
    }

    async fn list_by_bucket(&self, bucket: &str) -> Result<Vec<Connector>, StoreError> {
        let state = self.state.lock().expect("not poisoned");
        Ok(state
            .connectors
            .values()
            .filter(|c| c.bucket == bucket)
            .cloned()
            .collect())
    }

    async fn due(
        &self,
        shard: &str,
        until_epoch: i64,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let state = self.state.lock().expect("not poisoned");
        let mut due: Vec<_> = state
            .connectors
            .values()
            .filter(|c| {
                c.due_shard.as_deref() == Some(shard)
                    && c.due_at.is_some_and(|at| at <= until_epoch)
            })
            .map(|c| (c.due_at, key(c)))
            .collect();
        due.sort();
        Ok(due
            .into_iter()
            .take(limit as usize)
            .map(|(_, k)| k)
            .collect())
    }

    async fn bucket_claims(
        &self,
        tenant_id: &str,
        bucket: &str,
    ) -> Result<BucketClaims, StoreError> {
        let state = self.state.lock().expect("not poisoned");
        Ok(
            match state.claims.get(&(tenant_id.to_owned(), bucket.to_owned())) {
                Some((version, prefixes)) => BucketClaims {
                    version: Some(*version),
                    prefixes: prefixes.clone(),
                },
                None => BucketClaims::default(),
            },
        )
    }

    async fn create(&self, connector: &Connector, claims: &ClaimsWrite) -> Result<(), StoreError> {
        self.write(|state| {
            if state.connectors.contains_key(&key(connector)) {
                return Err(StoreError::AlreadyExists);
            }
            if !claims_hold(state, &connector.tenant_id, claims) {
                return Err(StoreError::Contended);
            }
            apply_claims(state, &connector.tenant_id, claims);
            state.connectors.insert(key(connector), connector.clone());
            Ok(())
        })
    }

    async fn replace(
        &self,
        connector: &Connector,
        expected_version: u64,
        claims: &[ClaimsWrite],
    ) -> Result<(), StoreError> {
        self.write(|state| {
            let version_holds = state
                .connectors
                .get(&key(connector))
                .is_some_and(|c| c.version == expected_version);
            if claims.is_empty() {
                if !version_holds {
                    return Err(StoreError::VersionConflict {
                        expected: expected_version,
                    });
                }
            } else if !version_holds
                || !claims
                    .iter()
                    .all(|w| claims_hold(state, &connector.tenant_id, w))
            {
                return Err(StoreError::Contended);
            }
            for w in claims {
                apply_claims(state, &connector.tenant_id, w);
            }
            state.connectors.insert(key(connector), connector.clone());
            Ok(())
        })
    }

    async fn delete(
        &self,
        tenant_id: &str,
        connector_id: &str,
        expected_version: u64,
        claims: Option<&ClaimsWrite>,
    ) -> Result<(), StoreError> {
        self.write(|state| {
            let k = (tenant_id.to_owned(), connector_id.to_owned());
            let version_holds = state
                .connectors
                .get(&k)
                .is_some_and(|c| c.version == expected_version);
            match claims {
                None if !version_holds => Err(StoreError::VersionConflict {
                    expected: expected_version,
                }),
                Some(w) if !version_holds || !claims_hold(state, tenant_id, w) => {
                    Err(StoreError::Contended)
                }
                _ => {
                    if let Some(w) = claims {
                        apply_claims(state, tenant_id, w);
                    }
                    state.connectors.remove(&k);
                    Ok(())
                }
            }
        })
    }
}

#[derive(Default)]
pub struct MemorySecretStore {
    secrets: Mutex<HashMap<String, AccessKeyPair>>,
}

impl MemorySecretStore {
    pub fn arns(&self) -> Vec<String> {
        let mut arns: Vec<String> = self
            .secrets
            .lock()
            .expect("not poisoned")
            .keys()
            .cloned()
            .collect();
        arns.sort();
        arns
    }
}

impl SecretStore for MemorySecretStore {
    async fn create(
        &self,
        name: &str,
        keys: &AccessKeyPair,
        _tenant_id: &str,
    ) -> Result<String, SecretError> {
        let arn = format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}");
        self.secrets
            .lock()
            .expect("not poisoned")
            .insert(arn.clone(), keys.clone());
        Ok(arn)
    }

    async fn update(&self, arn: &str, keys: &AccessKeyPair) -> Result<(), SecretError> {
        match self.secrets.lock().expect("not poisoned").get_mut(arn) {
            Some(stored) => {
                *stored = keys.clone();
                Ok(())
            }
            None => Err(SecretError::NotFound),
        }
    }

    async fn get(&self, arn: &str) -> Result<AccessKeyPair, SecretError> {
        self.secrets
            .lock()
            .expect("not poisoned")
            .get(arn)
            .cloned()
            .ok_or(SecretError::NotFound)
    }

    async fn delete(&self, arn: &str) -> Result<(), SecretError> {
        self.secrets.lock().expect("not poisoned").remove(arn);
        Ok(())
    }
}
