//! Clocks of the emulated systems: an offset from the reference time skews every `Date`
//! header, record timestamp and token check (a real host's clock drifts); NetSuite's token
//! endpoint applies the assertion time rules on the skewed clock; NetSuite stores whole seconds
//! even when following real time from a start with milliseconds.

use ironbridge_emulators::{EmulatorConfig, RunningEmulator, System, default_start};
use jsonwebtoken::Algorithm;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

/// The `Date` header of an answer, in epoch seconds.
fn date_secs(response: &reqwest::Response) -> i64 {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let value = response.headers()["date"].to_str().unwrap();
    time::PrimitiveDateTime::parse(value, &format)
        .unwrap()
        .assume_utc()
        .unix_timestamp()
}

async fn skewed(system: System, offset_secs: i64) -> RunningEmulator {
    let mut config = EmulatorConfig::new(system, 42, 200);
    config.clock_offset_secs = offset_secs;
    start_with(config).await
}

/// Every seeded record was modified before the system's own clock, which runs at the offset.
fn assert_history_before_now(emu: &RunningEmulator) {
    let now = emu.core().clock.now_ms();
    let data = emu.core().read();
    let orders = &data.purchase_orders;
    let latest = orders
        .ids()
        .iter()
        .filter_map(|&n| orders.get(n))
        .map(|po| po.last_modified)
        .max()
        .unwrap();
    assert!(latest <= now, "{:?}: {latest} after {now}", emu.system());
}

#[tokio::test]
async fn an_offset_skews_the_date_header_the_records_and_the_admin_clock() {
    for system in [System::NetSuite, System::SapS4Hana, System::BusinessCentral] {
        for offset in [-600, 600] {
            let emu = skewed(system, offset).await;
            let clock = admin_json(&emu, Method::GET, "/clock", None).await;
            assert_eq!(
                (clock["now_ms"].clone(), clock["reference_ms"].clone()),
                (
                    json!(default_start() + offset * 1000),
                    json!(default_start())
                ),
                "{system:?}"
            );
            assert_eq!(clock["offset_ms"], json!(offset * 1000));
            let r = admin(&emu, Method::GET, "", None).await;
            assert_eq!(date_secs(&r), default_start() / 1000 + offset, "{system:?}");
            assert_history_before_now(&emu);
            // A change is stamped with the skewed clock; moving the reference keeps the offset.
            admin_json(
                &emu,
                Method::POST,
                "/clock",
                Some(json!({"advance_seconds": 60})),
            )
            .await;
            let touched =
                admin_json(&emu, Method::POST, "/records/purchase_orders/1/touch", None).await;
            assert_eq!(
                touched["last_modified"],
                json!(default_start() + (offset + 60) * 1000),
                "{system:?}"
            );
            // The offset changes through the admin API too.
            let clock = admin_json(
                &emu,
                Method::POST,
                "/clock",
                Some(json!({"offset_seconds": 0})),
            )
            .await;
            assert_eq!(clock["now_ms"], json!(default_start() + 60_000));
            emu.shutdown().await;
        }
    }
}

#[tokio::test]
async fn netsuite_checks_assertion_times_on_its_own_clock() {
    let emu = skewed(System::NetSuite, -600).await;
    let cert = ec_cert();
    register(&emu, &cert, CERT_ID).await;
    let ours = default_start() / 1000;
    let theirs = ours - 600;
    let status = |claims: Value| {
        let jwt = assertion(&cert, Algorithm::ES256, CERT_ID, claims);
        let emu = &emu;
        async move {
            let r = post_token(emu, &jwt).await;
            // Refusals carry the source's Date too: that is how a client learns its clock.
            assert_eq!(date_secs(&r), emu.core().clock.now_ms() / 1000);
            let code = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (code, body["error"].as_str().unwrap_or("").to_string())
        }
    };
    // Issued at our time: ten minutes in the source's future.
    assert_eq!(
        status(claims(&emu, ours)).await,
        (400, "invalid_grant".into())
    );
    // Issued at the source's time, up to a minute ahead of it, for the full hour allowed.
    assert_eq!(status(claims(&emu, theirs)).await.0, 200);
    assert_eq!(status(claims(&emu, theirs + 60)).await.0, 200);
    assert_eq!(
        status(claims(&emu, theirs + 61)).await,
        (400, "invalid_grant".into())
    );
    let mut longest = claims(&emu, theirs - 300);
    longest["exp"] = json!(theirs - 300 + 3600);
    assert_eq!(status(longest).await.0, 200);

    // Ahead by ten minutes: an assertion that expires five minutes after our now is already
    // expired on the source's clock.
    admin_json(
        &emu,
        Method::POST,
        "/clock",
        Some(json!({"offset_seconds": 600})),
    )
    .await;
    let mut short = claims(&emu, ours);
    short["exp"] = json!(ours + 300);
    assert_eq!(status(short).await, (400, "invalid_grant".into()));
    let mut at_expiry = claims(&emu, ours);
    at_expiry["exp"] = json!(ours + 600);
    assert_eq!(status(at_expiry).await, (400, "invalid_grant".into()));
    assert_eq!(status(claims(&emu, ours)).await.0, 200);
    emu.shutdown().await;
}

#[tokio::test]
async fn netsuite_stores_whole_seconds_when_following_real_time() {
    let mut config = EmulatorConfig::new(System::NetSuite, 42, 500);
    config.real_time_clock = true;
    config.start_time_ms = default_start() + 123;
    let emu = start_with(config).await;
    {
        let data = emu.core().read();
        let t = &data.purchase_orders;
        for po in t.ids().iter().filter_map(|&n| t.get(n)) {
            assert_eq!(
                (po.created % 1000, po.last_modified % 1000),
                (0, 0),
                "order {}",
                po.id
            );
        }
        let v = &data.vendors;
        for vendor in v.ids().iter().filter_map(|&n| v.get(n)) {
            assert_eq!(vendor.last_modified % 1000, 0, "vendor {}", vendor.id);
        }
        let i = &data.items;
        for item in i.ids().iter().filter_map(|&n| i.get(n)) {
            assert_eq!(item.last_modified % 1000, 0, "item {}", item.id);
        }
    }
    assert_eq!(emu.core().clock.now_ms() % 1000, 0);
    // Written records: stamped by the clock, or given a time by the admin API.
    let touched = admin_json(&emu, Method::POST, "/records/purchase_orders/1/touch", None).await;
    assert_eq!(touched["last_modified"].as_i64().unwrap() % 1000, 0);
    let patched = admin_json(
        &emu,
        Method::PATCH,
        "/records/purchase_orders/2",
        Some(json!({"last_modified": default_start() - 1_001})),
    )
    .await;
    assert_eq!(patched["last_modified"], json!(default_start() - 2_000));
    // The REST record API shows the same whole seconds.
    let token = ns_token(&emu).await;
    let r: Value = client()
        .get(format!(
            "{}/services/rest/record/v1/purchaseOrder/2",
            emu.base_url()
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        r["lastModifiedDate"],
        json!(iso(default_start() - 2_000)),
        "{r}"
    );
    emu.shutdown().await;
}

/// RFC 3339 with a `Z` and no fraction, as NetSuite writes datetimes.
fn iso(ms: i64) -> String {
    ironbridge_emulators::common::clock::iso_seconds(ms)
}
