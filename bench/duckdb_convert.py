"""Step 1's reference: DuckDB converting a Parquet file to CSV on one thread.

Prints one JSON line: seconds, the CSV's bytes, MB/s of CSV output, DuckDB's version.
Run by scripts/bench with bench/.venv's Python.
"""

import argparse
import json
import os
import time

import duckdb


def quoted(path: str) -> str:
    """A SQL string literal for a file path (COPY takes no parameters for paths)."""
    return "'" + path.replace("'", "''") + "'"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parquet", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    connection = duckdb.connect()
    connection.execute("SET threads = 1")
    started = time.perf_counter()
    connection.execute(
        f"COPY (SELECT * FROM read_parquet({quoted(args.parquet)})) "
        f"TO {quoted(args.out)} (HEADER, DELIMITER ',')"
    )
    seconds = time.perf_counter() - started
    csv_bytes = os.path.getsize(args.out)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "csv_bytes": csv_bytes,
                "parquet_bytes": os.path.getsize(args.parquet),
                "mb_s": csv_bytes / 1e6 / seconds,
                "threads": connection.execute("SELECT current_setting('threads')").fetchone()[0],
                "version": duckdb.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
