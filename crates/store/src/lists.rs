//! The list statements, built per filter shape so each has an index that serves both its
//! filters and its order. A filter left out is left out of the SQL: `($n IS NULL OR col =
//! $n)` would plan as a scan on SQLite, and on PostgreSQL once a statement's generic plan is
//! kept. Written once for both backends; [`plan_samples`] gives every shape to the plan tests.

use ironbridge_core::store::{
    ChangePosition, ChangeQuery, ConnId, DeliveryQuery, OrgId, PointQuery, RecordQuery,
};
use ironbridge_model::{Entity, Timestamp};

/// One bound value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

/// A statement and its values, in placeholder order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Statement {
    pub sql: String,
    pub args: Vec<Arg>,
}

/// Builds a `WHERE` clause, numbering placeholders as values are added.
struct Filter {
    clauses: Vec<String>,
    args: Vec<Arg>,
}

impl Filter {
    fn new() -> Self {
        Filter {
            clauses: Vec::new(),
            args: Vec::new(),
        }
    }

    /// Adds a value and returns its placeholder.
    fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    /// Adds a condition on one value: `template` has `{}` where the placeholder goes.
    fn cond(&mut self, template: &str, arg: Arg) {
        let p = self.arg(arg);
        self.clauses.push(template.replace("{}", &p));
    }

    fn text(&mut self, template: &str, value: &str) {
        self.cond(template, Arg::Text(value.to_string()));
    }

    fn raw(&mut self, clause: &str) {
        self.clauses.push(clause.to_string());
    }

    /// `SELECT columns FROM table WHERE … ORDER BY order LIMIT n`.
    fn select(mut self, columns: &str, table: &str, order: &str, limit: u32) -> Statement {
        let limit = self.arg(Arg::Int(i64::from(limit)));
        Statement {
            sql: format!(
                "SELECT {columns} FROM {table} WHERE {} ORDER BY {order} LIMIT {limit}",
                self.clauses.join(" AND ")
            ),
            args: self.args,
        }
    }
}

const RECORD_COLUMNS: &str = "id, remote_id, data, raw, raw_z, created_at, modified_at, remote_created_at, remote_updated_at, remote_was_deleted";
const RECORD_COLUMNS_NO_RAW: &str = "id, remote_id, data, NULL AS raw, NULL AS raw_z, created_at, modified_at, remote_created_at, remote_updated_at, remote_was_deleted";

/// The filters of a records query, shared by its page and its count.
fn record_filter(conn: &ConnId, q: &RecordQuery, paged: bool) -> Filter {
    let mut f = Filter::new();
    f.text("connection_id = {}", &conn.0);
    f.text("entity = {}", q.entity.as_str());
    if !q.include_deleted {
        f.raw("remote_was_deleted = FALSE");
    }
    let by_change = q.by_change();
    match (&q.after_id, paged) {
        // In change order the position is (modified_at, id), one row-value range of the
        // `records_changed` index; it is past `modified_after` already.
        (Some(id), true) if by_change => {
            let at = f.arg(Arg::Int(q.after_modified.map_or(0, Timestamp::micros)));
            let id = f.arg(Arg::Text(id.clone()));
            f.raw(&format!("(modified_at, id) > ({at}, {id})"));
        }
        (Some(id), true) => f.text("id > {}", id),
        _ => {}
    }
    let positioned = paged && q.after_id.is_some() && by_change;
    if let (Some(t), false) = (q.modified_after, positioned) {
        f.cond("modified_at > {}", Arg::Int(t.micros()));
    }
    if let Some(t) = q.modified_before {
        f.cond("modified_at < {}", Arg::Int(t.micros()));
    }
    f
}

/// A page of records: in id order, or in change order (`modified_at`, then id) when a
/// `modified_*` filter is given, so the filter and the order are one index range.
pub(crate) fn records(conn: &ConnId, q: &RecordQuery) -> Statement {
    let columns = if q.include_raw {
        RECORD_COLUMNS
    } else {
        RECORD_COLUMNS_NO_RAW
    };
    let order = if q.by_change() {
        "modified_at, id"
    } else {
        "id"
    };
    record_filter(conn, q, true).select(columns, "records", order, q.limit)
}

/// A page of a connection's change feed, in `(change_seq, entity, id)` order (one entity's:
/// `(change_seq, id)`), one row-value range of `records_feed` or `records_entity_feed`.
pub(crate) fn changes(conn: &ConnId, q: &ChangeQuery) -> Statement {
    let columns = if q.include_raw {
        RECORD_COLUMNS
    } else {
        RECORD_COLUMNS_NO_RAW
    };
    let columns = format!("{columns}, entity, change_seq, created_seq");
    let mut f = Filter::new();
    f.text("connection_id = {}", &conn.0);
    let seq = f.arg(Arg::Int(q.after.seq));
    let order = match q.entity {
        Some(entity) => {
            f.text("entity = {}", entity.as_str());
            let id = f.arg(Arg::Text(q.after.id.clone()));
            f.raw(&format!("(change_seq, id) > ({seq}, {id})"));
            "change_seq, id"
        }
        None => {
            let entity = f.arg(Arg::Text(q.after.entity.clone()));
            let id = f.arg(Arg::Text(q.after.id.clone()));
            f.raw(&format!(
                "(change_seq, entity, id) > ({seq}, {entity}, {id})"
            ));
            "change_seq, entity, id"
        }
    };
    // `seq` was added before the entity filter: its placeholder number stays valid.
    f.select(&columns, "records", order, q.limit)
}

/// A page of a connection's points of one entity, oldest first (the points of one instant in
/// series order). The stream and a named series are each found by a non-correlated subquery
/// on the connection, so the planner seeks with their values; a name the store does not know
/// matches nothing.
pub(crate) fn points(conn: &ConnId, q: &PointQuery) -> Statement {
    let mut f = Filter::new();
    let c = f.arg(Arg::Text(conn.0.clone()));
    let e = f.arg(Arg::Text(q.entity.as_str().to_string()));
    let stream =
        format!("(SELECT id FROM point_streams WHERE connection_id = {c} AND entity = {e})");
    let series_of = |f: &mut Filter, name: &str| {
        let n = f.arg(Arg::Text(name.to_string()));
        format!("(SELECT id FROM point_series WHERE stream = {stream} AND series_id = {n})")
    };
    f.raw(&format!("p.stream = {stream}"));
    if let Some(series) = &q.series_id {
        let s = series_of(&mut f, series);
        f.raw(&format!("p.series = {s}"));
    }
    if let Some(from) = q.from {
        f.cond("p.recorded_at >= {}", Arg::Int(from.micros()));
    }
    if let Some(until) = q.until {
        f.cond("p.recorded_at < {}", Arg::Int(until.micros()));
    }
    if let Some((at, series)) = &q.after {
        let t = f.arg(Arg::Int(at.micros()));
        let s = series_of(&mut f, series);
        f.raw(&format!(
            "(p.recorded_at > {t} OR (p.recorded_at = {t} AND p.series > {s}))"
        ));
    }
    f.select(
        "s.series_id, p.recorded_at, p.data, p.created_at",
        "points p JOIN point_series s ON s.id = p.series",
        "p.recorded_at, p.series",
        q.limit,
    )
}

/// How many records match a query's filters (its position and limit ignored).
pub(crate) fn count_records(conn: &ConnId, q: &RecordQuery) -> Statement {
    let f = record_filter(conn, q, false);
    Statement {
        sql: format!(
            "SELECT COUNT(*) FROM records WHERE {}",
            f.clauses.join(" AND ")
        ),
        args: f.args,
    }
}

/// A page of an organization's events, oldest first.
pub(crate) fn events(
    columns: &str,
    org: &OrgId,
    after_id: Option<&str>,
    connection: Option<&str>,
    event_type: Option<&str>,
    limit: u32,
) -> Statement {
    let mut f = Filter::new();
    f.text("org_id = {}", &org.0);
    if let Some(c) = connection {
        f.text("connection_id = {}", c);
    }
    if let Some(t) = event_type {
        f.text("type = {}", t);
    }
    if let Some(id) = after_id {
        f.text("id > {}", id);
    }
    f.select(columns, "events", "id", limit)
}

/// A page of an endpoint's deliveries, newest first.
pub(crate) fn deliveries(
    columns: &str,
    org: &OrgId,
    endpoint_id: &str,
    q: &DeliveryQuery,
) -> Statement {
    let mut f = Filter::new();
    f.text("org_id = {}", &org.0);
    f.text("endpoint_id = {}", endpoint_id);
    if let Some(s) = &q.status {
        f.text("status = {}", s);
    }
    if let Some(t) = &q.event_type {
        f.text("event_type = {}", t);
    }
    if let Some(id) = &q.before_id {
        f.text("id < {}", id);
    }
    f.select(columns, "webhook_deliveries", "id DESC", q.limit)
}

/// A page of an organization's delivery attempts, newest first.
pub(crate) fn attempts(
    columns: &str,
    org: &OrgId,
    endpoint_id: Option<&str>,
    delivery_id: Option<&str>,
    before_id: Option<&str>,
    limit: u32,
) -> Statement {
    let mut f = Filter::new();
    f.text("org_id = {}", &org.0);
    if let Some(e) = endpoint_id {
        f.text("endpoint_id = {}", e);
    }
    if let Some(d) = delivery_id {
        f.text("delivery_id = {}", d);
    }
    if let Some(id) = before_id {
        f.text("id < {}", id);
    }
    f.select(columns, "webhook_attempts", "id DESC", limit)
}

/// One shape of a list statement for the plan tests: its name, the statement with sample
/// values, and the columns its index must be searched by (`a|b`: either; the others may only
/// be tested on the rows that range yields).
pub(crate) type PlanSample = (String, Statement, Vec<&'static str>);

/// Every shape of every list statement, with sample values: the plan tests check that each
/// searches an index by its filters, never reads a whole table and never sorts what it pages.
pub(crate) fn plan_samples() -> Vec<PlanSample> {
    let conn = ConnId("conn_plan".into());
    let org = OrgId("org_plan".into());
    // Values inside the range the PostgreSQL plan test seeds, so its planner costs each
    // shape as a busy connection would see it.
    let at = Some(Timestamp(1_700_000_100_000_000));
    let mut out = Vec::new();
    for entity in [Entity::PURCHASE_ORDER, Entity::VENDOR] {
        for after_id in [None, Some("po_8".to_string())] {
            for (modified_after, modified_before) in [
                (None, None),
                (at, None),
                (None, at),
                (at, at.map(|t| t.plus_secs(200))),
            ] {
                for include_deleted in [false, true] {
                    let q = RecordQuery {
                        entity,
                        after_id: after_id.clone(),
                        after_modified: after_id.as_ref().and(at),
                        modified_after,
                        modified_before,
                        include_deleted,
                        include_raw: false,
                        limit: 101,
                    };
                    let name = format!(
                        "records entity={} after={} modified_after={} modified_before={} include_deleted={include_deleted}",
                        entity.as_str(),
                        after_id.is_some(),
                        modified_after.is_some(),
                        modified_before.is_some(),
                    );
                    let mut keyed = vec!["connection_id", "entity"];
                    if q.by_change() {
                        keyed.push("modified_at");
                    } else if q.after_id.is_some() {
                        keyed.push("id");
                    }
                    out.push((name.clone(), records(&conn, &q), keyed));
                    if after_id.is_none() {
                        let mut keyed = vec!["connection_id", "entity"];
                        if !include_deleted {
                            keyed.push("remote_was_deleted");
                        }
                        if q.by_change() {
                            keyed.push("modified_at");
                        }
                        out.push((format!("count {name}"), count_records(&conn, &q), keyed));
                    }
                }
            }
        }
    }
    let some = |on: bool, v: &'static str| on.then_some(v);
    for bits in 0..8u8 {
        let (c, t, a) = (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0);
        // Events of a connection are searched by it, or by type where both are given; else
        // by type, else by org.
        let mut keyed = match (c, t) {
            (true, true) => vec!["connection_id|type"],
            (true, false) => vec!["connection_id"],
            (false, true) => vec!["org_id", "type"],
            (false, false) => vec!["org_id"],
        };
        if a && !(c && t) {
            keyed.push("id");
        }
        out.push((
            format!("events connection={c} type={t} after={a}"),
            events(
                "id",
                &org,
                some(a, "evt_5"),
                some(c, "conn_1"),
                some(t, "sync.completed"),
                50,
            ),
            keyed,
        ));
        let q = DeliveryQuery {
            status: some(c, "failed").map(Into::into),
            event_type: some(t, "sync.completed").map(Into::into),
            before_id: some(a, "dlv_5").map(Into::into),
            limit: 50,
        };
        let mut keyed = vec!["endpoint_id"];
        if c {
            keyed.push("status");
        }
        if a {
            keyed.push("id");
        }
        out.push((
            format!("deliveries status={c} event_type={t} before={a}"),
            deliveries("id", &org, "whe_1", &q),
            keyed,
        ));
        let mut keyed = match (c, t) {
            (true, true) => vec!["delivery_id|endpoint_id"],
            (false, true) => vec!["delivery_id"],
            (true, false) => vec!["endpoint_id"],
            (false, false) => vec!["org_id"],
        };
        if a {
            keyed.push("id");
        }
        out.push((
            format!("attempts endpoint={c} delivery={t} before={a}"),
            attempts(
                "id",
                &org,
                some(c, "whe_1"),
                some(t, "dlv_1"),
                some(a, "att_5"),
                50,
            ),
            keyed,
        ));
    }
    for entity in [None, Some(Entity::PURCHASE_ORDER)] {
        for after in [
            ChangePosition::start(),
            ChangePosition {
                seq: 7,
                entity: "purchase_order".into(),
                id: "po_8".into(),
            },
        ] {
            let q = ChangeQuery {
                entity,
                after: after.clone(),
                include_raw: false,
                limit: 101,
            };
            let keyed = match entity {
                Some(_) => vec!["connection_id", "entity", "change_seq"],
                None => vec!["connection_id", "change_seq"],
            };
            out.push((
                format!("changes entity={} after={}", entity.is_some(), after.seq),
                changes(&conn, &q),
                keyed,
            ));
        }
    }
    // Vehicle locations: across vehicles or one, by time range, after a position.
    for series_id in [None, Some("vhc_7".to_string())] {
        for (from, until) in [(None, None), (at, None), (at, at.map(|t| t.plus_secs(600)))] {
            for after in [None, at.map(|t| (t.plus_secs(30), "vhc_8".to_string()))] {
                let q = PointQuery {
                    entity: Entity::VEHICLE_LOCATION,
                    series_id: series_id.clone(),
                    from,
                    until,
                    after: after.clone(),
                    limit: 501,
                };
                let keyed = if series_id.is_some() {
                    vec!["series"]
                } else {
                    vec!["stream"]
                };
                out.push((
                    format!(
                        "points series={} from={} until={} after={}",
                        series_id.is_some(),
                        from.is_some(),
                        until.is_some(),
                        after.is_some()
                    ),
                    points(&conn, &q),
                    keyed,
                ));
            }
        }
    }
    for (name, table) in [
        ("connections", "connections"),
        ("webhook endpoints", "webhook_endpoints"),
    ] {
        let mut f = Filter::new();
        f.text("org_id = {}", &org.0);
        f.text("id > {}", "x");
        out.push((
            name.to_string(),
            f.select("id", table, "id", 50),
            vec!["org_id", "id"],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query() -> RecordQuery {
        RecordQuery {
            entity: Entity::PURCHASE_ORDER,
            after_id: None,
            after_modified: None,
            modified_after: None,
            modified_before: None,
            include_deleted: false,
            include_raw: false,
            limit: 11,
        }
    }

    #[test]
    fn absent_filters_leave_the_sql_and_placeholders_follow_the_values() {
        let conn = ConnId("c".into());
        let s = records(&conn, &query());
        assert_eq!(
            s.sql,
            format!(
                "SELECT {RECORD_COLUMNS_NO_RAW} FROM records WHERE connection_id = $1 AND entity = $2 AND remote_was_deleted = FALSE ORDER BY id LIMIT $3"
            )
        );
        assert_eq!(s.args.len(), 3);
        let mut q = query();
        q.modified_after = Some(Timestamp(5));
        q.include_deleted = true;
        let s = records(&conn, &q);
        assert!(
            s.sql
                .ends_with("entity = $2 AND modified_at > $3 ORDER BY modified_at, id LIMIT $4"),
            "{}",
            s.sql
        );
        q.after_id = Some("po_9".into());
        q.after_modified = Some(Timestamp(7));
        let s = records(&conn, &q);
        assert!(
            s.sql
                .contains("(modified_at, id) > ($3, $4) ORDER BY modified_at, id LIMIT $5"),
            "{}",
            s.sql
        );
        assert_eq!(s.args[2..4], [Arg::Int(7), Arg::Text("po_9".into())]);
        let count = count_records(&conn, &q);
        assert!(count.sql.ends_with("modified_at > $3"), "{}", count.sql);
        assert_eq!(count.args.len(), 3);
    }
}
