//! The ASCTrac Interface Service emulator over HTTP: tokens and the bearer filter, outboxes
//! served until acknowledged, each quirk and its switch, the imports' validation, partial
//! acceptance and lock, the inventory audit and the dock schedule, and imported documents
//! picked, shipped and received on the emulator clock.

use std::time::Instant;

use base64::Engine;
use ironbridge_emulators::{EmulatorConfig, RunningEmulator, System};
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::support::{admin_json, client, start_with};

struct Asc {
    emu: RunningEmulator,
    token: String,
}

impl Asc {
    async fn start(events: u64) -> Asc {
        let emu = start_with(EmulatorConfig::new(System::Asctrac, 42, events)).await;
        let mut asc = Asc {
            emu,
            token: String::new(),
        };
        let r = asc.authorize("asctrac~client~secret").await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        asc.token = body["access_token"].as_str().unwrap().to_string();
        asc
    }

    async fn authorize(&self, secret: &str) -> Response {
        client()
            .post(format!("{}/api/Authorize", self.emu.base_url()))
            .json(&json!({"client_id": "ironbridge", "client_secret": secret, "resource": "x"}))
            .send()
            .await
            .unwrap()
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut r = client()
            .request(method, format!("{}/api/{path}", self.emu.base_url()))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    /// A JSON answer whatever its content type, with its status.
    async fn json(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let r = self.call(method, path, body).await;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn settings(&self, patch: Value) {
        admin_json(&self.emu, Method::PATCH, "/settings", Some(patch)).await;
    }

    async fn outbox(&self, export: &str) -> Value {
        admin_json(&self.emu, Method::GET, "/asctrac/outbox", None).await[export].clone()
    }

    async fn advance(&self, secs: i64) {
        admin_json(
            &self.emu,
            Method::POST,
            "/clock",
            Some(json!({"advance_seconds": secs})),
        )
        .await;
    }

    /// The rows an export's GET serves now that name `order` (marking every row it serves sent).
    async fn rows_of(&self, path: &str, order: &str) -> Vec<Value> {
        let (status, body) = self.json(Method::GET, path, None).await;
        assert_eq!(status, 200, "{body}");
        body.as_array()
            .map(|rows| {
                rows.iter()
                    .filter(|r| r["ORDERNUMBER"] == order)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn import(&self, controller: &str, doc: Value) {
        let (status, body) = self.json(Method::POST, controller, Some(doc)).await;
        assert_eq!(
            (status, body["ReturnCode"].as_i64()),
            (200, Some(200)),
            "{body}"
        );
    }
}

const STATUS: &str = "CustOrderStatusExport?aCustID=";
const SHIPS: &str = "CustOrderExport?aCustID=";
const RECEIPTS: &str = "POLicensesExport?aOnlySendCompletedReceipt=true";

#[tokio::test]
async fn the_bearer_filter_takes_raw_and_base64_tokens_and_refuses_others() {
    let asc = Asc::start(20).await;
    let url = format!(
        "{}/api/TranFileExport?aCustID=&aExcludeTrantype=",
        asc.emu.base_url()
    );
    let none = client().get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(
        none.headers()["www-authenticate"],
        "Bearer realm=\"127.0.0.1\""
    );
    assert_eq!(none.text().await.unwrap(), "", "an empty body");
    let b64 = base64::engine::general_purpose::STANDARD.encode(&asc.token);
    for token in [asc.token.clone(), b64, format!("{}:extra", asc.token)] {
        let r = client().get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 200, "{token}");
    }
    let r = client().get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(asc.authorize("wrong").await.status(), 401);
    // Expired: the token's END_DATE passed on the emulator clock.
    admin_json(
        &asc.emu,
        Method::POST,
        "/clock",
        Some(json!({"advance_seconds": 3601})),
    )
    .await;
    let r = client()
        .get(&url)
        .bearer_auth(&asc.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A site without authentication lets everything through.
    asc.settings(json!({"auth_enabled": false})).await;
    assert_eq!(client().get(&url).send().await.unwrap().status(), 200);
    // A revoked client gets no token.
    admin_json(&asc.emu, Method::POST, "/credentials/revoke", None).await;
    assert_eq!(asc.authorize("asctrac~client~secret").await.status(), 401);
}

#[tokio::test]
async fn an_outbox_serves_rows_until_they_are_acknowledged() {
    let asc = Asc::start(200).await;
    let path = "TranFileExport?aCustID=&aExcludeTrantype=";
    let r = asc.call(Method::GET, path, None).await;
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    let text = r.text().await.unwrap();
    assert!(
        text.contains(".0,") || text.contains(".0}"),
        "doubles as 10.0"
    );
    let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert!(rows.len() > 10, "{}", rows.len());
    let row = &rows[0];
    assert!(row["TRANFILE_REC_ID"].is_f64(), "{row}");
    assert_eq!(row["EXPDATE"], "0001-01-01T00:00:00");
    let created = row["CREATE_DATETIME"].as_str().unwrap();
    assert_eq!(created.len(), 19, "no zone: {created}");
    // Served again while not acknowledged.
    let (_, again) = asc.json(Method::GET, path, None).await;
    assert_eq!(again.as_array().unwrap().len(), rows.len());
    assert_eq!(asc.outbox("TranFileExport").await["S"], rows.len());
    // Acknowledge half: only the rest comes back; a second acknowledgement is a no-op.
    let half: Vec<Value> = rows[..rows.len() / 2]
        .iter()
        .map(|r| json!({"TRANFILE_REC_ID": r["TRANFILE_REC_ID"], "SUCCESSFUL": true}))
        .collect();
    let (status, answer) = asc
        .json(Method::PUT, "TranFileExport", Some(json!(half)))
        .await;
    assert_eq!((status, answer["ReturnCode"].as_i64()), (200, Some(200)));
    asc.json(Method::PUT, "TranFileExport", Some(json!(half)))
        .await;
    let counts = asc.outbox("TranFileExport").await;
    assert_eq!(counts["acknowledged"], half.len());
    assert_eq!(counts["no_op_acknowledgements"], half.len());
    let (_, rest) = asc.json(Method::GET, path, None).await;
    assert_eq!(rest.as_array().unwrap().len(), rows.len() - half.len());
    // A null ERROR_MESSAGE throws in SetPosted.
    let (status, _) = asc
        .json(
            Method::PUT,
            "TranFileExport",
            Some(json!([{"TRANFILE_REC_ID": 1.0, "ERROR_MESSAGE": null}])),
        )
        .await;
    assert_eq!(status, 400);
    let all: Vec<Value> = rest
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!({"TRANFILE_REC_ID": r["TRANFILE_REC_ID"]}))
        .collect();
    asc.json(Method::PUT, "TranFileExport", Some(json!(all)))
        .await;
    let (status, empty) = asc.json(Method::GET, path, None).await;
    assert_eq!(status, 200);
    assert_eq!(empty["Message"], "No Records Found");
    assert_eq!(empty["ReturnCodeDescription"], "OK");
    let counts = asc.outbox("TranFileExport").await;
    assert_eq!(
        (counts["F"].as_u64(), counts["S"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(counts["T"], rows.len());
    // Time passes: new rows flow in.
    admin_json(
        &asc.emu,
        Method::POST,
        "/clock",
        Some(json!({"advance_seconds": 3600})),
    )
    .await;
    let (_, fresh) = asc.json(Method::GET, path, None).await;
    assert!(fresh.as_array().is_some_and(|a| !a.is_empty()), "{fresh}");
}

#[tokio::test]
async fn quirks_can_be_switched_off_and_the_default_site_strands_sent_rows() {
    let asc = Asc::start(100).await;
    asc.settings(json!({"export_text_plain": false, "naive_dates": false,
        "min_date_unset": false, "double_point_zero": false, "no_records_object": false,
        "include_processing_status": false}))
        .await;
    let path = "POLicensesExport?aOnlySendCompletedReceipt=true";
    let r = asc.call(Method::GET, path, None).await;
    assert_eq!(
        r.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let rows: Vec<Value> = r.json().await.unwrap();
    assert!(!rows.is_empty());
    assert!(rows[0]["EXPDATE"].is_null());
    assert!(rows[0]["DATE_TIME"].as_str().unwrap().ends_with('Z'));
    assert!(rows[0]["QUANTITY"].is_u64());
    // Without GWAPIIncludeProcessingStatus, sent rows never come back: an empty array.
    let (_, again) = asc.json(Method::GET, path, None).await;
    assert_eq!(again, json!([]));
    assert_eq!(asc.outbox("POLicensesExport").await["S"], rows.len());
    // The query overload needs its parameter; InventoryAudit needs all three.
    let (status, body) = asc.json(Method::GET, "POLicensesExport", None).await;
    assert_eq!(
        (status, body["Message"].as_str()),
        (
            400,
            Some("Object reference not set to an instance of an object.")
        )
    );
    let (status, _) = asc.json(Method::GET, "InventoryAudit?aSiteID=", None).await;
    assert_eq!(status, 404);
    // Receipt acknowledgements match by business keys.
    asc.settings(json!({"include_processing_status": true}))
        .await;
    let (_, rows) = asc.json(Method::GET, path, None).await;
    let acks: Vec<Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            json!({"ORDERNUMBER": r["ORDERNUMBER"], "RELEASENUM": r["RELEASENUM"],
                "LINE_NUMBER": r["LINE_NUMBER"], "PRODUCT_CODE": r["PRODUCT_CODE"],
                "LOTID": r["LOTID"], "SKIDID": r["SKIDID"], "RECEIVER_NO": r["RECEIVER_NO"],
                "SUCCESSFUL": true})
        })
        .collect();
    asc.json(Method::PUT, "POLicensesExport", Some(json!(acks)))
        .await;
    assert_eq!(asc.outbox("POLicensesExport").await["T"], acks.len());
}

#[tokio::test]
async fn shipments_and_statuses_are_two_outboxes_with_their_own_flags() {
    let asc = Asc::start(300).await;
    let (_, ships) = asc
        .json(Method::GET, "CustOrderExport?aCustID=", None)
        .await;
    let ships = ships.as_array().unwrap().clone();
    assert!(!ships.is_empty());
    assert!(
        ships[0]["PicksList"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );
    let (_, statuses) = asc
        .json(Method::GET, "CustOrderStatusExport?aCustID=", None)
        .await;
    let statuses = statuses.as_array().unwrap().clone();
    let created = statuses[0]["CREATE_DATETIME"].as_str().unwrap();
    assert!(
        created.ends_with("-05:00"),
        "DateTime.Now carries the offset: {created}"
    );
    // Acknowledging shipments leaves the status rows of the same orders unsent-for-good.
    let acks: Vec<Value> = ships
        .iter()
        .map(|s| json!({"ORDERNUMBER": s["ORDERNUMBER"], "SUCCESSFUL": true}))
        .collect();
    asc.json(Method::PUT, "CustOrderExport", Some(json!(acks)))
        .await;
    assert_eq!(asc.outbox("CustOrderExport").await["T"], ships.len());
    assert_eq!(asc.outbox("CustOrderStatusExport").await["T"], 0);
    // A negative acknowledgement is final.
    let first = &statuses[0]["ORDERNUMBER"];
    asc.json(
        Method::PUT,
        "CustOrderStatusExport",
        Some(json!([{"ORDERNUMBER": first, "SUCCESSFUL": false, "ERROR_MESSAGE": "bad"}])),
    )
    .await;
    let (_, again) = asc
        .json(Method::GET, "CustOrderStatusExport?aCustID=", None)
        .await;
    assert!(
        again
            .as_array()
            .unwrap()
            .iter()
            .all(|r| &r["ORDERNUMBER"] != first)
    );
    assert!(
        asc.outbox("CustOrderStatusExport").await["E"]
            .as_u64()
            .unwrap()
            >= 1
    );
}

fn po(number: &str, facility: &str, items: &[&str]) -> Value {
    let lines: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, item)| json!({"LINE_NUMBER": i + 1, "PRODUCT_CODE": item, "QUANTITY": 5.0}))
        .collect();
    json!({"FACILITY": facility, "PONUMBER": number, "VENDOR_CODE": "V00001",
        "STATUS_FLAG": "A", "PODetList": lines})
}

#[tokio::test]
async fn imports_validate_and_report_unknown_items_as_partial_acceptance() {
    let asc = Asc::start(20).await;
    let ok = asc
        .json(
            Method::POST,
            "POImport",
            Some(po("PO1", "01", &["ITEM-000001"])),
        )
        .await;
    assert_eq!(
        ok,
        (
            200,
            json!({"ReturnCode": 200, "ReturnCodeDescription": "OK",
        "Status": "Success", "Message": "SUCCESSFULLY PROCESSED"})
        )
    );
    // Default action 2: unknown items are created as skeletons.
    let (status, body) = asc
        .json(Method::POST, "POImport", Some(po("PO2", "01", &["NEW-1"])))
        .await;
    assert_eq!((status, body["ReturnCode"].as_i64()), (200, Some(200)));
    asc.settings(json!({"po_missing_item_action": 1})).await;
    let (status, body) = asc
        .json(
            Method::POST,
            "POImport",
            Some(po("PO3", "01", &["ITEM-000002", "NOPE-9", "NOPE-10"])),
        )
        .await;
    assert_eq!(status, 200, "partial acceptance inside an HTTP 200");
    assert_eq!(body["ReturnCode"], 412);
    assert_eq!(body["Status"], "PARTIAL");
    assert_eq!(
        body["Message"],
        "Purchase Order: PO3, Missing Items: NOPE-9, NOPE-10"
    );
    asc.settings(json!({"po_missing_item_action": 0})).await;
    let (status, body) = asc
        .json(Method::POST, "POImport", Some(po("PO4", "01", &["NOPE-9"])))
        .await;
    assert_eq!(status, 400);
    let msg = body["Message"].as_str().unwrap();
    assert!(
        msg.ends_with("/Import/POImport\"\u{c}ailed: Item NOPE-9 does not exist in ITEMMSTR"),
        "{msg}"
    );
    for (doc, expected) in [
        (
            po("PO5", "99", &["ITEM-000001"]),
            "No Facility or Site defined for record.",
        ),
        (
            po("", "01", &["ITEM-000001"]),
            "PO Number value is required.",
        ),
        (po("PO6", "01", &[""]), "Item ID is required.  Line:  1"),
    ] {
        let (status, body) = asc.json(Method::POST, "POImport", Some(doc)).await;
        assert_eq!(status, 400);
        assert!(
            body["Message"].as_str().unwrap().ends_with(expected),
            "{body}"
        );
    }
    let (status, _) = asc
        .json(Method::POST, "POImport", Some(json!("not an object")))
        .await;
    assert_eq!(status, 400);
    // Customer orders skip unknown items whatever the setting.
    let order = json!({"FACILITY": "02", "ORDERNUMBER": "SO-1", "STATUS_FLAG": "A",
        "DetailList": [{"LINE_NUMBER": 1, "PRODUCT_CODE": "ITEM-000003", "QUANTITY": 2.0},
                       {"LINE_NUMBER": 2, "PRODUCT_CODE": "GHOST", "QUANTITY": 1.0}]});
    let (status, body) = asc.json(Method::POST, "CustOrderImport", Some(order)).await;
    assert_eq!(
        (status, body["Message"].as_str()),
        (200, Some("Customer Order: SO-1, Missing Items: GHOST"))
    );
    // Ship it (no auth filter), then changing it is refused.
    let r = client()
        .put(format!(
            "{}/api/CustOrderShipImport?aOrderNumber=SO-1",
            asc.emu.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let again =
        json!({"FACILITY": "02", "ORDERNUMBER": "SO-1", "STATUS_FLAG": "A", "DetailList": []});
    let (status, body) = asc.json(Method::POST, "CustOrderImport", Some(again)).await;
    assert_eq!(status, 400);
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .ends_with("Order SO-1 already Shipped.")
    );
    let (status, body) = asc
        .json(Method::PUT, "CustOrderShipImport?aOrderNumber=NOPE", None)
        .await;
    assert_eq!(status, 400);
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .contains("Error confirm shipping order NOPE")
    );
    // Items.
    let item = json!({"FACILITY": "01", "PRODUCT_CODE": "NEW-ITEM", "DESCRIPTION": "New",
        "STOCK_UOM": "EA", "STD_COST": 2.5, "STATUS_FLAG": "A"});
    assert_eq!(
        asc.json(Method::POST, "ItemMasterImport", Some(item))
            .await
            .0,
        200
    );
    let (status, body) = asc
        .json(
            Method::POST,
            "ItemMasterImport",
            Some(json!({"FACILITY": "01", "STATUS_FLAG": "A"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .ends_with("Itemid (PRODUCT_CODE) value is required.")
    );
    let (_, audit) = asc
        .json(
            Method::GET,
            "InventoryAudit?aVMICustID=&aSiteID=S1&aItemID=NEW-ITEM",
            None,
        )
        .await;
    assert_eq!(audit[0]["PRODUCT_CODE"], "NEW-ITEM");
    assert_eq!(audit[0]["QUANTITY"], 0.0);
    // The database fault.
    asc.settings(json!({"db_init_failure": true})).await;
    let (status, body) = asc
        .json(
            Method::POST,
            "POImport",
            Some(po("PO7", "01", &["ITEM-000001"])),
        )
        .await;
    assert_eq!(status, 500);
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .ends_with("Database Initialization Failed.")
    );
}

#[tokio::test]
async fn concurrent_imports_of_one_type_queue_behind_its_lock() {
    let asc = Asc::start(20).await;
    asc.settings(json!({"slow_import_ms": 100})).await;
    let started = Instant::now();
    let calls = (0..4).map(|i| {
        let asc = &asc;
        async move {
            asc.json(
                Method::POST,
                "POImport",
                Some(po(&format!("PO-L{i}"), "01", &["ITEM-000001"])),
            )
            .await
        }
    });
    let results = futures_join(calls).await;
    assert!(
        results
            .iter()
            .all(|(s, b)| *s == 200 && b["ReturnCode"] == 200),
        "{results:?}"
    );
    assert!(
        started.elapsed().as_millis() >= 400,
        "serialised: {:?}",
        started.elapsed()
    );
    let records = admin_json(&asc.emu, Method::GET, "/asctrac/records", None).await;
    assert_eq!(records["max_concurrent_imports"]["po"], 1);
}

/// Runs futures concurrently on this task.
async fn futures_join<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futs.map(Box::pin).collect();
    let mut out = Vec::new();
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().flatten());
    out
}

#[tokio::test]
async fn the_dock_schedule_answers_a_day_of_one_dock() {
    let asc = Asc::start(20).await;
    let mut found = 0;
    for day in 1..=10 {
        let (status, body) = asc
            .json(
                Method::GET,
                &format!("DockSchd?aID=USER%7C01%7CD1%7C1/{day}/2026"),
                None,
            )
            .await;
        assert_eq!(status, 200);
        if body["successful"] == true {
            let list: Vec<Value> =
                serde_json::from_str(body["DataMessage"].as_str().unwrap()).unwrap();
            assert!(!list.is_empty());
            assert!(list[0]["SchedID"].is_u64());
            found += list.len();
        } else {
            assert_eq!(body["ErrorMessage"], "No scheduled records found.");
        }
    }
    assert!(found > 0);
    let (_, bad) = asc
        .json(Method::GET, "DockSchd?aID=USER%7C77%7CD1%7C1/1/2026", None)
        .await;
    assert_eq!(bad["successful"], false);
}

fn order(number: &str) -> Value {
    json!({"FACILITY": "02", "ORDERNUMBER": number, "ORDER_TYPE": "C", "STATUS_FLAG": "A",
        "BILL_TO_CUST_ID": "C00042", "CUST_PO_NUM": "CPO-7", "CARRIER": "ODFL",
        "CARRIER_SERVICE_CODE": "LTL",
        "DetailList": [
            {"LINE_NUMBER": 1, "PRODUCT_CODE": "ITEM-000003", "QUANTITY": 4.0, "SOLD_PRICE": 12.5},
            {"LINE_NUMBER": 2, "PRODUCT_CODE": "ITEM-000004", "QUANTITY": 2.0}]})
}

#[tokio::test]
async fn an_imported_order_is_picked_then_shipped_as_the_clock_passes_its_delays() {
    let asc = Asc::start(20).await;
    asc.settings(json!({"auth_enabled": false})).await;
    asc.import("CustOrderImport", order("ORD-A")).await;
    assert!(asc.rows_of(STATUS, "ORD-A").await.is_empty());
    asc.advance(599).await;
    assert!(asc.rows_of(STATUS, "ORD-A").await.is_empty(), "not due yet");
    asc.advance(1).await;
    let picked = asc.rows_of(STATUS, "ORD-A").await;
    assert_eq!(picked.len(), 1, "{picked:?}");
    assert_eq!(picked[0]["PICKSTATUS"], "C");
    assert_eq!(picked[0]["FACILITY"], "02");
    assert_eq!(picked[0]["CUSTOMERID"], "C00042");
    // Written at the instant it was due (import + 600 s, site wall time), whenever it is read.
    assert_eq!(picked[0]["TRANSACTION_DATE"], "2025-12-31T19:10:00");
    assert!(
        asc.rows_of(SHIPS, "ORD-A").await.is_empty(),
        "not shipped yet"
    );
    // Served again until acknowledged, then gone.
    assert_eq!(asc.rows_of(STATUS, "ORD-A").await.len(), 1);
    let before = asc.outbox("CustOrderStatusExport").await;
    let (status, _) = asc
        .json(
            Method::PUT,
            "CustOrderStatusExport",
            Some(json!([{"ORDERNUMBER": "ORD-A", "SUCCESSFUL": true, "ERROR_MESSAGE": ""}])),
        )
        .await;
    assert_eq!(status, 200);
    let after = asc.outbox("CustOrderStatusExport").await;
    assert_eq!(after["T"].as_u64(), before["T"].as_u64().map(|t| t + 1));
    assert_eq!(
        after["acknowledged"].as_u64(),
        before["acknowledged"].as_u64().map(|t| t + 1)
    );
    assert!(asc.rows_of(STATUS, "ORD-A").await.is_empty());
    // A picked order can no longer be cancelled.
    let (status, body) = asc
        .json(
            Method::POST,
            "CustOrderImport",
            Some(json!({"FACILITY": "02", "ORDERNUMBER": "ORD-A", "STATUS_FLAG": "C"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .ends_with("Cancel Order failed.  Order either shipped or picked."),
        "{body}"
    );

    asc.advance(1199).await;
    assert!(asc.rows_of(SHIPS, "ORD-A").await.is_empty(), "not due yet");
    asc.advance(1).await;
    let ships = asc.rows_of(SHIPS, "ORD-A").await;
    assert_eq!(ships.len(), 1, "{ships:?}");
    let ship = &ships[0];
    assert_eq!(ship["CREATE_DATETIME"], "2025-12-31T19:30:00");
    assert_eq!(ship["FACILITY"], "02");
    assert_eq!(ship["CUST_ID"], "C00042");
    assert_eq!(ship["CUST_PO_NUM"], "CPO-7");
    assert_eq!(ship["CARRIER"], "ODFL");
    let picks = ship["PicksList"].as_array().unwrap();
    assert_eq!(picks.len(), 2);
    assert_eq!(
        (
            &picks[0]["LINE_NUMBER"],
            &picks[0]["PRODUCT_CODE"],
            &picks[0]["QTY_SHIPPED"]
        ),
        (&json!(1), &json!("ITEM-000003"), &json!(4.0))
    );
    assert_eq!(picks[0]["EXT_PRICE"], 50.0);
    assert_eq!(picks[0]["SHIPMENT_NUMBER"], ship["SHIPMENT_NUMBER"]);
    assert_eq!(picks[1]["QTY_ORDERED"], 2.0);
    assert_eq!(ship["ContainersList"].as_array().unwrap().len(), 1);
    let shipped = asc.rows_of(STATUS, "ORD-A").await;
    assert_eq!(shipped.len(), 1);
    assert_eq!(shipped[0]["PICKSTATUS"], "S");
    // The shipment's outbox: served until acknowledged by its order number, then gone.
    assert_eq!(asc.rows_of(SHIPS, "ORD-A").await.len(), 1);
    let before = asc.outbox("CustOrderExport").await;
    asc.json(
        Method::PUT,
        "CustOrderExport",
        Some(json!([{"ORDERNUMBER": "ORD-A", "SUCCESSFUL": true, "ERROR_MESSAGE": ""}])),
    )
    .await;
    assert!(asc.rows_of(SHIPS, "ORD-A").await.is_empty());
    let after = asc.outbox("CustOrderExport").await;
    assert_eq!(after["T"].as_u64(), before["T"].as_u64().map(|t| t + 1));
    // Nothing more happens to it; the records show it shipped.
    asc.advance(3600).await;
    assert!(asc.rows_of(SHIPS, "ORD-A").await.is_empty());
    let records = admin_json(&asc.emu, Method::GET, "/asctrac/records", None).await;
    let doc = &records["customer_orders"]["ORD-A"];
    assert_eq!(
        (&doc["picked"], &doc["shipped"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(records["document_events"], 2);
}

#[tokio::test]
async fn confirm_ship_ships_at_once_and_a_cancelled_order_emits_nothing() {
    let asc = Asc::start(20).await;
    asc.settings(json!({"auth_enabled": false})).await;
    asc.import("CustOrderImport", order("ORD-B")).await;
    asc.import("CustOrderImport", order("ORD-C")).await;
    asc.advance(60).await;
    let r = client()
        .put(format!(
            "{}/api/CustOrderShipImport?aOrderNumber=ORD-B",
            asc.emu.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ships = asc.rows_of(SHIPS, "ORD-B").await;
    assert_eq!(ships.len(), 1, "shipped at once");
    assert_eq!(ships[0]["CREATE_DATETIME"], "2025-12-31T19:01:00");
    assert_eq!(ships[0]["PicksList"].as_array().unwrap().len(), 2);
    let statuses = asc.rows_of(STATUS, "ORD-B").await;
    assert_eq!(
        statuses
            .iter()
            .map(|r| r["PICKSTATUS"].clone())
            .collect::<Vec<_>>(),
        vec![json!("S")]
    );
    // Cancelled before its pick: nothing more is written for it (the service's cancel writes
    // no TRANFILE row the status export selects).
    asc.import(
        "CustOrderImport",
        json!({"FACILITY": "02", "ORDERNUMBER": "ORD-C", "STATUS_FLAG": "C"}),
    )
    .await;
    asc.advance(3600).await;
    assert!(asc.rows_of(STATUS, "ORD-C").await.is_empty());
    assert!(asc.rows_of(SHIPS, "ORD-C").await.is_empty());
    // The shipped order is not picked or shipped again when its delays pass.
    assert_eq!(
        asc.rows_of(SHIPS, "ORD-B").await.len(),
        1,
        "the same row, unacknowledged"
    );
    assert_eq!(asc.rows_of(STATUS, "ORD-B").await.len(), 1);

    // Without GWAPIIncludeProcessingStatus a row served once is never served again.
    asc.settings(json!({"include_processing_status": false}))
        .await;
    asc.import("CustOrderImport", order("ORD-D")).await;
    asc.advance(600).await;
    assert_eq!(asc.rows_of(STATUS, "ORD-D").await.len(), 1);
    assert!(
        asc.rows_of(STATUS, "ORD-D").await.is_empty(),
        "stranded in S"
    );
    let (status, _) = asc
        .json(
            Method::PUT,
            "CustOrderStatusExport",
            Some(json!([{"ORDERNUMBER": "ORD-D", "SUCCESSFUL": true, "ERROR_MESSAGE": ""}])),
        )
        .await;
    assert_eq!(status, 200);
    let counts = asc.outbox("CustOrderStatusExport").await;
    assert!(counts["T"].as_u64().unwrap() >= 1, "{counts}");
}

#[tokio::test]
async fn an_imported_purchase_order_is_received_into_license_plates_and_stock() {
    let asc = Asc::start(20).await;
    asc.settings(json!({"auth_enabled": false})).await;
    let item = json!({"FACILITY": "01", "PRODUCT_CODE": "RCV-ITEM", "DESCRIPTION": "Received",
        "STOCK_UOM": "EA", "STD_COST": 1.5, "STATUS_FLAG": "A"});
    assert_eq!(
        asc.json(Method::POST, "ItemMasterImport", Some(item))
            .await
            .0,
        200
    );
    let audit = "InventoryAudit?aVMICustID=&aSiteID=S1&aItemID=RCV-ITEM";
    assert_eq!(
        asc.json(Method::GET, audit, None).await.1[0]["QUANTITY"],
        0.0
    );
    asc.import(
        "POImport",
        json!({"FACILITY": "01", "PONUMBER": "PO-R1", "VENDOR_CODE": "V100", "STATUS_FLAG": "A",
            "PODetList": [
                {"LINE_NUMBER": 1, "PRODUCT_CODE": "RCV-ITEM", "QUANTITY": 7.0, "LOTID": "LOT-1"},
                {"LINE_NUMBER": 2, "PRODUCT_CODE": "RCV-ITEM", "QUANTITY": 3.0}]}),
    )
    .await;
    asc.advance(899).await;
    assert!(
        asc.rows_of(RECEIPTS, "PO-R1").await.is_empty(),
        "not due yet"
    );
    asc.advance(1).await;
    let plates = asc.rows_of(RECEIPTS, "PO-R1").await;
    assert_eq!(plates.len(), 2, "{plates:?}");
    assert_eq!(
        (
            &plates[0]["LINE_NUMBER"],
            &plates[0]["QUANTITY"],
            &plates[0]["LOTID"]
        ),
        (&json!(1.0), &json!(7.0), &json!("LOT-1"))
    );
    assert_eq!(
        (&plates[1]["LINE_NUMBER"], &plates[1]["QUANTITY"]),
        (&json!(2.0), &json!(3.0))
    );
    assert_eq!(
        plates[0]["RECEIVER_NO"], plates[1]["RECEIVER_NO"],
        "one receiver"
    );
    assert_ne!(plates[0]["SKIDID"], plates[1]["SKIDID"], "a plate per line");
    assert_eq!(plates[0]["VENDORID"], "V100");
    assert_eq!(plates[0]["RECVDATETIME"], "2025-12-31T19:15:00");
    // Stock: on hand grows by what was received.
    assert_eq!(
        asc.json(Method::GET, audit, None).await.1[0]["QUANTITY"],
        10.0
    );
    // Served until acknowledged by their keys; a wrong key matches nothing.
    assert_eq!(asc.rows_of(RECEIPTS, "PO-R1").await.len(), 2);
    let acks: Vec<Value> = plates
        .iter()
        .map(|p| {
            json!({"FACILITY": p["FACILITY"], "ORDERNUMBER": p["ORDERNUMBER"],
                "LINE_NUMBER": p["LINE_NUMBER"], "PRODUCT_CODE": p["PRODUCT_CODE"],
                "LOTID": p["LOTID"], "SKIDID": p["SKIDID"], "RECEIVER_NO": p["RECEIVER_NO"],
                "SUCCESSFUL": true, "ERROR_MESSAGE": ""})
        })
        .collect();
    let mut wrong = acks[0].clone();
    wrong["RECEIVER_NO"] = json!("RCV0");
    let before = asc.outbox("POLicensesExport").await;
    asc.json(Method::PUT, "POLicensesExport", Some(json!([wrong])))
        .await;
    assert_eq!(asc.rows_of(RECEIPTS, "PO-R1").await.len(), 2);
    asc.json(Method::PUT, "POLicensesExport", Some(json!(acks)))
        .await;
    assert!(asc.rows_of(RECEIPTS, "PO-R1").await.is_empty());
    let after = asc.outbox("POLicensesExport").await;
    assert_eq!(after["T"].as_u64(), before["T"].as_u64().map(|t| t + 2));
    // The PO is received: an update is refused.
    let (status, body) = asc
        .json(
            Method::POST,
            "POImport",
            Some(po("PO-R1", "01", &["RCV-ITEM"])),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .ends_with("Cannot update PO# PO-R1: PO is already Received."),
        "{body}"
    );
}

#[tokio::test]
async fn imported_documents_stand_still_when_their_delays_are_zero() {
    let asc = Asc::start(20).await;
    asc.settings(json!({"auth_enabled": false, "imported_pick_after_secs": 0,
        "imported_ship_after_secs": 0, "imported_receive_after_secs": 0}))
        .await;
    asc.import("CustOrderImport", order("ORD-Z")).await;
    asc.import("POImport", po("PO-Z", "01", &["ITEM-000001"]))
        .await;
    asc.advance(86_400).await;
    assert!(asc.rows_of(STATUS, "ORD-Z").await.is_empty());
    assert!(asc.rows_of(SHIPS, "ORD-Z").await.is_empty());
    assert!(asc.rows_of(RECEIPTS, "PO-Z").await.is_empty());
    // Confirm-ship still ships it.
    let r = client()
        .put(format!(
            "{}/api/CustOrderShipImport?aOrderNumber=ORD-Z",
            asc.emu.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(asc.rows_of(SHIPS, "ORD-Z").await.len(), 1);
    // A delay out of range is refused.
    let r = crate::support::admin(
        &asc.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"imported_ship_after_secs": -1})),
    )
    .await;
    assert_eq!(r.status(), 400);
}
