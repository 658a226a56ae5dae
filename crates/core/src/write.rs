//! Writing back to the source system through the unified model: the caller's fields are
//! validated, references resolved to the source's keys, and the write sent through the
//! connection's runtime (its limits, breaker and token), refused first when the system's
//! descriptor does not list it.

use ironbridge_model::api::{PurchaseOrderIn, PurchaseOrderLineIn, PurchaseOrderPatch};
use ironbridge_model::{Entity, Timestamp};
use serde_json::Value;

use crate::connector::{
    ConnectorError, PurchaseOrderLineWrite, PurchaseOrderUpdate, PurchaseOrderWrite, UnifiedWrite,
};
use crate::runtime::ConnectionRuntime;
use crate::service::{ServiceError, invalid};
use crate::store::{ConnId, Store};
use crate::system::WriteOp;

fn check_date(param: &str, value: &Option<String>) -> Result<(), ServiceError> {
    if let Some(v) = value {
        let ok = v.len() == 10
            && time::Date::parse(
                v,
                &time::macros::format_description!("[year]-[month]-[day]"),
            )
            .is_ok();
        if !ok {
            return Err(invalid(
                param,
                format!("`{param}` must be a date in YYYY-MM-DD form"),
            ));
        }
    }
    Ok(())
}

/// Resolves one of our ids to the source system's key, or says which field is wrong.
async fn remote_key(
    store: &dyn Store,
    conn: &ConnId,
    entity: Entity,
    id: &str,
    param: &str,
) -> Result<String, ServiceError> {
    if Entity::from_id(id) != Some(entity) {
        return Err(invalid(
            param,
            format!(
                "`{param}` must be a {} id (`{}_…`)",
                entity.as_str(),
                entity.id_prefix()
            ),
        ));
    }
    match store.get_record(conn, entity, id, false).await? {
        Some(r) if !r.remote_was_deleted => Ok(r.remote_id),
        _ => Err(invalid(
            param,
            format!("no {} with id {id} in this connection", entity.as_str()),
        )),
    }
}

async fn lines(
    store: &dyn Store,
    conn: &ConnId,
    lines: &[PurchaseOrderLineIn],
) -> Result<Vec<PurchaseOrderLineWrite>, ServiceError> {
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.quantity <= rust_decimal::Decimal::ZERO {
            return Err(invalid(
                format!("line_items[{i}].quantity"),
                "quantity must be greater than zero",
            ));
        }
        if line
            .unit_price
            .is_some_and(|p| p < rust_decimal::Decimal::ZERO)
        {
            return Err(invalid(
                format!("line_items[{i}].unit_price"),
                "unit_price must not be negative",
            ));
        }
        check_date(
            &format!("line_items[{i}].expected_delivery_date"),
            &line.expected_delivery_date,
        )?;
        out.push(PurchaseOrderLineWrite {
            item_remote_id: remote_key(
                store,
                conn,
                Entity::ITEM,
                &line.item_id,
                &format!("line_items[{i}].item_id"),
            )
            .await?,
            quantity: line.quantity,
            unit_price: line.unit_price,
            description: line.description.clone(),
            unit_of_measure: line.unit_of_measure.clone(),
            expected_delivery_date: line.expected_delivery_date.clone(),
        });
    }
    Ok(out)
}

/// Validates a purchase order, resolves its references and asks the source, through the
/// connection's runtime, to create it. Returns the raw record the source answered with.
/// `reference` goes to the source with the order; with `unknown_before` (an earlier attempt
/// under the same reference may have reached the source) the order is looked for there by
/// it first, and written only if it is not found.
pub async fn create_purchase_order(
    store: &dyn Store,
    runtime: &ConnectionRuntime,
    conn: &ConnId,
    input: &PurchaseOrderIn,
    reference: Option<&str>,
    unknown_before: bool,
) -> Result<Value, ServiceError> {
    writable(runtime, Entity::PURCHASE_ORDER, WriteOp::Create)?;
    if input.line_items.is_empty() {
        return Err(invalid(
            "line_items",
            "a purchase order needs at least one line",
        ));
    }
    check_date("order_date", &input.order_date)?;
    check_date("expected_delivery_date", &input.expected_delivery_date)?;
    if let Some(c) = &input.currency
        && (c.len() != 3 || !c.chars().all(|ch| ch.is_ascii_uppercase()))
    {
        return Err(invalid(
            "currency",
            "currency must be a three-letter ISO 4217 code such as USD",
        ));
    }
    let order = PurchaseOrderWrite {
        number: input.number.clone(),
        vendor_remote_id: remote_key(store, conn, Entity::VENDOR, &input.vendor_id, "vendor_id")
            .await?,
        location_remote_id: match &input.location_id {
            Some(l) => Some(remote_key(store, conn, Entity::LOCATION, l, "location_id").await?),
            None => None,
        },
        currency: input.currency.clone(),
        order_date: input.order_date.clone(),
        expected_delivery_date: input.expected_delivery_date.clone(),
        memo: input.memo.clone(),
        custom_fields: input.custom_fields.clone().unwrap_or_default(),
        lines: lines(store, conn, &input.line_items).await?,
    };
    let mut write = UnifiedWrite::from(&order);
    write.reference = reference.map(str::to_string);
    crate::reconcile::create_once(runtime, Entity::PURCHASE_ORDER, &write, unknown_before)
        .await
        .map(|created| created.raw)
}

/// Refuses a write the connection's system does not support, before anything is resolved.
fn writable(runtime: &ConnectionRuntime, entity: Entity, op: WriteOp) -> Result<(), ServiceError> {
    if runtime.system().writes(entity, op) {
        return Ok(());
    }
    let verb = match op {
        WriteOp::Create => "create",
        WriteOp::Update => "update",
    };
    Err(ConnectorError::Unsupported(format!(
        "{} cannot {verb} {} records through Ironbridge",
        runtime.system().name,
        entity.spec().label
    ))
    .into())
}

/// Validates changes to a purchase order and asks the source, through the connection's
/// runtime, to apply them.
pub async fn update_purchase_order(
    store: &dyn Store,
    runtime: &ConnectionRuntime,
    conn: &ConnId,
    id: &str,
    patch: &PurchaseOrderPatch,
) -> Result<Option<(Value, Timestamp)>, ServiceError> {
    writable(runtime, Entity::PURCHASE_ORDER, WriteOp::Update)?;
    let Some(existing) = store
        .get_record(conn, Entity::PURCHASE_ORDER, id, false)
        .await?
    else {
        return Ok(None);
    };
    check_date("expected_delivery_date", &patch.expected_delivery_date)?;
    let update = PurchaseOrderUpdate {
        location_remote_id: match &patch.location_id {
            Some(l) => Some(remote_key(store, conn, Entity::LOCATION, l, "location_id").await?),
            None => None,
        },
        expected_delivery_date: patch.expected_delivery_date.clone(),
        memo: patch.memo.clone(),
        custom_fields: patch.custom_fields.clone().unwrap_or_default(),
        lines: match &patch.line_items {
            Some(l) if l.is_empty() => {
                return Err(invalid(
                    "line_items",
                    "a purchase order needs at least one line",
                ));
            }
            Some(l) => Some(lines(store, conn, l).await?),
            None => None,
        },
    };
    match runtime
        .update(
            Entity::PURCHASE_ORDER,
            &existing.remote_id,
            &UnifiedWrite::from(&update),
        )
        .await
    {
        Ok(raw) => Ok(Some((raw, existing.created_at))),
        Err(ServiceError::Connector(ConnectorError::NotFound)) => Ok(None),
        Err(e) => Err(e),
    }
}
