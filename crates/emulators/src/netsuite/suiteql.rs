//! SuiteQL (`POST /query/v1/suiteql`): the query is parsed with a real SQL parser, bound to the emulated
//! tables (transaction, transactionline, vendor, item, location, and the deletion log as
//! deletedrecord), answered from the sorted indexes where
//! `index` can prove the same rows or else run over the seeded data, ordered stably and paged with
//! `limit`/`offset`. Unsupported SQL gets NetSuite's error.

use std::cell::OnceCell;
use std::cmp::Ordering;
use std::fmt::Write as _;
use std::ops::Bound;
use std::rc::Rc;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use sqlparser::ast::{
    self, BinaryOperator, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr,
    JoinConstraint, JoinOperator, OrderByKind, SelectItem, SetExpr, Statement, TableFactor,
    UnaryOperator,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use super::auth::authorize;
use super::errors::NsError;
use super::qfilter::DateFormat;
use super::records::{
    COLLECTION_TYPE, check_page_aligned, page_links, paging, query_params, with_type,
};
use super::sqlval::{
    Session, Val, Zone, compare, display_datetime, offset_text, parse_timestamp, sort_cmp, to_date,
    value_to_char,
};
use super::{Ns, Settings};
use crate::common::clock::Millis;
use crate::common::datagen::{EMPLOYEES, Item, Location, PoStatus, PurchaseOrder, Vendor};
use crate::common::jsontext::{Members, json_str};
use crate::common::{Dataset, DeletedThrough, Deletion, RecordKind};

mod grouping;
mod index;

const PREFIX: &str = "Invalid search query. Detailed unprocessed description follows.";
/// Oracle's limit on reachable rows without SuiteAnalytics Connect.
const MAX_ROWS: usize = 100_000;

fn err(msg: impl Into<String>) -> NsError {
    NsError::bad_request(
        "INVALID_PARAMETER",
        format!("{PREFIX} Search error occurred: {}", msg.into()),
    )
}

fn unsupported() -> NsError {
    err("Invalid or unsupported search.")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tbl {
    Transaction,
    TransactionLine,
    Vendor,
    Item,
    Location,
    /// The deletion log (analytics data source): one row per deleted record.
    DeletedRecord,
    /// A subquery in FROM: its rows come from running it (`Plan::derived`).
    Derived,
}

impl Tbl {
    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "transaction" => Some(Tbl::Transaction),
            "transactionline" => Some(Tbl::TransactionLine),
            "vendor" => Some(Tbl::Vendor),
            "item" => Some(Tbl::Item),
            "location" => Some(Tbl::Location),
            "deletedrecord" => Some(Tbl::DeletedRecord),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Tbl::Transaction => "transaction",
            Tbl::TransactionLine => "transactionline",
            Tbl::Vendor => "vendor",
            Tbl::Item => "item",
            Tbl::Location => "location",
            Tbl::DeletedRecord => "deletedrecord",
            Tbl::Derived => "subquery",
        }
    }

    fn columns(self) -> &'static [&'static str] {
        match self {
            Tbl::Transaction => &[
                "id",
                "tranid",
                "trandate",
                "type",
                "recordtype",
                "entity",
                "status",
                "lastmodifieddate",
                "createddate",
                "memo",
                "currency",
                "exchangerate",
                "foreigntotal",
                "approvalstatus",
                "externalid",
                "custbody_ib_priority",
                "custbody_requestor",
                "location",
                "transactionnumber",
                "email",
            ],
            Tbl::TransactionLine => &[
                "id",
                "transaction",
                "linesequencenumber",
                "uniquekey",
                "mainline",
                "item",
                "itemtype",
                "quantity",
                "rate",
                "netamount",
                "memo",
                "location",
                "isclosed",
                "quantityshiprecv",
                "quantitybilled",
                "expectedreceiptdate",
                "custcol_ib_project_code",
            ],
            Tbl::Vendor => &[
                "id",
                "entityid",
                "companyname",
                "email",
                "phone",
                "isinactive",
                "datecreated",
                "lastmodifieddate",
                "currency",
            ],
            Tbl::Item => &[
                "id",
                "itemid",
                "displayname",
                "description",
                "cost",
                "itemtype",
                "isinactive",
                "createddate",
                "lastmodifieddate",
                "upccode",
            ],
            Tbl::Location => &["id", "name", "fullname", "isinactive"],
            // Resolved by name against the subquery's columns instead.
            Tbl::Derived => &[],
            Tbl::DeletedRecord => &[
                "context",
                "deletedby",
                "deleteddate",
                "iscustomlist",
                "iscustomrecord",
                "iscustomtransaction",
                "name",
                "recordid",
                "scriptid",
                "type",
            ],
        }
    }

    fn column(self, c: &str) -> Option<&'static str> {
        let c = c.to_ascii_lowercase();
        self.columns().iter().copied().find(|x| *x == c)
    }
}

#[derive(Debug, Clone, Copy)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy)]
enum ArOp {
    Add,
    Sub,
    Mul,
    Div,
    Concat,
}

#[derive(Debug, Clone, Copy)]
enum Func {
    ToDate,
    ToChar,
    Df,
    Upper,
    Lower,
    Nvl,
    /// `TO_TIMESTAMP_TZ(text, fmt)`: a timestamp with the zone the text names (else the session's).
    ToTimestampTz,
    /// `FROM_TZ(timestamp, zone)`.
    FromTz,
    /// `SYS_EXTRACT_UTC(datetime)`: the UTC wall-clock time of an instant.
    SysExtractUtc,
    /// `value AT TIME ZONE zone` (`AT LOCAL`: no second argument).
    AtTimeZone,
    /// `CAST(value AS DATE | TIMESTAMP [WITH [LOCAL] TIME ZONE])`.
    Cast(CastTo),
    SessionTimeZone,
    DbTimeZone,
    /// `TZ_OFFSET(zone)`: `+HH:MM` now.
    TzOffset,
    CurrentTimestamp,
    LocalTimestamp,
}

/// The datetime types `CAST` converts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CastTo {
    Date,
    Timestamp,
    WithTimeZone,
    WithLocalTimeZone,
}

/// A bound expression: columns resolved to (binding, column).
#[derive(Debug, Clone)]
enum E {
    Col(usize, &'static str),
    Lit(Val),
    Now,
    Cmp(Box<E>, CmpOp, Box<E>),
    And(Box<E>, Box<E>),
    Or(Box<E>, Box<E>),
    Not(Box<E>),
    Neg(Box<E>),
    Arith(Box<E>, ArOp, Box<E>),
    InList(Box<E>, Vec<E>, bool),
    Between(Box<E>, Box<E>, Box<E>, bool),
    IsNull(Box<E>, bool),
    Like(Box<E>, Box<E>, bool),
    Func(Func, Vec<E>),
    /// The `n`th column of a subquery's row.
    Out(usize),
    /// Oracle's `ROWNUM`: the row's number among those kept so far (set while filtering).
    RowNum,
    /// The value of aggregate `n` of `Plan::aggs` for the current group.
    Agg(usize),
}

/// An aggregate function call (`COUNT(*)` has no argument).
#[derive(Debug, Clone)]
struct Agg {
    f: AggFn,
    arg: Option<E>,
    distinct: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AggFn {
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

#[derive(Debug, Clone)]
enum Join {
    /// The bound table's `id` equals the key expression (a many-to-one lookup).
    Lookup {
        key: E,
        left: bool,
        filter: Option<E>,
    },
    /// `transactionline.transaction` equals the key (one order's lines, mainline included).
    Lines {
        key: E,
        left: bool,
        filter: Option<E>,
    },
}

#[derive(Debug, Clone)]
struct Binding {
    alias: String,
    table: Tbl,
    join: Option<Join>,
}

#[derive(Debug, Clone)]
enum Projection {
    Count(String),
    Columns(Vec<(String, E)>),
}

#[derive(Debug, Clone)]
struct Plan {
    bindings: Vec<Binding>,
    filter: Option<E>,
    order: Vec<(E, bool)>,
    projection: Projection,
    /// `SELECT DISTINCT`.
    distinct: bool,
    group_by: Vec<E>,
    having: Option<E>,
    /// Aggregate calls of the projection, HAVING and ORDER BY (`E::Agg` indexes them).
    aggs: Vec<Agg>,
    /// `ROWNUM` appears somewhere.
    rownum: bool,
    /// The subquery in FROM and its column names.
    derived: Option<Box<(Plan, Vec<String>)>>,
}

impl Plan {
    /// Whether the query must be run whole into memory (`grouping`): grouping, DISTINCT,
    /// ROWNUM and subqueries do not fit the keyed row path.
    fn materialized(&self) -> bool {
        self.distinct
            || self.rownum
            || self.derived.is_some()
            || !self.group_by.is_empty()
            || !self.aggs.is_empty()
            || self.having.is_some()
    }
}

struct Binder<'a> {
    bindings: &'a [Binding],
    /// Bindings visible so far (joins may only refer to earlier tables).
    visible: usize,
    aliases: &'a [(String, E)],
    /// The subquery's column names, when FROM is a subquery.
    derived: Option<&'a [String]>,
    /// Where aggregate calls are collected; `None` where SQL allows none (WHERE, ON).
    aggs: Option<&'a std::cell::RefCell<Vec<Agg>>>,
}

impl Binder<'_> {
    fn col(&self, alias: Option<&str>, name: &str) -> Result<E, NsError> {
        if alias.is_none() && name.eq_ignore_ascii_case("rownum") {
            return Ok(E::RowNum);
        }
        if let Some(names) = self.derived {
            if let Some(a) = alias
                && !self.bindings[0].alias.eq_ignore_ascii_case(a)
            {
                return Err(err(format!("Record '{a}' was not found.")));
            }
            if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(name)) {
                return Ok(E::Out(i));
            }
            if let Some((_, e)) = self
                .aliases
                .iter()
                .find(|(a, _)| alias.is_none() && a.eq_ignore_ascii_case(name))
            {
                return Ok(e.clone());
            }
            return Err(err(format!("Unknown identifier '{name}'.")));
        }
        match alias {
            Some(a) => {
                let (i, b) = self.bindings[..self.visible]
                    .iter()
                    .enumerate()
                    .find(|(_, b)| b.alias.eq_ignore_ascii_case(a))
                    .ok_or_else(|| err(format!("Record '{a}' was not found.")))?;
                let c = b.table.column(name).ok_or_else(|| {
                    err(format!(
                        "Field '{name}' for record '{}' was not found.",
                        b.table.name()
                    ))
                })?;
                Ok(E::Col(i, c))
            }
            None => {
                let lower = name.to_ascii_lowercase();
                if lower == "sysdate" || lower == "current_date" {
                    return Ok(E::Now);
                }
                let pseudo = match lower.as_str() {
                    "sessiontimezone" => Some(Func::SessionTimeZone),
                    "dbtimezone" => Some(Func::DbTimeZone),
                    "current_timestamp" => Some(Func::CurrentTimestamp),
                    "localtimestamp" => Some(Func::LocalTimestamp),
                    _ => None,
                };
                if let Some(f) = pseudo {
                    return Ok(E::Func(f, Vec::new()));
                }
                for (i, b) in self.bindings[..self.visible].iter().enumerate() {
                    if let Some(c) = b.table.column(name) {
                        return Ok(E::Col(i, c));
                    }
                }
                if let Some((_, e)) = self
                    .aliases
                    .iter()
                    .find(|(a, _)| a.eq_ignore_ascii_case(name))
                {
                    return Ok(e.clone());
                }
                let t = self
                    .bindings
                    .first()
                    .map_or("transaction", |b| b.table.name());
                Err(err(format!(
                    "Field '{name}' for record '{t}' was not found."
                )))
            }
        }
    }

    fn expr(&self, e: &ast::Expr) -> Result<E, NsError> {
        use ast::Expr as X;
        Ok(match e {
            X::Identifier(id) => self.col(None, &id.value)?,
            X::CompoundIdentifier(parts) if parts.len() == 2 => {
                self.col(Some(&parts[0].value), &parts[1].value)?
            }
            X::Value(v) => E::Lit(match &v.value {
                ast::Value::Number(n, _) => match n.parse::<i64>() {
                    Ok(i) => Val::Int(i),
                    Err(_) => Val::Dec(n.parse().map_err(|_| unsupported())?),
                },
                ast::Value::SingleQuotedString(s) => Val::Str(s.clone()),
                ast::Value::Null => Val::Null,
                _ => return Err(unsupported()),
            }),
            X::Nested(inner) => self.expr(inner)?,
            X::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => E::Not(Box::new(self.expr(expr)?)),
            X::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => E::Neg(Box::new(self.expr(expr)?)),
            X::BinaryOp { left, op, right } => {
                let (l, r) = (Box::new(self.expr(left)?), Box::new(self.expr(right)?));
                match op {
                    BinaryOperator::And => E::And(l, r),
                    BinaryOperator::Or => E::Or(l, r),
                    BinaryOperator::Eq => E::Cmp(l, CmpOp::Eq, r),
                    BinaryOperator::NotEq => E::Cmp(l, CmpOp::Ne, r),
                    BinaryOperator::Lt => E::Cmp(l, CmpOp::Lt, r),
                    BinaryOperator::LtEq => E::Cmp(l, CmpOp::Le, r),
                    BinaryOperator::Gt => E::Cmp(l, CmpOp::Gt, r),
                    BinaryOperator::GtEq => E::Cmp(l, CmpOp::Ge, r),
                    BinaryOperator::Plus => E::Arith(l, ArOp::Add, r),
                    BinaryOperator::Minus => E::Arith(l, ArOp::Sub, r),
                    BinaryOperator::Multiply => E::Arith(l, ArOp::Mul, r),
                    BinaryOperator::Divide => E::Arith(l, ArOp::Div, r),
                    BinaryOperator::StringConcat => E::Arith(l, ArOp::Concat, r),
                    _ => return Err(unsupported()),
                }
            }
            X::InList {
                expr,
                list,
                negated,
            } => E::InList(
                Box::new(self.expr(expr)?),
                list.iter()
                    .map(|x| self.expr(x))
                    .collect::<Result<_, _>>()?,
                *negated,
            ),
            X::Between {
                expr,
                negated,
                low,
                high,
            } => E::Between(
                Box::new(self.expr(expr)?),
                Box::new(self.expr(low)?),
                Box::new(self.expr(high)?),
                *negated,
            ),
            X::IsNull(x) => E::IsNull(Box::new(self.expr(x)?), false),
            X::IsNotNull(x) => E::IsNull(Box::new(self.expr(x)?), true),
            X::Like {
                negated,
                expr,
                pattern,
                escape_char: None,
                any: false,
            } => E::Like(
                Box::new(self.expr(expr)?),
                Box::new(self.expr(pattern)?),
                *negated,
            ),
            X::Function(f) if self.aggregate(f)?.is_some() => {
                let agg = self.aggregate(f)?.ok_or_else(unsupported)?;
                let Some(store) = self.aggs else {
                    return Err(err("Aggregate functions are not allowed here."));
                };
                let mut store = store.borrow_mut();
                store.push(agg);
                E::Agg(store.len() - 1)
            }
            X::Function(f) => {
                let name = f
                    .name
                    .0
                    .iter()
                    .map(|p| {
                        p.as_ident()
                            .map(|i| i.value.to_ascii_uppercase())
                            .unwrap_or_default()
                    })
                    .collect::<Vec<_>>()
                    .join(".");
                let args = self.args(&f.args)?;
                let (func, arity) = match name.as_str() {
                    "TO_DATE" | "TO_TIMESTAMP" => (Func::ToDate, 1..=2),
                    "TO_CHAR" => (Func::ToChar, 1..=2),
                    "TO_TIMESTAMP_TZ" => (Func::ToTimestampTz, 1..=2),
                    "FROM_TZ" => (Func::FromTz, 2..=2),
                    "SYS_EXTRACT_UTC" => (Func::SysExtractUtc, 1..=1),
                    "TZ_OFFSET" => (Func::TzOffset, 1..=1),
                    "CURRENT_TIMESTAMP" => (Func::CurrentTimestamp, 0..=0),
                    "LOCALTIMESTAMP" => (Func::LocalTimestamp, 0..=0),
                    "BUILTIN.DF" => (Func::Df, 1..=1),
                    "UPPER" => (Func::Upper, 1..=1),
                    "LOWER" => (Func::Lower, 1..=1),
                    "NVL" | "COALESCE" => (Func::Nvl, 2..=2),
                    _ => return Err(err(format!("Unknown function: {name}."))),
                };
                if !arity.contains(&args.len()) {
                    return Err(unsupported());
                }
                E::Func(func, args)
            }
            X::Cast {
                kind: ast::CastKind::Cast,
                expr,
                data_type,
                format: None,
            } => {
                use ast::{DataType, TimezoneInfo};
                let to = match data_type {
                    DataType::Date => CastTo::Date,
                    DataType::Timestamp(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
                        CastTo::Timestamp
                    }
                    DataType::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => {
                        CastTo::WithTimeZone
                    }
                    DataType::Custom(name, _)
                        if name
                            .to_string()
                            .eq_ignore_ascii_case("TIMESTAMP WITH LOCAL TIME ZONE") =>
                    {
                        CastTo::WithLocalTimeZone
                    }
                    _ => return Err(unsupported()),
                };
                E::Func(Func::Cast(to), vec![self.expr(expr)?])
            }
            X::AtTimeZone {
                timestamp,
                time_zone,
            } => {
                let zone = self.expr(time_zone)?;
                // `AT LOCAL` parses as the identifier LOCAL: the session's zone.
                let args = match &zone {
                    E::Lit(Val::Str(_)) => vec![self.expr(timestamp)?, zone],
                    _ => match time_zone.as_ref() {
                        ast::Expr::Identifier(i) if i.value.eq_ignore_ascii_case("local") => {
                            vec![self.expr(timestamp)?]
                        }
                        _ => vec![self.expr(timestamp)?, zone],
                    },
                };
                E::Func(Func::AtTimeZone, args)
            }
            _ => return Err(unsupported()),
        })
    }

    /// `COUNT`, `SUM`, `MIN`, `MAX`, `AVG` calls (with `DISTINCT`, or `COUNT(*)`) as aggregates;
    /// `None` for other functions.
    fn aggregate(&self, f: &ast::Function) -> Result<Option<Agg>, NsError> {
        let name = f.name.to_string().to_ascii_uppercase();
        let func = match name.as_str() {
            "COUNT" => AggFn::Count,
            "SUM" => AggFn::Sum,
            "MIN" => AggFn::Min,
            "MAX" => AggFn::Max,
            "AVG" => AggFn::Avg,
            _ => return Ok(None),
        };
        let FunctionArguments::List(l) = &f.args else {
            return Err(unsupported());
        };
        let distinct = matches!(
            l.duplicate_treatment,
            Some(ast::DuplicateTreatment::Distinct)
        );
        let arg = match l.args.as_slice() {
            [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)]
                if func == AggFn::Count && !distinct =>
            {
                None
            }
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] if l.clauses.is_empty() => {
                // An aggregate's argument is evaluated per row: no aggregates inside it.
                let inner = Binder {
                    aggs: None,
                    ..*self
                };
                Some(inner.expr(e)?)
            }
            _ => return Err(unsupported()),
        };
        Ok(Some(Agg {
            f: func,
            arg,
            distinct,
        }))
    }

    fn args(&self, a: &FunctionArguments) -> Result<Vec<E>, NsError> {
        match a {
            FunctionArguments::None => Ok(Vec::new()),
            FunctionArguments::List(l)
                if l.duplicate_treatment.is_none() && l.clauses.is_empty() =>
            {
                l.args
                    .iter()
                    .map(|x| match x {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => self.expr(e),
                        _ => Err(unsupported()),
                    })
                    .collect()
            }
            _ => Err(unsupported()),
        }
    }
}

fn is_count_star(e: &ast::Expr) -> bool {
    matches!(e, ast::Expr::Function(f)
        if f.name.to_string().eq_ignore_ascii_case("count")
        && matches!(&f.args, FunctionArguments::List(l) if l.args.len() == 1
            && matches!(l.args[0], FunctionArg::Unnamed(FunctionArgExpr::Wildcard))))
}

fn table_of(f: &TableFactor) -> Result<(Tbl, String), NsError> {
    match f {
        TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } => {
            let n = name.to_string();
            let t = Tbl::parse(&n).ok_or_else(|| err(format!("Record '{n}' was not found.")))?;
            let a = alias
                .as_ref()
                .map_or(n.to_ascii_lowercase(), |a| a.name.value.clone());
            Ok((t, a))
        }
        _ => Err(unsupported()),
    }
}

/// Splits `a AND b AND c` into conjuncts.
fn conjuncts(e: &E, out: &mut Vec<E>) {
    match e {
        E::And(a, b) => {
            conjuncts(a, out);
            conjuncts(b, out);
        }
        other => out.push(other.clone()),
    }
}

fn compile(sql: &str) -> Result<Plan, NsError> {
    let stmts = Parser::parse_sql(&GenericDialect {}, sql).map_err(|_| unsupported())?;
    let [Statement::Query(q)] = stmts.as_slice() else {
        return Err(unsupported());
    };
    compile_query(q)
}

fn compile_query(q: &ast::Query) -> Result<Plan, NsError> {
    if q.with.is_some() || q.limit_clause.is_some() || q.fetch.is_some() || !q.locks.is_empty() {
        return Err(unsupported());
    }
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return Err(unsupported());
    };
    let distinct = match &sel.distinct {
        None => false,
        Some(ast::Distinct::Distinct) => true,
        Some(_) => return Err(unsupported()),
    };
    let GroupByExpr::Expressions(group_exprs, modifiers) = &sel.group_by else {
        return Err(unsupported());
    };
    if sel.top.is_some() || !modifiers.is_empty() {
        return Err(unsupported());
    }
    let [from] = sel.from.as_slice() else {
        return Err(unsupported());
    };
    // A subquery in FROM is run first; the outer query reads its rows by column name.
    let derived = match &from.relation {
        TableFactor::Derived {
            lateral: false,
            subquery,
            alias,
        } => {
            if !from.joins.is_empty() {
                return Err(unsupported());
            }
            let inner = compile_query(subquery)?;
            let Projection::Columns(cols) = &inner.projection else {
                return Err(unsupported());
            };
            let names: Vec<String> = cols.iter().map(|(n, _)| n.clone()).collect();
            let alias = alias
                .as_ref()
                .map_or_else(String::new, |a| a.name.value.clone());
            Some((Box::new((inner, names)), alias))
        }
        _ => None,
    };
    let (t0, a0) = match &derived {
        Some((_, alias)) => (Tbl::Derived, alias.clone()),
        None => table_of(&from.relation)?,
    };
    let derived = derived.map(|d| d.0);
    let names: Option<&[String]> = derived.as_deref().map(|d| d.1.as_slice());
    let mut bindings = vec![Binding {
        alias: a0,
        table: t0,
        join: None,
    }];
    for j in &from.joins {
        let (t, alias) = table_of(&j.relation)?;
        let (cond, left) = match &j.join_operator {
            JoinOperator::Join(JoinConstraint::On(c))
            | JoinOperator::Inner(JoinConstraint::On(c)) => (c, false),
            JoinOperator::Left(JoinConstraint::On(c))
            | JoinOperator::LeftOuter(JoinConstraint::On(c)) => (c, true),
            _ => return Err(unsupported()),
        };
        bindings.push(Binding {
            alias,
            table: t,
            join: None,
        });
        let idx = bindings.len() - 1;
        let bound = Binder {
            bindings: &bindings,
            visible: idx + 1,
            aliases: &[],
            derived: None,
            aggs: None,
        }
        .expr(cond)?;
        let mut parts = Vec::new();
        conjuncts(&bound, &mut parts);
        // Find `new.id = <earlier expr>` (lookup) or `new.transaction = <earlier expr>` (line expansion).
        let key_col = if t == Tbl::TransactionLine {
            "transaction"
        } else {
            "id"
        };
        let pos = parts.iter().position(|p| match p {
            E::Cmp(a, CmpOp::Eq, b) => {
                matches!(a.as_ref(), E::Col(i, c) if *i == idx && *c == key_col)
                    && !refers_to(b, idx)
                    || matches!(b.as_ref(), E::Col(i, c) if *i == idx && *c == key_col)
                        && !refers_to(a, idx)
            }
            _ => false,
        });
        let Some(pos) = pos else {
            return Err(unsupported());
        };
        let E::Cmp(a, _, b) = parts.remove(pos) else {
            return Err(unsupported());
        };
        let key = if matches!(a.as_ref(), E::Col(i, _) if *i == idx) {
            *b
        } else {
            *a
        };
        let filter = parts
            .into_iter()
            .reduce(|x, y| E::And(Box::new(x), Box::new(y)));
        bindings[idx].join = Some(if t == Tbl::TransactionLine {
            Join::Lines { key, left, filter }
        } else {
            Join::Lookup { key, left, filter }
        });
    }
    if bindings
        .iter()
        .filter(|b| b.table == Tbl::TransactionLine)
        .count()
        > 1
        || (bindings[0].table != Tbl::TransactionLine
            && bindings[1..]
                .iter()
                .any(|b| b.table == Tbl::TransactionLine)
            && bindings[0].table != Tbl::Transaction)
    {
        return Err(unsupported());
    }
    let aggs = std::cell::RefCell::new(Vec::new());
    let all = Binder {
        bindings: &bindings,
        visible: bindings.len(),
        aliases: &[],
        derived: names,
        aggs: Some(&aggs),
    };
    let where_binder = Binder { aggs: None, ..all };
    let filter = sel
        .selection
        .as_ref()
        .map(|w| where_binder.expr(w))
        .transpose()?;
    let group_by = group_exprs
        .iter()
        .map(|g| where_binder.expr(g))
        .collect::<Result<Vec<_>, _>>()?;
    // `SELECT COUNT(*) … WHERE …` alone is answered by counting (the index planner can);
    // with grouping, DISTINCT, ROWNUM or a subquery it is an aggregate like any other.
    let simple = !distinct
        && derived.is_none()
        && group_by.is_empty()
        && sel.having.is_none()
        && !filter.as_ref().is_some_and(uses_rownum);
    let projection = if simple
        && let [SelectItem::UnnamedExpr(e)] = sel.projection.as_slice()
        && is_count_star(e)
    {
        Projection::Count("expr1".into())
    } else if simple
        && let [SelectItem::ExprWithAlias { expr, alias }] = sel.projection.as_slice()
        && is_count_star(expr)
    {
        Projection::Count(alias.value.to_ascii_lowercase())
    } else {
        let mut cols = Vec::new();
        let mut n = 0;
        for item in &sel.projection {
            match item {
                SelectItem::UnnamedExpr(e) => {
                    let key = match e {
                        ast::Expr::Identifier(i) => i.value.to_ascii_lowercase(),
                        ast::Expr::CompoundIdentifier(p) if p.len() == 2 => {
                            p[1].value.to_ascii_lowercase()
                        }
                        _ => {
                            n += 1;
                            format!("expr{n}")
                        }
                    };
                    cols.push((key, all.expr(e)?));
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    cols.push((alias.value.to_ascii_lowercase(), all.expr(expr)?));
                }
                SelectItem::Wildcard(_) => match names {
                    Some(names) => {
                        for (i, n) in names.iter().enumerate() {
                            cols.push((n.clone(), E::Out(i)));
                        }
                    }
                    None => {
                        for c in bindings[0].table.columns() {
                            cols.push((c.to_string(), E::Col(0, c)));
                        }
                    }
                },
                SelectItem::QualifiedWildcard(
                    ast::SelectItemQualifiedWildcardKind::ObjectName(o),
                    _,
                ) => {
                    let a = o.to_string();
                    if let Some(names) = names
                        && bindings[0].alias.eq_ignore_ascii_case(&a)
                    {
                        for (i, n) in names.iter().enumerate() {
                            cols.push((n.clone(), E::Out(i)));
                        }
                        continue;
                    }
                    let (i, b) = bindings
                        .iter()
                        .enumerate()
                        .find(|(_, b)| b.alias.eq_ignore_ascii_case(&a))
                        .ok_or_else(|| err(format!("Record '{a}' was not found.")))?;
                    for c in b.table.columns() {
                        cols.push((c.to_string(), E::Col(i, c)));
                    }
                }
                _ => return Err(unsupported()),
            }
        }
        Projection::Columns(cols)
    };
    let aliases: Vec<(String, E)> = match &projection {
        Projection::Columns(c) => c.clone(),
        Projection::Count(_) => Vec::new(),
    };
    let mut order = Vec::new();
    if let Some(ob) = &q.order_by {
        let OrderByKind::Expressions(exprs) = &ob.kind else {
            return Err(unsupported());
        };
        let ob_binder = Binder {
            aliases: &aliases,
            ..all
        };
        for o in exprs {
            let e = match &o.expr {
                ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(_, _)) => {
                    let n: usize = v.value.to_string().parse().map_err(|_| unsupported())?;
                    aliases
                        .get(n.wrapping_sub(1))
                        .map(|x| x.1.clone())
                        .ok_or_else(unsupported)?
                }
                other => ob_binder.expr(other)?,
            };
            order.push((e, o.options.asc.unwrap_or(true)));
        }
    }
    let having = sel
        .having
        .as_ref()
        .map(|h| {
            Binder {
                aliases: &aliases,
                ..all
            }
            .expr(h)
        })
        .transpose()?;
    let rownum = filter.as_ref().is_some_and(uses_rownum)
        || aliases.iter().any(|(_, e)| uses_rownum(e))
        || order.iter().any(|(e, _)| uses_rownum(e));
    Ok(Plan {
        bindings,
        filter,
        order,
        projection,
        distinct,
        group_by,
        having,
        aggs: aggs.into_inner(),
        rownum,
        derived,
    })
}

/// Whether an expression reads `ROWNUM`.
fn uses_rownum(e: &E) -> bool {
    match e {
        E::RowNum => true,
        E::Col(..) | E::Lit(_) | E::Now | E::Out(_) | E::Agg(_) => false,
        E::Cmp(a, _, b) | E::And(a, b) | E::Or(a, b) | E::Arith(a, _, b) | E::Like(a, b, _) => {
            uses_rownum(a) || uses_rownum(b)
        }
        E::Not(a) | E::Neg(a) | E::IsNull(a, _) => uses_rownum(a),
        E::InList(a, xs, _) => uses_rownum(a) || xs.iter().any(uses_rownum),
        E::Func(_, xs) => xs.iter().any(uses_rownum),
        E::Between(a, b, c, _) => uses_rownum(a) || uses_rownum(b) || uses_rownum(c),
    }
}

fn refers_to(e: &E, idx: usize) -> bool {
    match e {
        E::Col(i, _) => *i == idx,
        E::Out(_) | E::RowNum | E::Agg(_) => idx == 0,
        E::Lit(_) | E::Now => false,
        E::Cmp(a, _, b) | E::And(a, b) | E::Or(a, b) | E::Arith(a, _, b) | E::Like(a, b, _) => {
            refers_to(a, idx) || refers_to(b, idx)
        }
        E::Not(a) | E::Neg(a) | E::IsNull(a, _) => refers_to(a, idx),
        E::InList(a, xs, _) => refers_to(a, idx) || xs.iter().any(|x| refers_to(x, idx)),
        E::Func(_, xs) => xs.iter().any(|x| refers_to(x, idx)),
        E::Between(a, b, c, _) => refers_to(a, idx) || refers_to(b, idx) || refers_to(c, idx),
    }
}

/// One table's row in a joined row.
#[derive(Clone)]
enum Src {
    Null,
    /// A purchase order, built only when a column beyond id/lastmodifieddate/type is read.
    Po(Rc<PoCell>),
    /// `slot` 0 is the mainline row; `k` is line `k - 1`.
    Line(Rc<PurchaseOrder>, u32),
    Vendor(Rc<Vendor>),
    Item(Rc<Item>),
    Location(Rc<Location>),
    Deleted(Rc<Deletion>),
    /// A subquery's row (its columns' values).
    Row(Rc<Vec<Val>>),
}

struct PoCell {
    id: u64,
    lm: Millis,
    full: OnceCell<Option<Rc<PurchaseOrder>>>,
}

struct Ctx<'a> {
    data: &'a Dataset,
    /// The user's date format and time zone.
    s: Session,
    now: Millis,
    /// `ROWNUM` of the row being filtered or projected.
    rownum: std::cell::Cell<i64>,
    /// The current group's aggregate values (`E::Agg`).
    aggs: std::cell::RefCell<Vec<Val>>,
}

impl<'a> Ctx<'a> {
    fn new(data: &'a Dataset, s: Session, now: Millis) -> Ctx<'a> {
        Ctx {
            data,
            s,
            now,
            rownum: std::cell::Cell::new(0),
            aggs: std::cell::RefCell::new(Vec::new()),
        }
    }
}

impl PoCell {
    fn get(&self, ctx: &Ctx<'_>) -> Option<Rc<PurchaseOrder>> {
        self.full
            .get_or_init(|| ctx.data.purchase_orders.get(self.id).map(Rc::new))
            .clone()
    }
}

fn money(cents: i64) -> Val {
    if cents % 100 == 0 {
        Val::Int(cents / 100)
    } else {
        Val::Dec(cents as f64 / 100.0)
    }
}

fn tf(b: bool) -> Val {
    Val::Str(if b { "T" } else { "F" }.into())
}

fn date(ms: Millis) -> Val {
    Val::Time {
        ms,
        datetime: false,
    }
}

/// A datetime column: an instant shown in the user's time zone.
fn datetime(ms: Millis) -> Val {
    Val::Instant {
        at: ms,
        zone: Zone::Session,
    }
}

fn po_col(po: &PurchaseOrder, c: &str) -> Val {
    match c {
        "id" => Val::Int(po.id as i64),
        "tranid" => Val::Str(po.number.clone()),
        "trandate" => date(po.order_date),
        "type" => Val::Str("PurchOrd".into()),
        "recordtype" => Val::Str("purchaseorder".into()),
        "entity" => Val::Int(po.vendor_id as i64),
        "status" => Val::Str(po.status.letter().into()),
        "lastmodifieddate" => datetime(po.last_modified),
        "createddate" => datetime(po.created),
        "memo" if po.memo.is_empty() => Val::Null,
        "memo" => Val::Str(po.memo.clone()),
        "currency" => Val::Int(if po.currency == "EUR" { 4 } else { 1 }),
        "exchangerate" => Val::Int(1),
        "foreigntotal" => money(po.total_cents()),
        "approvalstatus" => Val::Int(match po.status {
            PoStatus::PendingApproval => 1,
            PoStatus::Rejected => 3,
            _ => 2,
        }),
        "externalid" => po.external_id.clone().map_or(Val::Null, Val::Str),
        "custbody_ib_priority" => Val::Str(po.priority.clone()),
        "custbody_requestor" => Val::Int(po.requestor_id as i64),
        "location" => Val::Int(po.location_id as i64),
        "transactionnumber" => Val::Str(format!("PURCHORD{}", po.id)),
        _ => Val::Null,
    }
}

fn line_col(po: &PurchaseOrder, slot: u32, c: &str) -> Val {
    if slot == 0 {
        // The mainline row carries the header, not an item.
        return match c {
            "id" | "linesequencenumber" => Val::Int(0),
            "transaction" => Val::Int(po.id as i64),
            "uniquekey" => Val::Int((po.id * 1000) as i64),
            "mainline" => tf(true),
            "netamount" => money(po.total_cents()),
            "memo" if po.memo.is_empty() => Val::Null,
            "memo" => Val::Str(po.memo.clone()),
            "location" => Val::Int(po.location_id as i64),
            "isclosed" => tf(po.status == PoStatus::Closed),
            _ => Val::Null,
        };
    }
    let Some(l) = po.lines.get(slot as usize - 1) else {
        return Val::Null;
    };
    match c {
        "id" | "linesequencenumber" => Val::Int(l.line as i64),
        "transaction" => Val::Int(po.id as i64),
        "uniquekey" => Val::Int((po.id * 1000 + l.line as u64) as i64),
        "mainline" => tf(false),
        "item" => Val::Int(l.item_id as i64),
        "itemtype" => Val::Str("InvtPart".into()),
        "quantity" => Val::Int(l.quantity),
        "rate" => money(l.rate_cents),
        "netamount" => money(l.amount_cents()),
        "memo" => Val::Str(l.description.clone()),
        "location" => Val::Int(po.location_id as i64),
        "isclosed" => tf(l.closed),
        "quantityshiprecv" => Val::Int(l.quantity_received),
        "quantitybilled" => Val::Int(l.quantity_billed),
        "expectedreceiptdate" => date(l.expected_receipt),
        "custcol_ib_project_code" => Val::Str(l.project_code.clone()),
        _ => Val::Null,
    }
}

fn col(src: &Src, c: &str, ctx: &Ctx<'_>) -> Val {
    match src {
        Src::Null => Val::Null,
        Src::Row(_) => Val::Null,
        Src::Po(cell) => match c {
            "id" => Val::Int(cell.id as i64),
            // The vendor's email, as the record API shows it on the order.
            "email" => cell
                .get(ctx)
                .and_then(|po| ctx.data.vendors.get(po.vendor_id))
                .map_or(Val::Null, |v| Val::Str(v.email)),
            "lastmodifieddate" => datetime(cell.lm),
            "type" => Val::Str("PurchOrd".into()),
            "recordtype" => Val::Str("purchaseorder".into()),
            _ => cell.get(ctx).map_or(Val::Null, |po| po_col(&po, c)),
        },
        Src::Line(po, slot) => line_col(po, *slot, c),
        Src::Vendor(v) => match c {
            "id" => Val::Int(v.id as i64),
            "entityid" | "companyname" => Val::Str(v.name.clone()),
            "email" => Val::Str(v.email.clone()),
            "phone" => Val::Str(v.phone.clone()),
            "isinactive" => tf(v.inactive),
            "datecreated" => datetime(v.created),
            "lastmodifieddate" => datetime(v.last_modified),
            "currency" => Val::Int(super::render::currency_of(&v.currency).0 as i64),
            _ => Val::Null,
        },
        Src::Item(i) => match c {
            "id" => Val::Int(i.id as i64),
            "itemid" => Val::Str(i.sku.clone()),
            "displayname" => Val::Str(i.name.clone()),
            "description" => Val::Str(i.description.clone()),
            "cost" => money(i.cost_cents),
            "itemtype" => Val::Str(i.kind.netsuite().into()),
            "isinactive" => tf(i.inactive),
            "createddate" => datetime(i.created),
            "lastmodifieddate" => datetime(i.last_modified),
            "upccode" => Val::Str(i.gtin.clone()),
            _ => Val::Null,
        },
        Src::Location(l) => match c {
            "id" => Val::Int(l.id as i64),
            "name" | "fullname" => Val::Str(l.name.clone()),
            "isinactive" => tf(l.inactive),
            _ => Val::Null,
        },
        Src::Deleted(d) => deleted_col(d, c),
    }
}

/// The record type id a deletion is logged under (SuiteScript's `record.Type` values [I]).
pub fn deleted_type(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::PurchaseOrder => "purchaseorder",
        RecordKind::Vendor => "vendor",
        // The emulator's items are all inventory items (`itemtype` InvtPart).
        RecordKind::Item => "inventoryitem",
        RecordKind::Location => "location",
    }
}

/// Who the log names as the deleting user: the account administrator for UI deletions, the
/// integration's user for REST ones (both the first employee here [I]).
const DELETED_BY: u64 = EMPLOYEES[0].0;

fn deleted_col(d: &Deletion, c: &str) -> Val {
    match c {
        "deleteddate" => datetime(d.at),
        "recordid" => Val::Int(d.id as i64),
        "name" => Val::Str(d.name.clone()),
        "type" => Val::Str(deleted_type(d.kind).into()),
        // Execution contexts as `runtime.ContextType` spells them [I].
        "context" => Val::Str(
            match d.through {
                DeletedThrough::UserInterface => "USERINTERFACE",
                DeletedThrough::RestApi => "RESTWEBSERVICES",
            }
            .into(),
        ),
        "deletedby" => Val::Int(DELETED_BY as i64),
        "iscustomlist" | "iscustomrecord" | "iscustomtransaction" => tf(false),
        // Standard records have no script id; custom records would carry theirs.
        _ => Val::Null,
    }
}

/// `BUILTIN.DF`: the display value of a reference or list column.
fn display(plan: &Plan, e: &E, v: Val, ctx: &Ctx<'_>) -> Val {
    let E::Col(i, c) = e else { return v };
    if plan.bindings[*i].table == Tbl::Transaction
        && *c == "status"
        && let Val::Str(s) = &v
    {
        return PoStatus::from_letter(s).map_or(v.clone(), |st| {
            Val::Str(format!("Purchase Order : {}", st.label()))
        });
    }
    if plan.bindings[*i].table == Tbl::Transaction
        && *c == "type"
        && let Val::Str(s) = &v
        && s == "PurchOrd"
    {
        return Val::Str("Purchase Order".into());
    }
    if plan.bindings[*i].table == Tbl::DeletedRecord
        && *c == "context"
        && let Val::Str(s) = &v
    {
        return Val::Str(
            match s.as_str() {
                "USERINTERFACE" => "User Interface",
                "RESTWEBSERVICES" => "REST Web Services",
                other => other,
            }
            .into(),
        );
    }
    let id = match &v {
        Val::Int(x) => *x as u64,
        Val::Null => return Val::Null,
        _ => return v,
    };
    let t = plan.bindings[*i].table;
    let d = ctx.data;
    let name = match (t, *c) {
        (Tbl::Transaction, "entity") => d.vendors.get(id).map(|x| x.name),
        (Tbl::TransactionLine, "item") => d.items.get(id).map(|x| x.sku),
        (_, "location") => d.locations.get(id).map(|x| x.name),
        (_, "currency") => super::render::CURRENCIES
            .iter()
            .find(|(i, _, _)| *i == id)
            .map(|(_, _, name)| name.to_string()),
        (Tbl::Transaction, "custbody_requestor") | (Tbl::DeletedRecord, "deletedby") => EMPLOYEES
            .iter()
            .find(|e| e.0 == id)
            .map(|e| e.1.to_string()),
        (Tbl::Transaction, "approvalstatus") => Some(
            match id {
                1 => "Pending Approval",
                3 => "Rejected",
                _ => "Approved",
            }
            .into(),
        ),
        _ => None,
    };
    name.map_or(v, Val::Str)
}

fn eval(plan: &Plan, e: &E, row: &[Src], ctx: &Ctx<'_>) -> Val {
    let b = |x: bool| Val::Int(x as i64);
    match e {
        E::Col(i, c) => row.get(*i).map_or(Val::Null, |s| col(s, c, ctx)),
        E::Out(i) => match row.first() {
            Some(Src::Row(vals)) => vals.get(*i).cloned().unwrap_or(Val::Null),
            _ => Val::Null,
        },
        E::RowNum => Val::Int(ctx.rownum.get()),
        E::Agg(i) => ctx.aggs.borrow().get(*i).cloned().unwrap_or(Val::Null),
        E::Lit(v) => v.clone(),
        E::Now => datetime(ctx.now),
        E::Cmp(l, op, r) => {
            let (l, r) = (eval(plan, l, row, ctx), eval(plan, r, row, ctx));
            match compare(&l, &r, &ctx.s) {
                None => Val::Null,
                Some(o) => b(match op {
                    CmpOp::Eq => o == Ordering::Equal,
                    CmpOp::Ne => o != Ordering::Equal,
                    CmpOp::Lt => o == Ordering::Less,
                    CmpOp::Le => o != Ordering::Greater,
                    CmpOp::Gt => o == Ordering::Greater,
                    CmpOp::Ge => o != Ordering::Less,
                }),
            }
        }
        E::And(l, r) => b(eval(plan, l, row, ctx).truthy() && eval(plan, r, row, ctx).truthy()),
        E::Or(l, r) => b(eval(plan, l, row, ctx).truthy() || eval(plan, r, row, ctx).truthy()),
        E::Not(x) => match eval(plan, x, row, ctx) {
            Val::Null => Val::Null,
            v => b(!v.truthy()),
        },
        E::Neg(x) => match eval(plan, x, row, ctx) {
            Val::Int(i) if i != i64::MIN => Val::Int(-i),
            v => v.as_f64().map_or(Val::Null, |f| Val::Dec(-f)),
        },
        E::Arith(l, op, r) => {
            let (l, r) = (eval(plan, l, row, ctx), eval(plan, r, row, ctx));
            if l.is_null() || r.is_null() {
                return Val::Null;
            }
            if let ArOp::Concat = op {
                return Val::Str(format!("{}{}", plain(&l, &ctx.s), plain(&r, &ctx.s)));
            }
            match (&l, &r, op) {
                // Checked: overflowing integer arithmetic falls back to decimals.
                (Val::Int(x), Val::Int(y), ArOp::Add) if x.checked_add(*y).is_some() => {
                    Val::Int(x + y)
                }
                (Val::Int(x), Val::Int(y), ArOp::Sub) if x.checked_sub(*y).is_some() => {
                    Val::Int(x - y)
                }
                (Val::Int(x), Val::Int(y), ArOp::Mul) if x.checked_mul(*y).is_some() => {
                    Val::Int(x * y)
                }
                _ => match (l.as_f64(), r.as_f64()) {
                    (Some(x), Some(y)) => Val::Dec(match op {
                        ArOp::Add => x + y,
                        ArOp::Sub => x - y,
                        ArOp::Mul => x * y,
                        _ if y == 0.0 => return Val::Null,
                        _ => x / y,
                    }),
                    _ => Val::Null,
                },
            }
        }
        E::InList(x, list, neg) => {
            let v = eval(plan, x, row, ctx);
            if v.is_null() {
                return Val::Null;
            }
            let found = list
                .iter()
                .any(|y| compare(&v, &eval(plan, y, row, ctx), &ctx.s) == Some(Ordering::Equal));
            b(found != *neg)
        }
        E::Between(x, lo, hi, neg) => {
            let v = eval(plan, x, row, ctx);
            let (lo, hi) = (eval(plan, lo, row, ctx), eval(plan, hi, row, ctx));
            match (compare(&v, &lo, &ctx.s), compare(&v, &hi, &ctx.s)) {
                (Some(a), Some(z)) => b((a != Ordering::Less && z != Ordering::Greater) != *neg),
                _ => Val::Null,
            }
        }
        E::IsNull(x, neg) => b(eval(plan, x, row, ctx).is_null() != *neg),
        E::Like(x, p, neg) => match (eval(plan, x, row, ctx), eval(plan, p, row, ctx)) {
            (Val::Null, _) | (_, Val::Null) => Val::Null,
            (v, Val::Str(p)) => b(like(&plain(&v, &ctx.s), &p) != *neg),
            _ => Val::Null,
        },
        E::Func(f, args) => {
            let vals: Vec<Val> = args.iter().map(|a| eval(plan, a, row, ctx)).collect();
            match f {
                Func::ToDate => match (&vals[0], vals.get(1)) {
                    (Val::Str(s), Some(Val::Str(fmt))) => to_date(s, fmt).map_or(Val::Null, date),
                    (Val::Str(s), None) => {
                        ctx.s.fmt.parse_value(s).map_or(Val::Null, |(t, _)| date(t))
                    }
                    (t @ (Val::Time { .. } | Val::Instant { .. }), _) => t.clone(),
                    _ => Val::Null,
                },
                Func::ToChar => match (&vals[0], vals.get(1)) {
                    (t @ (Val::Time { .. } | Val::Instant { .. }), Some(Val::Str(fmt))) => {
                        value_to_char(t, fmt, &ctx.s).map_or(Val::Null, Val::Str)
                    }
                    (Val::Null, _) => Val::Null,
                    (v, _) => Val::Str(plain(v, &ctx.s)),
                },
                Func::ToTimestampTz => match (&vals[0], vals.get(1)) {
                    (Val::Str(text), Some(Val::Str(fmt))) => match parse_timestamp(text, fmt) {
                        Some((wall, Some(zone))) => zoned(wall, zone, &ctx.s),
                        Some((wall, None)) => zoned(wall, Zone::Session, &ctx.s),
                        None => Val::Null,
                    },
                    (t @ Val::Instant { .. }, _) => t.clone(),
                    (Val::Time { ms, .. }, _) => zoned(*ms, Zone::Session, &ctx.s),
                    _ => Val::Null,
                },
                Func::FromTz => match (&vals[0], vals.get(1)) {
                    (Val::Time { ms, .. }, Some(Val::Str(zone))) => match Zone::parse(zone) {
                        Some(zone) => zoned(*ms, zone, &ctx.s),
                        None => Val::Null,
                    },
                    _ => Val::Null,
                },
                // A value without a zone is taken in the session's time zone (Oracle 12c+).
                Func::SysExtractUtc => match vals[0].instant(&ctx.s) {
                    Some(at) if !matches!(vals[0], Val::Str(_)) => datetime_naive(at),
                    _ => Val::Null,
                },
                Func::AtTimeZone => {
                    let zone = match vals.get(1) {
                        Some(Val::Str(z)) => Zone::parse(z),
                        None => Some(Zone::Session),
                        _ => None,
                    };
                    match (zone, &vals[0]) {
                        (Some(zone), v @ (Val::Time { .. } | Val::Instant { .. })) => v
                            .instant(&ctx.s)
                            .map_or(Val::Null, |at| Val::Instant { at, zone }),
                        _ => Val::Null,
                    }
                }
                Func::Cast(to) => cast(&vals[0], *to, &ctx.s),
                Func::SessionTimeZone => Val::Str(ctx.s.tz.name().into()),
                // The database's zone is not the user's; NetSuite does not say which it is [I].
                Func::DbTimeZone => Val::Str("+00:00".into()),
                Func::TzOffset => match &vals[0] {
                    Val::Str(z) => Zone::parse(z).map_or(Val::Null, |zone| {
                        Val::Str(offset_text(zone.offset_at(ctx.now, &ctx.s)))
                    }),
                    _ => Val::Null,
                },
                Func::CurrentTimestamp => Val::Instant {
                    at: ctx.now,
                    zone: Zone::Session,
                },
                Func::LocalTimestamp => datetime_naive(ctx.now + ctx.s.tz.offset_at(ctx.now)),
                Func::Df => display(plan, &args[0], vals[0].clone(), ctx),
                Func::Upper => match &vals[0] {
                    Val::Str(s) => Val::Str(s.to_uppercase()),
                    v => v.clone(),
                },
                Func::Lower => match &vals[0] {
                    Val::Str(s) => Val::Str(s.to_lowercase()),
                    v => v.clone(),
                },
                Func::Nvl => {
                    if vals[0].is_null() {
                        vals[1].clone()
                    } else {
                        vals[0].clone()
                    }
                }
            }
        }
    }
}

/// SQL LIKE with `%` and `_`.
fn like(s: &str, p: &str) -> bool {
    let (s, p): (Vec<char>, Vec<char>) = (s.chars().collect(), p.chars().collect());
    let (mut si, mut pi, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == s[si]) {
            si += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

/// A value as text (for `||`, LIKE and TO_CHAR without a format).
fn plain(v: &Val, s: &Session) -> String {
    match v {
        Val::Null => String::new(),
        Val::Int(i) => i.to_string(),
        Val::Dec(d) => d.to_string(),
        Val::Str(s) => s.clone(),
        Val::Time { .. } | Val::Instant { .. } => match v.wall(s) {
            Some((ms, false)) => s.fmt.format(ms),
            Some((ms, true)) => display_datetime(ms, s.fmt),
            None => String::new(),
        },
    }
}

/// A wall-clock time in `zone` as a zoned value (the repeated hour read as standard time).
fn zoned(wall: Millis, zone: Zone, s: &Session) -> Val {
    let at = match zone {
        Zone::Session => s.tz.resolve(wall),
        Zone::Region(tz) => tz.resolve(wall),
        Zone::Offset(o) => wall - o,
    };
    Val::Instant { at, zone }
}

/// A timestamp without a zone (`SYS_EXTRACT_UTC`'s result, `LOCALTIMESTAMP`).
fn datetime_naive(ms: Millis) -> Val {
    Val::Time { ms, datetime: true }
}

/// `CAST(v AS …)` between the datetime types.
fn cast(v: &Val, to: CastTo, s: &Session) -> Val {
    match (to, v) {
        (_, Val::Null) => Val::Null,
        (CastTo::Date | CastTo::Timestamp, Val::Instant { .. }) => {
            v.wall(s).map_or(Val::Null, |(ms, _)| datetime_naive(ms))
        }
        (CastTo::Date | CastTo::Timestamp, Val::Time { ms, .. }) => datetime_naive(*ms),
        (CastTo::WithTimeZone, Val::Instant { at, .. }) => Val::Instant {
            at: *at,
            zone: Zone::Region(s.tz),
        },
        (CastTo::WithLocalTimeZone, Val::Instant { at, .. }) => Val::Instant {
            at: *at,
            zone: Zone::Session,
        },
        (CastTo::WithTimeZone, Val::Time { ms, .. }) => zoned(*ms, Zone::Region(s.tz), s),
        (CastTo::WithLocalTimeZone, Val::Time { ms, .. }) => zoned(*ms, Zone::Session, s),
        (_, Val::Str(text)) => match s.fmt.parse_value(text) {
            Some((ms, _)) => cast(&datetime_naive(ms), to, s),
            None => Val::Null,
        },
        _ => Val::Null,
    }
}

/// Result row key: driver record id and line slot (`NO_LINE` when no line table is involved).
type Key = (u64, u32);
const NO_LINE: u32 = u32::MAX;

/// Last-modified bounds on the transaction implied by top-level WHERE conjuncts.
fn lm_bounds(plan: &Plan, ctx: &Ctx<'_>) -> (Bound<Millis>, Bound<Millis>) {
    let mut lo = Bound::Unbounded;
    let mut hi = Bound::Unbounded;
    let Some(f) = &plan.filter else {
        return (lo, hi);
    };
    let mut parts = Vec::new();
    conjuncts(f, &mut parts);
    let is_lm = |e: &E| is_order_lm(plan, e);
    let konst = |e: &E| -> Option<Millis> {
        if refers_any(e) {
            return None;
        }
        match eval(plan, e, &[], ctx) {
            v @ (Val::Time { .. } | Val::Instant { .. }) => v.instant(&ctx.s),
            Val::Str(s) => ctx.s.fmt.parse_value(&s).map(|x| ctx.s.tz.resolve(x.0)),
            _ => None,
        }
    };
    for p in parts {
        let E::Cmp(a, op, b) = &p else { continue };
        let (op, t) = if is_lm(a) {
            (*op, konst(b))
        } else if is_lm(b) {
            let flipped = match op {
                CmpOp::Lt => CmpOp::Gt,
                CmpOp::Le => CmpOp::Ge,
                CmpOp::Gt => CmpOp::Lt,
                CmpOp::Ge => CmpOp::Le,
                o => *o,
            };
            (flipped, konst(a))
        } else {
            continue;
        };
        let Some(t) = t else { continue };
        // Only narrow; the full filter is still evaluated on every row.
        match op {
            CmpOp::Ge | CmpOp::Gt | CmpOp::Eq if matches!(lo, Bound::Unbounded) => {
                lo = Bound::Included(t)
            }
            CmpOp::Le | CmpOp::Lt | CmpOp::Eq if matches!(hi, Bound::Unbounded) => {
                hi = Bound::Included(t)
            }
            _ => {}
        }
    }
    (lo, hi)
}

fn refers_any(e: &E) -> bool {
    match e {
        // Row-dependent, like a column: never a constant.
        E::Col(..) | E::Out(_) | E::RowNum | E::Agg(_) => true,
        E::Lit(_) | E::Now => false,
        E::Cmp(a, _, b) | E::And(a, b) | E::Or(a, b) | E::Arith(a, _, b) | E::Like(a, b, _) => {
            refers_any(a) || refers_any(b)
        }
        E::Not(a) | E::Neg(a) | E::IsNull(a, _) => refers_any(a),
        E::InList(a, xs, _) => refers_any(a) || xs.iter().any(refers_any),
        E::Func(_, xs) => xs.iter().any(refers_any),
        E::Between(a, b, c, _) => refers_any(a) || refers_any(b) || refers_any(c),
    }
}

fn lines_of(po: &Rc<PurchaseOrder>) -> impl Iterator<Item = Src> + '_ {
    (0..=po.lines.len() as u32).map(move |slot| Src::Line(po.clone(), slot))
}

/// Expands joins for one driver row; calls `emit` with each complete row and its line slot.
fn expand(
    plan: &Plan,
    row: &mut Vec<Src>,
    slot: u32,
    ctx: &Ctx<'_>,
    emit: &mut dyn FnMut(&[Src], u32),
) {
    let i = row.len();
    if i == plan.bindings.len() {
        emit(row, slot);
        return;
    }
    let b = &plan.bindings[i];
    let Some(join) = &b.join else { return };
    match join {
        Join::Lookup { key, left, filter } => {
            let id = match eval(plan, key, row, ctx) {
                Val::Int(x) if x > 0 => x as u64,
                _ => 0,
            };
            let d = ctx.data;
            let src = match b.table {
                Tbl::Transaction => d.purchase_orders.exists(id).then(|| {
                    Src::Po(Rc::new(PoCell {
                        id,
                        lm: 0,
                        full: OnceCell::new(),
                    }))
                }),
                Tbl::Vendor => d.vendors.get(id).map(|v| Src::Vendor(Rc::new(v))),
                Tbl::Item => d.items.get(id).map(|v| Src::Item(Rc::new(v))),
                Tbl::Location => d.locations.get(id).map(|v| Src::Location(Rc::new(v))),
                Tbl::TransactionLine | Tbl::DeletedRecord | Tbl::Derived => None,
            };
            // A transaction reached by lookup needs its real last-modified; build it.
            let src = match src {
                Some(Src::Po(_)) => d.purchase_orders.get(id).map(|po| {
                    let cell = PoCell {
                        id,
                        lm: po.last_modified,
                        full: OnceCell::new(),
                    };
                    let _ = cell.full.set(Some(Rc::new(po)));
                    Src::Po(Rc::new(cell))
                }),
                s => s,
            };
            match src {
                Some(s) => {
                    row.push(s);
                    let ok = filter
                        .as_ref()
                        .is_none_or(|f| eval(plan, f, row, ctx).truthy());
                    if ok {
                        expand(plan, row, slot, ctx, emit);
                    } else if *left {
                        row.pop();
                        row.push(Src::Null);
                        expand(plan, row, slot, ctx, emit);
                    }
                    row.pop();
                }
                None if *left => {
                    row.push(Src::Null);
                    expand(plan, row, slot, ctx, emit);
                    row.pop();
                }
                None => {}
            }
        }
        Join::Lines { key, left, filter } => {
            let id = match eval(plan, key, row, ctx) {
                Val::Int(x) if x > 0 => x as u64,
                _ => 0,
            };
            let po = match &row[0] {
                Src::Po(cell) if cell.id == id => cell.get(ctx),
                _ => ctx.data.purchase_orders.get(id).map(Rc::new),
            };
            let mut any = false;
            if let Some(po) = po {
                for s in lines_of(&po) {
                    let Src::Line(_, sl) = s else { continue };
                    row.push(s);
                    if filter
                        .as_ref()
                        .is_none_or(|f| eval(plan, f, row, ctx).truthy())
                    {
                        any = true;
                        expand(plan, row, sl, ctx, emit);
                    }
                    row.pop();
                }
            }
            if !any && *left {
                row.push(Src::Null);
                expand(plan, row, slot, ctx, emit);
                row.pop();
            }
        }
    }
}

/// The order id of the driver row: a transaction driver's `id`, a line driver's `transaction`.
fn order_id_column(plan: &Plan) -> Option<&'static str> {
    match plan.bindings[0].table {
        Tbl::Transaction => Some("id"),
        Tbl::TransactionLine => Some("transaction"),
        _ => None,
    }
}

/// A column that, when not NULL, equals the driver row's order id: the driver's own, or that of a
/// transaction (or its lines) joined on the driver's order id.
fn is_order_id(plan: &Plan, e: &E) -> bool {
    let (Some(drv), E::Col(i, c)) = (order_id_column(plan), e) else {
        return false;
    };
    if *i == 0 {
        return *c == drv;
    }
    let on_order = |key: &E| matches!(key, E::Col(0, k) if *k == drv);
    let b = &plan.bindings[*i];
    match &b.join {
        Some(Join::Lookup { key, .. }) => {
            b.table == Tbl::Transaction && *c == "id" && on_order(key)
        }
        Some(Join::Lines { key, .. }) => {
            b.table == Tbl::TransactionLine && *c == "transaction" && on_order(key)
        }
        None => false,
    }
}

/// The driver's order last-modified: the transaction driver's, or that of a transaction joined on
/// the driver's order id.
fn is_order_lm(plan: &Plan, e: &E) -> bool {
    let E::Col(i, "lastmodifieddate") = e else {
        return false;
    };
    let b = &plan.bindings[*i];
    if b.table != Tbl::Transaction {
        return false;
    }
    *i == 0
        || matches!(&b.join, Some(Join::Lookup { key, .. })
            if matches!(key, E::Col(0, k) if Some(*k) == order_id_column(plan)))
}

/// Order ids implied by top-level WHERE conjuncts on the driver's order id (`=`, `IN`, `BETWEEN`,
/// `<`, `<=`, `>`, `>=` with integer constants), as an inclusive range and maybe an explicit list.
/// Only narrows: the full filter is still evaluated on every row.
fn id_bounds(plan: &Plan, ctx: &Ctx<'_>) -> Option<(u64, u64, Option<Vec<u64>>)> {
    let f = plan.filter.as_ref()?;
    let mut parts = Vec::new();
    conjuncts(f, &mut parts);
    let is_id = |e: &E| is_order_id(plan, e);
    let konst = |e: &E| -> Option<i64> {
        if refers_any(e) {
            return None;
        }
        match eval(plan, e, &[], ctx) {
            Val::Int(i) => Some(i),
            _ => None,
        }
    };
    let (mut lo, mut hi, mut list): (i64, i64, Option<Vec<u64>>) = (1, i64::MAX, None);
    let mut found = false;
    for p in &parts {
        match p {
            E::Cmp(a, op, b) if is_id(a) || is_id(b) => {
                let (op, v) = if is_id(a) {
                    (*op, konst(b))
                } else {
                    let flipped = match op {
                        CmpOp::Lt => CmpOp::Gt,
                        CmpOp::Le => CmpOp::Ge,
                        CmpOp::Gt => CmpOp::Lt,
                        CmpOp::Ge => CmpOp::Le,
                        o => *o,
                    };
                    (flipped, konst(a))
                };
                let Some(v) = v else { continue };
                found = true;
                match op {
                    CmpOp::Eq => {
                        lo = lo.max(v);
                        hi = hi.min(v);
                    }
                    CmpOp::Ge => lo = lo.max(v),
                    CmpOp::Gt => lo = lo.max(v.saturating_add(1)),
                    CmpOp::Le => hi = hi.min(v),
                    CmpOp::Lt => hi = hi.min(v.saturating_sub(1)),
                    CmpOp::Ne => {}
                }
            }
            E::Between(x, a, b, false) if is_id(x) => {
                if let (Some(a), Some(b)) = (konst(a), konst(b)) {
                    found = true;
                    lo = lo.max(a);
                    hi = hi.min(b);
                }
            }
            E::InList(x, items, false) if is_id(x) => {
                let vals: Option<Vec<i64>> = items.iter().map(konst).collect();
                if let Some(v) = vals {
                    found = true;
                    let mut v: Vec<u64> = v
                        .into_iter()
                        .filter_map(|x| u64::try_from(x).ok())
                        .collect();
                    v.sort_unstable();
                    v.dedup();
                    if let Some(prev) = &list {
                        v.retain(|x| prev.binary_search(x).is_ok());
                    }
                    list = Some(v);
                }
            }
            _ => {}
        }
    }
    found.then(|| (lo.max(0) as u64, hi.max(0) as u64, list))
}

/// A lazy transaction row: id and last-modified now, the record only when another column is read.
fn po_driver(ctx: &Ctx<'_>, id: u64) -> Option<(u64, Vec<Src>)> {
    let lm = ctx.data.purchase_orders.last_modified_of(id)?;
    let cell = PoCell {
        id,
        lm,
        full: OnceCell::new(),
    };
    Some((id, vec![Src::Po(Rc::new(cell))]))
}

/// Driver rows (first table) as `(id, src)`, narrowed by the id or last-modified index where possible.
fn drivers<'a>(plan: &'a Plan, ctx: &'a Ctx<'a>) -> Box<dyn Iterator<Item = (u64, Vec<Src>)> + 'a> {
    let d = ctx.data;
    let by_id = match plan.bindings[0].table {
        Tbl::Transaction | Tbl::TransactionLine => id_bounds(plan, ctx),
        _ => None,
    };
    match plan.bindings[0].table {
        Tbl::Transaction | Tbl::TransactionLine if by_id.is_some() => {
            let (lo, hi, list) = by_id.unwrap_or((1, 0, None));
            match list {
                // Only the listed orders: `transaction IN (…)` costs the list, not the table.
                Some(list) => Box::new(
                    list.into_iter()
                        .filter(move |id| (lo..=hi).contains(id))
                        .filter_map(move |id| po_driver(ctx, id)),
                ),
                None => {
                    let ids = d.purchase_orders.ids();
                    let start = ids.partition_point(|&i| i < lo);
                    let end = ids.partition_point(|&i| i <= hi);
                    Box::new(
                        ids.get(start..end)
                            .unwrap_or(&[])
                            .iter()
                            .filter_map(move |&id| po_driver(ctx, id)),
                    )
                }
            }
        }
        Tbl::Transaction | Tbl::TransactionLine => {
            let (lo, hi) = lm_bounds(plan, ctx);
            // A line driver's rows come from expanding the order (see `rows_for`).
            Box::new(d.purchase_orders.lm_range(lo, hi).iter().map(|&(lm, id)| {
                let cell = Rc::new(PoCell {
                    id,
                    lm,
                    full: OnceCell::new(),
                });
                (id, vec![Src::Po(cell)])
            }))
        }
        Tbl::Vendor => Box::new(d.vendors.ids().iter().filter_map(|&id| {
            d.vendors
                .get(id)
                .map(|v| (id, vec![Src::Vendor(Rc::new(v))]))
        })),
        Tbl::Item => Box::new(
            d.items
                .ids()
                .iter()
                .filter_map(|&id| d.items.get(id).map(|v| (id, vec![Src::Item(Rc::new(v))]))),
        ),
        Tbl::Location => Box::new(d.locations.ids().iter().filter_map(|&id| {
            d.locations
                .get(id)
                .map(|v| (id, vec![Src::Location(Rc::new(v))]))
        })),
        // Keyed by position in the log (from 1), which never changes: the log only grows.
        Tbl::DeletedRecord => Box::new(
            d.deleted
                .iter()
                .enumerate()
                .map(|(i, del)| (i as u64 + 1, vec![Src::Deleted(Rc::new(del.clone()))])),
        ),
        // A subquery's rows are read by `grouping::materialize`, never by key.
        Tbl::Derived => Box::new(std::iter::empty()),
    }
}

/// Calls `emit` for every complete row of one driver record (line-driven queries expand the order first).
fn rows_for(plan: &Plan, start: Vec<Src>, ctx: &Ctx<'_>, emit: &mut dyn FnMut(&[Src], u32)) {
    if plan.bindings[0].table == Tbl::TransactionLine {
        let Some(Src::Po(cell)) = start.first() else {
            return;
        };
        let Some(po) = cell.get(ctx) else { return };
        for s in lines_of(&po) {
            let Src::Line(_, slot) = s else { continue };
            let mut row = vec![s];
            expand(plan, &mut row, slot, ctx, emit);
        }
    } else {
        let mut row = start;
        expand(plan, &mut row, NO_LINE, ctx, emit);
    }
}

/// Runs the query to the ordered list of row keys.
fn execute(plan: &Plan, ctx: &Ctx<'_>) -> Vec<Key> {
    let mut keyed: Vec<(Vec<Val>, Key)> = Vec::new();
    for (id, start) in drivers(plan, ctx) {
        rows_for(plan, start, ctx, &mut |row, slot| {
            if plan
                .filter
                .as_ref()
                .is_none_or(|f| eval(plan, f, row, ctx).truthy())
            {
                let sort: Vec<Val> = plan
                    .order
                    .iter()
                    .map(|(e, _)| eval(plan, e, row, ctx))
                    .collect();
                keyed.push((sort, (id, slot)));
            }
        });
    }
    // Without ORDER BY, rows come by id (and line), which is stable between requests.
    keyed.sort_by(|a, b| {
        for (i, (_, asc)) in plan.order.iter().enumerate() {
            let o = sort_cmp(&a.0[i], &b.0[i], &ctx.s);
            let o = if *asc { o } else { o.reverse() };
            if o != Ordering::Equal {
                return o;
            }
        }
        a.1.cmp(&b.1)
    });
    keyed.into_iter().map(|k| k.1).collect()
}

/// Rebuilds the row behind a key. `last` keeps the order of the previous key, so the rows of a
/// page of lines build each order once.
fn row_for(
    plan: &Plan,
    key: Key,
    ctx: &Ctx<'_>,
    last: &mut Option<Rc<PurchaseOrder>>,
) -> Option<Vec<Src>> {
    let d = ctx.data;
    let start = match plan.bindings[0].table {
        Tbl::Transaction | Tbl::TransactionLine => {
            let po = match last {
                Some(po) if po.id == key.0 => po.clone(),
                _ => {
                    let po = Rc::new(d.purchase_orders.get(key.0)?);
                    *last = Some(po.clone());
                    po
                }
            };
            if plan.bindings[0].table == Tbl::TransactionLine {
                // A line driver yields at most one row per line: expand just that line.
                if key.1 as usize > po.lines.len() {
                    return None;
                }
                let mut found = None;
                let mut row = vec![Src::Line(po, key.1)];
                expand(plan, &mut row, key.1, ctx, &mut |r, _| {
                    if found.is_none() {
                        found = Some(r.to_vec());
                    }
                });
                return found;
            }
            let cell = PoCell {
                id: key.0,
                lm: po.last_modified,
                full: OnceCell::from(Some(po)),
            };
            vec![Src::Po(Rc::new(cell))]
        }
        Tbl::Vendor => vec![Src::Vendor(Rc::new(d.vendors.get(key.0)?))],
        Tbl::Item => vec![Src::Item(Rc::new(d.items.get(key.0)?))],
        Tbl::Location => vec![Src::Location(Rc::new(d.locations.get(key.0)?))],
        Tbl::DeletedRecord => {
            let del = d
                .deleted
                .get(usize::try_from(key.0).ok()?.checked_sub(1)?)?;
            vec![Src::Deleted(Rc::new(del.clone()))]
        }
        Tbl::Derived => return None,
    };
    let mut found = None;
    rows_for(plan, start, ctx, &mut |row, slot| {
        if found.is_none() && slot == key.1 {
            found = Some(row.to_vec());
        }
    });
    found
}

fn to_json(v: &Val, s: &Settings, session: &Session) -> Value {
    let mut out = String::new();
    write_val(&mut out, v, s, session);
    serde_json::from_str(&out).unwrap_or(Value::Null)
}

pub async fn handler(
    State(ns): State<Ns>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, NsError> {
    authorize(&ns, &method, &uri, &headers)?;
    let settings = ns.settings();
    let transient = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("transient"))
        });
    if settings.suiteql_require_prefer_transient && !transient {
        return Err(NsError::new(
            axum::http::StatusCode::BAD_REQUEST,
            super::errors::Detail::new(
                "INVALID_HEADER",
                "The request header 'Prefer' must be set to 'transient' for SuiteQL queries.",
            )
            .with("o:errorHeader", "Prefer"),
        ));
    }
    let p = query_params(&raw);
    let (limit, offset) = paging(&p)?;
    if settings.require_offset_multiple_of_limit {
        check_page_aligned(limit, offset)?;
    }
    if offset >= MAX_ROWS {
        return Err(NsError::invalid_parameter(
            "offset",
            format!(
                "Invalid value for query parameter 'offset': {offset}. At most {MAX_ROWS} rows can be retrieved by paging."
            ),
        ));
    }
    let q = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => match m.get("q") {
            Some(Value::String(q)) => q.clone(),
            _ => {
                return Err(NsError::bad_request(
                    "INVALID_CONTENT",
                    "Invalid content in the request body. Provide a JSON object with the 'q' property.",
                ));
            }
        },
        _ => {
            return Err(NsError::bad_request(
                "INVALID_CONTENT",
                "Invalid content in the request body. Provide a JSON object with the 'q' property.",
            ));
        }
    };
    let plan = compile(&q)?;
    let session = Session {
        fmt: DateFormat::parse(&settings.date_format).unwrap_or(DateFormat::Mdy),
        tz: settings.zone(),
    };
    let data = ns.core.read();
    let ctx = Ctx::new(&data, session, ns.core.clock.now_ms());
    let version = data.purchase_orders.version()
        + data.vendors.version()
        + data.items.version()
        + data.locations.version()
        + data.deleted.len() as u64;
    // Results depend on the session: literals and `SYSDATE` are read in it.
    let cache_key = format!(
        "suiteql:{}:{}:{}:{q}",
        settings.date_format, settings.time_zone, ctx.now
    );
    let cached = {
        let c = ns.cache.lock().unwrap_or_else(|e| e.into_inner());
        match &*c {
            Some((k, v, ids)) if *k == cache_key && *v == version => Some(ids.clone()),
            _ => None,
        }
    };
    let base = ns.core.origin(&headers);
    let href = format!("{base}/services/rest/query/v1/suiteql");
    let use_indexes = settings.suiteql_use_indexes;
    if plan.materialized() {
        let Projection::Columns(cols) = &plan.projection else {
            return Err(unsupported());
        };
        let rows = grouping::materialize(&plan, &ctx);
        return Ok(materialized_page(
            cols, &rows, &href, limit, offset, &settings, &session,
        ));
    }
    let cols = match &plan.projection {
        Projection::Columns(c) => c,
        Projection::Count(name) => {
            let indexed = if use_indexes {
                index::count(&plan, &ctx)
            } else {
                None
            };
            let n = match (indexed, cached) {
                (Some(n), _) => n,
                (None, Some(c)) => c.len(),
                (None, None) => execute(&plan, &ctx).len(),
            };
            let mut row = Map::new();
            row.insert("links".into(), json!([]));
            row.insert(
                name.clone(),
                to_json(&Val::Int(n as i64), &settings, &session),
            );
            return Ok(with_type(
                json!({ "links": page_links(&href, "", limit, 0, 1), "count": 1, "hasMore": false,
                    "offset": 0, "totalResults": 1, "items": [Value::Object(row)] }),
                COLLECTION_TYPE,
            ));
        }
    };
    // The planner answers from the sorted indexes when it can prove the same rows and total;
    // otherwise the whole query runs once and its ordered keys are cached for the next offsets.
    let indexed = if use_indexes {
        index::page(&plan, &ctx, offset, limit, MAX_ROWS)
    } else {
        None
    };
    let (page, total): (Vec<Key>, usize) = match indexed {
        Some(p) => p,
        None => {
            let keys: Arc<Vec<u64>> = match cached {
                Some(k) => k,
                None => {
                    // Keys are packed as id << 32 | slot to share the record API's cache.
                    let ks: Vec<u64> = execute(&plan, &ctx)
                        .into_iter()
                        .map(|(id, s)| (id << 32) | s as u64)
                        .collect();
                    let ks = Arc::new(ks);
                    *ns.cache.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((cache_key, version, ks.clone()));
                    ks
                }
            };
            let total = keys.len().min(MAX_ROWS);
            let end = (offset + limit).min(total);
            let page = keys
                .get(offset..end)
                .unwrap_or(&[])
                .iter()
                .map(|&k| (k >> 32, (k & 0xFFFF_FFFF) as u32))
                .collect();
            (page, total)
        }
    };
    // Rows are written straight into the body: building a `Value` per row costs more than the query.
    let groups = output_groups(cols);
    let mut body = String::with_capacity(256 + page.len() * 64 * groups.len());
    body.push_str("{\"links\":");
    let links = page_links(&href, "", limit, offset, total);
    body.push_str(&serde_json::to_string(&links).unwrap_or_else(|_| "[]".into()));
    body.push_str(",\"items\":[");
    let mut count = 0;
    let mut last = None;
    for &k in &page {
        let Some(row) = row_for(&plan, k, &ctx, &mut last) else {
            continue;
        };
        if count > 0 {
            body.push(',');
        }
        count += 1;
        body.push('{');
        let mut m = Members::new(&mut body);
        for (name, members) in &groups {
            // The last column of a name that is written wins, as inserting into an object would.
            let value = members.iter().rev().find_map(|c| match c {
                None => Some(None),
                Some(i) => {
                    let v = eval(&plan, &cols[*i].1, &row, &ctx);
                    (!(v.is_null() && settings.suiteql_omit_nulls)).then_some(Some(v))
                }
            });
            match value {
                None => {}
                Some(None) => m.key(name).push_str("[]"),
                Some(Some(v)) => write_val(m.key(name), &v, &settings, &session),
            }
        }
        body.push('}');
    }
    let _ = write!(
        body,
        "],\"count\":{count},\"hasMore\":{},\"offset\":{offset},\"totalResults\":{total}}}",
        offset + count < total
    );
    let mut r = body.into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(COLLECTION_TYPE));
    Ok(r)
}

/// One page of a query run whole (`grouping`): its rows already hold the column values.
fn materialized_page(
    cols: &[(String, E)],
    rows: &[Vec<Val>],
    href: &str,
    limit: usize,
    offset: usize,
    settings: &Settings,
    session: &Session,
) -> Response {
    let total = rows.len().min(MAX_ROWS);
    let page = rows.get(offset..(offset + limit).min(total)).unwrap_or(&[]);
    let groups = output_groups(cols);
    let mut body = String::with_capacity(256 + page.len() * 64 * groups.len());
    body.push_str("{\"links\":");
    let links = page_links(href, "", limit, offset, total);
    body.push_str(&serde_json::to_string(&links).unwrap_or_else(|_| "[]".into()));
    body.push_str(",\"items\":[");
    for (n, row) in page.iter().enumerate() {
        if n > 0 {
            body.push(',');
        }
        body.push('{');
        let mut m = Members::new(&mut body);
        for (name, members) in &groups {
            let value = members.iter().rev().find_map(|c| match c {
                None => Some(None),
                Some(i) => {
                    let v = row.get(*i).cloned().unwrap_or(Val::Null);
                    (!(v.is_null() && settings.suiteql_omit_nulls)).then_some(Some(v))
                }
            });
            match value {
                None => {}
                Some(None) => m.key(name).push_str("[]"),
                Some(Some(v)) => write_val(m.key(name), &v, settings, session),
            }
        }
        body.push('}');
    }
    let _ = write!(
        body,
        "],\"count\":{},\"hasMore\":{},\"offset\":{offset},\"totalResults\":{total}}}",
        page.len(),
        offset + page.len() < total
    );
    let mut r = body.into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(COLLECTION_TYPE));
    r
}

/// Output members by name in first-appearance order (`links` first); each lists the columns of
/// that name, `None` standing for the row's `links: []`.
fn output_groups(cols: &[(String, E)]) -> Vec<(&str, Vec<Option<usize>>)> {
    let mut groups: Vec<(&str, Vec<Option<usize>>)> = vec![("links", vec![None])];
    for (i, (name, _)) in cols.iter().enumerate() {
        match groups.iter_mut().find(|g| g.0 == name.as_str()) {
            Some(g) => g.1.push(Some(i)),
            None => groups.push((name.as_str(), vec![Some(i)])),
        }
    }
    groups
}

/// A value as JSON text, exactly as `to_json` would serialize it.
fn write_val(out: &mut String, v: &Val, s: &Settings, session: &Session) {
    match v {
        Val::Null => out.push_str("null"),
        Val::Str(x) => json_str(out, x),
        Val::Int(i) if s.suiteql_values_as_strings => {
            let _ = write!(out, "\"{i}\"");
        }
        Val::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Val::Dec(d) if s.suiteql_values_as_strings => json_str(out, &d.to_string()),
        Val::Dec(d) => out.push_str(&serde_json::to_string(d).unwrap_or_else(|_| "null".into())),
        // A datetime shows as the user sees it: wall-clock time in its zone.
        Val::Time { .. } | Val::Instant { .. } => match v.wall(session) {
            Some((ms, true)) if !s.suiteql_datetime_as_date => {
                json_str(out, &display_datetime(ms, session.fmt))
            }
            Some((ms, _)) => json_str(out, &session.fmt.format(ms)),
            None => out.push_str("null"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_the_documented_query() {
        let p = compile("SELECT id, tranid, trandate, entity, status, lastmodifieddate FROM transaction WHERE type = 'PurchOrd' AND lastmodifieddate >= TO_DATE('2024-01-15','YYYY-MM-DD') ORDER BY id").unwrap();
        assert_eq!(p.order.len(), 1);
        let Projection::Columns(c) = p.projection else {
            panic!("columns")
        };
        assert_eq!(c.len(), 6);
    }

    #[test]
    fn compiles_a_line_join() {
        let p = compile("SELECT tl.transaction, tl.linesequencenumber, tl.item, BUILTIN.DF(tl.item) FROM transactionline tl INNER JOIN transaction t ON t.id = tl.transaction WHERE t.type = 'PurchOrd' AND tl.mainline = 'F' ORDER BY tl.transaction, tl.linesequencenumber").unwrap();
        assert!(matches!(p.bindings[1].join, Some(Join::Lookup { .. })));
    }

    #[test]
    fn rejects_what_it_cannot_run() {
        for q in [
            "DELETE FROM transaction",
            "SELECT id FROM nosuchtable",
            "SELECT nosuchcolumn FROM transaction",
            "SELECT id FROM transaction UNION SELECT id FROM vendor",
            "SELECT id FROM transaction WHERE COUNT(*) > 1",
            "SELECT * FROM (SELECT id FROM transaction) x JOIN vendor v ON v.id = x.id",
            "SELECT id FROM transaction t, vendor v",
            "SELECT id FROM transaction; SELECT id FROM vendor",
            "SELECT FOO(id) FROM transaction",
            "SELEC id FROM transaction",
            "SELECT t.id FROM transaction t JOIN vendor v ON v.email = t.memo",
        ] {
            assert!(compile(q).is_err(), "{q}");
        }
    }

    #[test]
    fn like_patterns() {
        assert!(like("PO000123", "PO%"));
        assert!(like("PO000123", "%12_"));
        assert!(!like("PO000123", "X%"));
    }
}
