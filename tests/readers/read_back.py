#!/usr/bin/env python3
"""Reads an exported file back with standard readers and checks it value for value.

    tests/readers/.venv/bin/python tests/readers/read_back.py \
        --file F --spec SPEC.json --expected EXPECTED.jsonl [--secret-key KEY.asc]

Exit 0: every row and value matches. Exit 1: a mismatch or an unreadable file (the first
mismatches are printed: row, column, expected, got, and which reader). Exit 2: bad arguments,
spec or expected file (a mistake of the calling test, not of the exported file).

SPEC.json: {"format": {"type": "csv"|"tsv"|"psv"|"jsonl"|"parquet", and for csv/tsv/psv
"delimiter", "quote": "all"|"non_null"|"necessary"|"non_numeric"|"never", "quote_char",
"escape_char", "header", "null_value"}, "compression": "none"|"gzip"|"zstd"|"zip"|"tar"|"tgz",
"pgp": bool, "columns": [{"name", "type": "string"|"int64"|"float64"|"decimal(p,s)"|"boolean"|
"date"|"timestamp", optional "nullable" (default true)}]}.

EXPECTED.jsonl: one object per row, keys = column names, values null or canonical text: strings
as they are, int64 in decimal, float64 any round-trip text (compared as numbers; NaN, Infinity,
-Infinity allowed; -0 and 0 differ), decimals with exactly their scale, booleans true/false,
dates YYYY-MM-DD, timestamps YYYY-MM-DDTHH:MM:SS.ffffffZ.

The layers, outside in, and who reads them (none shares code with the exporter):
- OpenPGP: pysequoia (Sequoia), with the secret key of --secret-key; armored or binary.
- Compression: gzip, zip, tar and tgz with the standard library (zip/tar must hold exactly one
  regular file), zstd with `zstandard` (every frame). For parquet, gzip and zstd name the page
  codec inside the file, not an outer layer, and `none` means Snappy pages (docs/openapi.json);
  zip/tar/tgz still wrap the parquet file.
- Delimited text (csv/tsv/psv), read twice, and the two readings must agree on every field:
  * Python's `csv` module, configured from the spec (delimiter, quotechar; escapechar with
    doublequote=False when escape_char differs from quote_char; QUOTE_NONE under `never`,
    strict parsing). It decides the TEXT of each field, and the header row.
  * DuckDB `read_csv` with everything explicit (delim, quote, escape, header=false so the header
    row is compared by us, nullstr, all columns VARCHAR, allow_quoted_nulls=false, strict_mode).
    Python 3.11's csv module cannot tell a quoted empty field from an unquoted one, so DuckDB
    decides NULL vs TEXT: a null is an unquoted field equal to null_value; a quoted one is text.
  * Where the mode cannot mark the difference, a field equal to null_value stands for null or
    for that text and either is accepted: under `all` (nulls are quoted like everything else;
    with null_value "" a null and "" are the same bytes by design) unless the field was left
    unquoted, and always under `never`.
  * DuckDB does not take part when escape_char differs from quote_char and either the mode is
    `never` (DuckDB applies escapes only inside quotes) or null_value holds the escape char
    (DuckDB refuses that nullstr). Python alone reads those files, and a field that reads as
    null_value does (after escapes: `\\N` under escape `\\` reads "N") stands for null or text.
  * Elsewhere a field holding a distinct escape_char must be quoted: Python's reader applies
    escapes outside quotes too and DuckDB does not, so an unquoted one shows as a disagreement.
- JSONL: json.loads(line, parse_float=Decimal) per line; keys must be the columns, in column
  order, once each. int64 must be a JSON integer; float64 a number (NaN/Infinity/-Infinity as
  the bare constants or as strings); decimals a string with the exact text or a number with the
  exact digits and scale; booleans true/false; the rest strings.
- Parquet, read twice: pyarrow.parquet (Parquet logical types and Arrow types: decimal
  precision/scale, date, timestamp in microseconds adjusted to UTC, optional repetition for
  nullable columns; the codec of every column chunk; statistics present on every column chunk)
  and DuckDB read_parquet (its column types and values).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import io
import json
import math
import re
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Iterable

FORMATS = ("csv", "tsv", "psv", "jsonl", "parquet")
DELIMITED = ("csv", "tsv", "psv")
QUOTE_MODES = ("all", "non_null", "necessary", "non_numeric", "never")
COMPRESSIONS = ("none", "gzip", "zstd", "zip", "tar", "tgz")
SIMPLE_TYPES = ("string", "int64", "float64", "boolean", "date", "timestamp")
DECIMAL_TYPE = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
# Parquet page codec expected for each `compression` (docs/openapi.json, export compression).
PARQUET_CODEC = {"none": "SNAPPY", "gzip": "GZIP", "zstd": "ZSTD", "zip": "SNAPPY", "tar": "SNAPPY", "tgz": "SNAPPY"}
MAX_SHOWN = 20
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class SpecError(Exception):
    """The spec, the expected rows or the arguments are wrong: exit 2."""


class FileFailure(Exception):
    """The exported file cannot be read as the spec says: exit 1."""


# ---------------------------------------------------------------------------------------------
# spec and expected rows


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # as in the spec: "string", "decimal(38,10)", ...
    nullable: bool = True

    @property
    def decimal(self) -> tuple[int, int] | None:
        m = DECIMAL_TYPE.match(self.type)
        return (int(m.group(1)), int(m.group(2))) if m else None

    @property
    def kind(self) -> str:
        return "decimal" if self.decimal else self.type


@dataclass(frozen=True)
class Delimited:
    delimiter: str
    quote: str
    quote_char: str
    escape_char: str
    header: bool
    null_value: str


@dataclass(frozen=True)
class Spec:
    format: str
    delimited: Delimited | None
    compression: str
    pgp: bool
    columns: list[Column]

    def describe(self) -> str:
        parts = [self.format]
        if self.delimited:
            d = self.delimited
            parts.append(f"quote={d.quote} delimiter={d.delimiter!r} quote_char={d.quote_char!r} "
                         f"escape_char={d.escape_char!r} header={d.header} null_value={d.null_value!r}")
        parts.append(f"compression={self.compression}")
        if self.pgp:
            parts.append("pgp")
        return ", ".join(parts)


def _one_char(settings: dict, key: str) -> str:
    value = settings.get(key)
    if not isinstance(value, str) or len(value) != 1:
        raise SpecError(f"spec format.{key} must be one character, got {value!r}")
    return value


def parse_spec(raw: Any) -> Spec:
    if not isinstance(raw, dict):
        raise SpecError("spec must be a JSON object")
    fmt = raw.get("format")
    if not isinstance(fmt, dict) or fmt.get("type") not in FORMATS:
        raise SpecError(f"spec format.type must be one of {', '.join(FORMATS)}, got {fmt!r}")
    kind = fmt["type"]
    delimited = None
    if kind in DELIMITED:
        if fmt.get("quote") not in QUOTE_MODES:
            raise SpecError(f"spec format.quote must be one of {', '.join(QUOTE_MODES)}, got {fmt.get('quote')!r}")
        if not isinstance(fmt.get("header"), bool):
            raise SpecError(f"spec format.header must be true or false, got {fmt.get('header')!r}")
        if not isinstance(fmt.get("null_value"), str):
            raise SpecError(f"spec format.null_value must be a string, got {fmt.get('null_value')!r}")
        delimited = Delimited(
            delimiter=_one_char(fmt, "delimiter"),
            quote=fmt["quote"],
            quote_char=_one_char(fmt, "quote_char"),
            escape_char=_one_char(fmt, "escape_char"),
            header=fmt["header"],
            null_value=fmt["null_value"],
        )
    compression = raw.get("compression")
    if compression not in COMPRESSIONS:
        raise SpecError(f"spec compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")
    pgp = raw.get("pgp", False)
    if not isinstance(pgp, bool):
        raise SpecError(f"spec pgp must be true or false, got {pgp!r}")
    columns_raw = raw.get("columns")
    if not isinstance(columns_raw, list) or not columns_raw:
        raise SpecError("spec columns must be a non-empty list of {name, type}")
    columns = []
    for i, c in enumerate(columns_raw):
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            raise SpecError(f"spec columns[{i}] must be an object with a string name")
        ctype = c.get("type")
        if ctype not in SIMPLE_TYPES and not (isinstance(ctype, str) and DECIMAL_TYPE.match(ctype)):
            raise SpecError(f"spec columns[{i}] ({c['name']}): type must be one of "
                            f"{', '.join(SIMPLE_TYPES)} or decimal(p,s), got {ctype!r}")
        nullable = c.get("nullable", True)
        if not isinstance(nullable, bool):
            raise SpecError(f"spec columns[{i}] ({c['name']}): nullable must be true or false")
        columns.append(Column(c["name"], ctype, nullable))
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise SpecError(f"spec columns repeat a name: {names}")
    return Spec(kind, delimited, compression, pgp, columns)


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"key repeated: {', '.join(repeated)}")
    return dict(pairs)


def parse_expected(text: str, columns: list[Column]) -> list[dict[str, str | None]]:
    names = {c.name for c in columns}
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, object_pairs_hook=_refuse_duplicates)
        except ValueError as e:
            raise SpecError(f"expected line {number}: not a JSON object ({e})") from None
        if not isinstance(row, dict) or set(row) != names:
            got = sorted(row) if isinstance(row, dict) else type(row).__name__
            raise SpecError(f"expected line {number}: keys must be the columns {sorted(names)}, got {got}")
        for name, value in row.items():
            if value is not None and not isinstance(value, str):
                raise SpecError(f"expected line {number}, column {name!r}: values are null or canonical "
                                f"text (a JSON string), got {json.dumps(value)}")
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# comparing values


class NullOrText:
    """A delimited field whose quoting mode cannot tell null from the text `text`."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return f"{json.dumps(self.text, ensure_ascii=False)} (null or text: the mode cannot tell)"


@dataclass
class Mismatch:
    row: int | None  # 1-based data row; None for the whole file
    column: str | None
    column_type: str | None
    expected: Any
    got: Any
    reader: str
    note: str = ""

    def render(self) -> str:
        where = "file" if self.row is None else f"row {self.row}"
        if self.column is not None:
            where += f", column {json.dumps(self.column, ensure_ascii=False)} ({self.column_type})"
        text = f"{where}: expected {show(self.expected)}, got {show(self.got)} [{self.reader}]"
        return text + (f": {self.note}" if self.note else "")


class Raw(str):
    """Text shown as it is (a count, a list of names), not as a JSON string."""


def show(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def floats_equal(expected: str, got: float) -> bool:
    want = float(expected)
    if math.isnan(want) or math.isnan(got):
        return math.isnan(want) and math.isnan(got)
    return want == got and math.copysign(1.0, want) == math.copysign(1.0, got)


def text_matches(column: Column, expected: str | None, got: str | None | NullOrText) -> tuple[bool, str]:
    """Compares canonical text with a reader's text (delimited files, Parquet values)."""
    if isinstance(got, NullOrText):
        return (expected is None or expected == got.text), ""
    if expected is None or got is None:
        return expected is got, ("null lost" if expected is None else "value read as null")
    if column.kind == "float64":
        try:
            return floats_equal(expected, float(got)), "compared as numbers"
        except ValueError:
            return False, "not a number"
    return expected == got, ""


class Comparison:
    """Collects the mismatches of every reader against the expected rows."""

    def __init__(self, columns: list[Column], expected: list[dict[str, str | None]]):
        self.columns = columns
        self.expected = expected
        self.mismatches: list[Mismatch] = []
        self.readers: list[str] = []
        self.notes: list[str] = []

    def fail(self, reader: str, note: str, expected: Any = None, got: Any = None) -> None:
        self.mismatches.append(Mismatch(None, None, None, expected, got, reader, note))

    def rows(self, reader: str, rows: list[list[Any]],
             match: Callable[[Column, str | None, Any], tuple[bool, str]] = text_matches) -> None:
        """Compares a reader's data rows (values in column order) with the expected rows."""
        self.readers.append(reader)
        for number, (want, got) in enumerate(zip(self.expected, rows), start=1):
            if len(got) != len(self.columns):
                self.mismatches.append(Mismatch(number, None, None, Raw(f"{len(self.columns)} fields"),
                                                Raw(f"{len(got)} fields"), reader, show_row(got)))
                continue
            for column, value in zip(self.columns, got):
                ok, note = match(column, want[column.name], value)
                if not ok:
                    self.mismatches.append(Mismatch(number, column.name, column.type,
                                                    want[column.name], value, reader, note))
        if len(rows) != len(self.expected):
            extra = f"; first extra row: {show_row(rows[len(self.expected)])}" if len(rows) > len(self.expected) else ""
            self.fail(reader, f"row count differs{extra}", Raw(f"{len(self.expected)} rows"), Raw(f"{len(rows)} rows"))


def show_row(values: Iterable[Any]) -> Raw:
    return Raw("[" + ", ".join(show(v) for v in values) + "]")


# ---------------------------------------------------------------------------------------------
# layers: OpenPGP, then compression


def first_line(error: Exception) -> str:
    # pysequoia's errors carry a Rust backtrace after the message.
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def decrypt(data: bytes, key_path: Path, password: str | None) -> bytes:
    import pysequoia

    try:
        key = pysequoia.Tsk.from_file(str(key_path))
    except Exception as e:  # pysequoia raises plain exceptions for every problem
        raise SpecError(f"--secret-key {key_path}: not an OpenPGP secret key ({first_line(e)})") from None
    try:
        return bytes(pysequoia.decrypt(data, key.decryptor(password)).bytes)
    except Exception as e:
        raise FileFailure(f"OpenPGP decryption failed: {first_line(e)}") from None


def single_member(names: list[str], kind: str) -> None:
    if len(names) != 1:
        raise FileFailure(f"the {kind} archive must hold exactly one file, it holds {len(names)}: {names}")


def decompress(data: bytes, compression: str, fmt: str) -> tuple[bytes, str]:
    """Removes the outer compression layer; returns the payload and a note for the summary."""
    if fmt == "parquet" and compression in ("none", "gzip", "zstd"):
        return data, ""
    try:
        if compression == "none":
            return data, ""
        if compression == "gzip":
            return gzip.decompress(data), ""
        if compression == "zstd":
            import zstandard

            reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
            return reader.read(), ""
        if compression == "zip":
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = [i.filename for i in archive.infolist() if not i.is_dir()]
                single_member(archive.namelist(), "zip")
                return archive.read(names[0]), f"zip member {names[0]!r}"
        mode = "r:gz" if compression == "tgz" else "r:"
        with tarfile.open(fileobj=io.BytesIO(data), mode=mode) as archive:
            members = archive.getmembers()
            single_member([m.name for m in members], "tar")
            if not members[0].isfile():
                raise FileFailure(f"the tar member {members[0].name!r} is not a regular file")
            extracted = archive.extractfile(members[0])
            assert extracted is not None  # a regular file always extracts
            return extracted.read(), f"tar member {members[0].name!r}"
    except FileFailure:
        raise
    except Exception as e:  # every decoder raises its own error type for corrupt input
        raise FileFailure(f"{compression} layer unreadable: {type(e).__name__}: {first_line(e)}") from None


def decode_utf8(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FileFailure(f"not UTF-8 at byte {e.start}: {payload[max(0, e.start - 20):e.start + 20]!r}") from None


# ---------------------------------------------------------------------------------------------
# delimited text


def python_csv_options(d: Delimited) -> dict[str, Any]:
    distinct_escape = d.escape_char != d.quote_char
    return {
        "delimiter": d.delimiter,
        "quotechar": d.quote_char,
        "doublequote": not distinct_escape,
        "escapechar": d.escape_char if distinct_escape else None,
        "quoting": csv.QUOTE_NONE if d.quote == "never" else csv.QUOTE_MINIMAL,
        "strict": True,
    }


def null_as_read(d: Delimited) -> str:
    """What the csv module reads for a field that is null_value alone (escapes applied)."""
    try:
        rows = list(csv.reader(io.StringIO(d.null_value, newline=""), **python_csv_options(d)))
    except csv.Error:
        return d.null_value
    if not rows or rows[0] == []:
        return ""
    return rows[0][0] if len(rows) == 1 and len(rows[0]) == 1 else d.null_value


def read_delimited_python(text: str, d: Delimited) -> list[list[str]]:
    options = python_csv_options(d)
    csv.field_size_limit(2**31 - 1)
    try:
        return list(csv.reader(io.StringIO(text, newline=""), **options))
    except csv.Error as e:
        raise FileFailure(f"Python csv module cannot parse the file: {e}") from None


def read_delimited_duckdb(path: Path, d: Delimited, width: int) -> list[tuple[str | None, ...]]:
    import duckdb

    quoted = d.quote != "never"
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(width)) + "}"
    query = (
        "SELECT * FROM read_csv(?, delim = ?, quote = ?, escape = ?, header = false, nullstr = ?,"
        f" columns = {columns}, all_varchar = true, allow_quoted_nulls = false, auto_detect = false,"
        " strict_mode = true, comment = '', parallel = false)"
    )
    params = [str(path), d.delimiter, d.quote_char if quoted else "", d.escape_char if quoted else "", d.null_value]
    try:
        return duckdb.connect().execute(query, params).fetchall()
    except duckdb.Error as e:
        raise FileFailure(f"DuckDB read_csv cannot parse the file: {first_line(e)}") from None


def disagreement(columns: list[Column], row: int, index: int, python_text: str, duck_value: str | None) -> Mismatch:
    column = columns[index] if index < len(columns) else Column(f"#{index + 1}", "extra field")
    return Mismatch(row, column.name, column.type, Raw(f"csv module read {show(python_text)}"),
                    Raw(f"duckdb read {show(duck_value)}"), "csv module vs duckdb", "the readers disagree")


def check_delimited(payload: bytes, spec: Spec, comparison: Comparison, work: Path) -> None:
    d = spec.delimited
    assert d is not None  # parse_spec fills it for every delimited format
    width = len(spec.columns)
    text = decode_utf8(payload)
    py_rows = [row if row else [""] for row in read_delimited_python(text, d)]  # a blank line is one empty field
    distinct_escape = d.escape_char != d.quote_char
    # DuckDB applies escapes only inside quotes, and refuses a nullstr holding the escape char.
    skip_duckdb = distinct_escape and (d.quote == "never" or d.escape_char in d.null_value)
    use_duckdb = not skip_duckdb
    duck_rows: list[tuple[str | None, ...]] | None = None
    if use_duckdb:
        path = work / "payload.txt"
        path.write_bytes(payload)
        duck_rows = read_delimited_duckdb(path, d, width)

    names = [c.name for c in spec.columns]
    if d.header:
        for reader, rows in (("csv module", py_rows), ("duckdb", duck_rows)):
            if rows is None:
                continue
            header = list(rows[0]) if rows else None
            if header != names:
                comparison.fail(reader, "header row differs", show_row(names), show_row(header) if header else None)
            del rows[:1]
    else:
        comparison.notes.append("no header row")

    # Under `all` a null is quoted like any text; under `never` nothing is; without DuckDB
    # nothing tells quoted from unquoted: there a field reading as null_value may stand for
    # either (see the module docstring).
    ambiguous = d.quote in ("all", "never") or not use_duckdb
    null_text = null_as_read(d)
    decided: list[list[Any]] = []
    for number, py_row in enumerate(py_rows, start=1):
        duck_row = duck_rows[number - 1] if duck_rows is not None and number <= len(duck_rows) else None
        if duck_rows is not None and duck_row is None:
            break  # the row counts differ; reported below
        cells: list[Any] = []
        for i, text_value in enumerate(py_row):
            duck_value = duck_row[i] if duck_row is not None and i < len(duck_row) else text_value
            if duck_row is not None and duck_value is None:
                cells.append(NullOrText(null_text) if d.quote == "never" else None)
                if text_value != null_text:
                    comparison.mismatches.append(disagreement(spec.columns, number, i, text_value, None))
            elif duck_value != text_value:
                comparison.mismatches.append(disagreement(spec.columns, number, i, text_value, duck_value))
                cells.append(text_value)
            elif ambiguous and text_value == null_text:
                cells.append(NullOrText(text_value))
            else:
                cells.append(text_value)
        decided.append(cells)
    if duck_rows is not None and len(duck_rows) != len(py_rows):
        comparison.fail("csv module vs duckdb", "readers disagree on the row count",
                        Raw(f"{len(py_rows)} rows (csv module)"), Raw(f"{len(duck_rows)} rows (duckdb)"))
    reader = "csv module + duckdb" if use_duckdb else "csv module (duckdb cannot read this escaping)"
    comparison.rows(reader, decided)


# ---------------------------------------------------------------------------------------------
# JSONL

NON_FINITE = frozenset({"NaN", "Infinity", "-Infinity"})


class JsonConstant(str):
    """NaN, Infinity or -Infinity written as a bare JSON constant."""


class JsonPairs(list):
    """A JSON object as its (key, value) pairs, in file order."""


def json_matches(column: Column, expected: str | None, got: Any) -> tuple[bool, str]:
    if expected is None or got is None:
        return expected is got, ("null lost" if expected is None else "value read as null")
    kind = column.kind
    if kind == "int64":
        if type(got) is not int:
            return False, "int64 must be a JSON integer"
        return str(got) == expected, ""
    if kind == "float64":
        if isinstance(got, str):  # a bare constant or a string: only for non-finite values
            if got not in NON_FINITE:
                return False, "float64 must be a JSON number"
            return floats_equal(expected, float(got)), "non-finite float"
        if type(got) not in (int, Decimal):
            return False, "float64 must be a JSON number"
        return floats_equal(expected, float(got)), "compared as numbers"
    if kind == "decimal":
        if isinstance(got, JsonConstant) or type(got) is bool:
            return False, "decimal must be a string or a number"
        if isinstance(got, str):
            return got == expected, "decimal as a string"
        if type(got) not in (int, Decimal):
            return False, "decimal must be a string or a number"
        try:
            want = Decimal(expected)
        except InvalidOperation:
            return False, "expected text is not a decimal"
        return Decimal(got).as_tuple() == want.as_tuple(), "decimal number: digits and scale must match"
    if kind == "boolean":
        if type(got) is not bool:
            return False, "boolean must be JSON true or false"
        return ("true" if got else "false") == expected, ""
    if not isinstance(got, str) or isinstance(got, JsonConstant):
        return False, f"{kind} must be a JSON string"
    return got == expected, ""


def check_jsonl(payload: bytes, spec: Spec, comparison: Comparison) -> None:
    text = decode_utf8(payload)
    names = [c.name for c in spec.columns]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final line break
    else:
        comparison.notes.append("no line break after the last line")
    rows: list[list[Any]] = []
    misordered: list[tuple[int, list[str]]] = []
    for number, line in enumerate(lines, start=1):
        try:
            obj = json.loads(line, parse_float=Decimal, parse_constant=JsonConstant,
                             object_pairs_hook=JsonPairs)
        except ValueError as e:
            comparison.fail("json", f"line {number} is not JSON: {e}", Raw("a JSON object"), line[:200])
            rows.append([])
            continue
        if not isinstance(obj, JsonPairs):
            comparison.fail("json", f"line {number} is not a JSON object", Raw("a JSON object"), line[:200])
            rows.append([])
            continue
        keys = [k for k, _ in obj]
        if keys != names:
            misordered.append((number, keys))
        values = dict(obj)
        rows.append([values.get(n) for n in names])
    if misordered:  # one report, not one a row, so value mismatches stay visible
        number, keys = misordered[0]
        note = "keys out of column order" if sorted(keys) == sorted(names) else "keys differ from the columns"
        comparison.mismatches.append(Mismatch(number, None, None, show_row(names), show_row(keys), "json",
                                              f"{note} (in {len(misordered)} of {len(lines)} rows)"))
    comparison.rows("json", rows, json_matches)


# ---------------------------------------------------------------------------------------------
# Parquet


def canonical_text(column: Column, value: Any) -> str | None | Any:
    """A typed value from pyarrow or DuckDB as canonical text (floats stay numbers as text)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.utcoffset() != dt.timedelta(0):
            return f"{value.isoformat()} (not UTC)"
        return timestamp_text(value)
    if isinstance(value, dt.date):
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    return str(value)


def timestamp_text(value: dt.datetime) -> str:
    return (f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:"
            f"{value.second:02d}.{value.microsecond:06d}Z")


def arrow_type_problem(column: Column, arrow_type: Any) -> str | None:
    import pyarrow as pa

    kind = column.kind
    if kind == "string":
        ok = pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or (
            hasattr(pa.types, "is_string_view") and pa.types.is_string_view(arrow_type))
    elif kind == "int64":
        ok = pa.types.is_int64(arrow_type)
    elif kind == "float64":
        ok = pa.types.is_float64(arrow_type)
    elif kind == "decimal":
        ok = pa.types.is_decimal(arrow_type) and (arrow_type.precision, arrow_type.scale) == column.decimal
    elif kind == "boolean":
        ok = pa.types.is_boolean(arrow_type)
    elif kind == "date":
        ok = pa.types.is_date32(arrow_type)
    else:
        ok = (pa.types.is_timestamp(arrow_type) and arrow_type.unit == "us"
              and arrow_type.tz in ("UTC", "+00:00", "Etc/UTC", "Z"))
    return None if ok else f"Arrow type {arrow_type}"


def parquet_type_problem(column: Column, schema_column: Any) -> str | None:
    """Checks the Parquet physical and logical type; None when they are what the column needs."""
    logical = json.loads(schema_column.logical_type.to_json())
    physical = schema_column.physical_type
    kind = column.kind
    if kind == "string":
        ok = physical == "BYTE_ARRAY" and logical.get("Type") == "String"
    elif kind == "int64":
        ok = physical == "INT64" and logical.get("Type") in ("None", "Int") and (
            logical.get("Type") == "None" or (logical.get("bitWidth") == 64 and logical.get("isSigned")))
    elif kind == "float64":
        ok = physical == "DOUBLE"
    elif kind == "decimal":
        precision, scale = column.decimal or (0, 0)
        ok = logical.get("Type") == "Decimal" and (logical.get("precision"), logical.get("scale")) == (precision, scale)
    elif kind == "boolean":
        ok = physical == "BOOLEAN"
    elif kind == "date":
        ok = physical == "INT32" and logical.get("Type") == "Date"
    else:
        ok = (physical == "INT64" and logical.get("Type") == "Timestamp" and logical.get("isAdjustedToUTC") is True
              and logical.get("timeUnit") == "microseconds")
    if not ok:
        return f"Parquet {physical} {schema_column.logical_type}"
    if column.nullable and schema_column.max_definition_level < 1:
        return "Parquet REQUIRED (the column is nullable: OPTIONAL expected)"
    return None


DUCKDB_TYPES = {"string": "VARCHAR", "int64": "BIGINT", "float64": "DOUBLE", "boolean": "BOOLEAN",
                "date": "DATE", "timestamp": "TIMESTAMP WITH TIME ZONE"}


def check_parquet(payload: bytes, spec: Spec, comparison: Comparison, work: Path) -> None:
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(pa.BufferReader(payload))
        table = parquet.read()
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError... for corrupt files
        raise FileFailure(f"pyarrow cannot read the Parquet file: {first_line(e)}") from None
    names = [c.name for c in spec.columns]
    if table.column_names != names:
        raise FileFailure(f"Parquet columns are {table.column_names}, expected {names} (in this order)")

    metadata = parquet.metadata
    for i, column in enumerate(spec.columns):
        for problem in (parquet_type_problem(column, parquet.schema.column(i)),
                        arrow_type_problem(column, table.schema.field(i).type)):
            if problem:
                comparison.mismatches.append(Mismatch(None, column.name, column.type, Raw(column.type),
                                                      Raw(problem), "pyarrow", "wrong column type"))

    expected_codec = PARQUET_CODEC[spec.compression]
    codecs: set[str] = set()
    chunks = with_min_max = 0
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        for i in range(group.num_columns):
            chunk = group.column(i)
            chunks += 1
            codecs.add(chunk.compression)
            if not chunk.is_stats_set or chunk.statistics is None:
                comparison.fail("pyarrow", f"row group {g}, column {names[i]!r}: no statistics", Raw("statistics"),
                                Raw("none"))
            elif chunk.statistics.has_min_max:
                with_min_max += 1
    if codecs - {expected_codec}:
        comparison.fail("pyarrow", f"wrong codec (compression {spec.compression!r} means {expected_codec} pages)",
                        Raw(expected_codec), Raw("/".join(sorted(codecs))))
    comparison.notes.append(f"codec {'/'.join(sorted(codecs)) or 'none (no row groups)'}, "
                            f"{metadata.num_row_groups} row group(s), statistics in {chunks} column chunk(s) "
                            f"({with_min_max} with min/max), written by {metadata.created_by}")

    arrow_rows = [[canonical_text(c, r[c.name]) for c in spec.columns] for r in table.to_pylist()]
    comparison.rows("pyarrow", arrow_rows)

    path = work / "payload.parquet"
    path.write_bytes(payload)
    con = duckdb.connect()
    try:
        described = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
        for column, (name, duck_type, *_rest) in zip(spec.columns, described):
            precision_scale = column.decimal
            wanted = (f"DECIMAL({precision_scale[0]},{precision_scale[1]})" if precision_scale
                      else DUCKDB_TYPES[column.kind])
            if name != column.name or duck_type != wanted:
                comparison.mismatches.append(Mismatch(None, column.name, column.type, Raw(f"{column.name} {wanted}"),
                                                      Raw(f"{name} {duck_type}"), "duckdb", "wrong column type"))
        # Timestamps as microseconds since the epoch: DuckDB's tz-aware Python values need pytz.
        select = ", ".join(f"epoch_us(\"c{i}\")" if c.kind == "timestamp" else f"\"c{i}\""
                           for i, c in enumerate(spec.columns))
        renamed = ", ".join(f'"{c.name.replace(chr(34), chr(34) * 2)}" AS "c{i}"' for i, c in enumerate(spec.columns))
        duck_rows = con.execute(f"SELECT {select} FROM (SELECT {renamed} FROM read_parquet(?))", [str(path)]).fetchall()
    except duckdb.Error as e:
        raise FileFailure(f"DuckDB read_parquet cannot read the file: {first_line(e)}") from None
    rows = []
    for r in duck_rows:
        cells = []
        for column, value in zip(spec.columns, r):
            if column.kind == "timestamp" and value is not None:
                value = timestamp_text(EPOCH + dt.timedelta(microseconds=value))
            cells.append(canonical_text(column, value))
        rows.append(cells)
    comparison.rows("duckdb", rows)


# ---------------------------------------------------------------------------------------------
# main


@dataclass
class Outcome:
    code: int
    lines: list[str] = field(default_factory=list)


def read_back(file: Path, spec_path: Path, expected_path: Path, secret_key: Path | None,
              password: str | None = None) -> Outcome:
    try:
        spec = parse_spec(json.loads(spec_path.read_text(encoding="utf-8")))
        expected = parse_expected(expected_path.read_text(encoding="utf-8"), spec.columns)
        if spec.pgp and secret_key is None:
            raise SpecError("the spec says pgp: pass --secret-key KEY.asc")
        data = file.read_bytes()
    except (OSError, ValueError, SpecError) as e:
        return Outcome(2, [f"read_back: error: {e}"])

    comparison = Comparison(spec.columns, expected)
    try:
        if spec.pgp:
            assert secret_key is not None  # checked above
            data = decrypt(data, secret_key, password)
        payload, layer_note = decompress(data, spec.compression, spec.format)
        if layer_note:
            comparison.notes.append(layer_note)
        with tempfile.TemporaryDirectory(prefix="read_back.") as work:
            if spec.format in DELIMITED:
                check_delimited(payload, spec, comparison, Path(work))
            elif spec.format == "jsonl":
                check_jsonl(payload, spec, comparison)
            else:
                check_parquet(payload, spec, comparison, Path(work))
    except SpecError as e:
        return Outcome(2, [f"read_back: error: {e}"])
    except FileFailure as e:
        return Outcome(1, [f"read_back: FAIL {file} ({spec.describe()}): {e}"])

    if comparison.mismatches:
        # File-level problems (row counts, header, types) first: they explain the rest.
        ordered = sorted(comparison.mismatches, key=lambda m: m.row is not None)
        shown = ordered[:MAX_SHOWN]
        lines = [f"read_back: MISMATCH {file} ({spec.describe()}): {len(comparison.mismatches)} problem(s)"]
        lines += ["  " + m.render() for m in shown]
        if len(comparison.mismatches) > MAX_SHOWN:
            lines.append(f"  ... and {len(comparison.mismatches) - MAX_SHOWN} more")
        return Outcome(1, lines)
    notes = "; ".join(comparison.notes)
    return Outcome(0, [f"read_back: ok {file} ({spec.describe()}): {len(expected)} rows x {len(spec.columns)} "
                       f"columns match ({', '.join(comparison.readers)})" + (f"; {notes}" if notes else "")])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", required=True, type=Path, help="the exported object's bytes")
    parser.add_argument("--spec", required=True, type=Path, help="SPEC.json: format, compression, pgp, columns")
    parser.add_argument("--expected", required=True, type=Path, help="EXPECTED.jsonl: one row per line")
    parser.add_argument("--secret-key", type=Path, help="OpenPGP secret key (armored or binary), when pgp")
    parser.add_argument("--secret-key-password", help="password of the secret key, if it has one")
    args = parser.parse_args(argv)
    outcome = read_back(args.file, args.spec, args.expected, args.secret_key, args.secret_key_password)
    stream = sys.stdout if outcome.code == 0 else sys.stderr
    for line in outcome.lines:
        print(line, file=stream)
    return outcome.code


if __name__ == "__main__":
    sys.exit(main())
