#!/usr/bin/env python3
"""How fast can SQLite alone store synced purchase orders on this machine?

The lower bound of `ironbridge bench sync` into SQLite: it copies the purchase-order rows a
bench run stored (real sizes, real schema, same pragmas) into a fresh database, 100,000 rows
per connection, in 2,000-row transactions, with no lookups, no JSON work and no emulator.
Whatever the sync pipeline does, it cannot store orders faster than this.

    ironbridge --database-url sqlite:///tmp/bench.db bench sync --records 20000 --changes 10
    python3 scripts/sqlite_floor.py /tmp/bench.db

Prints, per connection (one per emulated ERP): the average row size, rows/s (wall clock)
and CPU per row; then the same with the raw payload left out, to show what it costs.
"""

import argparse
import os
import sqlite3
import tempfile
import time

COLUMNS = (
    "connection_id, entity, id, remote_id, data, raw, content_hash, "
    "remote_created_at, remote_updated_at, created_at, modified_at"
)


def measure(schema, rows, total, batch, path, keep_raw):
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    db = sqlite3.connect(path, isolation_level=None)
    # The store's pragmas (crates/store/src/sqlite.rs).
    db.execute("pragma journal_mode=wal")
    db.execute("pragma synchronous=normal")
    db.execute("pragma cache_size=-32768")
    db.execute("pragma temp_store=memory")
    db.execute("create table connections(id text primary key)")
    for statement in schema:
        db.execute(statement)
    insert = f"insert into records({COLUMNS}) values ({', '.join('?' * 11)})"
    started, cpu = time.perf_counter(), time.process_time()
    done = 0
    while done < total:
        chunk = []
        for j in range(min(batch, total - done)):
            row = list(rows[(done + j) % len(rows)])
            row[2] = f"po_{done + j}"
            row[3] = str(done + j)
            if not keep_raw:
                row[5] = ""
            chunk.append(row)
        db.execute("begin")
        db.executemany(insert, chunk)
        db.execute("commit")
        done += len(chunk)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    db.close()
    return total / wall, 1e6 * cpu / total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bench_db", help="a SQLite database a `bench sync` run filled")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2_000)
    args = parser.parse_args()
    source = sqlite3.connect(args.bench_db)
    schema = [
        sql
        for (sql,) in source.execute(
            "select sql from sqlite_master where tbl_name = 'records' and sql is not null"
        )
    ]
    systems = dict(source.execute("select id, system from connections"))
    print(f"SQLite {sqlite3.sqlite_version}, {args.rows} rows per connection, "
          f"{args.batch} per transaction")
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "floor.db")
        for (conn,) in source.execute(
            "select distinct connection_id from records where entity = 'purchase_order'"
        ).fetchall():
            rows = source.execute(
                f"select {COLUMNS} from records "
                "where entity = 'purchase_order' and connection_id = ?",
                (conn,),
            ).fetchall()
            for keep_raw in (True, False):
                size = sum(len(r[4]) + (len(r[5]) if keep_raw else 0) for r in rows) / len(rows)
                per_s, cpu_us = measure(schema, rows, args.rows, args.batch, path, keep_raw)
                label = "data+raw" if keep_raw else "data only"
                print(
                    f"{systems.get(conn, conn):>10} {label:>9}: {size:6.0f} B/row, "
                    f"{per_s:6.0f} rows/s, {cpu_us:4.0f} us CPU/row"
                )


if __name__ == "__main__":
    main()
