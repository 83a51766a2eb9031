//! The connector lifecycle over the in-memory fakes: races replayed deterministically (a change
//! injected right before the service's write), and the platform's own resources.

use serde_json::{Value, json};

use super::*;
use crate::fakes::{MemoryConnectorStore, MemorySecretStore, StoreState};

const TENANT: &str = "acme";

fn service() -> ConnectorService<MemoryConnectorStore, MemorySecretStore> {
    ConnectorService::new(
        MemoryConnectorStore::default(),
        MemorySecretStore::default(),
        "test/connectors/".into(),
        PlatformIdentity {
            principal_arn: "arn:aws:iam::999999999999:role/connector-access".into(),
            web_identity_provider: "oidc.example.com".into(),
            web_identity_audience: "sts.amazonaws.com".into(),
            ingest_queue_arn: "arn:aws:sqs:us-east-1:999999999999:ingest".into(),
        },
        OwnResources::new(["platform-lake".to_owned()], Some("999999999999".into())),
    )
}

fn body(mode: &str, bucket: &str, prefix: &str) -> Value {
    let auth = match mode {
        "role" | "web_identity" => {
            json!({"mode": mode, "role_arn": "arn:aws:iam::111111111111:role/r"})
        }
        "access_key" => json!({
            "mode": "access_key", "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        }),
        _ => json!({"mode": "bucket_policy"}),
    };
    json!({
        "name": "c", "direction": "ingest", "bucket": bucket, "region": "us-east-1",
        "prefix": prefix, "auth": auth, "ingest": {"table": "orders"},
    })
}

/// A connector another request stored meanwhile, with its claim.
fn concurrent_create(
    id: &'static str,
    bucket: &'static str,
    prefix: &'static str,
) -> impl FnOnce(&mut StoreState) + Send {
    move |state| {
        let mut other = crate::domain::testing::stored_connector(body("role", bucket, prefix));
        other.connector_id = id.into();
        let claims = state
            .claims
            .entry((TENANT.into(), bucket.into()))
            .or_insert((0, Default::default()));
        claims.0 += 1;
        claims.1.insert(id.into(), other.prefix.clone());
        state.connectors.insert((TENANT.into(), id.into()), other);
    }
}

#[tokio::test]
async fn a_delete_that_loses_to_a_patch_changes_nothing() {
    let service = service();
    let created = service
        .create(TENANT, body("access_key", "bkt-b", "in/"))
        .await
        .unwrap();
    let id = created.connector_id.clone();
    let arn = created.auth.secret_arn().unwrap().to_owned();
    // The PATCH lands between the DELETE's read and its conditional delete.
    let patched_id = id.clone();
    service.store().before_next_write(move |state| {
        let c = state
            .connectors
            .get_mut(&(TENANT.into(), patched_id))
            .unwrap();
        c.name = "patched".into();
        c.version += 1;
    });
    let lost = service.delete(TENANT, &id, Some(1)).await;
    assert!(
        matches!(lost, Err(ServiceError::VersionMismatch { current: 2 })),
        "{lost:?}"
    );
    let kept = service.get(TENANT, &id).await.unwrap();
    assert_eq!(kept.name, "patched");
    assert_eq!(
        service.secrets().arns(),
        vec![arn.clone()],
        "the secret stays with it"
    );
    assert!(service.secrets().get(&arn).await.is_ok());

    // Deleting at the current version removes item, claim and secret.
    service.delete(TENANT, &id, Some(2)).await.unwrap();
    assert!(service.store().state().connectors.is_empty());
    assert!(service.secrets().arns().is_empty());
    let claims = service
        .store()
        .bucket_claims(TENANT, "bkt-b")
        .await
        .unwrap();
    assert!(claims.prefixes.is_empty(), "{claims:?}");
}

#[tokio::test]
async fn a_create_that_loses_the_race_for_a_prefix_is_a_409_and_keeps_no_secret() {
    // (prefix the concurrent request took, our prefix, we win)
    let cases = [
        ("data/", "data/", false),
        ("data/", "data/a/", false),
        ("data/a/", "data/", false),
        ("", "data/", false),
        ("data-old/", "data/", true),
        ("other/", "data/", true),
    ];
    for (theirs, ours, we_win) in cases {
        let service = service();
        service
            .store()
            .before_next_write(concurrent_create("con_other", "bkt-b", theirs));
        let result = service
            .create(TENANT, body("access_key", "bkt-b", ours))
            .await;
        let state = service.store().state();
        let claims = &state.claims[&(TENANT.to_owned(), "bkt-b".to_owned())].1;
        if we_win {
            let c = result.unwrap_or_else(|e| panic!("{theirs} vs {ours}: {e:?}"));
            assert_eq!(claims.len(), 2, "{claims:?}");
            assert_eq!(claims[&c.connector_id], ours);
            assert_eq!(service.secrets().arns().len(), 1);
        } else {
            match result {
                Err(ServiceError::Overlap {
                    other_connector_id, ..
                }) => {
                    assert_eq!(other_connector_id, "con_other", "{theirs} vs {ours}")
                }
                other => panic!("{theirs} vs {ours}: {other:?}"),
            }
            assert_eq!(state.connectors.len(), 1, "only theirs");
            assert_eq!(claims.keys().collect::<Vec<_>>(), vec!["con_other"]);
            assert!(
                service.secrets().arns().is_empty(),
                "our new secret is discarded"
            );
        }
    }
}

#[tokio::test]
async fn a_move_that_loses_the_race_for_a_prefix_is_a_409_and_nothing_moves() {
    let service = service();
    let mine = service
        .create(TENANT, body("role", "bkt-b", "left/"))
        .await
        .unwrap();
    service
        .store()
        .before_next_write(concurrent_create("con_other", "bkt-b", "moved/"));
    let result = service
        .update(TENANT, &mine.connector_id, 1, json!({"prefix": "moved/"}))
        .await;
    assert!(
        matches!(result, Err(ServiceError::Overlap { .. })),
        "{result:?}"
    );
    let stored = service.get(TENANT, &mine.connector_id).await.unwrap();
    assert_eq!((stored.prefix.as_str(), stored.version), ("left/", 1));
    let claims = service
        .store()
        .bucket_claims(TENANT, "bkt-b")
        .await
        .unwrap();
    assert_eq!(claims.prefixes[&mine.connector_id], "left/");

    // Moving to another bucket releases the old claim and takes the new one together.
    let moved = service
        .update(
            TENANT,
            &mine.connector_id,
            1,
            json!({"bucket": "bkt-c", "prefix": "x/"}),
        )
        .await
        .unwrap();
    assert_eq!(moved.version, 2);
    let old = service
        .store()
        .bucket_claims(TENANT, "bkt-b")
        .await
        .unwrap();
    assert!(!old.prefixes.contains_key(&mine.connector_id), "{old:?}");
    let new = service
        .store()
        .bucket_claims(TENANT, "bkt-c")
        .await
        .unwrap();
    assert_eq!(new.prefixes[&mine.connector_id], "x/");
}

#[tokio::test]
async fn claims_of_connectors_that_are_gone_do_not_block_and_are_pruned() {
    let service = service();
    service.store().seed(|state| {
        state.claims.insert(
            (TENANT.into(), "bkt-b".into()),
            (3, [("con_ghost".to_owned(), "data/".to_owned())].into()),
        );
    });
    let created = service
        .create(TENANT, body("role", "bkt-b", "data/"))
        .await
        .unwrap();
    let claims = service
        .store()
        .bucket_claims(TENANT, "bkt-b")
        .await
        .unwrap();
    assert_eq!(claims.version, Some(4));
    assert_eq!(
        claims.prefixes.into_iter().collect::<Vec<_>>(),
        vec![(created.connector_id, "data/".to_owned())]
    );
}

#[tokio::test]
async fn buckets_created_before_claims_are_seeded_from_the_index() {
    let service = service();
    service
        .store()
        .seed(concurrent_create("con_legacy", "bkt-b", "data/"));
    service.store().seed(|state| {
        state.claims.clear();
    });
    let result = service
        .create(TENANT, body("role", "bkt-b", "data/x/"))
        .await;
    assert!(
        matches!(&result, Err(ServiceError::Overlap { other_connector_id, .. }) if other_connector_id == "con_legacy"),
        "{result:?}"
    );
    let fine = service
        .create(TENANT, body("role", "bkt-b", "other/"))
        .await
        .unwrap();
    let claims = service
        .store()
        .bucket_claims(TENANT, "bkt-b")
        .await
        .unwrap();
    assert_eq!(
        claims.version,
        Some(1),
        "the first write creates the claims item"
    );
    assert_eq!(
        claims.prefixes.len(),
        2,
        "legacy connector included: {claims:?}"
    );
    assert_eq!(claims.prefixes[&fine.connector_id], "other/");
}

#[tokio::test]
async fn the_platforms_buckets_and_roles_are_refused_in_every_mode() {
    for mode in ["role", "web_identity", "access_key", "bucket_policy"] {
        let service = service();
        let refused = service
            .create(TENANT, body(mode, "platform-lake", "x/"))
            .await;
        match refused {
            Err(ServiceError::Invalid(fields)) => {
                assert_eq!(fields[0].field, "bucket", "{mode}");
            }
            other => panic!("{mode}: {other:?}"),
        }
        assert!(
            service.secrets().arns().is_empty(),
            "{mode}: no secret written"
        );
        let created = service
            .create(TENANT, body(mode, "bkt-b", "x/"))
            .await
            .unwrap();
        let moved = service
            .update(
                TENANT,
                &created.connector_id,
                1,
                json!({"bucket": "platform-lake"}),
            )
            .await;
        assert!(
            matches!(moved, Err(ServiceError::Invalid(_))),
            "{mode}: {moved:?}"
        );
        assert_eq!(
            service
                .get(TENANT, &created.connector_id)
                .await
                .unwrap()
                .bucket,
            "bkt-b"
        );
    }
    for mode in ["role", "web_identity"] {
        let mut b = body(mode, "bkt-b", "x/");
        b["auth"]["role_arn"] = json!("arn:aws:iam::999999999999:role/ours");
        let refused = service().create(TENANT, b).await;
        assert!(
            matches!(&refused, Err(ServiceError::Invalid(f)) if f[0].field == "auth.role_arn"),
            "{mode}: {refused:?}"
        );
    }
}
