"""Numbers written as text in a user's CSV: read with the file's own marks, or refused with the option that reads them.

pandas reads a column as text when one cell is not a number in its default notation: decimal commas
(`1,5`), thousands separators (`1,234`), units (`12%`), or a missing-value marker it does not know
(`?`). As categories or an ID such a column would silently lose what it measures, so it is read
with the user's `decimal`/`thousands` when they fit, and otherwise refused with the option that does.
"""

import re
from dataclasses import dataclass

import pandas as pd

from lit_basics.errors import ConfigError

MISSING_MARKERS = 3  # numbers and at most this many other values ('?', '-', 'n/a') are numbers with gaps
MARKS = ",.' \u00a0"
DECIMALS = (".", ",")
# a number with grouped thousands or one decimal mark, a sign, currency, exponent or percent: what pandas
# leaves as text; version strings (1.2.3), addresses (10.0.0.3) or phone numbers (555 1000) do not match
NUMBER_TEXT = (r"\(?[-+]?[$€£¥]?\s?[-+]?(?:\d{1,3}(?:[.,' \u00a0]\d{3})+(?:[.,]\d+)?|\d+[.,]\d+|\d+)"
               r"(?:[eE][-+]?\d+)?\s?%?\)?")
UNITS = r"[%$€£¥()]"  # no option of pandas reads these: currency, percent, accounting negatives (1,234)


@dataclass(frozen=True)
class NumberFormat:
    """How the file writes numbers: its decimal mark and thousands separator (pandas.read_csv's options)."""

    decimal: str = "."
    thousands: str | None = None

    def __post_init__(self) -> None:
        if self.decimal not in DECIMALS:
            raise ConfigError(f"decimal={self.decimal!r} is not a decimal mark; allowed: '.', ','")
        if self.thousands is not None and self.thousands not in tuple(MARKS):  # one character of MARKS
            raise ConfigError(f"thousands={self.thousands!r} is not a thousands separator; allowed: "
                              f"{', '.join(repr(t) for t in MARKS)}, or null")
        if self.thousands == self.decimal:
            raise ConfigError(f"thousands={self.thousands!r} and decimal={self.decimal!r} must differ")

    @property
    def plain(self) -> bool:
        """pandas' own notation (1234.5): pandas reads such numbers itself."""
        return self.decimal == "." and self.thousands is None

    def parse(self, values: pd.Series) -> pd.Series:
        """The values as floats read with these marks; NaN where one is missing or not a number written
        this way (a named notation is strict: thousands in groups of three, no other mark)."""
        if pd.api.types.is_numeric_dtype(values):
            return values.astype("float64")
        text = values.astype(str).str.strip().where(values.notna())
        if self.plain:
            return pd.to_numeric(text, errors="coerce")
        d, t = re.escape(self.decimal), re.escape(self.thousands or "")
        whole = rf"(?:\d{{1,3}}(?:{t}\d{{3}})+|\d+)" if self.thousands else r"\d+"
        written = text.str.fullmatch(rf"[-+]?(?:{whole}(?:{d}\d*)?|{d}\d+)(?:[eE][-+]?\d+)?").fillna(False)
        if self.thousands:
            text = text.str.replace(self.thousands, "", regex=False)
        numbers = pd.to_numeric(text.str.replace(self.decimal, ".", regex=False), errors="coerce")
        return numbers.where(written.astype(bool))

    def options_for(self, value: str) -> str:
        """The options that would read `value` (a number written with marks these do not read)."""
        marks = [c for c in value if c in MARKS]
        if len(set(marks)) > 1:  # 1.234,5: the last mark is the decimal one, the first groups thousands
            needed = [f"--data.decimal {marks[-1]!r}"] if marks[-1] != self.decimal else []
            needed += [f"--data.thousands {marks[0]!r}"] if marks[0] != self.thousands else []
            return "set " + " and ".join(needed)
        mark = marks[0]
        options = [f"--data.decimal {mark!r} if {mark!r} marks decimals"] if mark in ",." and mark != self.decimal \
            else []
        options += [f"--data.thousands {mark!r} if it groups thousands"] if mark != self.thousands else []
        return "set " + " or ".join(options)


PLAIN_NUMBERS = NumberFormat()  # pandas' default notation: 1234.5


def numbers_as_text(values: pd.Series, rows: list[int] | None, number_format: NumberFormat, feature: bool = True
                    ) -> str | None:
    """'numeric' for a text column whose every value is a number in the file's notation; None for text.

    A column of numbers with marks `number_format` does not read (separators, units), or with up to
    MISSING_MARKERS other values ('?', '-') among more distinct numbers, is refused with one line naming
    the first such value, its data row (`rows`: the file's numbering) and the option that reads it (for a
    `feature`, also categorical_columns).
    """
    name, text = values.name, values.dropna().astype(str).str.strip()
    parsed = number_format.parse(text).notna()
    if parsed.all():
        return "numeric"
    other = text[~parsed]
    number_like = other.str.fullmatch(NUMBER_TEXT)
    markers = other[~number_like].value_counts()
    distinct_numbers = text[parsed].nunique() + other[number_like].nunique()
    if len(markers) > MISSING_MARKERS or distinct_numbers <= len(markers):
        return None  # text (codes, words) that holds some numbers

    def where(index) -> str:
        position = values.index.get_loc(index)
        return f"data row {rows[position] if rows is not None else position + 1}"

    keep = f", or list {name!r} in --data.categorical_columns to use its values as categories" if feature else ""
    shown = ", ".join(f"{v!r} ({n}x)" for v, n in markers.items())
    na_values = "--data.na_values \"[{}]\"".format(", ".join(f"'{v}'" for v in markers.index))
    if not number_like.any():
        first = other[~number_like].index[0]
        raise ConfigError(f"csv: column {name!r} holds numbers but also {shown}, first in {where(first)}; mark "
                          f"them missing with {na_values}{keep}")
    written = other[number_like]
    first = written.map(lambda v: len(set(v) & set(MARKS))).idxmax()  # the first with the most kinds of marks
    value = written[first]
    gaps = f", and mark {shown} missing with {na_values}" if len(markers) else ""
    if re.search(UNITS, value):
        raise ConfigError(f"csv: column {name!r} holds numbers with units or signs pandas does not read "
                          f"({value!r} in {where(first)}); write plain numbers in the file{gaps}{keep}")
    raise ConfigError(f"csv: column {name!r} holds numbers pandas did not read ({value!r} in {where(first)}); "
                      f"{number_format.options_for(value)}{gaps}{keep}")
