"""Step 1's reference for scripts/bench ingest: DuckDB reading a CSV or JSON-lines file into
Parquet on one thread, with the lake parts' writer settings where DuckDB has them (zstd at
level 1, 128 Ki rows a row group).

Prints one JSON line: seconds, the input's and the Parquet's bytes, rows, MB/s of input, the
column types DuckDB inferred, DuckDB's version. Run by scripts/bench with bench/.venv's Python.
"""

import argparse
import json
import os
import time

import duckdb

# As shared/src/lake/part_file.rs writes parts: ZstdLevel::default() is 1, ROW_GROUP_ROWS.
ZSTD_LEVEL = 1
ROW_GROUP_ROWS = 128 * 1024


def quoted(path: str) -> str:
    """A SQL string literal for a file path (COPY takes no parameters for paths)."""
    return "'" + path.replace("'", "''") + "'"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--format", required=True, choices=["csv", "jsonl"])
    parser.add_argument("--input", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    # Both sides infer the types from the file, as an ingest connector without a table does.
    if args.format == "csv":
        reader = f"read_csv({quoted(args.input)}, header = true)"
    else:
        reader = f"read_json({quoted(args.input)}, format = 'newline_delimited')"

    connection = duckdb.connect()
    connection.execute("SET threads = 1")
    started = time.perf_counter()
    rows = connection.execute(
        f"COPY (SELECT * FROM {reader}) TO {quoted(args.out)} "
        f"(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL {ZSTD_LEVEL}, "
        f"ROW_GROUP_SIZE {ROW_GROUP_ROWS})"
    ).fetchone()[0]
    seconds = time.perf_counter() - started
    # After the timing: DESCRIBE sniffs the file again.
    types = [[name, kind] for name, kind, *_ in connection.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()]
    input_bytes = os.path.getsize(args.input)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "input_bytes": input_bytes,
                "parquet_bytes": os.path.getsize(args.out),
                "rows": rows,
                "mb_s": input_bytes / 1e6 / seconds,
                "types": types,
                "threads": connection.execute("SELECT current_setting('threads')").fetchone()[0],
                "version": duckdb.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
