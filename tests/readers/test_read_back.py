"""Tests of read_back.py: files written here with Python's own writers (csv, json, pyarrow, gzip,
zipfile, tarfile, zstandard, pysequoia) and hand-written bytes must read back; altered ones must not.

    tests/readers/.venv/bin/python -m unittest discover -s tests/readers -v
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import gzip
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import unittest
import zipfile
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pysequoia
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))
import read_back  # noqa: E402

HERE = Path(__file__).resolve().parent

COLUMNS = [
    {"name": "text", "type": "string"},
    {"name": "count", "type": "int64"},
    {"name": "ratio", "type": "float64"},
    {"name": "amount", "type": "decimal(38,10)"},
    {"name": "price", "type": "decimal(12,2)"},
    {"name": "flag", "type": "boolean"},
    {"name": "day", "type": "date"},
    {"name": "at", "type": "timestamp"},
]
NAMES = [c["name"] for c in COLUMNS]
NUMERIC = {"count", "ratio", "amount", "price"}

TRICKY_TEXT = [
    "plain", "a,b", 'say "hi"', "line1\nline2", "cr\ronly", "crlf\r\nend", "tab\there", "pipe|here",
    "  spaced  ", "back\\slash", "NULL", "\\N", "Ünïcødé ß 中文", "😀 emoji 👍🏽", "", None, "'single'",
    ";semi;", '"', "\\", "trailing\\",
]
INTS = ["0", "-1", "9223372036854775807", "-9223372036854775808", "42", None]
FLOATS = ["1.5", "-0.0", "NaN", "Infinity", "-Infinity", "1e-300", "1.7976931348623157e+308", "5e-324", "0.1", None]
AMOUNTS = ["-0.0001234500", "0.0000000000", "1234567890123456789012345678.1234567890",
           "-9999999999999999999999999999.9999999999", "1.0000000000", None]
PRICES = ["-1.50", "0.00", "9999999999.99", "-9999999999.99", "12.30", None]
FLAGS = ["true", "false", None]
DAYS = ["2024-02-29", "1970-01-01", "0001-01-01", "9999-12-31", None]
TIMES = ["2024-02-29T23:59:59.999999Z", "1970-01-01T00:00:00.000000Z", "1969-12-31T23:59:59.999999Z",
         "2026-01-15T02:00:00.000001Z", None]


def sample_rows() -> list[dict[str, str | None]]:
    """One row per tricky string, the other columns cycling through their tricky values."""
    rows = []
    for i, text in enumerate(TRICKY_TEXT):
        rows.append({
            "text": text, "count": INTS[i % len(INTS)], "ratio": FLOATS[i % len(FLOATS)],
            "amount": AMOUNTS[i % len(AMOUNTS)], "price": PRICES[i % len(PRICES)], "flag": FLAGS[i % len(FLAGS)],
            "day": DAYS[i % len(DAYS)], "at": TIMES[i % len(TIMES)],
        })
    rows.append({name: None for name in NAMES})
    return rows


def delimited_spec(kind: str = "csv", quote: str = "necessary", delimiter: str | None = None, quote_char: str = '"',
                   escape_char: str = '"', header: bool = True, null_value: str = "", compression: str = "none",
                   pgp: bool = False, columns: list[dict] | None = None) -> dict:
    return {
        "format": {"type": kind, "delimiter": delimiter or {"csv": ",", "tsv": "\t", "psv": "|"}[kind],
                   "quote": quote, "quote_char": quote_char, "escape_char": escape_char, "header": header,
                   "null_value": null_value},
        "compression": compression, "pgp": pgp, "columns": columns or COLUMNS,
    }


def reference_delimited(rows: list[dict], spec: dict, line_end: str = "\n") -> bytes:
    """A small writer of each quote mode, independent of the reader under test."""
    f = spec["format"]
    mode, delim, quote, escape, null = f["quote"], f["delimiter"], f["quote_char"], f["escape_char"], f["null_value"]
    names = [c["name"] for c in spec["columns"]]

    def quoted(value: str) -> str:
        if escape == quote:
            return quote + value.replace(quote, quote * 2) + quote
        return quote + value.replace(escape, escape * 2).replace(quote, escape + quote) + quote

    def unquoted_never(value: str) -> str:
        if escape == quote:
            return value
        for special in (escape, delim, "\r", "\n"):
            value = value.replace(special, escape + special) if special != escape else value.replace(escape, escape * 2)
        return value

    def field(value: str | None, numeric: bool) -> str:
        if mode == "never":
            return null if value is None else unquoted_never(value)
        if value is None:
            return quoted(null) if mode == "all" else null
        if mode in ("all", "non_null") or (mode == "non_numeric" and not numeric):
            return quoted(value)
        specials = (delim, quote, escape, "\r", "\n")
        if value == null or value == "" or any(s in value for s in specials):
            return quoted(value)
        return value

    lines = []
    if f["header"]:
        lines.append(delim.join(field(n, False) for n in names))
    for row in rows:
        lines.append(delim.join(field(row[n], n in NUMERIC) for n in names))
    return (line_end.join(lines) + line_end).encode()


def jsonl_bytes(rows: list[dict], key_order: list[str] | None = None) -> bytes:
    out = []
    for row in rows:
        obj = {}
        for name in key_order or NAMES:
            value = row[name]
            if value is not None and name == "count":
                value = int(value)
            elif value is not None and name == "ratio":
                value = float(value)
            elif value is not None and name == "flag":
                value = value == "true"
            obj[name] = value  # decimals, dates and timestamps as their text
        out.append(json.dumps(obj, ensure_ascii=False))
    return ("\n".join(out) + "\n").encode()


def arrow_table(rows: list[dict], amount_type: pa.DataType = pa.decimal128(38, 10),
                at_type: pa.DataType = pa.timestamp("us", tz="UTC")) -> pa.Table:
    def col(name, convert):
        return [None if r[name] is None else convert(r[name]) for r in rows]

    def timestamp(text):
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)

    return pa.table({
        "text": pa.array(col("text", str), pa.string()),
        "count": pa.array(col("count", int), pa.int64()),
        "ratio": pa.array(col("ratio", float), pa.float64()),
        "amount": pa.array(col("amount", Decimal), amount_type),
        "price": pa.array(col("price", Decimal), pa.decimal128(12, 2)),
        "flag": pa.array(col("flag", lambda t: t == "true"), pa.bool_()),
        "day": pa.array(col("day", dt.date.fromisoformat), pa.date32()),
        "at": pa.array(col("at", timestamp), at_type),
    })


def parquet_bytes(table: pa.Table, codec: str = "snappy", statistics: bool = True) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression=codec, write_statistics=statistics)
    return sink.getvalue()


def compress(payload: bytes, compression: str, member: str = "part-00001") -> bytes:
    if compression == "gzip":
        return gzip.compress(payload)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(payload)
    if compression == "zip":
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(member, payload)
        return out.getvalue()
    if compression in ("tar", "tgz"):
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w:gz" if compression == "tgz" else "w") as archive:
            info = tarfile.TarInfo(member)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
        return out.getvalue()
    return payload


class ReadBackCase(unittest.TestCase):
    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="read_back_test."))
        self.addCleanup(lambda: __import__("shutil").rmtree(self.dir, ignore_errors=True))

    def run_read_back(self, data: bytes, spec: dict, rows: list[dict], key: Path | None = None) -> tuple[int, str]:
        (self.dir / "file").write_bytes(data)
        (self.dir / "spec.json").write_text(json.dumps(spec))
        (self.dir / "expected.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        argv = ["--file", str(self.dir / "file"), "--spec", str(self.dir / "spec.json"),
                "--expected", str(self.dir / "expected.jsonl")]
        if key is not None:
            argv += ["--secret-key", str(key)]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = read_back.main(argv)
        return code, out.getvalue() + err.getvalue()

    def assert_accepted(self, data: bytes, spec: dict, rows: list[dict], key: Path | None = None) -> str:
        code, output = self.run_read_back(data, spec, rows, key)
        self.assertEqual(code, 0, output)
        return output

    def assert_rejected(self, data: bytes, spec: dict, rows: list[dict], *needles: str, key: Path | None = None,
                        code: int = 1) -> str:
        got, output = self.run_read_back(data, spec, rows, key)
        self.assertEqual(got, code, output)
        for needle in needles:
            self.assertIn(needle, output)
        return output


def changed(rows: list[dict], index: int, **values) -> list[dict]:
    copy = [dict(r) for r in rows]
    copy[index].update(values)
    return copy


class DelimitedTests(ReadBackCase):
    VARIANTS = [
        # kind, quote, delimiter, quote_char, escape_char, null_value, line_end
        ("csv", "all", ",", '"', '"', "", "\n"),
        ("csv", "non_null", ",", '"', '"', "", "\n"),
        ("csv", "necessary", ",", '"', '"', "", "\n"),
        ("csv", "necessary", ",", '"', '"', "", "\r\n"),
        ("csv", "non_numeric", ",", '"', '"', "", "\n"),
        ("csv", "necessary", ";", "'", "\\", "", "\n"),
        ("csv", "necessary", ",", '"', "\\", "\\N", "\n"),
        ("csv", "non_null", ",", '"', '"', "NULL", "\r\n"),
        ("csv", "all", ",", '"', '"', "NULL", "\n"),
        ("tsv", "necessary", "\t", '"', '"', "", "\n"),
        ("tsv", "never", "\t", '"', "\\", "\\N", "\n"),
        ("psv", "necessary", "|", '"', '"', "", "\n"),
        ("psv", "non_numeric", "|", '"', '"', "NULL", "\n"),
    ]

    def test_every_mode_reads_back_the_tricky_rows(self):
        rows = sample_rows()
        for kind, quote, delim, quote_char, escape, null, line_end in self.VARIANTS:
            with self.subTest(kind=kind, quote=quote, delimiter=delim, escape=escape, null=null, line_end=line_end):
                spec = delimited_spec(kind, quote, delim, quote_char, escape, null_value=null)
                output = self.assert_accepted(reference_delimited(rows, spec, line_end), spec, rows)
                self.assertIn(f"{len(rows)} rows x 8 columns match", output)

    def test_never_without_an_escape_char_reads_values_free_of_specials(self):
        rows = [r for r in sample_rows() if r["text"] is None or not any(c in r["text"] for c in ",\r\n\"")]
        spec = delimited_spec("csv", "never", null_value="\\N")
        self.assert_accepted(reference_delimited(rows, spec), spec, rows)

    def test_python_csv_writer_quote_all(self):
        rows = sample_rows()
        out = io.StringIO(newline="")
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        writer.writerow(NAMES)
        for row in rows:
            writer.writerow(["" if row[n] is None else row[n] for n in NAMES])
        spec = delimited_spec("csv", "all", compression="gzip")
        self.assert_accepted(gzip.compress(out.getvalue().encode()), spec, rows)

    def test_without_header(self):
        rows = sample_rows()
        spec = delimited_spec("psv", "necessary", header=False)
        self.assert_accepted(reference_delimited(rows, spec), spec, rows)
        # a header where none is declared is one row too many
        with_header = reference_delimited(rows, delimited_spec("psv", "necessary"))
        self.assert_rejected(with_header, spec, rows, "row count differs")

    def test_rejections(self):
        rows = sample_rows()
        spec = delimited_spec("csv", "necessary")
        data = reference_delimited(rows, spec)
        empty_row = TRICKY_TEXT.index("")
        cases = [
            ("changed value", changed(rows, 1, text="a;b"), ['row 2, column "text" (string): expected "a;b", got "a,b"']),
            ("changed decimal scale", changed(rows, 0, amount="-0.00012345"), ["-0.0001234500"]),
            ("changed float", changed(rows, 0, ratio="1.25"), ['column "ratio"']),
            ("negative zero", changed(rows, 1, ratio="0.0"), ['column "ratio"']),
            ("lost null: a quoted empty string", changed(rows, empty_row, text=None),
             [f'row {empty_row + 1}, column "text" (string): expected null, got ""']),
            ("value read as null", changed(rows, empty_row + 1, text=""), ["got null"]),
            ("missing row", rows + [rows[0]], ["row count differs", f"{len(rows) + 1} rows"]),
            ("extra row", rows[:-1], ["first extra row"]),
        ]
        for name, expected, needles in cases:
            with self.subTest(name):
                self.assert_rejected(data, spec, expected, *needles)

    def test_wrong_header(self):
        rows = sample_rows()
        spec = delimited_spec("csv", "necessary")
        renamed = {**spec, "columns": [dict(c, name="Text") if c["name"] == "text" else c for c in COLUMNS]}
        expected = [{("Text" if k == "text" else k): v for k, v in r.items()} for r in rows]
        self.assert_rejected(reference_delimited(rows, spec), renamed, expected, "header row differs")

    def test_file_that_does_not_parse(self):
        spec = delimited_spec("csv", "necessary", columns=COLUMNS[:2])
        rows = [{"text": "a", "count": "1"}]
        self.assert_rejected(b'text,count\n"a"x,1\n', spec, rows, "cannot parse")
        self.assert_rejected(b"text,count\na,1,2\n", spec, rows, "DuckDB read_csv cannot parse")
        self.assert_rejected(b"text,count\n\xff,1\n", spec, rows, "not UTF-8")

    def test_unquoted_escape_char_is_a_disagreement(self):
        spec = delimited_spec("csv", "necessary", escape_char="\\", columns=COLUMNS[:1])
        self.assert_rejected(b"text\nC:\\dir\n", spec, [{"text": "C:\\dir"}],
                             'csv module read "C:dir", got duckdb read "C:\\\\dir"')
        self.assert_accepted(b'text\n"C:\\\\dir"\n', spec, [{"text": "C:\\dir"}])


class HandWrittenModeTests(ReadBackCase):
    """Literal bytes per quote mode over (text string, count int64, price decimal(12,2))."""

    COLS = [{"name": "text", "type": "string"}, {"name": "count", "type": "int64"},
            {"name": "price", "type": "decimal(12,2)"}]

    def check(self, quote: str, data: bytes, accepted: list[list], rejected: list[list], **fmt):
        spec = delimited_spec(fmt.pop("kind", "csv"), quote, columns=self.COLS, **fmt)
        for values in accepted:
            with self.subTest(quote=quote, accepted=values):
                self.assert_accepted(data, spec, [dict(zip(["text", "count", "price"], v)) for v in values])
        for values in rejected:
            with self.subTest(quote=quote, rejected=values):
                self.assert_rejected(data, spec, [dict(zip(["text", "count", "price"], v)) for v in values])

    def test_all(self):
        data = b'"text","count","price"\n"a,b","1","-1.50"\n"","",""\n"x",,\n'
        good = [["a,b", "1", "-1.50"], None, ["x", None, None]]
        # `all` with null_value "": a quoted empty field is null or "" (by design); unquoted is null.
        self.check("all", data,
                   accepted=[[good[0], [None, None, None], good[2]], [good[0], ["", None, None], good[2]]],
                   rejected=[[good[0], ["", None, None], ["x", "", None]], [good[0], ["y", None, None], good[2]]])

    def test_all_with_a_null_text(self):
        data = b'"text","count","price"\n"NULL","NULL","NULL"\n'
        self.check("all", data, accepted=[[["NULL", None, None]], [[None, None, None]]],
                   rejected=[[["", None, None]]], null_value="NULL")

    def test_non_null(self):
        data = b'"text","count","price"\n"say ""hi""","-7",\n"",,"0.00"\n,"9223372036854775807","12.30"\n'
        good = [['say "hi"', "-7", None], ["", None, "0.00"], [None, "9223372036854775807", "12.30"]]
        self.check("non_null", data, accepted=[good],
                   rejected=[[good[0], [None, None, "0.00"], good[2]], [good[0], good[1], ["", good[2][1], "12.30"]]])

    def test_necessary(self):
        data = b'text,count,price\n"a,b",1,-1.50\n"",,\n"NULL",2,3.00\n  sp  ,3,4.00\n"l1\r\nl2",4,5.00\n'
        good = [["a,b", "1", "-1.50"], ["", None, None], ["NULL", "2", "3.00"], ["  sp  ", "3", "4.00"],
                ["l1\r\nl2", "4", "5.00"]]
        self.check("necessary", data, accepted=[good],
                   rejected=[[good[0], [None, None, None], *good[2:]], [*good[:3], ["sp", "3", "4.00"], good[4]],
                             [*good[:4], ["l1\nl2", "4", "5.00"]]])

    def test_necessary_with_null_text(self):
        data = b'text,count,price\n"NULL",NULL,NULL\nNULL,1,1.00\n'
        self.check("necessary", data, accepted=[[["NULL", None, None], [None, "1", "1.00"]]],
                   rejected=[[[None, None, None], [None, "1", "1.00"]]], null_value="NULL")

    def test_non_numeric(self):
        data = b'"text","count","price"\n"x",1,2.00\n,,\n"",-3,-0.01\n'
        good = [["x", "1", "2.00"], [None, None, None], ["", "-3", "-0.01"]]
        self.check("non_numeric", data, accepted=[good],
                   rejected=[[good[0], ["", None, None], good[2]], [good[0], good[1], [None, "-3", "-0.01"]]])

    def test_never(self):
        data = b"text\tcount\tprice\nplain\t1\t2.00\n\\N\t\\N\t\\N\ntab\\\there\t2\t3.00\nback\\\\slash\t3\t4.00\n"
        good = [["plain", "1", "2.00"], [None, None, None], ["tab\there", "2", "3.00"], ["back\\slash", "3", "4.00"]]
        # `\N` under escape `\` reads as "N": a null, or the text "N" (never cannot tell)
        self.check("never", data, accepted=[good, [good[0], ["N", None, "N"], *good[2:]]],
                   rejected=[[good[0], good[1], ["tab", "2", "3.00"], good[3]]],
                   kind="tsv", escape_char="\\", null_value="\\N")

    def test_single_quote_and_backslash_escape(self):
        data = b"text;count;price\n'it\\'s';1;2.00\n'semi;colon';2;3.00\n'';;\n"
        good = [["it's", "1", "2.00"], ["semi;colon", "2", "3.00"], ["", None, None]]
        self.check("necessary", data, accepted=[good], rejected=[[good[0], good[1], [None, None, None]]],
                   delimiter=";", quote_char="'", escape_char="\\")


class JsonlTests(ReadBackCase):
    SPEC = {"format": {"type": "jsonl"}, "compression": "none", "pgp": False, "columns": COLUMNS}

    def test_json_writer_reads_back(self):
        rows = sample_rows()
        for compression in ("none", "gzip", "zstd"):
            with self.subTest(compression=compression):
                spec = {**self.SPEC, "compression": compression}
                self.assert_accepted(compress(jsonl_bytes(rows), compression), spec, rows)

    def test_decimals_as_numbers_keep_their_scale(self):
        spec = {**self.SPEC, "columns": [{"name": "amount", "type": "decimal(38,10)"}]}
        rows = [{"amount": "-0.0001234500"}, {"amount": "0.0000000000"}]
        self.assert_accepted(b'{"amount": -0.0001234500}\n{"amount": 0.0000000000}\n', spec, rows)
        self.assert_rejected(b'{"amount": -0.00012345}\n{"amount": 0}\n', spec, rows, "digits and scale")

    def test_rejections(self):
        rows = sample_rows()
        swapped = [NAMES[1], NAMES[0], *NAMES[2:]]
        count_as_text = jsonl_bytes(rows).replace(b'"count": 42', b'"count": "42"')
        self.assertNotEqual(count_as_text, jsonl_bytes(rows))
        cases = [
            ("key order", jsonl_bytes(rows, swapped), rows, ["keys out of column order"]),
            ("missing key", jsonl_bytes([{k: v for k, v in r.items()} for r in rows], NAMES[:-1]), rows,
             ["keys differ from the columns"]),
            ("int as a string", count_as_text, rows, ["int64 must be a JSON integer"]),
            ("lost null", jsonl_bytes(rows), changed(rows, 0, day=None), ['column "day"', "expected null"]),
            ("changed value", jsonl_bytes(rows), changed(rows, 2, text="say 'hi'"), ['expected "say \'hi\'"']),
            ("missing row", jsonl_bytes(rows[:-1]), rows, ["row count differs"]),
            ("not json", b"{\n", rows[:1], ["is not JSON"]),
        ]
        for name, data, expected, needles in cases:
            with self.subTest(name):
                self.assert_rejected(data, self.SPEC, expected, *needles)


class ParquetTests(ReadBackCase):
    SPEC = {"format": {"type": "parquet"}, "compression": "none", "pgp": False, "columns": COLUMNS}

    def test_codecs_and_wrappers(self):
        rows = sample_rows()
        table = arrow_table(rows)
        for compression, codec in [("none", "snappy"), ("gzip", "gzip"), ("zstd", "zstd"), ("zip", "snappy"),
                                   ("tar", "snappy")]:
            with self.subTest(compression=compression):
                wrapped = compression in ("zip", "tar")  # gzip and zstd are the page codec, no outer layer
                data = compress(parquet_bytes(table, codec), compression) if wrapped else parquet_bytes(table, codec)
                output = self.assert_accepted(data, {**self.SPEC, "compression": compression}, rows)
                self.assertIn(f"codec {codec.upper()}", output)
                self.assertIn("pyarrow, duckdb", output)

    def test_rejections(self):
        rows = sample_rows()
        table = arrow_table(rows)
        spec = self.SPEC
        no_amounts = [dict(r, amount=None) for r in rows]
        cases = [
            ("wrong codec", parquet_bytes(table, "zstd"), {**spec, "compression": "gzip"}, rows,
             ["wrong codec", "GZIP", "ZSTD"]),
            ("no statistics", parquet_bytes(table, statistics=False), spec, rows, ["no statistics"]),
            ("decimal precision", parquet_bytes(arrow_table(rows, amount_type=pa.decimal256(40, 10))), spec, rows,
             ["wrong column type", "decimal256(40, 10)", "precision=40"]),
            ("decimal scale", parquet_bytes(arrow_table(no_amounts, pa.decimal128(38, 9))), spec, no_amounts,
             ["wrong column type", "decimal128(38, 9)", "scale=9"]),
            ("timestamp without a zone", parquet_bytes(arrow_table(rows, at_type=pa.timestamp("us"))), spec, rows,
             ["isAdjustedToUTC=false"]),
            ("timestamp in ms", parquet_bytes(arrow_table(rows, at_type=pa.timestamp("ms", "UTC"))), spec, rows,
             ["timeUnit=milliseconds"]),
            ("changed value", parquet_bytes(table), spec, changed(rows, 3, text="line1 line2"),
             ['expected "line1 line2"']),
            ("lost null", parquet_bytes(table), spec, changed(rows, 0, price=None), ['column "price"', "expected null"]),
            ("missing row", parquet_bytes(arrow_table(rows[:-1])), spec, rows, ["row count differs"]),
            ("not parquet", b"PAR1 nope", spec, rows, ["pyarrow cannot read"]),
        ]
        for name, data, case_spec, expected, needles in cases:
            with self.subTest(name):
                self.assert_rejected(data, case_spec, expected, *needles)


class LayerTests(ReadBackCase):
    def test_every_compression(self):
        rows = sample_rows()
        for compression in read_back.COMPRESSIONS:
            with self.subTest(compression=compression):
                spec = delimited_spec("csv", "necessary", compression=compression)
                self.assert_accepted(compress(reference_delimited(rows, spec), compression), spec, rows)

    def test_zstd_with_several_frames(self):
        rows = sample_rows()
        spec = delimited_spec("csv", "necessary", compression="zstd")
        payload = reference_delimited(rows, spec)
        half = payload.index(b"\n") + 1
        data = zstandard.ZstdCompressor().compress(payload[:half]) + zstandard.ZstdCompressor().compress(payload[half:])
        self.assert_accepted(data, spec, rows)

    def test_broken_layers(self):
        rows = sample_rows()
        spec = delimited_spec("csv", "necessary")
        payload = reference_delimited(rows, spec)
        two_members = io.BytesIO()
        with zipfile.ZipFile(two_members, "w") as archive:
            archive.writestr("a.csv", payload)
            archive.writestr("b.csv", payload)
        cases = [
            ("zip", two_members.getvalue(), ["exactly one file"]),
            ("gzip", gzip.compress(payload)[:-8], ["gzip layer unreadable"]),
            ("gzip", payload, ["gzip layer unreadable"]),
            ("zstd", b"\x28\xb5\x2f\xfd garbage", ["zstd layer unreadable"]),
            ("tgz", compress(payload, "tar"), ["tgz layer unreadable"]),
        ]
        for compression, data, needles in cases:
            with self.subTest(compression=compression, needles=needles):
                self.assert_rejected(data, {**spec, "compression": compression}, rows, *needles)


class PgpTests(ReadBackCase):
    @classmethod
    def setUpClass(cls):
        cls.key = pysequoia.Tsk.generate("Read Back <read-back@example.com>")
        cls.other_key = pysequoia.Tsk.generate("Someone Else <else@example.com>")

    def key_file(self, key) -> Path:
        path = self.dir / "key.asc"
        path.write_text(str(key))
        return path

    def test_encrypted_files_read_back(self):
        rows = sample_rows()
        spec = delimited_spec("csv", "necessary", compression="gzip", pgp=True)
        payload = gzip.compress(reference_delimited(rows, spec))
        for armor in (False, True):
            with self.subTest(armor=armor):
                data = pysequoia.encrypt(payload, [self.key.extract_certificate()], armor=armor)
                self.assert_accepted(data, spec, rows, key=self.key_file(self.key))

    def test_encrypted_parquet(self):
        rows = sample_rows()
        spec = {"format": {"type": "parquet"}, "compression": "zstd", "pgp": True, "columns": COLUMNS}
        data = pysequoia.encrypt(parquet_bytes(arrow_table(rows), "zstd"), [self.key.extract_certificate()],
                                 armor=False)
        self.assert_accepted(data, spec, rows, key=self.key_file(self.key))

    def test_wrong_key_missing_key_and_plain_file(self):
        rows = sample_rows()
        spec = delimited_spec("csv", "necessary", pgp=True)
        payload = reference_delimited(rows, spec)
        data = pysequoia.encrypt(payload, [self.key.extract_certificate()], armor=False)
        self.assert_rejected(data, spec, rows, "OpenPGP decryption failed", key=self.key_file(self.other_key))
        self.assert_rejected(payload, spec, rows, "OpenPGP decryption failed", key=self.key_file(self.key))
        self.assert_rejected(data, spec, rows, "--secret-key", code=2)


class CommandLineTests(ReadBackCase):
    def test_exit_codes_and_messages(self):
        rows = sample_rows()
        spec = delimited_spec("tsv", "necessary")
        (self.dir / "f.tsv").write_bytes(reference_delimited(rows, spec))
        (self.dir / "spec.json").write_text(json.dumps(spec))
        (self.dir / "good.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (self.dir / "bad.jsonl").write_text("".join(json.dumps(r) + "\n" for r in changed(rows, 0, text="Plain")))
        (self.dir / "bad_spec.json").write_text(json.dumps({**spec, "compression": "bzip2"}))

        def run(spec_name: str, expected_name: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, str(HERE / "read_back.py"), "--file", str(self.dir / "f.tsv"),
                                   "--spec", str(self.dir / spec_name), "--expected", str(self.dir / expected_name)],
                                  capture_output=True, text=True, check=False)

        good = run("spec.json", "good.jsonl")
        self.assertEqual((good.returncode, good.stderr), (0, ""))
        self.assertIn("read_back: ok", good.stdout)
        bad = run("spec.json", "bad.jsonl")
        self.assertEqual(bad.returncode, 1)
        self.assertIn('row 1, column "text" (string): expected "Plain", got "plain" [csv module + duckdb]', bad.stderr)
        bad_spec = run("bad_spec.json", "good.jsonl")
        self.assertEqual(bad_spec.returncode, 2)
        self.assertIn("compression must be one of", bad_spec.stderr)


if __name__ == "__main__":
    unittest.main()
