//! In-flight markers in the runs table (docs/architecture.md, "Schedules"): one
//! TransactWriteItems writes the run with its connector's `inflight` marker, a seat of its
//! tenant and, for a scheduled run, its `slot#<epoch>` item, so a claim is all or nothing.
//! Seats live in a partition of their own, `tenant#<tenant id>`, sort keys `seat#<n>`
//! (connector ids start `con_`, so no connector shares it). Markers and seats carry their
//! lease in `expires_at`: the table's TTL removes lapsed ones, and the conditions treat a
//! lapsed one as free before TTL gets to it.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{Duration, Utc};

use super::{DynamoRunStore, Item, key, run_item};
use crate::domain::export::run::{IN_FLIGHT_LEASE_HOURS, RUN_RETENTION_DAYS, Run};
use crate::error::{AwsCallError, StoreError};
use crate::ports::{ClaimOutcome, RunClaims};

const IN_FLIGHT_SORT_KEY: &str = "inflight";
/// A claim that lost a seat to a concurrent claim picks another this often.
const SEAT_ATTEMPTS: usize = 3;

fn tenant_partition(tenant_id: &str) -> String {
    format!("tenant#{tenant_id}")
}

fn seat_sort_key(n: u32) -> String {
    format!("seat#{n}")
}

fn slot_sort_key(slot_epoch: i64) -> String {
    format!("slot#{slot_epoch}")
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn text(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

fn number(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

fn built(
    put: aws_sdk_dynamodb::types::builders::PutBuilder,
) -> Result<TransactWriteItem, StoreError> {
    let put: Put = put
        .build()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// Which item of the claim's transaction refused it.
#[derive(Debug, PartialEq, Eq)]
enum Refused {
    Run,
    Slot,
    InFlight,
    Seat,
}

impl DynamoRunStore {
    /// Seats of the tenant held by an unlapsed run at `now`.
    async fn held_seats(&self, tenant_id: &str, now: i64) -> Result<Vec<u32>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("connector_id = :t AND begins_with(run_id, :seat)")
            .expression_attribute_values(":t", s(&tenant_partition(tenant_id)))
            .expression_attribute_values(":seat", s("seat#"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("dynamodb", "Query", &e))?;
        Ok(out
            .items()
            .iter()
            .filter(|item| number(item, "expires_at").is_some_and(|at| at >= now))
            .filter_map(|item| text(item, "run_id")?.strip_prefix("seat#")?.parse().ok())
            .collect())
    }

    async fn holder(&self, partition: &str, sort_key: &str) -> Result<String, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(partition, sort_key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("dynamodb", "GetItem", &e))?;
        Ok(out
            .item
            .as_ref()
            .and_then(|item| text(item, "holder"))
            .unwrap_or_default())
    }

    fn claim_items(
        &self,
        run: &Run,
        seat: u32,
        now: i64,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let lease = now + Duration::hours(IN_FLIGHT_LEASE_HOURS).num_seconds();
        let marker = |partition: &str, sort_key: &str| {
            let mut item = key(partition, sort_key);
            item.insert("holder".into(), s(&run.run_id));
            item.insert("holder_connector".into(), s(&run.connector_id));
            item.insert("expires_at".into(), n(lease));
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(run_id) OR expires_at < :now")
                .expression_attribute_values(":now", n(now))
        };
        let mut items = vec![
            built(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(run_item(run)?))
                    // A failed run may be queued again (a retry); any other is left alone.
                    .condition_expression("attribute_not_exists(run_id) OR #status = :failed")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":failed", s("failed")),
            )?,
            built(marker(&run.connector_id, IN_FLIGHT_SORT_KEY))?,
            built(marker(
                &tenant_partition(&run.tenant_id),
                &seat_sort_key(seat),
            ))?,
        ];
        if let Some(slot) = run.slot {
            let mut item = key(&run.connector_id, &slot_sort_key(slot.timestamp()));
            item.insert("holder".into(), s(&run.run_id));
            item.insert(
                "expires_at".into(),
                n((slot + Duration::days(RUN_RETENTION_DAYS)).timestamp()),
            );
            items.push(built(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(run_id)"),
            )?);
        }
        Ok(items)
    }

    /// `Ok(None)`: written. `Err(Ok(refused))`: a condition failed on that item.
    async fn try_claim(
        &self,
        run: &Run,
        seat: u32,
        now: i64,
    ) -> Result<Option<Refused>, StoreError> {
        let items = self.claim_items(run, seat, now)?;
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let e = match result {
            Ok(_) => return Ok(None),
            Err(e) => e,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(t)) = e.as_service_error()
        {
            let order = [
                Refused::Run,
                Refused::InFlight,
                Refused::Seat,
                Refused::Slot,
            ];
            let reasons = t.cancellation_reasons();
            // A scheduled run's slot is the likeliest refusal (a duplicate tick): report it
            // first when several conditions failed.
            let failed = |r: &Refused| {
                let i = order.iter().position(|o| o == r).expect("listed");
                reasons
                    .get(i)
                    .is_some_and(|reason| reason.code() == Some("ConditionalCheckFailed"))
            };
            for refused in [
                Refused::Slot,
                Refused::Run,
                Refused::InFlight,
                Refused::Seat,
            ] {
                if failed(&refused) {
                    return Ok(Some(refused));
                }
            }
            if reasons
                .iter()
                .any(|r| r.code() == Some("TransactionConflict"))
            {
                return Err(StoreError::Contended);
            }
        }
        Err(AwsCallError::from_sdk("dynamodb", "TransactWriteItems", &e).into())
    }
}

impl RunClaims for DynamoRunStore {
    async fn claim(&self, run: &Run, tenant_cap: u32) -> Result<ClaimOutcome, StoreError> {
        let now = Utc::now().timestamp();
        for _ in 0..SEAT_ATTEMPTS {
            let held = self.held_seats(&run.tenant_id, now).await?;
            let Some(seat) = (0..tenant_cap).find(|n| !held.contains(n)) else {
                return Ok(ClaimOutcome::TenantAtCap { cap: tenant_cap });
            };
            match self.try_claim(run, seat, now).await? {
                None => return Ok(ClaimOutcome::Claimed),
                Some(Refused::Run) => return Ok(ClaimOutcome::RunChanged),
                Some(Refused::Slot) => {
                    let slot = run.slot.expect("only scheduled runs write a slot");
                    let run_id = self
                        .holder(&run.connector_id, &slot_sort_key(slot.timestamp()))
                        .await?;
                    return Ok(ClaimOutcome::SlotTaken { run_id });
                }
                Some(Refused::InFlight) => {
                    let run_id = self.holder(&run.connector_id, IN_FLIGHT_SORT_KEY).await?;
                    return Ok(ClaimOutcome::InFlight { run_id });
                }
                // Another claim of the tenant took this seat first: look again.
                Some(Refused::Seat) => continue,
            }
        }
        Err(StoreError::Contended)
    }

    async fn release(&self, run: &Run) -> Result<(), StoreError> {
        let held_by_run = |partition: String, sort_key: String| async move {
            let result = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(&partition, &sort_key)))
                .condition_expression("holder = :run")
                .expression_attribute_values(":run", s(&run.run_id))
                .send()
                .await;
            match result {
                Ok(_) => Ok(()),
                // Held by another run, or already released.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    Ok(())
                }
                Err(e) => Err(StoreError::from(AwsCallError::from_sdk(
                    "dynamodb",
                    "DeleteItem",
                    &e,
                ))),
            }
        };
        held_by_run(run.connector_id.clone(), IN_FLIGHT_SORT_KEY.into()).await?;
        // The seat number is not recorded on the run: release whichever this run holds.
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("connector_id = :t AND begins_with(run_id, :seat)")
            .filter_expression("holder = :run")
            .expression_attribute_values(":t", s(&tenant_partition(&run.tenant_id)))
            .expression_attribute_values(":seat", s("seat#"))
            .expression_attribute_values(":run", s(&run.run_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("dynamodb", "Query", &e))?;
        for item in out.items() {
            if let Some(sort_key) = text(item, "run_id") {
                held_by_run(tenant_partition(&run.tenant_id), sort_key).await?;
            }
        }
        Ok(())
    }
}
