//! SuiteQL index planner: reads the top-level `AND`s of a single-table WHERE as key ranges over the
//! table's sorted indexes (ids, `(lastModified, id)`), so an ordered page and its total touch only
//! that slice. What it cannot prove stays a per-row check; queries it cannot serve go to `execute`.

use std::cell::OnceCell;
use std::rc::Rc;

use super::{
    CmpOp, Ctx, E, Key, NO_LINE, Plan, PoCell, Src, Tbl, Val, conjuncts, eval, refers_any,
};
use crate::common::clock::Millis;
use crate::common::table::LmKey;

/// `(lastModified, id)` widened so that bounds never overflow.
type Pair = (i128, i128);
const LOWEST: Pair = (i128::MIN, i128::MIN);
const HIGHEST: Pair = (i128::MAX, i128::MAX);

/// What one conjunct says about a row.
#[derive(Debug)]
enum Fact {
    /// True for every row (no columns, or only columns with the same value in every row).
    Always,
    /// True for no row.
    Never,
    /// `lo <= id <= hi`.
    Ids(i128, i128),
    /// `id` is one of these.
    IdList(Vec<i128>),
    /// `lo <= (lastModified, id) <= hi`, lexicographically.
    Keys(Pair, Pair),
    /// Needs the row.
    Row,
}

/// Which sorted index a walk follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Index {
    Id,
    LastModified,
}

/// The rows one index allows, in its order.
enum Cand<'d> {
    Ids(&'d [u64]),
    /// Live ids, ascending.
    List(Vec<u64>),
    ByLm(&'d [LmKey]),
}

impl Cand<'_> {
    fn len(&self) -> usize {
        match self {
            Cand::Ids(s) => s.len(),
            Cand::List(v) => v.len(),
            Cand::ByLm(s) => s.len(),
        }
    }

    fn iter(&self) -> Box<dyn DoubleEndedIterator<Item = (u64, Option<Millis>)> + '_> {
        match self {
            Cand::Ids(s) => Box::new(s.iter().map(|&id| (id, None))),
            Cand::List(v) => Box::new(v.iter().map(|&id| (id, None))),
            Cand::ByLm(s) => Box::new(s.iter().map(|&(lm, id)| (id, Some(lm)))),
        }
    }
}

/// One index's candidates and what they do not already guarantee: the other index's ranges
/// (checked on the numbers alone) and the conjuncts that need the row.
struct Access<'d> {
    index: Index,
    cand: Cand<'d>,
    /// `(lastModified, id)` range, for a walk by id.
    keys: Option<(Pair, Pair)>,
    /// Id range and maybe list (sorted), for a walk by last-modified.
    ids: Option<(i128, i128, Option<Vec<i128>>)>,
    residual: Vec<E>,
}

impl Access<'_> {
    fn unchecked(&self) -> bool {
        self.keys.is_none() && self.ids.is_none() && self.residual.is_empty()
    }

    fn passes(&self, plan: &Plan, ctx: &Ctx<'_>, id: u64, lm: Option<Millis>) -> bool {
        let t = plan.bindings[0].table;
        let x = i128::from(id);
        if let Some((lo, hi, list)) = &self.ids
            && (x < *lo || x > *hi || list.as_ref().is_some_and(|l| l.binary_search(&x).is_err()))
        {
            return false;
        }
        let mut lm = lm;
        if let Some((lo, hi)) = self.keys {
            let Some(at) = lm.or_else(|| last_modified_of(t, id, ctx)) else {
                return false;
            };
            lm = Some(at);
            let k = (i128::from(at), x);
            if k < lo || k > hi {
                return false;
            }
        }
        if self.residual.is_empty() {
            return true;
        }
        let Some(src) = row_src(t, id, lm, ctx) else {
            return false;
        };
        let row = [src];
        self.residual
            .iter()
            .all(|e| eval(plan, e, &row, ctx).truthy())
    }

    /// Rows passing the checks, at most `cap`.
    fn count(&self, plan: &Plan, ctx: &Ctx<'_>, cap: usize) -> usize {
        if self.unchecked() {
            return self.cand.len().min(cap);
        }
        self.cand
            .iter()
            .filter(|&(id, lm)| self.passes(plan, ctx, id, lm))
            .take(cap)
            .count()
    }
}

fn last_modified_of(t: Tbl, id: u64, ctx: &Ctx<'_>) -> Option<Millis> {
    let d = ctx.data;
    match t {
        Tbl::Transaction => d.purchase_orders.last_modified_of(id),
        Tbl::Vendor => d.vendors.last_modified_of(id),
        Tbl::Item => d.items.last_modified_of(id),
        Tbl::Location | Tbl::TransactionLine | Tbl::DeletedRecord | Tbl::Derived => None,
    }
}

/// The row the residual is evaluated on: transactions stay lazy (id and last-modified come from
/// the index), the small tables are generated.
fn row_src(t: Tbl, id: u64, lm: Option<Millis>, ctx: &Ctx<'_>) -> Option<Src> {
    let d = ctx.data;
    Some(match t {
        Tbl::Transaction => {
            let lm = match lm {
                Some(lm) => lm,
                None => d.purchase_orders.last_modified_of(id)?,
            };
            Src::Po(Rc::new(PoCell {
                id,
                lm,
                full: OnceCell::new(),
            }))
        }
        Tbl::Vendor => Src::Vendor(Rc::new(d.vendors.get(id)?)),
        Tbl::Item => Src::Item(Rc::new(d.items.get(id)?)),
        Tbl::Location => Src::Location(Rc::new(d.locations.get(id)?)),
        Tbl::TransactionLine | Tbl::DeletedRecord | Tbl::Derived => return None,
    })
}

/// Columns with the same value in every row of the table.
fn constant_column(t: Tbl, c: &str) -> bool {
    t == Tbl::Transaction && matches!(c, "type" | "recordtype")
}

/// Columns a residual may read without building the record: checking a transaction's other
/// columns row by row would cost as much as the full evaluation, which at least caches its result.
fn cheap_column(t: Tbl, c: &str) -> bool {
    t != Tbl::Transaction || matches!(c, "id" | "lastmodifieddate" | "type" | "recordtype")
}

fn columns_all(e: &E, ok: &dyn Fn(usize, &str) -> bool) -> bool {
    match e {
        E::Col(i, c) => ok(*i, c),
        E::Lit(_) | E::Now => true,
        E::Out(_) | E::RowNum | E::Agg(_) => false,
        E::Cmp(a, _, b) | E::And(a, b) | E::Or(a, b) | E::Arith(a, _, b) | E::Like(a, b, _) => {
            columns_all(a, ok) && columns_all(b, ok)
        }
        E::Not(a) | E::Neg(a) | E::IsNull(a, _) => columns_all(a, ok),
        E::InList(a, xs, _) => columns_all(a, ok) && xs.iter().all(|x| columns_all(x, ok)),
        E::Func(_, xs) => xs.iter().all(|x| columns_all(x, ok)),
        E::Between(a, b, c, _) => columns_all(a, ok) && columns_all(b, ok) && columns_all(c, ok),
    }
}

fn is_col(e: &E, name: &str) -> bool {
    matches!(e, E::Col(0, c) if *c == name)
}

fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        o => o,
    }
}

/// `column op constant` (either way round), as the operator with the column on the left.
fn compared<'e>(e: &'e E, name: &str) -> Option<(CmpOp, &'e E)> {
    let E::Cmp(a, op, b) = e else { return None };
    if is_col(a, name) && !refers_any(b) {
        Some((*op, b))
    } else if is_col(b, name) && !refers_any(a) {
        Some((flip(*op), a))
    } else {
        None
    }
}

/// An integer constant: ids are compared exactly only with integers (others stay row checks).
fn int_const(plan: &Plan, e: &E, ctx: &Ctx<'_>) -> Option<i128> {
    match eval(plan, e, &[], ctx) {
        Val::Int(i) => Some(i128::from(i)),
        _ => None,
    }
}

/// A time constant as the instant `compare` compares a datetime column with.
fn time_const(plan: &Plan, e: &E, ctx: &Ctx<'_>) -> Option<i128> {
    eval(plan, e, &[], ctx).instant(&ctx.s).map(i128::from)
}

fn id_fact(op: CmpOp, v: i128) -> Fact {
    match op {
        CmpOp::Eq => Fact::Ids(v, v),
        CmpOp::Gt => Fact::Ids(v + 1, i128::MAX),
        CmpOp::Ge => Fact::Ids(v, i128::MAX),
        CmpOp::Lt => Fact::Ids(i128::MIN, v - 1),
        CmpOp::Le => Fact::Ids(i128::MIN, v),
        CmpOp::Ne => Fact::Row,
    }
}

/// `lastModified op t` as a range of `(lastModified, id)`; ids never reach `i128::MAX`.
fn lm_fact(op: CmpOp, t: i128) -> Fact {
    match op {
        CmpOp::Eq => Fact::Keys((t, i128::MIN), (t, i128::MAX)),
        CmpOp::Gt => Fact::Keys((t, i128::MAX), HIGHEST),
        CmpOp::Ge => Fact::Keys((t, i128::MIN), HIGHEST),
        CmpOp::Lt => Fact::Keys(LOWEST, (t, i128::MIN)),
        CmpOp::Le => Fact::Keys(LOWEST, (t, i128::MAX)),
        CmpOp::Ne => Fact::Row,
    }
}

/// The keyset condition `lm > X OR (lm = X AND id > N)` (or `>=` on the id, or the mirror image
/// with `<`), in any operand order: `(lm, id) > (X, N)`.
fn keyset_fact(plan: &Plan, e: &E, ctx: &Ctx<'_>) -> Option<Fact> {
    let E::Or(a, b) = e else { return None };
    for (strict, tie) in [(a, b), (b, a)] {
        let Some((op, x)) = compared(strict, "lastmodifieddate") else {
            continue;
        };
        if !matches!(op, CmpOp::Gt | CmpOp::Lt) {
            continue;
        }
        let E::And(c, d) = tie.as_ref() else { continue };
        for (eq, id) in [(c, d), (d, c)] {
            let (Some((CmpOp::Eq, x2)), Some((id_op, n))) =
                (compared(eq, "lastmodifieddate"), compared(id, "id"))
            else {
                continue;
            };
            let (Some(x), Some(x2), Some(n)) = (
                time_const(plan, x, ctx),
                time_const(plan, x2, ctx),
                int_const(plan, n, ctx),
            ) else {
                continue;
            };
            if x != x2 {
                continue;
            }
            return match (op, id_op) {
                (CmpOp::Gt, CmpOp::Gt) => Some(Fact::Keys((x, n + 1), HIGHEST)),
                (CmpOp::Gt, CmpOp::Ge) => Some(Fact::Keys((x, n), HIGHEST)),
                (CmpOp::Lt, CmpOp::Lt) => Some(Fact::Keys(LOWEST, (x, n - 1))),
                (CmpOp::Lt, CmpOp::Le) => Some(Fact::Keys(LOWEST, (x, n))),
                _ => None,
            };
        }
    }
    None
}

fn fact(plan: &Plan, e: &E, ctx: &Ctx<'_>, has_lm: bool) -> Fact {
    let t = plan.bindings[0].table;
    if columns_all(e, &|i, c| i == 0 && constant_column(t, c)) {
        // The same for every row: evaluate it once, on a row that only has the constant columns.
        let row = [Src::Po(Rc::new(PoCell {
            id: 0,
            lm: 0,
            full: OnceCell::new(),
        }))];
        let row: &[Src] = if t == Tbl::Transaction { &row } else { &[] };
        return if eval(plan, e, row, ctx).truthy() {
            Fact::Always
        } else {
            Fact::Never
        };
    }
    if let Some((op, v)) = compared(e, "id")
        && let Some(v) = int_const(plan, v, ctx)
    {
        return id_fact(op, v);
    }
    if has_lm
        && let Some((op, v)) = compared(e, "lastmodifieddate")
        && let Some(t) = time_const(plan, v, ctx)
    {
        return lm_fact(op, t);
    }
    match e {
        E::Between(x, lo, hi, false) if !refers_any(lo) && !refers_any(hi) => {
            if is_col(x, "id")
                && let (Some(a), Some(b)) = (int_const(plan, lo, ctx), int_const(plan, hi, ctx))
            {
                return Fact::Ids(a, b);
            }
            if has_lm
                && is_col(x, "lastmodifieddate")
                && let (Some(a), Some(b)) = (time_const(plan, lo, ctx), time_const(plan, hi, ctx))
            {
                return Fact::Keys((a, i128::MIN), (b, i128::MAX));
            }
            Fact::Row
        }
        E::InList(x, items, false) if is_col(x, "id") && !items.iter().any(refers_any) => items
            .iter()
            .map(|i| int_const(plan, i, ctx))
            .collect::<Option<Vec<_>>>()
            .map_or(Fact::Row, Fact::IdList),
        E::Or(..) if has_lm => keyset_fact(plan, e, ctx).unwrap_or(Fact::Row),
        _ => Fact::Row,
    }
}

/// Both accesses of a single-table query, or `None` when the planner does not serve it.
fn analyse<'d>(plan: &Plan, ctx: &Ctx<'d>) -> Option<Vec<Access<'d>>> {
    if plan.bindings.len() != 1 {
        return None;
    }
    let t = plan.bindings[0].table;
    let d = ctx.data;
    let (ids, by_lm) = match t {
        Tbl::Transaction => (
            d.purchase_orders.ids(),
            Some(d.purchase_orders.by_last_modified()),
        ),
        Tbl::Vendor => (d.vendors.ids(), Some(d.vendors.by_last_modified())),
        Tbl::Item => (d.items.ids(), Some(d.items.by_last_modified())),
        Tbl::Location => (d.locations.ids(), None),
        Tbl::TransactionLine | Tbl::DeletedRecord | Tbl::Derived => return None,
    };
    let mut parts = Vec::new();
    if let Some(f) = &plan.filter {
        conjuncts(f, &mut parts);
    }
    let facts: Vec<Fact> = parts
        .iter()
        .map(|e| fact(plan, e, ctx, by_lm.is_some()))
        .collect();
    if facts.iter().any(|f| matches!(f, Fact::Never)) {
        return Some(vec![Access {
            index: Index::Id,
            cand: Cand::List(Vec::new()),
            keys: None,
            ids: None,
            residual: Vec::new(),
        }]);
    }
    let cheap = |e: &E| columns_all(e, &|i, c| i == 0 && cheap_column(t, c));
    if parts
        .iter()
        .zip(&facts)
        .any(|(e, f)| matches!(f, Fact::Row) && !cheap(e))
    {
        return None;
    }

    // What the facts say about each key, and the conjuncts that need the row.
    let (mut id_lo, mut id_hi, mut list) = (i128::MIN, i128::MAX, None::<Vec<i128>>);
    let (mut key_lo, mut key_hi) = (LOWEST, HIGHEST);
    let (mut on_ids, mut on_keys) = (false, false);
    let mut residual = Vec::new();
    for (e, f) in parts.iter().zip(&facts) {
        match f {
            Fact::Ids(a, b) => {
                on_ids = true;
                id_lo = id_lo.max(*a);
                id_hi = id_hi.min(*b);
            }
            Fact::IdList(v) => {
                on_ids = true;
                let mut v = v.clone();
                v.sort_unstable();
                v.dedup();
                if let Some(l) = &list {
                    v.retain(|x| l.binary_search(x).is_ok());
                }
                list = Some(v);
            }
            Fact::Keys(a, b) => {
                on_keys = true;
                key_lo = key_lo.max(*a);
                key_hi = key_hi.min(*b);
            }
            Fact::Always | Fact::Never => {}
            Fact::Row => residual.push(e.clone()),
        }
    }

    let cand = match &list {
        Some(v) => Cand::List(
            v.iter()
                .filter(|x| (id_lo..=id_hi).contains(*x))
                .filter_map(|&x| u64::try_from(x).ok())
                .filter(|x| ids.binary_search(x).is_ok())
                .collect(),
        ),
        None => {
            let start = ids.partition_point(|&i| i128::from(i) < id_lo);
            let end = ids.partition_point(|&i| i128::from(i) <= id_hi);
            Cand::Ids(ids.get(start..end).unwrap_or(&[]))
        }
    };
    let mut out = vec![Access {
        index: Index::Id,
        cand,
        keys: on_keys.then_some((key_lo, key_hi)),
        ids: None,
        residual: residual.clone(),
    }];
    if let Some(by_lm) = by_lm {
        let key = |k: &LmKey| (i128::from(k.0), i128::from(k.1));
        let start = by_lm.partition_point(|k| key(k) < key_lo);
        let end = by_lm.partition_point(|k| key(k) <= key_hi);
        out.push(Access {
            index: Index::LastModified,
            cand: Cand::ByLm(by_lm.get(start..end).unwrap_or(&[])),
            keys: None,
            ids: on_ids.then_some((id_lo, id_hi, list)),
            residual,
        });
    }
    Some(out)
}

/// The number of result rows (at most `cap`), through the cheapest access.
fn total(plan: &Plan, ctx: &Ctx<'_>, accesses: &[Access<'_>], cap: usize) -> usize {
    let best = accesses
        .iter()
        .min_by_key(|a| (!a.unchecked(), a.cand.len()));
    best.map_or(0, |a| a.count(plan, ctx, cap))
}

/// The index whose order is the query's `ORDER BY` (ties broken by id, as `execute` does), and
/// whether it is walked backwards.
fn walk(plan: &Plan) -> Option<(Index, bool)> {
    let o = &plan.order;
    match o.first() {
        None => Some((Index::Id, false)),
        Some((e, asc)) if is_col(e, "id") => Some((Index::Id, !asc)),
        Some((e, asc)) if is_col(e, "lastmodifieddate") => match o.get(1) {
            None if *asc => Some((Index::LastModified, false)),
            Some((e2, asc2)) if is_col(e2, "id") && asc2 == asc => {
                Some((Index::LastModified, !asc))
            }
            _ => None,
        },
        _ => None,
    }
}

/// `COUNT(*)` of the query, or `None` when the planner does not serve it.
pub(super) fn count(plan: &Plan, ctx: &Ctx<'_>) -> Option<usize> {
    let accesses = analyse(plan, ctx)?;
    Some(total(plan, ctx, &accesses, usize::MAX))
}

/// Result rows `offset..offset + limit` and the total (at most `cap`), exactly as `execute`
/// would order and count them; `None` when the planner does not serve the query.
pub(super) fn page(
    plan: &Plan,
    ctx: &Ctx<'_>,
    offset: usize,
    limit: usize,
    cap: usize,
) -> Option<(Vec<Key>, usize)> {
    let (index, backwards) = walk(plan)?;
    let accesses = analyse(plan, ctx)?;
    let total = total(plan, ctx, &accesses, cap);
    let take = limit.min(total.saturating_sub(offset));
    if take == 0 {
        return Some((Vec::new(), total));
    }
    let access = accesses.iter().find(|a| a.index == index)?;
    let rows = access.cand.iter();
    let rows: Box<dyn Iterator<Item = (u64, Option<Millis>)>> = if backwards {
        Box::new(rows.rev())
    } else {
        rows
    };
    let keys = rows
        .filter(|&(id, lm)| access.passes(plan, ctx, id, lm))
        .skip(offset)
        .take(take)
        .map(|(id, _)| (id, NO_LINE))
        .collect();
    Some((keys, total))
}

#[cfg(test)]
mod tests {
    use super::super::super::qfilter::DateFormat;
    use super::super::super::sqlval::{Session, to_char};
    use super::super::super::timezone::TimeZone;
    use super::super::{compile, execute};
    use super::*;
    use crate::common::Dataset;
    use crate::common::datagen::{GenCtx, Sizes};

    const EPOCH: Millis = 1_767_225_600_000;

    fn data() -> Dataset {
        Dataset::new(GenCtx {
            seed: 7,
            sizes: Sizes::for_orders(500),
            epoch: EPOCH,
            unset_change_every: 0,
        })
    }

    /// The session the planner is checked in: a zone with daylight time, so literals (read in
    /// it) and columns (instants) meet the way they do on a real account.
    fn session() -> Session {
        Session {
            fmt: DateFormat::Mdy,
            tz: TimeZone::parse("America/Los_Angeles").unwrap_or(TimeZone::UTC),
        }
    }

    /// A `TO_TIMESTAMP` literal of an instant, as wall-clock time in the session's zone.
    fn ts(ms: Millis) -> String {
        let local = session().tz.to_local(ms);
        let t = to_char(local, "YYYY-MM-DD HH24:MI:SS", None).unwrap_or_default();
        format!("TO_TIMESTAMP('{t}', 'YYYY-MM-DD HH24:MI:SS')")
    }

    #[test]
    fn serves_the_connector_queries_exactly_as_execute_orders_them() {
        let data = data();
        let ctx = Ctx::new(&data, session(), EPOCH);
        let (x, n) = data.purchase_orders.by_last_modified()[200];
        let (vx, vn) = data.vendors.by_last_modified()[5];
        let lm = "t.lastmodifieddate";
        let keyset =
            |x: Millis, n: u64| format!("({lm} > {0} OR ({lm} = {0} AND t.id > {n}))", ts(x));
        let queries = [
            format!(
                "SELECT t.* FROM transaction t WHERE t.type = 'PurchOrd' AND {lm} >= {} AND {lm} <= {} AND {} ORDER BY {lm}, t.id",
                ts(x - 86_400_000 * 200),
                ts(EPOCH),
                keyset(x, n)
            ),
            format!(
                "SELECT t.* FROM transaction t WHERE t.type = 'PurchOrd' AND {lm} <= {} ORDER BY {lm}, t.id",
                ts(EPOCH)
            ),
            format!(
                "SELECT t.* FROM vendor t WHERE {} ORDER BY {lm}, t.id",
                keyset(vx, vn)
            ),
            "SELECT t.* FROM location t WHERE t.id > 2 ORDER BY t.id".into(),
            "SELECT id FROM transaction WHERE id > 480 AND id <> 490".into(),
            format!(
                "SELECT id FROM transaction t WHERE {lm} >= {} ORDER BY t.id DESC",
                ts(x)
            ),
            format!("SELECT id FROM item t WHERE t.id IN (3, 1, 2) ORDER BY {lm} DESC, t.id DESC"),
        ];
        for q in &queries {
            let plan = compile(q).unwrap();
            let all = execute(&plan, &ctx);
            for (offset, limit, cap) in [
                (0, 100, 100_000),
                (7, 5, 100_000),
                (0, 10, 50),
                (45, 10, 50),
            ] {
                let (keys, total) = page(&plan, &ctx, offset, limit, cap).expect(q);
                assert_eq!(total, all.len().min(cap), "{q}");
                let end = (offset + limit).min(total);
                assert_eq!(keys, all.get(offset..end).unwrap_or(&[]), "{q}");
            }
            assert!(!all.is_empty(), "{q}");
        }
        let plan = compile(&format!(
            "SELECT COUNT(*) FROM transaction t WHERE {}",
            keyset(x, n)
        ))
        .unwrap();
        assert_eq!(count(&plan, &ctx), Some(execute(&plan, &ctx).len()));
    }

    #[test]
    fn leaves_what_it_cannot_prove_to_execute() {
        let data = data();
        let ctx = Ctx::new(&data, session(), EPOCH);
        for q in [
            // Lines, joins, other orders, a residual that needs the whole record.
            "SELECT tl.* FROM transactionline tl WHERE tl.transaction IN (1, 2)",
            "SELECT t.id FROM transaction t LEFT JOIN vendor v ON v.id = t.entity ORDER BY t.id",
            "SELECT t.id FROM transaction t ORDER BY t.tranid",
            "SELECT t.id FROM transaction t ORDER BY t.lastmodifieddate DESC",
            "SELECT t.id FROM transaction t WHERE t.memo IS NULL ORDER BY t.id",
        ] {
            let plan = compile(q).unwrap();
            assert!(page(&plan, &ctx, 0, 10, 100_000).is_none(), "{q}");
        }
    }
}
