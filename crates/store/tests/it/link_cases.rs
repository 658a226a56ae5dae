//! Link's tokens: found by hash only, claimed by one submission at a time, spent in the
//! transaction that makes or renews the connection (with its event), and their public token
//! exchanged once, by their organization only.

use std::sync::Arc;

use ironbridge_core::crypto::token_hash;
use ironbridge_core::ids::new_id;
use ironbridge_core::store::*;
use ironbridge_model::Timestamp;

use crate::cases::{T0, conn, org};

fn link(org: &OrgId, secret: &str, connection: Option<&ConnId>) -> LinkToken {
    LinkToken {
        id: new_id("lnk", T0.micros()),
        org_id: org.0.clone(),
        token_hash: token_hash(secret),
        end_user: r#"{"id":"cust-1"}"#.into(),
        systems: r#"["sandbox"]"#.into(),
        connection_id: connection.map(|c| c.0.clone()),
        redirect_url: "https://app.example.com/done".into(),
        brand_name: Some("Acme".into()),
        brand_colour: Some("#0b5fff".into()),
        certificate_id: None,
        expires_at: T0.plus_secs(1800),
        created_at: T0,
        claimed_at: None,
        completed_at: None,
        result_connection_id: None,
        public_token_hash: None,
        connection_token: None,
        exchanged_at: None,
    }
}

fn done(org: &OrgId, conn: &str, public: &str, event_type: &str, at: Timestamp) -> LinkCompletion {
    LinkCompletion {
        public_token_hash: token_hash(public),
        connection_token: Some("v1.x.sealed-token".into()),
        event: Event {
            id: new_id("evt", at.micros()),
            org_id: org.0.clone(),
            connection_id: Some(conn.to_string()),
            event_type: event_type.into(),
            data: "{}".into(),
            created_at: at,
        },
        now: at,
    }
}

fn new_connection(token: &str) -> NewConnection {
    NewConnection {
        id: new_id("conn", T0.micros()),
        system: "sandbox".into(),
        name: Some("linked".into()),
        status: "syncing".into(),
        settings: "{}".into(),
        end_user: Some(r#"{"id":"cust-1"}"#.into()),
        credentials: Some("v1.x.ciphertext".into()),
        token_hash: token_hash(token),
        token_prefix: "ibc_link".into(),
        created_at: T0,
        replaces: None,
        mcp_access: ironbridge_model::api::McpAccess::Read,
    }
}

pub async fn link_tokens_are_claimed_spent_and_exchanged_once(store: Arc<dyn Store>) {
    let a = org(&store, 2).await;
    let b = org(&store, 2).await;
    let t = link(&a, "ibl_one", None);
    store.create_link_token(&a, &t).await.unwrap();
    let found = store
        .find_link_token(&token_hash("ibl_one"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, t);
    assert!(
        store
            .find_link_token(&token_hash("ibl_two"))
            .await
            .unwrap()
            .is_none()
    );

    // One certificate per link, whoever records first.
    assert_eq!(
        store
            .set_link_certificate(&a, &t.id, "crt_1")
            .await
            .unwrap(),
        "crt_1"
    );
    assert_eq!(
        store
            .set_link_certificate(&a, &t.id, "crt_2")
            .await
            .unwrap(),
        "crt_1"
    );
    assert!(matches!(
        store.set_link_certificate(&b, &t.id, "crt_3").await,
        Err(StoreError::NotFound)
    ));

    // One submission at a time; a claim given back or gone stale frees the token.
    let stale = T0.plus_secs(-120);
    assert!(
        !store.claim_link_token(&b, &t.id, T0, stale).await.unwrap(),
        "not b's"
    );
    assert!(store.claim_link_token(&a, &t.id, T0, stale).await.unwrap());
    assert!(
        !store
            .claim_link_token(&a, &t.id, T0.plus_secs(1), T0.plus_secs(-119))
            .await
            .unwrap()
    );
    store.release_link_token(&a, &t.id).await.unwrap();
    assert!(
        store
            .claim_link_token(&a, &t.id, T0.plus_secs(2), T0.plus_secs(-118))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_link_token(&a, &t.id, T0.plus_secs(200), T0.plus_secs(80))
            .await
            .unwrap(),
        "a stale claim"
    );

    // Spending makes the connection, its event and the token's end in one go.
    let new = new_connection("ibc_linked");
    let made = store
        .finish_link_connection(
            &a,
            &t.id,
            &new,
            &done(
                &a,
                &new.id,
                "ibp_one",
                "connection.created",
                T0.plus_secs(3),
            ),
        )
        .await
        .unwrap();
    assert_eq!(made.id, new.id);
    assert_eq!(store.credits_used(&a).await.unwrap(), 1);
    let events = store
        .list_events(&a, None, Some(&new.id), Some("connection.created"), 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    let spent = store
        .find_link_token(&token_hash("ibl_one"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(spent.completed_at, Some(T0.plus_secs(3)));
    assert_eq!(spent.result_connection_id.as_deref(), Some(new.id.as_str()));
    assert!(
        !store
            .claim_link_token(&a, &t.id, T0.plus_secs(999), T0.plus_secs(900))
            .await
            .unwrap()
    );
    let twice = new_connection("ibc_twice");
    assert!(matches!(
        store
            .finish_link_connection(
                &a,
                &t.id,
                &twice,
                &done(
                    &a,
                    &twice.id,
                    "ibp_x",
                    "connection.created",
                    T0.plus_secs(4)
                )
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.credits_used(&a).await.unwrap(),
        1,
        "the second connection was rolled back"
    );

    // The public token: only its organization, only once, only while fresh.
    let hash = token_hash("ibp_one");
    assert!(
        store
            .exchange_public_token(&b, &hash, T0.plus_secs(5), T0)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .exchange_public_token(&a, &hash, T0.plus_secs(5), T0.plus_secs(3))
            .await
            .unwrap()
            .is_none(),
        "too old"
    );
    let got = store
        .exchange_public_token(&a, &hash, T0.plus_secs(5), T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.connection_token.as_deref(), Some("v1.x.sealed-token"));
    assert!(
        store
            .exchange_public_token(&a, &hash, T0.plus_secs(6), T0)
            .await
            .unwrap()
            .is_none()
    );
    let after = store
        .find_link_token(&token_hash("ibl_one"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        after.connection_token, None,
        "the connection token is erased"
    );
    assert_eq!(after.exchanged_at, Some(T0.plus_secs(5)));
}

pub async fn link_renewals_keep_the_connection_and_refuse_disconnected_ones(store: Arc<dyn Store>) {
    let a = org(&store, 2).await;
    let c = conn(&store, &a).await;
    store
        .set_connection_status(&c, "reauthorization_required", T0, None)
        .await
        .unwrap();
    let t = link(&a, "ibl_renew", Some(&c));
    store.create_link_token(&a, &t).await.unwrap();
    let renewed = store
        .finish_link_reauthorization(
            &a,
            &t.id,
            &c,
            "v1.x.new-credentials",
            &done(
                &a,
                &c.0,
                "ibp_r",
                "connection.reauthorized",
                T0.plus_secs(1),
            ),
        )
        .await
        .unwrap();
    assert_eq!(renewed.id, c.0);
    assert_eq!(renewed.status, "online");
    assert_eq!(renewed.credentials.as_deref(), Some("v1.x.new-credentials"));
    assert_eq!(renewed.consecutive_errors, 0);
    let types: Vec<String> = store
        .list_events(&a, None, Some(&c.0), None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert!(
        types.contains(&"connection.reauthorized".to_string()),
        "{types:?}"
    );
    assert!(
        types.contains(&"connection.status_changed".to_string()),
        "{types:?}"
    );

    // Another organization's token cannot renew it; nor can any once it is disconnected.
    let b = org(&store, 2).await;
    let theirs = link(&b, "ibl_theirs", Some(&c));
    store.create_link_token(&b, &theirs).await.unwrap();
    assert!(matches!(
        store
            .finish_link_reauthorization(
                &b,
                &theirs.id,
                &c,
                "v1.x.evil",
                &done(
                    &b,
                    &c.0,
                    "ibp_e",
                    "connection.reauthorized",
                    T0.plus_secs(2)
                )
            )
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .disconnect_connection(&a, &c, T0.plus_secs(3))
        .await
        .unwrap();
    let late = link(&a, "ibl_late", Some(&c));
    store.create_link_token(&a, &late).await.unwrap();
    assert!(matches!(
        store
            .finish_link_reauthorization(
                &a,
                &late.id,
                &c,
                "v1.x.late",
                &done(
                    &a,
                    &c.0,
                    "ibp_l",
                    "connection.reauthorized",
                    T0.plus_secs(4)
                )
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    let kept = store.get_connection(&a, &c).await.unwrap();
    assert_eq!(kept.credentials.as_deref(), Some("v1.x.new-credentials"));
}

fn person(org: &OrgId, email: &str) -> DashboardUser {
    DashboardUser {
        id: new_id("usr", T0.micros()),
        org_id: org.0.clone(),
        email: email.into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: T0,
    }
}

fn token(user: &DashboardUser, secret: &str, ttl: i64) -> NewDashboardToken {
    NewDashboardToken {
        id: new_id("ses", T0.micros()),
        user_id: user.id.clone(),
        token_hash: token_hash(secret),
        created_at: T0,
        expires_at: T0.plus_secs(ttl),
    }
}

pub async fn dashboard_sessions_sign_in_links_and_the_request_log(store: Arc<dyn Store>) {
    let a = org(&store, 1).await;
    let b = org(&store, 1).await;
    let dev = person(&a, "dev@example.com");
    store.create_dashboard_user(&a, &dev).await.unwrap();
    assert!(matches!(
        store
            .create_dashboard_user(&b, &person(&b, "dev@example.com"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.find_dashboard_user("dev@example.com").await.unwrap(),
        Some(dev.clone())
    );

    // A session is found by its hash while live, and reaches its organization only.
    let s = token(&dev, "ibs_one", 3600);
    store.create_dashboard_session(&a, &s).await.unwrap();
    let found = store
        .find_dashboard_session(&token_hash("ibs_one"), T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.org_id.as_str(), found.email.as_str()),
        (a.0.as_str(), "dev@example.com")
    );
    assert!(
        store
            .find_dashboard_session(&token_hash("ibs_one"), T0.plus_secs(3600))
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    let foreign = token(&dev, "ibs_foreign", 3600);
    store.create_dashboard_session(&b, &foreign).await.unwrap();
    assert!(
        store
            .find_dashboard_session(&token_hash("ibs_foreign"), T0)
            .await
            .unwrap()
            .is_none(),
        "not b's person"
    );
    store.end_dashboard_session(&b, &s.id, T0).await.unwrap();
    assert!(
        store
            .find_dashboard_session(&token_hash("ibs_one"), T0)
            .await
            .unwrap()
            .is_some(),
        "b cannot end a's"
    );
    store.end_dashboard_session(&a, &s.id, T0).await.unwrap();
    assert!(
        store
            .find_dashboard_session(&token_hash("ibs_one"), T0)
            .await
            .unwrap()
            .is_none()
    );

    // A sign-in link works once, while live.
    let link = NewDashboardToken {
        id: new_id("sil", T0.micros()),
        ..token(&dev, "ibd_link", 60)
    };
    store.create_sign_in_link(&a, &link).await.unwrap();
    assert!(
        store
            .use_sign_in_link(&token_hash("ibd_link"), T0.plus_secs(60))
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert_eq!(
        store
            .use_sign_in_link(&token_hash("ibd_link"), T0)
            .await
            .unwrap()
            .map(|u| u.id),
        Some(dev.id.clone())
    );
    assert!(
        store
            .use_sign_in_link(&token_hash("ibd_link"), T0)
            .await
            .unwrap()
            .is_none(),
        "used"
    );

    // The request log: per organization, newest first, searchable, written once, purged by age.
    let entry = |o: &OrgId, n: i64| RequestLogEntry {
        org_id: o.0.clone(),
        request_id: new_id("req", T0.plus_secs(n).micros()),
        method: "GET".into(),
        path: format!("/v1/things/{n}"),
        status: 200,
        latency_us: 1500,
        created_at: T0.plus_secs(n),
    };
    let mine: Vec<RequestLogEntry> = (0..5).map(|n| entry(&a, n)).collect();
    store.write_request_log(&mine).await.unwrap();
    store
        .write_request_log(&[mine[0].clone(), entry(&b, 9)])
        .await
        .unwrap();
    let listed = store.list_request_log(&a, None, None, 3).await.unwrap();
    assert_eq!(
        listed,
        vec![mine[4].clone(), mine[3].clone(), mine[2].clone()]
    );
    let next = store
        .list_request_log(&a, None, Some(&listed[2].request_id), 3)
        .await
        .unwrap();
    assert_eq!(next, vec![mine[1].clone(), mine[0].clone()]);
    assert_eq!(
        store
            .list_request_log(&a, Some(&mine[3].request_id), None, 10)
            .await
            .unwrap(),
        vec![mine[3].clone()]
    );
    let theirs = entry(&b, 9).request_id;
    assert!(
        store
            .list_request_log(&a, Some(&theirs), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.purge_request_log(T0.plus_secs(3)).await.unwrap(), 3);
    assert_eq!(
        store
            .list_request_log(&a, None, None, 10)
            .await
            .unwrap()
            .len(),
        2
    );
}
