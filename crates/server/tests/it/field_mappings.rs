//! Per-connection field mappings against the emulators: custom fields and remaps from each
//! system's real source fields appear at once in lists, single reads and write answers with no
//! resync; validation names its `param`; the history records who changed what and any version
//! can be restored; another organization sees nothing; and a second API process sees a change
//! at its next request.

use ironbridge_emulators::System;
use serde_json::{Value, json};

use crate::support::{Res, TestApp};
use crate::writes::{Connected, connect, operations, run_batch};

/// A dotted path in a JSON value (`null` when absent).
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for part in path.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(part).unwrap_or(&Value::Null),
            Value::Array(a) => part
                .parse::<usize>()
                .ok()
                .and_then(|i| a.get(i))
                .unwrap_or(&Value::Null),
            _ => &Value::Null,
        };
    }
    cur
}

/// A source value as the `text` conversion shows it.
fn as_text(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        other => other.clone(),
    }
}

impl Connected {
    async fn conn_id(&self) -> String {
        let me = self.app.get(&self.token, "/v1/connection").await;
        me.body["id"].as_str().unwrap().to_string()
    }

    async fn put_mapping(&self, key: &str, path: &str, body: Value) -> Res {
        let req = self
            .app
            .client
            .put(self.app.url(path))
            .bearer_auth(key)
            .json(&body);
        self.app.send(req).await
    }

    async fn orders(&self) -> Vec<Value> {
        let (all, _) = self
            .app
            .all(
                &self.token,
                "/v1/purchase-orders?page_size=200&include_remote_data=true",
            )
            .await;
        all
    }
}

/// The source fields each system's emulator fills on purchase orders and their lines, and
/// one it has that the default mapping leaves out.
fn fields_of(system: System) -> (&'static str, &'static str) {
    match system {
        System::NetSuite => ("custbody_ib_priority", "custcol_ib_project_code"),
        System::SapS4Hana => ("YY1_Priority_PDH", "YY1_ProjectCode_PDI"),
        _ => ("purchaser", "description"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_fields_and_remaps_show_at_once_in_reads_and_writes() {
    for system in [System::NetSuite, System::SapS4Hana, System::BusinessCentral] {
        let c = connect(system).await;
        let id = c.conn_id().await;
        let base = format!("/v1/connections/{id}/field-mappings/purchase_order");
        let (header, line) = fields_of(system);
        let before = c.orders().await;
        assert!(!before.is_empty(), "{system:?}: orders synced");
        // The source fields are discovered from the stored payloads.
        let fields = c
            .app
            .get(
                &c.key,
                &format!("/v1/connections/{id}/remote-fields?entity=purchase_order"),
            )
            .await;
        assert_eq!(fields.status, 200, "{system:?}: {}", fields.body);
        let has = |scope: &str, path: &str| {
            fields.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["scope"] == scope && f["path"] == path)
        };
        assert!(has("record", header), "{system:?}: {header} discovered");
        // SAP and Business Central describe their fields ($metadata); NetSuite's metadata
        // catalog is not read.
        let describes = system != System::NetSuite;
        assert_eq!(fields.body["described_by_source"], describes, "{system:?}");
        let field = |scope: &str, path: &str| {
            fields.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["scope"] == scope && f["path"] == path)
                .cloned()
                .unwrap()
        };
        assert_eq!(
            field("record", header)["described"],
            describes,
            "{system:?}"
        );
        assert_eq!(
            field("line_items", line)["described"],
            describes,
            "{system:?}"
        );
        if system == System::SapS4Hana {
            assert_eq!(field("record", header)["label"], header);
        }
        let only_described: Vec<&Value> = fields.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["described"] == true && f["records_with_value"] == 0)
            .collect();
        if system == System::SapS4Hana {
            // A field the system describes but no stored record has a value in can be
            // mapped; a path it neither describes nor stores cannot.
            let first = only_described
                .first()
                .expect("a described field without values");
            let path = first["path"].as_str().unwrap().to_string();
            let target = if first["scope"] == "record" {
                "custom_fields.ib_described"
            } else {
                "line_items.custom_fields.ib_described"
            };
            let res = c
                .put_mapping(
                    &c.key,
                    &format!("{base}/{target}"),
                    json!({"source_path": path}),
                )
                .await;
            assert_eq!(res.status, 200, "{path}: {}", res.body);
            let res = c
                .put_mapping(
                    &c.key,
                    &format!("{base}/custom_fields.ib_nothing"),
                    json!({"source_path": "YY1_NoSuchField"}),
                )
                .await;
            assert_eq!(
                res.assert_error(422, "VALIDATION_ERROR")["param"],
                "source_path"
            );
            let res = c.app.delete(&c.key, &format!("{base}/{target}")).await;
            assert_eq!(res.status, 200, "{}", res.body);
        }
        assert!(
            has("line_items", line),
            "{system:?}: line {line} discovered"
        );
        let mapping = c.app.get(&c.key, &base).await;
        assert_eq!(mapping.status, 200, "{system:?}: {}", mapping.body);
        let list_path = mapping.body["lists"][0]["source_path"]
            .as_str()
            .unwrap()
            .to_string();

        // A custom field from a header field, one from a line field, and a remap of each.
        for (target, path) in [
            ("custom_fields.ib_header", header),
            ("line_items.custom_fields.ib_line", line),
            ("memo", header),
            ("line_items.description", line),
        ] {
            let res = c
                .put_mapping(
                    &c.key,
                    &format!("{base}/{target}"),
                    json!({"source_path": path, "conversion": {"type": "text"}}),
                )
                .await;
            assert_eq!(res.status, 200, "{system:?} {target}: {}", res.body);
            assert_eq!(res.body["dry_run"], false);
            assert_eq!(res.body["mapping"]["origin"], "override");
            assert!(res.body["records_checked"].as_u64().unwrap() > 0);
        }
        let after = c.orders().await;
        assert_eq!(after.len(), before.len());
        for (old, new) in before.iter().zip(&after) {
            assert_eq!(old["id"], new["id"]);
            // Applied at read time: nothing was rewritten.
            assert_eq!(old["modified_at"], new["modified_at"], "{system:?}");
            let raw = &new["remote_data"];
            let want = as_text(at(raw, header));
            assert_eq!(new["custom_fields"]["ib_header"], want, "{system:?}");
            assert_eq!(new["memo"], want, "{system:?}");
            // The default custom fields are still there.
            for (k, v) in old["custom_fields"].as_object().unwrap() {
                assert_eq!(&new["custom_fields"][k], v, "{system:?}: {k} kept");
            }
            let sources = at(raw, &list_path).as_array().cloned().unwrap_or_default();
            let lines = new["line_items"].as_array().unwrap();
            assert_eq!(lines.len(), sources.len(), "{system:?}");
            for (l, s) in lines.iter().zip(&sources) {
                assert_eq!(l["custom_fields"]["ib_line"], as_text(at(s, line)));
                assert_eq!(l["description"], as_text(at(s, line)));
            }
        }
        // A single read shows the same.
        let one = &after[0];
        let read = c
            .app
            .get(
                &c.token,
                &format!("/v1/purchase-orders/{}", one["id"].as_str().unwrap()),
            )
            .await;
        assert_eq!(read.status, 200);
        assert_eq!(read.body["custom_fields"], one["custom_fields"]);
        assert_eq!(read.body["memo"], one["memo"]);
        assert!(read.body.get("remote_data").is_none());
        // A write's answer is shown as reads show it.
        let created = c
            .send(
                reqwest::Method::POST,
                "/v1/purchase-orders",
                None,
                &c.order(2),
            )
            .await;
        assert_eq!(created.status, 201, "{system:?}: {}", created.body);
        assert!(
            created.body["custom_fields"]
                .as_object()
                .unwrap()
                .contains_key("ib_header"),
            "{system:?}: {}",
            created.body
        );
        let line_custom = &created.body["line_items"][0]["custom_fields"];
        assert!(line_custom.as_object().unwrap().contains_key("ib_line"));

        // Deleting the overrides restores the defaults.
        for target in [
            "custom_fields.ib_header",
            "line_items.custom_fields.ib_line",
            "memo",
            "line_items.description",
        ] {
            let res = c.app.delete(&c.key, &format!("{base}/{target}")).await;
            assert_eq!(res.status, 200, "{system:?} {target}: {}", res.body);
            assert_eq!(res.body["mapping"]["origin"], "default");
        }
        let restored = c.orders().await;
        for old in &before {
            let new = restored.iter().find(|r| r["id"] == old["id"]).unwrap();
            assert_eq!(old, new, "{system:?}: defaults again");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_validated_with_their_param_and_previewed_without_saving() {
    let c = connect(System::NetSuite).await;
    let id = c.conn_id().await;
    let base = format!("/v1/connections/{id}/field-mappings/purchase_order");
    let cases = [
        ("id", json!({"source_path": "memo"}), "target"),
        ("line_items.id", json!({"source_path": "line"}), "target"),
        (
            "memo",
            json!({"source_path": "no_such_field"}),
            "source_path",
        ),
        ("memo", json!({"source_path": "a..b"}), "source_path"),
        ("memo", json!({}), "source_path"),
        (
            "total_amount",
            json!({"source_path": "tranId", "conversion": {"type": "text"}}),
            "conversion.type",
        ),
        (
            "custom_fields.n",
            json!({"source_path": "tranId", "conversion": {"type": "decimal"}}),
            "conversion",
        ),
        (
            "status",
            json!({"source_path": "status", "conversion": {"type": "enum", "values": {"x": "teleported"}}}),
            "conversion.values",
        ),
        (
            "custom_fields.v",
            json!({"source_path": "entity.id", "conversion": {"type": "reference"}}),
            "conversion.entity",
        ),
        ("memo", json!({"remove": true}), "remove"),
        (
            "line_items.custom_fields.p",
            json!({"source_path": "tranId"}),
            "source_path",
        ),
    ];
    // A path naming no field (or an entity the system does not map) names nothing: 404.
    for (path, param) in [
        (format!("{base}/colour"), "target"),
        (format!("{base}/line_items.colour"), "target"),
        (format!("{base}/memo.x"), "target"),
        (
            format!("/v1/connections/{id}/field-mappings/shipment/memo"),
            "entity",
        ),
        (
            format!("/v1/connections/{id}/field-mappings/dragon/memo"),
            "entity",
        ),
    ] {
        let res = c
            .put_mapping(&c.key, &path, json!({"source_path": "memo"}))
            .await;
        assert_eq!(res.assert_error(404, "NOT_FOUND")["param"], param, "{path}");
    }
    for (target, body, param) in cases {
        let res = c
            .put_mapping(&c.key, &format!("{base}/{target}"), body)
            .await;
        let err = res.assert_error(422, "VALIDATION_ERROR");
        assert_eq!(err["param"], param, "{target}: {}", res.body);
    }
    // Listing an entity the system does not read lists nothing.
    let res = c
        .app
        .get(
            &c.key,
            &format!("/v1/connections/{id}/field-mappings?entity=shipment"),
        )
        .await;
    assert_eq!(res.body["data"], json!([]), "{}", res.body);
    // Unknown members of the body are refused as every body's are.
    let res = c
        .put_mapping(
            &c.key,
            &format!("{base}/memo"),
            json!({"source_path": "memo", "colour": 1}),
        )
        .await;
    res.assert_error(400, "INVALID_REQUEST");
    // Nothing was saved by any of them.
    let m = c.app.get(&c.key, &base).await;
    assert_eq!(m.body["version"], 0);

    // A dry run previews on stored records and saves nothing.
    let before = c.orders().await;
    let res = c
        .put_mapping(
            &c.key,
            &format!("{base}/custom_fields.priority?dry_run=true"),
            json!({"source_path": "custbody_ib_priority"}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["dry_run"], true);
    assert_eq!(res.body["version"], 0);
    let preview = res.body["preview"].as_array().unwrap();
    assert!(!preview.is_empty());
    for p in preview {
        assert_eq!(p["before"], Value::Null);
        let record = before.iter().find(|r| r["id"] == p["id"]).unwrap();
        assert_eq!(
            p["after"],
            as_text(at(&record["remote_data"], "custbody_ib_priority"))
        );
    }
    assert_eq!(c.orders().await, before, "a dry run changes no answer");
    assert_eq!(c.app.get(&c.key, &base).await.body["version"], 0);
    // Deleting an override that does not exist.
    let res = c.app.delete(&c.key, &format!("{base}/memo")).await;
    res.assert_error(404, "NOT_FOUND");
    // A removed default custom field is gone from answers, and back once deleted.
    let res = c
        .put_mapping(
            &c.key,
            &format!("{base}/custom_fields.custbody_ib_priority"),
            json!({"remove": true}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(res.body["mapping"]["removed"].as_bool().unwrap());
    for r in c.orders().await {
        assert!(r["custom_fields"].get("custbody_ib_priority").is_none());
    }
    let res = c
        .app
        .delete(
            &c.key,
            &format!("{base}/custom_fields.custbody_ib_priority"),
        )
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(c.orders().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_kept_with_its_author_and_any_version_restored() {
    let c = connect(System::NetSuite).await;
    let id = c.conn_id().await;
    let base = format!("/v1/connections/{id}/field-mappings/purchase_order");
    let set = |target: &'static str, path: &'static str| {
        let c = &c;
        let base = base.clone();
        async move {
            let res = c
                .put_mapping(
                    &c.key,
                    &format!("{base}/{target}"),
                    json!({"source_path": path}),
                )
                .await;
            assert_eq!(res.status, 200, "{}", res.body);
            res.body["version"].as_i64().unwrap()
        }
    };
    assert_eq!(set("custom_fields.a", "custbody_ib_priority").await, 1);
    assert_eq!(set("memo", "tranId").await, 2);
    // The same override again changes nothing and makes no version.
    assert_eq!(set("memo", "tranId").await, 2);
    let res = c
        .app
        .delete(&c.key, &format!("{base}/custom_fields.a"))
        .await;
    assert_eq!(res.body["version"], 3);
    let history = c
        .app
        .get(
            &c.key,
            &format!("/v1/connections/{id}/field-mappings/history?page_size=2"),
        )
        .await;
    assert_eq!(history.status, 200, "{}", history.body);
    let page = history.body["data"].as_array().unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(
        (page[0]["version"].clone(), page[0]["action"].clone()),
        (json!(3), json!("delete"))
    );
    assert_eq!(page[0]["before"]["target"], "custom_fields.a");
    assert_eq!(page[0]["after"], Value::Null);
    assert!(
        page[0]["actor"]
            .as_str()
            .unwrap()
            .starts_with("api_key:key_")
    );
    assert_eq!(page[1]["action"], "set");
    assert_eq!(page[1]["after"]["source_path"], "tranId");
    let cursor = history.body["next_cursor"].as_str().unwrap();
    let older = c
        .app
        .get(
            &c.key,
            &format!("/v1/connections/{id}/field-mappings/history?page_size=2&cursor={cursor}"),
        )
        .await;
    let page = older.body["data"].as_array().unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["version"], 1);
    assert_eq!(older.body["next_cursor"], Value::Null);

    // Back to version 1: its one custom field, and no remap.
    let res = c
        .app
        .post(
            &c.key,
            &format!("/v1/connections/{id}/field-mappings/revert"),
            json!({"version": 1}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["version"], 4);
    assert_eq!(res.body["reverted_to"], 1);
    for r in c.orders().await {
        assert_eq!(
            r["custom_fields"]["a"],
            as_text(at(&r["remote_data"], "custbody_ib_priority"))
        );
        assert_ne!(r["memo"], r["number"]);
    }
    // Back to the defaults, and a version that does not exist.
    let res = c
        .app
        .post(
            &c.key,
            &format!("/v1/connections/{id}/field-mappings/revert"),
            json!({"version": 0}),
        )
        .await;
    assert_eq!(res.body["overrides"], json!([]));
    for r in c.orders().await {
        assert!(r["custom_fields"].get("a").is_none());
    }
    let res = c
        .app
        .post(
            &c.key,
            &format!("/v1/connections/{id}/field-mappings/revert"),
            json!({"version": 99}),
        )
        .await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "version"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organization_can_neither_read_nor_change_mappings() {
    let c = connect(System::NetSuite).await;
    let id = c.conn_id().await;
    let (_, other) = c.app.org(1).await;
    let base = format!("/v1/connections/{id}/field-mappings");
    for path in [
        base.clone(),
        format!("{base}/purchase_order"),
        format!("{base}/history"),
        format!("/v1/connections/{id}/remote-fields?entity=purchase_order"),
    ] {
        c.app
            .get(&other, &path)
            .await
            .assert_error(404, "NOT_FOUND");
        // A connection token is not a management credential.
        c.app
            .get(&c.token, &path)
            .await
            .assert_error(403, "PERMISSION_DENIED");
    }
    c.put_mapping(
        &other,
        &format!("{base}/purchase_order/custom_fields.x"),
        json!({"source_path": "custbody_ib_priority"}),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    c.app
        .post(&other, &format!("{base}/revert"), json!({"version": 0}))
        .await
        .assert_error(404, "NOT_FOUND");
    assert_eq!(
        c.app.get(&c.key, &base).await.body["version"],
        0,
        "nothing changed"
    );
}

async fn page(app: &TestApp, token: &str) -> Vec<Value> {
    app.get(
        token,
        "/v1/purchase-orders?page_size=5&include_remote_data=true",
    )
    .await
    .body["data"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_api_process_sees_a_change_at_its_next_request() {
    let c = connect(System::NetSuite).await;
    let id = c.conn_id().await;
    let second = c.app.second_process().await;
    let base = format!("/v1/connections/{id}/field-mappings/purchase_order/custom_fields.p");
    assert!(
        page(&second, &c.token).await[0]["custom_fields"]
            .get("p")
            .is_none()
    );
    c.put_mapping(
        &c.key,
        &base,
        json!({"source_path": "custbody_ib_priority"}),
    )
    .await;
    for r in page(&second, &c.token).await {
        assert_eq!(
            r["custom_fields"]["p"],
            as_text(at(&r["remote_data"], "custbody_ib_priority"))
        );
    }
    // Changed again on the first process: the second's cached mapping is replaced.
    c.put_mapping(&c.key, &base, json!({"source_path": "tranId"}))
        .await;
    for r in page(&second, &c.token).await {
        assert_eq!(r["custom_fields"]["p"], r["number"]);
    }
    c.app.delete(&c.key, &base).await;
    assert!(
        page(&second, &c.token).await[0]["custom_fields"]
            .get("p")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_take_custom_fields_where_their_source_fields_are_writable() {
    let c = connect(System::NetSuite).await;
    let id = c.conn_id().await;
    let base = format!("/v1/connections/{id}/field-mappings/purchase_order");
    for (target, path) in [
        ("custom_fields.priority", "custbody_ib_priority"),
        ("custom_fields.vendor_name", "entity.refName"),
    ] {
        let res = c
            .put_mapping(
                &c.key,
                &format!("{base}/{target}"),
                json!({"source_path": path}),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
    }
    let mut order = c.order(3);
    order["custom_fields"] = json!({"priority": "High"});
    let created = c
        .send(reqwest::Method::POST, "/v1/purchase-orders", None, &order)
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["custom_fields"]["priority"], "High");
    // The source stored it under its own field: the record it answered with has it there.
    assert_eq!(
        created.body["custom_fields"]["custbody_ib_priority"],
        "High"
    );
    let read = c
        .app
        .get(
            &c.token,
            &format!(
                "/v1/purchase-orders/{}",
                created.body["id"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(read.body["custom_fields"]["priority"], "High");
    // A batch operation's write too, and its result shows the record as reads do.
    let mut batched = c.order(2);
    batched["custom_fields"] = json!({"priority": "Low"});
    let (batch, done) = run_batch(
        &c,
        json!({"operations": [{"action": "create", "entity": "purchase-orders", "data": batched}]}),
    )
    .await;
    assert_eq!(done["succeeded"], 1, "{done}");
    let ops = operations(&c, &batch, "").await;
    assert_eq!(
        ops[0]["record"]["custom_fields"]["priority"], "Low",
        "{}",
        ops[0]
    );
    // A unified field remapped to a writable source field is written there.
    let res = c
        .put_mapping(
            &c.key,
            &format!("{base}/memo"),
            json!({"source_path": "custbody_ib_priority"}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let mut remapped = c.order(1);
    remapped["memo"] = json!("Rush");
    let created = c
        .send(
            reqwest::Method::POST,
            "/v1/purchase-orders",
            None,
            &remapped,
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["memo"], "Rush");
    assert_eq!(
        created.body["custom_fields"]["custbody_ib_priority"],
        "Rush"
    );
    // A custom field read from a path the system cannot write is refused by name.
    order["custom_fields"] = json!({"vendor_name": "Someone"});
    let res = c
        .send(reqwest::Method::POST, "/v1/purchase-orders", None, &order)
        .await;
    let err = res.assert_error(422, "VALIDATION_ERROR");
    assert_eq!(err["param"], "custom_fields.vendor_name");
}
