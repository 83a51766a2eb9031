"""Prints scripts/bench ingest's figures against the targets, one PASS/MISS a target.

Input: the results file the script wrote, one "label<TAB>json" line per measured run (labels in
scripts/bench). A label measured several times counts with its best run.

  report_ingest.py RESULTS
"""

import argparse
import sys

from report import best, load, mb_s, rss_mib, verdict

MIB = 1024 * 1024

# The targets (bench/README.md).
CSV_VS_DUCKDB = 1.0
CSV_MB_S_PER_CORE = 120.0
RSS_SPREAD = 0.05


def stages(run):
    """Where the wall time of one pass of our path went, in seconds and shares."""
    total = max(run["seconds"], 1e-9)
    parts = [
        f"{name} {run['stages'][name]:.2f} s ({run['stages'][name] / total:.0%})"
        for name in ("read", "parse", "encode", "store")
    ]
    return ", ".join(parts)


def same_types(ours, duck):
    """Whether both sides inferred the same column types (names as each spells them)."""
    names = {
        "Int64": "BIGINT",
        "Float64": "DOUBLE",
        "Utf8": "VARCHAR",
        "Boolean": "BOOLEAN",
        'Timestamp(µs, "UTC")': "TIMESTAMP WITH TIME ZONE",
        "Date32": "DATE",
    }
    mine = [(n, names.get(t, t)) for n, t in ours["types"]]
    theirs = [(n, t) for n, t in duck["types"]]
    return mine == theirs


def convert_section(results, print_):
    print_("1. CSV/JSONL -> Parquet, one thread each, local disk to local disk (page cache)")
    csv_input = best(results, "convert.csv.input")
    jsonl_input = best(results, "convert.jsonl.input")
    if not csv_input:
        print_("   not run")
        return
    print_(
        f"   input: {csv_input['bytes'] / MIB:.0f} MiB CSV, {csv_input['rows']:,} rows of sample sales; "
        f"the same rows as {jsonl_input['bytes'] / MIB:.0f} MiB of JSON lines"
    )
    for fmt in ("csv", "jsonl"):
        ours = best(results, f"convert.{fmt}.ours")
        duck = best(results, f"convert.{fmt}.duckdb")
        if not (ours and duck):
            continue
        print_(f"   {fmt}:")
        print_(
            f"     ours:   {ours['seconds']:7.2f} s  {ours['mb_s']:7.1f} MB/s of input  "
            f"{ours['rows'] / ours['seconds'] / 1e6:5.2f} M rows/s  -> {ours['parts']} parts, "
            f"{ours['parquet_bytes'] / MIB:.0f} MiB Parquet  (cpu {ours['cpu_seconds']:.2f} s, "
            f"peak RSS {rss_mib(ours):.0f} MiB)"
        )
        print_(f"             {stages(ours)}")
        print_(
            f"     DuckDB: {duck['seconds']:7.2f} s  {duck['mb_s']:7.1f} MB/s of input  "
            f"{duck['rows'] / duck['seconds'] / 1e6:5.2f} M rows/s  -> 1 file, "
            f"{duck['parquet_bytes'] / MIB:.0f} MiB Parquet  (duckdb {duck['version']}, "
            f"threads={duck['threads']})"
        )
        ratio = duck["seconds"] / ours["seconds"]
        checked = ours["rows"] == duck["rows"] and ours["bad_rows"] == 0 and same_types(ours, duck)
        print_(
            f"     {verdict(checked)}  check: same rows both sides ({ours['rows']:,} / {duck['rows']:,}), "
            f"no bad rows ({ours['bad_rows']}), same column types"
        )
        if not same_types(ours, duck):
            print_(f"            ours {ours['types']}")
            print_(f"            DuckDB {duck['types']}")
        if ours["bad_rows"]:
            print_(f"            first bad rows: {ours['first_bad_rows']}")
        if fmt == "csv":
            print_(
                f"     {verdict(ratio >= CSV_VS_DUCKDB)}  ours/DuckDB speed (same input) "
                f"{ratio:.2f}x   target >= {CSV_VS_DUCKDB:.1f}x"
            )
            print_(
                f"     {verdict(ours['mb_s'] >= CSV_MB_S_PER_CORE)}  ours, CSV input per core "
                f"{ours['mb_s']:.1f} MB/s   target >= {CSV_MB_S_PER_CORE:.0f} MB/s"
            )
        else:
            print_(f"     info  ours/DuckDB speed (same input) {ratio:.2f}x   (no target)")


def e2e_section(results, print_):
    print_("")
    print_("2. End-to-end ingest from s3s-fs against a raw GET of the same bytes "
           "(8 MiB ranges, 2 in flight)")
    obj = best(results, "e2e.object")
    raw = best(results, "e2e.raw")
    ours = best(results, "e2e.ours")
    if not (obj and raw and ours):
        print_("   not run")
        return
    print_(f"   object: {obj['bytes'] / MIB:.0f} MiB CSV, {obj['rows']:,} rows")
    print_(
        f"   raw GET: {raw['seconds']:6.2f} s  {raw['mb_s']:7.1f} MB/s  ({raw['gets']} GETs, "
        f"cpu {raw['cpu_seconds']:.2f} s)"
    )
    print_(
        f"   ingest:  {ours['seconds']:6.2f} s  {ours['mb_s']:7.1f} MB/s  -> {ours['parts']} parts "
        f"PutObject'd, {ours['parquet_bytes'] / MIB:.0f} MiB  (cpu {ours['cpu_seconds']:.2f} s "
        f"= {mb_s(ours['input_bytes'], ours['cpu_seconds']):.0f} MB per cpu-second)"
    )
    print_(f"            {stages(ours)}")
    ratio = ours["mb_s"] / raw["mb_s"] if raw["mb_s"] else 0.0
    print_(f"   info  ingest/raw GET throughput {ratio:.1%}   (no target)")
    print_(
        f"   {verdict(ours['rows'] == obj['rows'] and ours['bad_rows'] == 0)}  check: every row "
        f"parsed ({ours['rows']:,} of {obj['rows']:,}, {ours['bad_rows']} bad)"
    )


def rss_section(results, print_):
    print_("")
    print_("3. Peak RSS of the ingest process (S3 source -> parse -> part encoder -> PutObject; "
           "/usr/bin/time -v)")
    small = best(results, "e2e.ours") or best(results, "rss.small")
    large = best(results, "rss.large")
    skipped = best(results, "rss.large.skipped")
    if not small:
        print_("   not run")
        return
    for run in (small, large):
        if run:
            print_(
                f"   {run['input_bytes'] / MIB:6.0f} MiB CSV: peak RSS {rss_mib(run):6.1f} MiB   "
                f"({run['seconds']:.1f} s, {run['mb_s']:.1f} MB/s, {run['parts']} parts)"
            )
    if large:
        ratio = rss_mib(large) / rss_mib(small)
        print_(
            f"   {verdict(abs(ratio - 1) <= RSS_SPREAD)}  large/small peak RSS {ratio:.3f}   "
            f"target within {RSS_SPREAD:.0%}"
        )
    elif skipped:
        print_(
            f"   MISS  large file skipped: needs about {skipped['needed_mib']} MiB of disk, "
            f"{skipped['free_mib']} MiB free"
        )
    else:
        print_("   MISS  large file not run")


def report(results):
    out = []
    convert_section(results, out.append)
    e2e_section(results, out.append)
    rss_section(results, out.append)
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results")
    args = parser.parse_args()
    print(report(load(args.results)))


if __name__ == "__main__":
    sys.exit(main())
