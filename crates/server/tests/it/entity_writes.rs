//! Writes of vendors, items and purchase orders against each emulated system: creates and
//! updates through the unified model, `GET /v1/meta/{entity}` walked field by field against
//! the validation (every required field left out and every read-only field given is refused
//! by name, before the source hears of it), and each class of error with the source's own
//! answer: a business rule, a missing permission, a workflow state, an unsupported operation.

use std::sync::Arc;

use ironbridge_core::{Clock, ManualClock};
use ironbridge_emulators::System;
use ironbridge_engine::worker::{Worker, WorkerConfig};
use ironbridge_server::ServerConfig;
use ironbridge_testkit::emulated::Emulated;
use serde_json::{Map, Value, json};

use crate::support::{TestApp, test_webhook_config};

/// An app with one connection to an emulated system, synced once.
struct Connected {
    app: TestApp,
    /// The emulated source (none for the sandbox, which keeps nothing).
    source: Option<Emulated>,
    token: String,
}

impl Connected {
    async fn start(system: System) -> Connected {
        let source = Emulated::start(system, 7, 200).await;
        // NetSuite's connector keeps the emulator's (frozen) time: it refuses assertions from
        // another day. The others keep real time, which their rate budgets are measured in
        // (Business Central's 9 calls a second would never refill on a frozen clock).
        let source_clock: Arc<dyn Clock> = if system == System::NetSuite {
            Arc::new(ManualClock::new(source.now()))
        } else {
            Arc::new(ironbridge_core::SystemClock)
        };
        let app = TestApp::spawn_systems(
            ServerConfig {
                rate_limit_per_second: 0,
                ..ServerConfig::default()
            },
            test_webhook_config(Arc::default()),
            move |_| {
                ironbridge_engine::registry::builtin_for(
                    source_clock,
                    ironbridge_core::netguard::Egress::local(),
                )
            },
        )
        .await;
        let (_, key) = app.org(2).await;
        let mut settings = source.settings.clone();
        settings.insert("history_days".into(), json!(3650));
        let res = app
            .post(
                &key,
                "/v1/connections",
                json!({"system": source.system.id.as_str(), "settings": settings, "credentials": source.credentials}),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.body);
        let token = res.body["token"].as_str().unwrap().to_string();
        let clock: Arc<dyn Clock> = Arc::new(app.clock.clone());
        let worker = Worker::new(
            app.store.clone(),
            app.runtimes.clone(),
            clock,
            WorkerConfig::default(),
        );
        assert!(worker.run_once().await.unwrap(), "the initial sync ran");
        Connected {
            app,
            source: Some(source),
            token,
        }
    }

    /// A sandbox connection (synced as it is made).
    async fn sandbox() -> Connected {
        let app = TestApp::spawn().await;
        let (_, key) = app.org(1).await;
        let (_, token) = app.connection(&key, json!({})).await;
        Connected {
            app,
            source: None,
            token,
        }
    }

    fn source(&self) -> &Emulated {
        self.source.as_ref().expect("an emulated source")
    }

    async fn all(&self, path: &str) -> Vec<Value> {
        self.app.all(&self.token, path).await.0
    }

    /// The id of the first record of a list matching `pick`.
    async fn find(&self, path: &str, pick: impl Fn(&Value) -> bool) -> String {
        self.all(path)
            .await
            .iter()
            .find(|r| pick(r))
            .and_then(|r| r["id"].as_str())
            .unwrap_or_else(|| panic!("no matching record in {path}"))
            .to_string()
    }

    /// Writes (POST, PATCH, PUT, DELETE) the emulator has received so far.
    async fn writes(&self) -> Vec<Value> {
        let Some(source) = &self.source else {
            return Vec::new();
        };
        source
            .requests()
            .await
            .into_iter()
            .filter(|r| {
                r["method"] != "GET"
                    && r["method"] != "HEAD"
                    && !r["path"]
                        .as_str()
                        .is_some_and(|p| p.contains("token") || p.ends_with("/suiteql"))
            })
            .collect()
    }

    async fn settings(&self, patch: Value) {
        self.source().admin("PATCH", "/settings", Some(patch)).await;
    }
}

/// Existing records a write may refer to.
struct Refs {
    vendor: String,
    item: String,
    location: Option<String>,
}

async fn refs(c: &Connected) -> Refs {
    let vendor = c
        .find("/v1/vendors?page_size=500", |r| r["status"] == "active")
        .await;
    // In stock where the source says (the sandbox refuses an out-of-stock item).
    let item = c
        .find("/v1/items?page_size=500", |r| {
            r["status"] == "active" && r["quantity_available"] != "0"
        })
        .await;
    let location = c
        .all("/v1/locations?page_size=500")
        .await
        .iter()
        .find(|r| r["status"] == "active")
        .and_then(|r| r["id"].as_str())
        .map(str::to_string);
    Refs {
        vendor,
        item,
        location,
    }
}

/// A valid value of a meta field.
fn sample(field: &Value, refs: &Refs, unique: &str) -> Value {
    match field["type"].as_str().unwrap() {
        "string" => {
            let max = field["max_length"].as_u64().unwrap_or(64) as usize;
            json!(format!("T{unique}").chars().take(max).collect::<String>())
        }
        "decimal" => json!("2"),
        "boolean" => json!(true),
        "integer" => json!(1),
        "date" => json!("2027-01-15"),
        "datetime" => json!("2027-01-15T00:00:00Z"),
        "enum" => field["values"][0].clone(),
        "reference" => match field["references"].as_str().unwrap() {
            "vendor" => json!(refs.vendor),
            "item" => json!(refs.item),
            "location" => json!(refs.location.clone().unwrap_or_else(|| "loc_x".into())),
            other => panic!("a reference to {other}"),
        },
        "currency" => json!("USD"),
        "email" => json!("orders@example.com"),
        "object" => Value::Object(required_body(
            field["fields"].as_array().unwrap(),
            refs,
            unique,
        )),
        "array" => json!([required_body(
            field["fields"].as_array().unwrap(),
            refs,
            unique
        )]),
        "any" => json!({}),
        other => panic!("type {other}"),
    }
}

/// A body with every required field of `fields`, and nothing else.
fn required_body(fields: &[Value], refs: &Refs, unique: &str) -> Map<String, Value> {
    fields
        .iter()
        .filter(|f| f["required"] == true)
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                sample(f, refs, unique),
            )
        })
        .collect()
}

/// Expects a 422 `VALIDATION_ERROR` naming `param`.
fn refused(res: &crate::support::Res, param: &str, what: &str) {
    assert_eq!(
        (res.status, res.body["error"]["code"].as_str()),
        (422, Some("VALIDATION_ERROR")),
        "{what}: {}",
        res.body
    );
    assert_eq!(res.body["error"]["param"], param, "{what}: {}", res.body);
}

/// Walks the meta of one entity on one connection against its writes: each required field
/// left out and each read-only field given is refused by name, each field fixed at creation
/// is refused in an update, and a body of exactly the required fields is accepted.
async fn walk(c: &Connected, refs: &Refs, path: &str, existing: Option<&str>, unique: &str) {
    let app = &c.app;
    let meta = app.get(&c.token, &format!("/v1/meta/{path}")).await;
    assert_eq!(meta.status, 200, "{}", meta.body);
    let meta = meta.body;
    let fields = meta["fields"].as_array().unwrap().clone();
    let collection = format!("/v1/{path}");
    let before = c.writes().await.len();
    if meta["operations"]["create"] == true {
        let body = required_body(&fields, refs, unique);
        for f in fields.iter().filter(|f| f["required"] == true) {
            let name = f["name"].as_str().unwrap();
            let mut without = body.clone();
            without.remove(name);
            let res = app
                .post(&c.token, &collection, Value::Object(without))
                .await;
            refused(&res, name, &format!("{path} without {name}"));
            // Required fields of a list's elements.
            if f["type"] == "array" {
                for e in f["fields"].as_array().unwrap() {
                    if e["required"] != true {
                        continue;
                    }
                    let ename = e["name"].as_str().unwrap();
                    let mut partial = body.clone();
                    partial[name][0].as_object_mut().unwrap().remove(ename);
                    let res = app
                        .post(&c.token, &collection, Value::Object(partial))
                        .await;
                    refused(
                        &res,
                        &format!("{name}[0].{ename}"),
                        &format!("{path} element"),
                    );
                }
            }
        }
        for f in &fields {
            let name = f["name"].as_str().unwrap();
            if f["read_only"] == true {
                let mut with = body.clone();
                with.insert(name.into(), sample(f, refs, unique));
                let res = app.post(&c.token, &collection, Value::Object(with)).await;
                refused(&res, name, &format!("{path} with read-only {name}"));
            }
            if f["type"] == "array" {
                for e in f["fields"].as_array().unwrap() {
                    if e["read_only"] != true {
                        continue;
                    }
                    let ename = e["name"].as_str().unwrap();
                    let mut with = body.clone();
                    with[name][0]
                        .as_object_mut()
                        .unwrap()
                        .insert(ename.into(), sample(e, refs, unique));
                    let res = app.post(&c.token, &collection, Value::Object(with)).await;
                    refused(
                        &res,
                        &format!("{name}[0].{ename}"),
                        &format!("{path} with read-only element field"),
                    );
                }
            }
        }
        assert_eq!(
            c.writes().await.len(),
            before,
            "{path}: a refused write reached the source"
        );
        // The required fields are enough.
        let res = app.post(&c.token, &collection, Value::Object(body)).await;
        assert_eq!(
            res.status, 201,
            "{path} with its required fields: {}",
            res.body
        );
    }
    if meta["operations"]["update"] == true {
        let id = existing.unwrap();
        let before = c.writes().await.len();
        for f in &fields {
            let name = f["name"].as_str().unwrap();
            if f["updatable"] == true {
                continue;
            }
            let res = app
                .patch(
                    &c.token,
                    &format!("{collection}/{id}"),
                    json!({ name: sample(f, refs, unique) }),
                )
                .await;
            refused(&res, name, &format!("{path} update of {name}"));
        }
        assert_eq!(
            c.writes().await.len(),
            before,
            "{path}: a refused update reached the source"
        );
    }
}

async fn walk_every_entity(c: &Connected, unique: &str) {
    let refs = refs(c).await;
    let order = c.find("/v1/purchase-orders?page_size=200", |_| true).await;
    walk(c, &refs, "vendors", Some(&refs.vendor), unique).await;
    walk(c, &refs, "items", Some(&refs.item), unique).await;
    walk(c, &refs, "purchase-orders", Some(&order), unique).await;
    let locations = c.app.get(&c.token, "/v1/meta/locations").await;
    assert_eq!(
        locations.body["operations"],
        json!({"create": false, "update": false})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netsuite_meta_and_validation_agree() {
    let c = Connected::start(System::NetSuite).await;
    walk_every_entity(&c, "ns").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sap_meta_and_validation_agree() {
    let c = Connected::start(System::SapS4Hana).await;
    walk_every_entity(&c, "sap").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_central_meta_and_validation_agree() {
    let c = Connected::start(System::BusinessCentral).await;
    walk_every_entity(&c, "bc").await;
}

#[tokio::test]
async fn sandbox_meta_and_validation_agree() {
    let c = Connected::sandbox().await;
    walk_every_entity(&c, "sb").await;
}

#[tokio::test]
async fn the_sandbox_describes_its_order_writes_and_refuses_the_others_by_operation() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(1).await;
    let (_, token) = app.connection(&key, json!({})).await;
    let meta = app.get(&token, "/v1/meta/purchase-orders").await;
    assert_eq!(meta.status, 200, "{}", meta.body);
    assert_eq!(meta.body["entity"], "purchase_order");
    assert_eq!(meta.body["system"], "sandbox");
    assert_eq!(meta.body["custom_fields"]["any_name"], true);
    let lines = meta.body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "line_items")
        .unwrap();
    assert_eq!(
        (lines["type"].as_str(), lines["min_items"].as_u64()),
        (Some("array"), Some(1))
    );
    let vendors = app.get(&token, "/v1/meta/vendors").await;
    assert_eq!(
        vendors.body["operations"],
        json!({"create": false, "update": false})
    );
    assert_eq!(vendors.body["fields"], json!([]));
    let res = app
        .post(&token, "/v1/vendors", json!({"name": "Acme"}))
        .await;
    let err = res.assert_error(422, "UNSUPPORTED_OPERATION");
    assert_eq!(
        err["details"],
        json!({"operation": "create", "entity": "vendor"})
    );
    let vendor = app.get(&token, "/v1/vendors?page_size=1").await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app
        .patch(
            &token,
            &format!("/v1/vendors/{vendor}"),
            json!({"name": "Acme"}),
        )
        .await;
    let err = res.assert_error(422, "UNSUPPORTED_OPERATION");
    assert_eq!(
        err["details"],
        json!({"operation": "update", "entity": "vendor"})
    );
    let res = app.get(&token, "/v1/meta/trucks").await;
    assert_eq!(res.assert_error(404, "NOT_FOUND")["param"], "entity");
    // A custom field by any name; a line's custom fields are read-only.
    let item = app.get(&token, "/v1/items?page_size=1").await.body["data"][0]["id"].clone();
    let res = app
        .post(
            &token,
            "/v1/purchase-orders",
            json!({"vendor_id": vendor, "line_items": [{"item_id": item, "quantity": "1", "custom_fields": {}}]}),
        )
        .await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "line_items[0].custom_fields"
    );
    // An amount past what a decimal holds is refused like an ERP refuses it, never a panic.
    let vendors = app.get(&token, "/v1/vendors?page_size=100").await.body["data"].clone();
    let items = app.get(&token, "/v1/items?page_size=100").await.body["data"].clone();
    let mut orderable = None;
    'find: for v in vendors.as_array().unwrap() {
        for i in items.as_array().unwrap() {
            let res = app
                .post(
                    &token,
                    "/v1/purchase-orders",
                    json!({"vendor_id": v["id"], "line_items": [{"item_id": i["id"], "quantity": "1"}]}),
                )
                .await;
            if res.status == 201 {
                orderable = Some((v["id"].clone(), i["id"].clone()));
                break 'find;
            }
        }
    }
    let (vendor, item) = orderable.expect("an orderable vendor and item");
    let huge = "999999999999999.9999999999";
    let res = app
        .post(
            &token,
            "/v1/purchase-orders",
            json!({"vendor_id": vendor, "line_items": [{"item_id": item, "quantity": huge, "unit_price": huge}]}),
        )
        .await;
    let err = res.assert_error(422, "BUSINESS_RULE_VIOLATION");
    assert_eq!(err["param"], "line_items[0].quantity");
    assert_eq!(err["details"]["remote_code"], "AMOUNT_TOO_LARGE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netsuite_vendors_and_items_are_created_and_updated() {
    let c = Connected::start(System::NetSuite).await;
    let app = &c.app;
    let res = app
        .post(
            &c.token,
            "/v1/vendors",
            json!({"name": "Northwind Traders", "email": "ap@northwind.example", "phone": "+1 555 0100", "currency": "EUR"}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let vendor = &res.body;
    assert_eq!(vendor["name"], "Northwind Traders");
    assert_eq!(vendor["email"], "ap@northwind.example");
    assert_eq!(vendor["currency"], "EUR");
    assert_eq!(vendor["status"], "active");
    assert!(vendor["id"].as_str().unwrap().starts_with("vnd_"));
    let remote = vendor["remote_id"].as_str().unwrap().to_string();
    // The write is stored at once by the integrator's work; here it is read by the next sync,
    // so update a synced vendor.
    let synced = c
        .find("/v1/vendors?page_size=500", |r| r["status"] == "active")
        .await;
    let res = app
        .patch(
            &c.token,
            &format!("/v1/vendors/{synced}"),
            json!({"status": "inactive", "phone": "+1 555 0199"}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["status"], "inactive");
    assert_eq!(res.body["phone"], "+1 555 0199");
    assert_eq!(res.body["id"], synced.as_str());

    let res = app
        .post(
            &c.token,
            "/v1/items",
            json!({"code": "NW-BOLT-10", "name": "Bolt M10", "description": "Hex bolt M10 x 40", "unit_cost": "0.35", "item_type": "inventory"}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(res.body["code"], "NW-BOLT-10");
    assert_eq!(res.body["unit_cost"], "0.35");
    assert_eq!(res.body["item_type"], "inventory");
    let item = c
        .find("/v1/items?page_size=500", |r| r["status"] == "active")
        .await;
    let res = app
        .patch(
            &c.token,
            &format!("/v1/items/{item}"),
            json!({"name": "Renamed", "unit_cost": 12}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        (res.body["name"].as_str(), res.body["unit_cost"].as_str()),
        (Some("Renamed"), Some("12"))
    );

    let writes: Vec<String> = c
        .writes()
        .await
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            )
        })
        .collect();
    let vendor_remote: String = synced_remote(&c, "/v1/vendors", &synced).await;
    let item_remote: String = synced_remote(&c, "/v1/items", &item).await;
    assert_eq!(
        writes,
        [
            "POST /services/rest/record/v1/vendor".to_string(),
            format!("PATCH /services/rest/record/v1/vendor/{vendor_remote}"),
            "POST /services/rest/record/v1/inventoryItem".to_string(),
            format!("PATCH /services/rest/record/v1/inventoryItem/{item_remote}"),
        ]
    );
    assert!(!remote.is_empty());
}

/// A vendor blocked for purchasing through the API (the last active one).
async fn blocked_vendor(c: &Connected) -> String {
    let vendors = c.all("/v1/vendors?page_size=500").await;
    let id = vendors
        .iter()
        .rev()
        .find(|r| r["status"] == "active")
        .and_then(|r| r["id"].as_str())
        .unwrap()
        .to_string();
    let res = c
        .app
        .patch(
            &c.token,
            &format!("/v1/vendors/{id}"),
            json!({"status": "inactive"}),
        )
        .await;
    assert_eq!(res.body["status"], "inactive", "{}", res.body);
    id
}

async fn synced_remote(c: &Connected, collection: &str, id: &str) -> String {
    c.app
        .get(&c.token, &format!("{collection}/{id}"))
        .await
        .body["remote_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sap_suppliers_and_products_are_created_and_updated() {
    let c = Connected::start(System::SapS4Hana).await;
    let app = &c.app;
    let res = app
        .post(
            &c.token,
            "/v1/vendors",
            json!({"name": "Contoso Metall GmbH", "status": "inactive"}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(res.body["name"], "Contoso Metall GmbH");
    assert_eq!(res.body["status"], "inactive");
    let code = res.body["code"].as_str().unwrap().to_string();
    assert_eq!(res.body["remote_id"], code.as_str());
    let synced = c
        .find("/v1/vendors?page_size=500", |r| r["status"] == "active")
        .await;
    let res = app
        .patch(
            &c.token,
            &format!("/v1/vendors/{synced}"),
            json!({"name": "Renamed Supplier", "status": "inactive"}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        (res.body["name"].as_str(), res.body["status"].as_str()),
        (Some("Renamed Supplier"), Some("inactive"))
    );

    let res = app
        .post(
            &c.token,
            "/v1/items",
            json!({"code": "TG-2001", "name": "Trading good", "item_type": "service", "unit_of_measure": "H"}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(res.body["code"], "TG-2001");
    assert_eq!(res.body["name"], "Trading good");
    assert_eq!(res.body["item_type"], "service");
    assert_eq!(res.body["unit_of_measure"], "H");
    let item = c
        .find("/v1/items?page_size=500", |r| r["status"] == "active")
        .await;
    let res = app
        .patch(
            &c.token,
            &format!("/v1/items/{item}"),
            json!({"name": "New name", "status": "inactive"}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        (res.body["name"].as_str(), res.body["status"].as_str()),
        (Some("New name"), Some("inactive"))
    );
    let writes: Vec<String> = c
        .writes()
        .await
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            )
        })
        .collect();
    let bp = "/sap/opu/odata/sap/API_BUSINESS_PARTNER";
    let product = "/sap/opu/odata/sap/API_PRODUCT_SRV";
    let vendor_key = synced_remote(&c, "/v1/vendors", &synced).await;
    let item_key = synced_remote(&c, "/v1/items", &item).await;
    assert_eq!(
        writes,
        [
            format!("POST {bp}/A_BusinessPartner"),
            format!("PATCH {bp}/A_BusinessPartner('{vendor_key}')"),
            format!("PATCH {bp}/A_Supplier('{vendor_key}')"),
            format!("POST {product}/A_Product"),
            format!("PATCH {product}/A_Product('{item_key}')"),
            format!("PATCH {product}/A_ProductDescription(Product='{item_key}',Language='EN')"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_central_vendors_and_items_are_created_and_updated() {
    let c = Connected::start(System::BusinessCentral).await;
    let app = &c.app;
    let res = app
        .post(
            &c.token,
            "/v1/vendors",
            json!({"code": "V90001", "name": "Fabrikam Inc.", "email": "ap@fabrikam.example", "tax_id": "US-99-1234567", "currency": "USD",
                "address": {"line1": "1 Main St", "city": "Redmond", "state": "WA", "postal_code": "98052", "country": "US"}}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let v = &res.body;
    assert_eq!(v["code"], "V90001");
    assert_eq!(v["name"], "Fabrikam Inc.");
    assert_eq!(v["tax_id"], "US-99-1234567");
    assert_eq!(v["address"]["city"], "Redmond");
    assert_eq!(v["status"], "active");
    let synced = c
        .find("/v1/vendors?page_size=500", |r| r["status"] == "active")
        .await;
    let res = app
        .patch(
            &c.token,
            &format!("/v1/vendors/{synced}"),
            json!({"status": "inactive", "address": {"city": "Fargo"}}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["status"], "inactive");
    assert_eq!(res.body["address"]["city"], "Fargo");

    let res = app
        .post(
            &c.token,
            "/v1/items",
            json!({"name": "Consulting hour", "item_type": "service", "unit_of_measure": "HOUR", "unit_cost": "80"}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(res.body["item_type"], "service");
    assert_eq!(res.body["unit_cost"], "80");
    assert!(
        res.body["code"].as_str().unwrap().starts_with("ITEM-"),
        "{}",
        res.body
    );
    let item = c
        .find("/v1/items?page_size=500", |r| r["status"] == "active")
        .await;
    let res = app
        .patch(
            &c.token,
            &format!("/v1/items/{item}"),
            json!({"status": "inactive", "unit_cost": 3.5}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        (res.body["status"].as_str(), res.body["unit_cost"].as_str()),
        (Some("inactive"), Some("3.5"))
    );
    // Updates carry the ETag just read.
    let patches: Vec<Value> = c
        .writes()
        .await
        .into_iter()
        .filter(|r| r["method"] == "PATCH")
        .collect();
    assert_eq!(patches.len(), 2);
    assert!(
        patches.iter().all(|r| r["headers"]["if-match"]
            .as_str()
            .is_some_and(|t| t.starts_with("W/"))),
        "{patches:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netsuite_errors_say_exactly_what_is_wrong() {
    let c = Connected::start(System::NetSuite).await;
    let app = &c.app;
    let refs = refs(&c).await;
    // A business rule of the source: an inactive vendor, a duplicate vendor name.
    let blocked = blocked_vendor(&c).await;
    let res = app
        .post(
            &c.token,
            "/v1/purchase-orders",
            json!({"vendor_id": blocked, "line_items": [{"item_id": refs.item, "quantity": 1}]}),
        )
        .await;
    let err = res.assert_error(422, "BUSINESS_RULE_VIOLATION");
    assert_eq!(
        (
            err["param"].as_str(),
            err["details"]["remote_code"].as_str()
        ),
        (Some("vendor_id"), Some("INVALID_CONTENT"))
    );
    let taken = app
        .get(&c.token, &format!("/v1/vendors/{}", refs.vendor))
        .await
        .body["name"]
        .clone();
    let res = app
        .post(&c.token, "/v1/vendors", json!({"name": taken}))
        .await;
    let err = res.assert_error(422, "BUSINESS_RULE_VIOLATION");
    assert_eq!(
        (
            err["param"].as_str(),
            err["details"]["remote_code"].as_str()
        ),
        (Some("name"), Some("DUP_ENTITY"))
    );
    // A value the description refuses never reaches NetSuite.
    let res = app
        .post(&c.token, "/v1/vendors", json!({"name": "x".repeat(84)}))
        .await;
    assert_eq!(res.assert_error(422, "VALIDATION_ERROR")["param"], "name");
    let res = app
        .post(
            &c.token,
            "/v1/vendors",
            json!({"name": "Ok", "custom_fields": {"custbody_x": 1}}),
        )
        .await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "custom_fields.custbody_x"
    );
    // The role may not create vendors.
    c.settings(json!({"denied_record_types": ["vendor"]})).await;
    let res = app
        .post(&c.token, "/v1/vendors", json!({"name": "Denied Ltd"}))
        .await;
    let err = res.assert_error(403, "PERMISSION_DENIED");
    assert_eq!(err["details"]["remote_code"], "INSUFFICIENT_PERMISSION");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("Lists -> Vendors"),
        "{err}"
    );
    // The connection is still usable: a permission is not a credential.
    assert_eq!(
        app.get(&c.token, "/v1/connection").await.body["status"],
        "online"
    );
    c.settings(json!({"denied_record_types": []})).await;
    // A closed order cannot change.
    let closed = c
        .find("/v1/purchase-orders?page_size=200", |r| {
            r["remote_status"] == "Closed"
        })
        .await;
    let res = app
        .patch(
            &c.token,
            &format!("/v1/purchase-orders/{closed}"),
            json!({"memo": "late"}),
        )
        .await;
    assert_eq!(
        res.assert_error(409, "STATE_CONFLICT")["details"]["remote_code"],
        "USER_ERROR"
    );
    // An update NetSuite cannot make: an expected date without the lines that carry it.
    let open = c
        .find("/v1/purchase-orders?page_size=200", |r| {
            r["remote_status"] != "Closed"
        })
        .await;
    let res = app
        .patch(
            &c.token,
            &format!("/v1/purchase-orders/{open}"),
            json!({"expected_delivery_date": "2027-02-01"}),
        )
        .await;
    res.assert_error(422, "UNSUPPORTED_OPERATION");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sap_errors_say_exactly_what_is_wrong() {
    let c = Connected::start(System::SapS4Hana).await;
    let app = &c.app;
    let refs = refs(&c).await;
    let blocked = blocked_vendor(&c).await;
    let res = app
        .post(
            &c.token,
            "/v1/purchase-orders",
            json!({"vendor_id": blocked, "line_items": [{"item_id": refs.item, "quantity": 1}]}),
        )
        .await;
    let err = res.assert_error(422, "BUSINESS_RULE_VIOLATION");
    assert_eq!(
        (
            err["param"].as_str(),
            err["details"]["remote_code"].as_str()
        ),
        (Some("vendor_id"), Some("ME/046"))
    );
    let taken = app
        .get(&c.token, &format!("/v1/items/{}", refs.item))
        .await
        .body["code"]
        .clone();
    let res = app
        .post(
            &c.token,
            "/v1/items",
            json!({"code": taken, "item_type": "inventory", "unit_of_measure": "EA"}),
        )
        .await;
    let err = res.assert_error(422, "BUSINESS_RULE_VIOLATION");
    assert_eq!(
        (
            err["param"].as_str(),
            err["details"]["remote_code"].as_str()
        ),
        (Some("code"), Some("M3/351"))
    );
    // SAP keeps no e-mail on the supplier the mapping reads.
    let res = app
        .post(
            &c.token,
            "/v1/vendors",
            json!({"name": "Ok", "email": "a@b.example"}),
        )
        .await;
    let err = res.assert_error(422, "VALIDATION_ERROR");
    assert_eq!(err["param"], "email");
    assert!(
        err["message"].as_str().unwrap().contains("read-only"),
        "{err}"
    );
    c.settings(json!({"denied_entity_sets": ["A_BusinessPartner"]}))
        .await;
    let res = app
        .post(&c.token, "/v1/vendors", json!({"name": "Denied AG"}))
        .await;
    let err = res.assert_error(403, "PERMISSION_DENIED");
    assert_eq!(err["details"]["remote_code"], "/IWBEP/CM_MGW_RT/010");
    c.settings(json!({"denied_entity_sets": []})).await;
    // An order with the deletion code cannot change.
    let orders = c
        .all("/v1/purchase-orders?page_size=200&include_remote_data=true")
        .await;
    let closed = orders
        .iter()
        .find(|o| o["remote_data"]["PurchasingDocumentDeletionCode"] == "L")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app
        .patch(
            &c.token,
            &format!("/v1/purchase-orders/{closed}"),
            json!({"custom_fields": {"YY1_Priority_PDH": "High"}}),
        )
        .await;
    assert_eq!(
        res.assert_error(409, "STATE_CONFLICT")["details"]["remote_code"],
        "06/028"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_central_errors_say_exactly_what_is_wrong() {
    let c = Connected::start(System::BusinessCentral).await;
    let app = &c.app;
    let refs = refs(&c).await;
    let blocked = blocked_vendor(&c).await;
    let res = app
        .post(
            &c.token,
            "/v1/purchase-orders",
            json!({"vendor_id": blocked, "line_items": [{"item_id": refs.item, "quantity": 1}]}),
        )
        .await;
    let err = res.assert_error(422, "BUSINESS_RULE_VIOLATION");
    assert_eq!(
        (
            err["param"].as_str(),
            err["details"]["remote_code"].as_str()
        ),
        (Some("vendor_id"), Some("Application_DialogException"))
    );
    let taken = app
        .get(&c.token, &format!("/v1/vendors/{}", refs.vendor))
        .await
        .body["code"]
        .clone();
    let res = app
        .post(
            &c.token,
            "/v1/vendors",
            json!({"code": taken, "name": "Twin"}),
        )
        .await;
    let err = res.assert_error(422, "BUSINESS_RULE_VIOLATION");
    assert_eq!(
        (
            err["param"].as_str(),
            err["details"]["remote_code"].as_str()
        ),
        (Some("code"), Some("Internal_EntityWithSameKeyExists"))
    );
    // No note on a Business Central order, no custom fields in API v2.0.
    let res = app
        .post(
            &c.token,
            "/v1/purchase-orders",
            json!({"vendor_id": refs.vendor, "memo": "x", "line_items": [{"item_id": refs.item, "quantity": 1}]}),
        )
        .await;
    assert_eq!(res.assert_error(422, "VALIDATION_ERROR")["param"], "memo");
    let res = app
        .post(&c.token, "/v1/items", json!({"custom_fields": {"x": 1}}))
        .await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "custom_fields.x"
    );
    c.settings(json!({"denied_sets": ["items"]})).await;
    let res = app
        .post(&c.token, "/v1/items", json!({"name": "Denied"}))
        .await;
    let err = res.assert_error(403, "PERMISSION_DENIED");
    assert_eq!(err["details"]["remote_code"], "Internal_ServerError");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("TableData 27 Item Insert"),
        "{err}"
    );
    c.settings(json!({"denied_sets": []})).await;
    // A released order's lines cannot be replaced.
    let released = c
        .find("/v1/purchase-orders?page_size=200", |r| {
            r["remote_status"] == "Open"
        })
        .await;
    let res = app
        .patch(
            &c.token,
            &format!("/v1/purchase-orders/{released}"),
            json!({"line_items": [{"item_id": refs.item, "quantity": 2}]}),
        )
        .await;
    assert_eq!(
        res.assert_error(409, "STATE_CONFLICT")["details"]["remote_code"],
        "Application_FieldValidationException"
    );
}
