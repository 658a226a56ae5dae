//! Gauges read from the store at scrape time (its connection pools, the job queue) and
//! written straight into the `/metrics` answer. They describe the store this server uses,
//! not the process: the recorder is global, so a value set there by one store (one test
//! app) could be overwritten by another before it is rendered.

use std::fmt::Write;

use ironbridge_core::store::{JobCount, PoolStats};

/// Connections of a pool, by `state` (`idle`, `in_use`); label `pool`.
pub const POOL_CONNECTIONS: &str = "ironbridge_db_pool_connections";
/// Most connections a pool opens; label `pool`.
pub const POOL_MAX: &str = "ironbridge_db_pool_max";
/// Queued jobs, due now or later; label `kind`.
pub const JOBS_QUEUED: &str = "ironbridge_jobs_queued";
/// Queued jobs already due (waiting only for a worker); label `kind`.
pub const JOBS_DUE: &str = "ironbridge_jobs_due";
/// Jobs a worker holds; label `kind`.
pub const JOBS_RUNNING: &str = "ironbridge_jobs_running";

/// Appends the store's gauges to `out` in the text exposition format. `jobs` is `None` when
/// the queue could not be counted (those gauges are then left out, not reported as zero);
/// every kind of `kinds` is reported, zero when none is queued, so its series never vanish.
pub fn render_store_gauges(
    out: &mut String,
    pools: &[PoolStats],
    jobs: Option<&[JobCount]>,
    kinds: &[&str],
) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    if !pools.is_empty() {
        family(
            out,
            POOL_CONNECTIONS,
            "Connections of a database pool, by state (idle, in_use).",
        );
        for p in pools {
            let in_use = p.size.saturating_sub(p.idle);
            for (state, n) in [("idle", p.idle), ("in_use", in_use)] {
                let _ = writeln!(
                    out,
                    "{POOL_CONNECTIONS}{{pool=\"{}\",state=\"{state}\"}} {n}",
                    escape(p.name)
                );
            }
        }
        family(out, POOL_MAX, "Most connections a database pool opens.");
        for p in pools {
            let _ = writeln!(out, "{POOL_MAX}{{pool=\"{}\"}} {}", escape(p.name), p.max);
        }
    }
    let Some(jobs) = jobs else {
        return;
    };
    // Known kinds first (zero when idle), then any other kind the table holds.
    let mut rows: Vec<JobCount> = kinds
        .iter()
        .map(|k| {
            jobs.iter()
                .find(|j| j.kind == *k)
                .cloned()
                .unwrap_or(JobCount {
                    kind: (*k).to_string(),
                    queued: 0,
                    due: 0,
                    running: 0,
                })
        })
        .collect();
    rows.extend(
        jobs.iter()
            .filter(|j| !kinds.contains(&j.kind.as_str()))
            .cloned(),
    );
    let gauges: [(&str, &str, Count); 3] = [
        (
            JOBS_QUEUED,
            "Queued jobs, due now or later (retries wait for their back-off), by kind.",
            |j| j.queued,
        ),
        (
            JOBS_DUE,
            "Queued jobs already due, waiting only for a worker, by kind.",
            |j| j.due,
        ),
        (JOBS_RUNNING, "Jobs a worker holds, by kind.", |j| j.running),
    ];
    for (name, help, value) in gauges {
        family(out, name, help);
        for j in &rows {
            let _ = writeln!(out, "{name}{{kind=\"{}\"}} {}", escape(&j.kind), value(j));
        }
    }
}

/// Reads one count of a kind's jobs.
type Count = fn(&JobCount) -> u64;

fn family(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

/// A label value as the exposition format quotes it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_without_pools_and_an_uncounted_queue_adds_nothing() {
        let mut out = String::from("ironbridge_http_requests_total{route=\"/healthz\"} 1");
        render_store_gauges(&mut out, &[], None, &["sync"]);
        assert_eq!(
            out,
            "ironbridge_http_requests_total{route=\"/healthz\"} 1\n"
        );
    }

    #[test]
    fn pools_and_the_queue_are_rendered_with_idle_kinds_at_zero() {
        let mut out = String::new();
        let pools = [PoolStats {
            name: "main",
            max: 8,
            size: 5,
            idle: 2,
        }];
        let jobs = [JobCount {
            kind: "odd\"kind".into(),
            queued: 4,
            due: 3,
            running: 1,
        }];
        render_store_gauges(&mut out, &pools, Some(&jobs), &["sync"]);
        for line in [
            "# TYPE ironbridge_db_pool_connections gauge",
            "ironbridge_db_pool_connections{pool=\"main\",state=\"idle\"} 2",
            "ironbridge_db_pool_connections{pool=\"main\",state=\"in_use\"} 3",
            "ironbridge_db_pool_max{pool=\"main\"} 8",
            "ironbridge_jobs_queued{kind=\"sync\"} 0",
            "ironbridge_jobs_queued{kind=\"odd\\\"kind\"} 4",
            "ironbridge_jobs_due{kind=\"odd\\\"kind\"} 3",
            "ironbridge_jobs_running{kind=\"odd\\\"kind\"} 1",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
        // One HELP and one TYPE line per family, as the format requires.
        assert_eq!(out.matches("# TYPE ").count(), 5);
    }
}
