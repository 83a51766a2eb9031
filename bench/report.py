"""Prints scripts/bench export's figures against the targets, one PASS/MISS a target.

Input: the results file the script wrote, one "label<TAB>json" line per measured run (labels in
scripts/bench). A label measured several times counts with its best run.

  report.py RESULTS
  report.py --disk-needed RESULTS --small-mib N --large-mib M --file-mib F
      (MiB of disk step 3's large table needs)
"""

import argparse
import json
import sys

MIB = 1024 * 1024

# The targets (bench/README.md).
CONVERT_VS_DUCKDB = 1.0
CONVERT_MB_S_PER_CORE = 250.0
E2E_VS_RAW = 0.85
PEAK_RSS_MIB = 64.0
RSS_SPREAD = 0.05


def load(path):
    results = {}
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            label, _, text = line.rstrip("\n").partition("\t")
            if text:
                results.setdefault(label, []).append(json.loads(text))
    return results


def best(results, label):
    """The fastest run of a label (all runs when none is timed), or None."""
    runs = results.get(label)
    if not runs:
        return None
    return min(runs, key=lambda run: run.get("seconds", 0.0))


def verdict(ok):
    return "PASS" if ok else "MISS"


def rss_mib(run):
    """Peak RSS as /usr/bin/time measured it (the whole process), else the process's VmHWM."""
    if "time_max_rss_kib" in run:
        return run["time_max_rss_kib"] / 1024
    return (run.get("peak_rss_bytes") or 0) / MIB


def mb_s(bytes_, seconds):
    return bytes_ / 1e6 / max(seconds, 1e-9)


def raw_totals(results, label):
    """Bytes and seconds of the baseline uploads of one export's objects, summed."""
    runs = results.get(label + ".raw", [])
    return sum(r["bytes"] for r in runs), sum(r["seconds"] for r in runs)


def report(results):
    out = []
    print_ = out.append

    print_("1. Parquet -> CSV, one thread each, local disk to local disk")
    source = best(results, "convert.input")
    ours = best(results, "convert.ours")
    duck = best(results, "convert.duckdb")
    if ours and duck and source:
        print_(
            f"   input: {source['parquet_bytes'] / MIB:.0f} MiB Parquet, {source['rows']:,} rows "
            f"of '{source['table']}' ({source['codec']}, {source['row_groups']} row groups)"
        )
        print_(
            f"   ours:   {ours['seconds']:7.2f} s  {ours['csv_bytes'] / MIB:7.0f} MiB CSV  "
            f"{ours['mb_s']:7.1f} MB/s  (cpu {ours.get('cpu_seconds', 0):.2f} s, "
            f"peak RSS {rss_mib(ours):.0f} MiB)"
        )
        print_(
            f"   DuckDB: {duck['seconds']:7.2f} s  {duck['csv_bytes'] / MIB:7.0f} MiB CSV  "
            f"{duck['mb_s']:7.1f} MB/s  (duckdb {duck['version']}, threads={duck['threads']})"
        )
        ratio = duck["seconds"] / ours["seconds"]
        print_(
            f"   {verdict(ratio >= CONVERT_VS_DUCKDB)}  ours/DuckDB speed (same input) "
            f"{ratio:.2f}x   target >= {CONVERT_VS_DUCKDB:.1f}x"
        )
        print_(
            f"   {verdict(ours['mb_s'] >= CONVERT_MB_S_PER_CORE)}  ours, CSV output per core "
            f"{ours['mb_s']:.1f} MB/s   target >= {CONVERT_MB_S_PER_CORE:.0f} MB/s"
        )
    else:
        print_("   not run")

    print_("")
    print_("2. End-to-end export against a raw multipart upload of the same bytes "
           "(8 MiB parts, 4 in flight, s3s-fs)")
    seeded = sorted((k for k in results if k.startswith("seed.")), key=lambda k: int(k[5:]))
    if seeded:
        first = results[seeded[0]][-1]
        print_(f"   table: {first['lake_bytes'] / MIB:.0f} MiB of lake parts, "
               f"{first['rows']:,} rows, {first['parts']} parts")
    any_e2e = False
    for compression in ("none", "gzip", "zstd"):
        run = best(results, f"e2e.{compression}")
        if not run:
            continue
        any_e2e = True
        raw_bytes, raw_seconds = raw_totals(results, f"e2e.{compression}")
        ours_rate = mb_s(run["bytes"], run["seconds"])
        raw_rate = mb_s(raw_bytes, raw_seconds)
        ratio = ours_rate / raw_rate if raw_rate else 0.0
        line = (
            f"{compression:>5}: export {run['seconds']:6.2f} s {run['bytes'] / MIB:7.0f} MiB "
            f"{ours_rate:6.1f} MB/s (CSV {mb_s(run['csv_bytes'], run['seconds']):6.1f} MB/s) | "
            f"raw {raw_seconds:6.2f} s {raw_rate:6.1f} MB/s | ratio {ratio:5.1%}"
        )
        if compression == "none":
            print_(f"   {verdict(ratio >= E2E_VS_RAW)}  {line}   target >= {E2E_VS_RAW:.0%}")
        else:
            print_(f"   info  {line}")
    if any_e2e:
        run = best(results, "e2e.none")
        if run:
            print_(f"   export path: {run['path']}, read-ahead {run['read_ahead']}")
    else:
        print_("   not run")

    print_("")
    print_("3. Peak RSS of the export process (CSV, 8 MiB parts, 4 in flight; /usr/bin/time -v)")
    small = best(results, "e2e.none") or best(results, "rss.small")
    tasks = file_tasks(results)
    large = max(tasks, key=rss_mib) if tasks else best(results, "rss.large")
    skipped = best(results, "rss.large.skipped")
    rows = [("small", small), ("large", large)]
    for name, run in rows:
        if run:
            peak = rss_mib(run)
            # A file task wrote one file of the table; say which, not the table's file count.
            what = (f"task {run['only_file']} of {run['files']}" if run.get("only_file")
                    else f"{run['files']} file(s)")
            print_(
                f"   {verdict(peak <= PEAK_RSS_MIB)}  {run['lake_bytes'] / MIB:6.0f} MiB table "
                f"({run['bytes'] / MIB:.0f} MiB CSV, {what}): peak RSS {peak:6.1f} MiB   "
                f"target <= {PEAK_RSS_MIB:.0f} MiB"
            )
        elif name == "large" and skipped:
            print_(
                f"   MISS  large table skipped: needs about {skipped['needed_mib']} MiB of disk, "
                f"{skipped['free_mib']} MiB free"
            )
    if small and large:
        ratio = rss_mib(large) / rss_mib(small)
        print_(
            f"   {verdict(abs(ratio - 1) <= RSS_SPREAD)}  large/small peak RSS {ratio:.3f}   "
            f"target within {RSS_SPREAD:.0%}"
        )
    elif not small:
        print_("   not run")

    print_("")
    print_("4. The large table as file tasks, one process each (one Lambda invocation a task)")
    if tasks:
        table_mib = tasks[0]["lake_bytes"] / MIB
        print_(f"   {table_mib:.0f} MiB table in {tasks[0]['files']} file tasks "
               f"of at most {max(t['written_lake_bytes'] for t in tasks) / MIB:.0f} MiB of lake parts")
        print_("   task | lake MiB | rows       | CSV MiB | seconds | MB/s  | peak RSS MiB")
        for task in tasks:
            print_(
                f"   {task['only_file']:4} | {task['written_lake_bytes'] / MIB:8.0f} | {task['rows']:10,} | "
                f"{task['bytes'] / MIB:7.0f} | {task['seconds']:7.1f} | {task['mb_s']:5.1f} | "
                f"{rss_mib(task):6.1f}"
            )
        seconds = [t["seconds"] for t in tasks]
        peaks = [rss_mib(t) for t in tasks]
        print_(
            f"   one task: {min(seconds):.1f}-{max(seconds):.1f} s (mean {sum(seconds) / len(seconds):.1f} s, "
            f"Lambda limit 900 s), peak RSS {min(peaks):.1f}-{max(peaks):.1f} MiB; "
            f"all tasks in turn {sum(seconds):.0f} s"
        )
    else:
        print_("   not run")
    return "\n".join(out)


def file_tasks(results):
    """Step 3's large table, one run a file task, in task order."""
    runs = [best(results, label) for label in results if label.startswith("rss.task.")]
    return sorted((r for r in runs if r), key=lambda r: r["only_file"])


def disk_needed(results, small_mib, large_mib, file_mib):
    """MiB of disk the large table needs: the rest of its lake parts, and the output of one of
    its files twice over (s3s-fs holds the parts while it joins them), scaled from the small
    table's output, plus room."""
    small = best(results, "e2e.none") or best(results, "rss.small")
    output_per_lake = small["bytes"] / small["lake_bytes"] if small else 3.0
    margin = 4096
    return int((large_mib - small_mib) + 2 * file_mib * output_per_lake + margin)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results")
    parser.add_argument("--disk-needed", action="store_true")
    parser.add_argument("--small-mib", type=int)
    parser.add_argument("--large-mib", type=int)
    parser.add_argument("--file-mib", type=int)
    args = parser.parse_args()
    results = load(args.results)
    if args.disk_needed:
        print(disk_needed(results, args.small_mib, args.large_mib, args.file_mib))
    else:
        print(report(results))


if __name__ == "__main__":
    sys.exit(main())
