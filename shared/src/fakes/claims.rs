//! The runs table's in-flight markers in memory (see `ports::RunClaims`), kept in the
//! [`MemoryRunStore`]'s state so a claim writes its run in the same step, as the DynamoDB
//! adapter's transaction does.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};

use super::runs::{MemoryRunStore, RunOp};
use crate::domain::export::run::{IN_FLIGHT_LEASE_HOURS, Run, RunStatus};
use crate::error::StoreError;
use crate::ports::{ClaimOutcome, RunClaims};

/// A marker: the run holding it and when it lapses (epoch seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub run_id: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct ClaimsState {
    /// (connector id, slot epoch seconds) → run id
    pub slots: BTreeMap<(String, i64), String>,
    /// connector id → its unfinished run
    pub in_flight: BTreeMap<String, Held>,
    /// tenant → seat number → the run in it
    pub seats: BTreeMap<String, BTreeMap<u32, Held>>,
    /// Run ids released, in order.
    pub released: Vec<String>,
}

impl RunClaims for MemoryRunStore {
    async fn claim(&self, run: &Run, tenant_cap: u32) -> Result<ClaimOutcome, StoreError> {
        let now = Utc::now().timestamp();
        let held = Held {
            run_id: run.run_id.clone(),
            expires_at: now + Duration::hours(IN_FLIGHT_LEASE_HOURS).num_seconds(),
        };
        self.write(RunOp::Claim, |state| {
            let key = (run.connector_id.clone(), run.run_id.clone());
            if state
                .runs
                .get(&key)
                .is_some_and(|stored| stored.status != RunStatus::Failed)
            {
                return Ok(ClaimOutcome::RunChanged);
            }
            let claims = &mut state.claims;
            if let Some(slot) = run.slot
                && let Some(taken) = claims
                    .slots
                    .get(&(run.connector_id.clone(), slot.timestamp()))
            {
                return Ok(ClaimOutcome::SlotTaken {
                    run_id: taken.clone(),
                });
            }
            if let Some(open) = claims
                .in_flight
                .get(&run.connector_id)
                .filter(|h| h.expires_at >= now)
            {
                return Ok(ClaimOutcome::InFlight {
                    run_id: open.run_id.clone(),
                });
            }
            let seats = claims.seats.entry(run.tenant_id.clone()).or_default();
            let Some(seat) =
                (0..tenant_cap).find(|n| seats.get(n).is_none_or(|h| h.expires_at < now))
            else {
                return Ok(ClaimOutcome::TenantAtCap { cap: tenant_cap });
            };
            seats.insert(seat, held.clone());
            claims
                .in_flight
                .insert(run.connector_id.clone(), held.clone());
            if let Some(slot) = run.slot {
                claims.slots.insert(
                    (run.connector_id.clone(), slot.timestamp()),
                    run.run_id.clone(),
                );
            }
            state.runs.insert(key, run.clone());
            Ok(ClaimOutcome::Claimed)
        })
    }

    async fn release(&self, run: &Run) -> Result<(), StoreError> {
        self.write(RunOp::Release, |state| {
            let claims = &mut state.claims;
            if claims
                .in_flight
                .get(&run.connector_id)
                .is_some_and(|h| h.run_id == run.run_id)
            {
                claims.in_flight.remove(&run.connector_id);
            }
            if let Some(seats) = claims.seats.get_mut(&run.tenant_id) {
                seats.retain(|_, h| h.run_id != run.run_id);
            }
            claims.released.push(run.run_id.clone());
            Ok(())
        })
    }
}
