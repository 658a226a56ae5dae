//! Queries run whole into memory: GROUP BY with aggregates (and HAVING), DISTINCT, Oracle's
//! ROWNUM and subqueries in FROM. Their rows are not the table's rows, so they cannot be
//! keyed, cached as keys or answered from the indexes; each request evaluates them again.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::{Agg, AggFn, Ctx, Key, Plan, Projection, Src, Val, drivers, eval, rows_for, sort_cmp};

/// The query's output rows in order: one value per projected column.
pub(super) fn materialize(plan: &Plan, ctx: &Ctx<'_>) -> Vec<Vec<Val>> {
    let cols = match &plan.projection {
        Projection::Columns(c) => c.as_slice(),
        Projection::Count(_) => &[],
    };
    // Rows in the order they are fetched, which is the order ROWNUM numbers them in: a
    // subquery's own order, else by internal id (and line).
    let fetched: Vec<Vec<Src>> = match &plan.derived {
        Some(d) => materialize(&d.0, ctx)
            .into_iter()
            .map(|vals| vec![Src::Row(Rc::new(vals))])
            .collect(),
        None => {
            let mut keyed: Vec<(Key, Vec<Src>)> = Vec::new();
            for (id, start) in drivers(plan, ctx) {
                rows_for(plan, start, ctx, &mut |row, slot| {
                    keyed.push(((id, slot), row.to_vec()));
                });
            }
            keyed.sort_by_key(|k| k.0);
            keyed.into_iter().map(|k| k.1).collect()
        }
    };
    // WHERE, with ROWNUM the number the row gets if it passes: Oracle assigns it as rows
    // pass the filter, before grouping and sorting (so `ROWNUM > 1` keeps nothing).
    let mut kept: Vec<(i64, Vec<Src>)> = Vec::new();
    for row in fetched {
        let n = kept.len() as i64 + 1;
        ctx.rownum.set(n);
        if plan
            .filter
            .as_ref()
            .is_none_or(|f| eval(plan, f, &row, ctx).truthy())
        {
            kept.push((n, row));
        }
    }
    // Output rows with their sort keys.
    let mut out: Vec<(Vec<Val>, Vec<Val>)> = Vec::new();
    let project = |row: &[Src], out: &mut Vec<(Vec<Val>, Vec<Val>)>| {
        let vals = cols.iter().map(|(_, e)| eval(plan, e, row, ctx)).collect();
        let keys = plan
            .order
            .iter()
            .map(|(e, _)| eval(plan, e, row, ctx))
            .collect();
        out.push((vals, keys));
    };
    if plan.group_by.is_empty() && plan.aggs.is_empty() && plan.having.is_none() {
        for (n, row) in &kept {
            ctx.rownum.set(*n);
            project(row, &mut out);
        }
    } else {
        for group in groups(plan, ctx, kept) {
            let values = plan
                .aggs
                .iter()
                .map(|a| aggregate(plan, a, &group, ctx))
                .collect();
            *ctx.aggs.borrow_mut() = values;
            // Non-aggregate expressions read the group's first row (they are the grouping
            // expressions, equal in every row of the group).
            let (n, first) = group
                .first()
                .map_or((0, &[][..]), |g| (g.0, g.1.as_slice()));
            ctx.rownum.set(n);
            if plan
                .having
                .as_ref()
                .is_some_and(|h| !eval(plan, h, first, ctx).truthy())
            {
                continue;
            }
            project(first, &mut out);
        }
    }
    if plan.distinct {
        let mut seen = HashSet::new();
        out.retain(|(vals, _)| seen.insert(key_text(vals)));
    }
    // Stable: rows equal on every ORDER BY key keep their fetch (or group) order.
    out.sort_by(|a, b| {
        for (i, (_, asc)) in plan.order.iter().enumerate() {
            let o = sort_cmp(&a.1[i], &b.1[i], &ctx.s);
            let o = if *asc { o } else { o.reverse() };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
    out.into_iter().map(|o| o.0).collect()
}

/// Equal values give equal text (grouping and DISTINCT keys).
fn key_text(vals: &[Val]) -> String {
    format!("{vals:?}")
}

/// The kept rows by GROUP BY value, groups in order of first appearance; without GROUP BY
/// (aggregates over the whole result) one group, even of no rows.
fn groups(plan: &Plan, ctx: &Ctx<'_>, kept: Vec<(i64, Vec<Src>)>) -> Vec<Vec<(i64, Vec<Src>)>> {
    if plan.group_by.is_empty() {
        return vec![kept];
    }
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<Vec<(i64, Vec<Src>)>> = Vec::new();
    for (n, row) in kept {
        ctx.rownum.set(n);
        let key: Vec<Val> = plan
            .group_by
            .iter()
            .map(|g| eval(plan, g, &row, ctx))
            .collect();
        let i = *index.entry(key_text(&key)).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[i].push((n, row));
    }
    groups
}

/// One aggregate over a group's rows: NULLs are skipped (`COUNT(*)` counts rows), an empty
/// set gives 0 for COUNT and NULL for the others.
fn aggregate(plan: &Plan, agg: &Agg, rows: &[(i64, Vec<Src>)], ctx: &Ctx<'_>) -> Val {
    let mut vals: Vec<Val> = match &agg.arg {
        None => return Val::Int(rows.len() as i64),
        Some(e) => rows
            .iter()
            .map(|(n, row)| {
                ctx.rownum.set(*n);
                eval(plan, e, row, ctx)
            })
            .filter(|v| !v.is_null())
            .collect(),
    };
    if agg.distinct {
        let mut seen = HashSet::new();
        vals.retain(|v| seen.insert(key_text(std::slice::from_ref(v))));
    }
    match agg.f {
        AggFn::Count => Val::Int(vals.len() as i64),
        AggFn::Min | AggFn::Max => {
            let pick = if agg.f == AggFn::Min {
                Ordering::Less
            } else {
                Ordering::Greater
            };
            vals.into_iter()
                .reduce(|a, b| {
                    if sort_cmp(&b, &a, &ctx.s) == pick {
                        b
                    } else {
                        a
                    }
                })
                .unwrap_or(Val::Null)
        }
        AggFn::Sum | AggFn::Avg => {
            if vals.is_empty() {
                return Val::Null;
            }
            let whole: Option<i64> = vals.iter().try_fold(0i64, |acc, v| match v {
                Val::Int(i) => acc.checked_add(*i),
                _ => None,
            });
            let n = vals.len();
            match (agg.f, whole) {
                (AggFn::Sum, Some(total)) => Val::Int(total),
                (AggFn::Avg, Some(total)) if total % n as i64 == 0 => Val::Int(total / n as i64),
                _ => {
                    let total: f64 = vals.iter().filter_map(Val::as_f64).sum();
                    Val::Dec(if agg.f == AggFn::Avg {
                        total / n as f64
                    } else {
                        total
                    })
                }
            }
        }
    }
}
