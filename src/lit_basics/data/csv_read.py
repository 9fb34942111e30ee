"""Read a user's CSV file as it comes, refusing what pandas would silently reinterpret.

pandas turns surplus leading fields into an index when a header has fewer names than the rows have
fields, renames a repeated name to `x.1`, and names a blank one `Unnamed: 2`; each would train on
other columns than the file shows. The raw records are checked with the csv module first.
"""

import codecs
import csv
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lit_basics.data.csv_numbers import PLAIN_NUMBERS, NumberFormat
from lit_basics.errors import ConfigError

DELIMITERS = ",;\t|"
SNIFF_CHARS = 64_000
CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"  # control characters but tab and line ends


def read_text(path: str, encoding: str) -> str:
    """The whole file as text, with one-line errors for a missing, unreadable or mis-encoded file."""
    file = Path(path)
    if file.is_dir():
        raise ConfigError(f"csv: {path!r} is a directory, not a CSV file")
    if not file.is_file():
        raise ConfigError(f"csv: file {path!r} does not exist")
    try:
        data = file.read_bytes()
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise ConfigError(f"csv: unknown encoding {encoding!r}; e.g. utf-8, latin-1, cp1252") from None
    except OSError as err:
        raise ConfigError(f"csv: file {path!r} cannot be read: {err.strerror}") from None
    check_not_binary(path, data, encoding, codec)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        raise ConfigError(f"csv: file {path!r} is not {encoding} text (byte {err.start}); "
                          "set --data.encoding, e.g. latin-1 or cp1252") from None


# what a file is when its first bytes say so: (test, what it is, what to do)
NOT_TEXT = (
    (lambda b: b.startswith(b"\x1f\x8b"), "a gzip-compressed file", "decompress it first (gunzip)"),
    (lambda b: b.startswith(b"PK\x03\x04") and b"xl/" in b[:4096] + b[-65536:], "an Excel workbook (.xlsx)",
     "save the sheet as CSV (File > Save As > CSV) or export it with pandas.read_excel(...).to_csv(...)"),
    (lambda b: b.startswith(b"PK\x03\x04"), "a zip archive", "unzip it and pass the CSV file inside"),
    (lambda b: b.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"), "an old Excel (.xls) or other Office file",
     "save the sheet as CSV"),
    (lambda b: b.startswith(b"BZh") and b[4:10] == b"1AY&SY", "a bzip2-compressed file", "decompress it (bunzip2)"),
    (lambda b: b.startswith(b"\xfd7zXZ\x00"), "an xz-compressed file", "decompress it (unxz)"),
    (lambda b: b.startswith(b"\x28\xb5\x2f\xfd"), "a zstd-compressed file", "decompress it (unzstd)"),
    (lambda b: b.startswith(b"7z\xbc\xaf\x27\x1c"), "a 7-zip archive", "extract the CSV file from it"),
    (lambda b: b.startswith(b"PAR1") and b.endswith(b"PAR1"), "a Parquet file",
     "export it with pandas.read_parquet(...).to_csv(...)"),
    (lambda b: b.startswith(b"%PDF-"), "a PDF document", "export the table as CSV"),
)


def _first_field(data: bytes) -> str:
    return re.split(rb"[,;\t|\r\n]", data[:200], maxsplit=1)[0].decode("utf-8", "replace")


def check_not_binary(path: str, data: bytes, encoding: str, codec: str) -> None:
    """Compressed, spreadsheet and other binary files named by their first bytes (not a mis-encoded text), and a
    byte-order mark the chosen encoding would keep as part of the first column name."""
    for test, what, advice in NOT_TEXT:
        if test(data):
            raise ConfigError(f"csv: file {path!r} is {what}, not CSV text (its first bytes say so); {advice}")
    if data.startswith(codecs.BOM_UTF8) and codec != "utf-8-sig":
        raise ConfigError(f"csv: file {path!r} starts with a UTF-8 byte-order mark (BOM) that --data.encoding "
                          f"{encoding!r} keeps as part of the first column name (it would read as "
                          f"{_first_field(data[3:])!r} with an invisible "
                          "'\\ufeff' before it); use --data.encoding utf-8-sig (the default), which removes it")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and not codec.startswith("utf-16"):
        raise ConfigError(f"csv: file {path!r} is UTF-16 text (its byte-order mark says so), not {encoding}; "
                          "use --data.encoding utf-16")


def sniff_delimiter(text: str) -> str:
    """csv.Sniffer's guess among , ; tab |; a comma when it cannot tell."""
    try:
        return csv.Sniffer().sniff(text[:SNIFF_CHARS], delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def read_table(path: str, sep: str | None = None, encoding: str = "utf-8-sig", skiprows: int = 0,
               header: bool = True, numbers: NumberFormat = PLAIN_NUMBERS,
               na_values: list[str] | None = None) -> tuple[pd.DataFrame, list[int]]:
    """The table (string column names) and each row's data row number in the file (1 = first row after the header).

    Args:
        sep: the delimiter; sniffed when None.
        skiprows: lines to skip before the header (or before the first row without a header).
        header: whether the first (unskipped) line names the columns; without one they are named 0, 1, ...
        numbers: how the file writes numbers; another notation than pandas' own is read as text, for
            NumberFormat to read strictly.
        na_values: pandas.read_csv's: cell values that mean missing besides its own (empty, NA, NaN, null, ...).
    """
    if skiprows < 0:
        raise ConfigError(f"skiprows={skiprows} must be >= 0")
    check_missing_markers(na_values)
    text = read_text(path, encoding)
    if not text.strip():
        raise ConfigError(f"csv: file {path!r} is empty")
    lines = text.splitlines(keepends=True)
    body = "".join(lines[skiprows:])
    delimiter = sep if sep is not None else sniff_delimiter(body)
    if len(delimiter) != 1:
        raise ConfigError(f"sep={sep!r} must be one character")
    records = [(i, r) for i, r in enumerate(csv.reader(io.StringIO(body), delimiter=delimiter)) if r]
    if not records:
        raise ConfigError(f"csv: file {path!r} has no lines after skiprows={skiprows}")
    names = [n.strip() for n in records[0][1]] if header else [str(i) for i in range(len(records[0][1]))]
    rows = records[1:] if header else records
    how = f"--data.sep {sep!r}" if sep is not None else f"the sniffed delimiter {delimiter!r}"
    if len(names) < 2:
        raise ConfigError(f"csv: file {path!r} splits into one column with {how}; "
                          "set --data.sep to the file's delimiter (e.g. ';' or '\\t')")
    index = header and len(names) > 2 and not names[0] and all(names[1:])  # R's write.csv, pandas' to_csv index
    check_names(path, names, skip_first=index)
    check_field_counts(path, names, rows, header)
    if not rows:
        raise ConfigError(f"csv: file {path!r} has a header but no rows")
    # a named notation is read by csv_numbers.NumberFormat, strictly; pandas would read 14,23 as 1423 with
    # thousands=',' and leave 1.065 a decimal number in a file whose decimal mark is ','
    as_text = {} if numbers.plain else {"dtype": str}
    table = parse(path, body, delimiter, header, names, na_values=na_values, **as_text)
    if len(table) != len(rows):
        raise ConfigError(f"csv: file {path!r}: pandas read {len(table)} rows where the csv module read "
                          f"{len(rows)}; check the quoting")
    check_control_characters(path, table)
    if index:
        table = drop_row_index(table)
    return table, list(range(1, len(rows) + 1))


def check_control_characters(path: str, table: pd.DataFrame) -> None:
    """A NUL or another control character in a name or cell is refused with its column and data row (pandas
    would keep it as part of a category that prints like another)."""
    for name in table.columns:
        if re.search(CONTROL, str(name)):
            raise ConfigError(f"csv: the header of {path!r} has a control character in the column name {name!r}; "
                              "remove it from the file")
    for name in table.columns:
        values = table[name]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
            continue
        bad = values.astype(str).str.contains(CONTROL, regex=True) & values.notna()
        if bad.any():
            at = int(np.flatnonzero(bad.to_numpy())[0])
            char = re.search(CONTROL, str(values.iloc[at])).group()
            raise ConfigError(f"csv: column {name!r} holds the control character {char!r} in data row {at + 1} "
                              f"({values.iloc[at]!r}); remove it from the file (control characters are no text)")


def drop_row_index(table: pd.DataFrame) -> pd.DataFrame:
    """The table without its first column, a row index under an empty header field; `attrs["row_index"]`
    says what it held (for the note and the summary)."""
    first = table.iloc[:, 0]
    numbers = pd.to_numeric(first, errors="coerce")
    running = numbers.notna().all() and (numbers.diff().iloc[1:] == 1).all()
    held = (f"row numbers {numbers.iloc[0]:g}..{numbers.iloc[-1]:g}" if running
            else f"row names (e.g. {str(first.iloc[0])!r})")
    table = table.iloc[:, 1:].copy()
    table.attrs["row_index"] = (f"the first column has no name and holds {held}: read as the row index "
                                "(as R's write.csv and pandas' to_csv write one) and left out")
    return table


def check_names(path: str, names: list[str], skip_first: bool = False) -> None:
    """Blank or repeated column names are refused (pandas would rename them silently); `skip_first`: the first
    field is a row index's empty name."""
    for i, name in enumerate(names):
        if skip_first and i == 0:
            continue
        if not name:
            raise ConfigError(f"csv: header field {i + 1} of {path!r} has no name; name every column "
                              "(or use --data.header false and refer to columns by number)")
        if name in names[:i]:
            raise ConfigError(f"csv: column name {name!r} appears twice in the header of {path!r} "
                              f"(fields {names.index(name) + 1} and {i + 1}); column names must be unique")


def check_field_counts(path: str, names: list[str], rows: list[tuple[int, list[str]]], header: bool) -> None:
    """Every row must have as many fields as there are names."""
    for number, (_, fields) in enumerate(rows, start=1):
        if len(fields) == len(names):
            continue
        if header:
            raise ConfigError(
                f"csv: the header of {path!r} has {len(names)} names but data row {number} has {len(fields)} "
                "fields; fix the header, or skip a first line that is not one with --data.skiprows 1 "
                "(and --data.header false when there is no header)")
        raise ConfigError(f"csv: row 1 of {path!r} has {len(names)} fields but row {number + 1} has {len(fields)}")


def missing_markers(na_values: list[str] | str | None) -> list[str] | None:
    """na_values as a list of strings: one value, or `[a, b]` as a shell passes it, each a string as written
    (YAML would read `?` as a mapping key and `-999` as a number)."""
    if not isinstance(na_values, str):
        return na_values
    text = na_values.strip()
    if text.startswith("[") and text.endswith("]"):
        return [part.strip().strip("'\"") for part in text[1:-1].split(",") if part.strip()]
    return [text]


def check_missing_markers(na_values: list[str] | None) -> None:
    if na_values is not None and (not isinstance(na_values, list) or not all(isinstance(v, str) for v in na_values)):
        raise ConfigError(f"na_values={na_values!r} must be a list of strings, e.g. ['?', '-']")


def parse(path: str, body: str, delimiter: str, header: bool, names: list[str], **options: Any) -> pd.DataFrame:
    """pandas' reading of the checked text; `options`: na_values and dtype."""
    try:
        table = pd.read_csv(io.StringIO(body), sep=delimiter, header=0 if header else None, index_col=False,
                            skipinitialspace=True, **options)
    except (pd.errors.ParserError, ValueError) as err:
        raise ConfigError(f"csv: file {path!r} is not a readable CSV: {str(err).splitlines()[0]}") from None
    table.columns = names
    return table
