"""Reading MovieLens ratings in the layouts they are published in, for offline evaluation.

``load_ratings(path)`` returns one DataFrame, user_id (int64), item_id (int64), rating
(float64), timestamp (int64, Unix seconds), in file order, whichever layout ``path`` holds:

- ml-100k ``u.data``: tab separated, no header: user, item, rating, timestamp;
- ml-latest, ml-latest-small, ml-20m, ml-25m, ml-32m ``ratings.csv``: header
  ``userId,movieId,rating,timestamp``;
- ml-1m, ml-10m ``ratings.dat``: ``::`` separated, no header;
- RecBole's atomic ``.inter`` file: tab separated, header of ``name:type`` fields
  (``user_id:token  item_id:token  rating:float  timestamp:float``), columns in any order;
- a zip file, for instance the RecBole wheel ``recbole-1.2.1-py3-none-any.whl``, holding
  ``recbole/dataset_example/ml-100k/ml-100k.inter`` (100,000 ratings, 943 users, 1,682
  items), or GroupLens' own ``ml-100k.zip``: the file is read from the archive as it
  is, nothing is installed or extracted;
- a folder holding one of those files.

``load_items(path)`` reads the titles' genres and decade from the items file beside the
ratings (``u.item``, ``ml-100k.item``, ``movies.csv``, ``movies.dat``), for content models.

MovieLens' licence forbids redistributing it: the data is never committed here; tests
write small files in each layout.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from recommender.errors import BadInputError

COLUMNS = ("user_id", "item_id", "rating", "timestamp")
RECBOLE_MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"
INTER_FIELDS = {"user_id": "user_id", "item_id": "item_id", "rating": "rating", "timestamp": "timestamp"}
CSV_HEADER = {"userId": "user_id", "movieId": "item_id", "rating": "rating", "timestamp": "timestamp"}


class MovieLensError(BadInputError, ValueError):
    """A file that is missing, of no known layout, or malformed; the message names the file (and line)."""


class MissingFileError(MovieLensError):
    """No file of the kind asked for where it was looked for (e.g. ratings without an items file)."""


def load_ratings(path: str | Path) -> pd.DataFrame:
    """The ratings at ``path`` (a file, a zip or wheel, or a folder; see the module docstring) as one DataFrame."""
    data, source, name = _read(Path(path), RATINGS)
    return parse_ratings(data, source, name)


def load_items(path: str | Path) -> pd.DataFrame:
    """Item features beside the ratings at ``path``, indexed by item_id: genres (list of str), decade (str or None).

    Reads ml-100k's ``u.item`` (pipe separated, Latin-1, 19 genre flags), RecBole's
    ``ml-100k.item`` (``class`` is the space separated genres), or the ``movies.csv`` /
    ``movies.dat`` of the larger releases (``|`` separated genres, year in the title).
    ``path`` is the items file, a ratings file beside it, a folder, or a zip or wheel.
    The decade (``"1990s"``) comes from the release date or year; None where unknown.
    """
    path = Path(path)
    is_items_file = path.name in ITEMS.names or path.suffix == ITEMS.suffix
    if path.is_file() and not is_items_file and not zipfile.is_zipfile(path):
        path = path.parent  # a ratings file: the items file lies beside it
    data, source, name = _read(path, ITEMS)
    if name == "u.item":
        frame = _parse_items_u_item(data, source)
    elif name.endswith(".item"):
        frame = _parse_items_inter(data, source)
    else:
        frame = _parse_items_movies(data, source, name)
    frame.index.name = "item_id"
    return frame


def parse_ratings(data: bytes, source: str, name: str) -> pd.DataFrame:
    """Parse the bytes of a ratings file whose file name is ``name``; ``source`` names it in errors."""
    text = _decode(data, source)
    if not text.strip():
        raise MovieLensError(f"{source}: the file is empty")
    first_line = text.split("\n", 1)[0].rstrip("\r")
    if name.endswith(".inter") or ":token" in first_line:
        return _parse_inter(text, source, first_line)
    if name.endswith(".csv") or first_line.startswith("userId,"):
        return _parse_csv(text, source, first_line)
    if name.endswith(".dat") or "::" in first_line:
        return _parse_table(text.replace("::", "\t"), source, COLUMNS, header_lines=0)
    if "\t" in first_line:
        return _parse_table(text, source, COLUMNS, header_lines=0)
    raise MovieLensError(
        f"{source}: not a MovieLens ratings file I know (u.data, ratings.csv, ratings.dat or a RecBole .inter file);"
        f" its first line is {first_line[:80]!r}"
    )


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MovieLensError(f"{source}, line {line}: bytes that are not UTF-8 (is this a ratings file?)") from None


def _parse_inter(text: str, source: str, header: str) -> pd.DataFrame:
    fields = [field.split(":", 1)[0] for field in header.split("\t")]
    missing = [name for name in INTER_FIELDS if name not in fields]
    if missing:
        raise MovieLensError(
            f"{source}, line 1: a RecBole .inter header needs fields {', '.join(INTER_FIELDS)};"
            f" missing {', '.join(missing)} (header: {header!r})"
        )
    names = [INTER_FIELDS.get(field, f"_{i}") for i, field in enumerate(fields)]
    return _parse_table(text, source, names, header_lines=1)


def _parse_csv(text: str, source: str, header: str) -> pd.DataFrame:
    fields = header.split(",")
    missing = [name for name in CSV_HEADER if name not in fields]
    if missing:
        raise MovieLensError(
            f"{source}, line 1: a ratings.csv header needs {', '.join(CSV_HEADER)}; missing {', '.join(missing)}"
        )
    names = [CSV_HEADER.get(field, f"_{i}") for i, field in enumerate(fields)]
    return _parse_table(text, source, names, header_lines=1, sep=",")


def _parse_table(text: str, source: str, names: Sequence[str], *, header_lines: int, sep: str = "\t") -> pd.DataFrame:
    """Parse delimited text into COLUMNS, naming the file and line of the first bad row."""
    try:
        raw = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            header=None,
            skiprows=header_lines,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=True,
            engine="c",
        )
    except pd.errors.ParserError as exc:
        found = re.search(r"Expected \d+ fields in line (\d+), saw (\d+)", str(exc))
        where, what = (f", line {found[1]}", f"{found[2]} fields") if found else ("", str(exc).strip())
        raise MovieLensError(f"{source}{where}: {what}, expected {len(names)} separated by {sep!r}") from None
    if raw.shape[1] != len(names):  # the column count comes from the first data line
        line = _line_of(text, header_lines, 0)
        raise MovieLensError(
            f"{source}, line {line}: {raw.shape[1]} fields, expected {len(names)} separated by {sep!r}"
        )
    raw.columns = list(names)
    out = {}
    for column in COLUMNS:
        values = raw[column]
        numbers = pd.to_numeric(values.str.strip(), errors="coerce")
        bad = numbers.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            value = values.iloc[row]
            problem = "a missing field" if pd.isna(value) or value == "" else f"{value!r} is not a number"
            raise MovieLensError(f"{source}, line {_line_of(text, header_lines, row)}: {column}: {problem}")
        out[column] = numbers
    frame = pd.DataFrame(out)
    for column in ("user_id", "item_id", "timestamp"):
        values = frame[column].to_numpy(dtype=np.float64)
        fractional = values != np.floor(values)
        if fractional.any():
            row = int(np.flatnonzero(fractional)[0])
            line = _line_of(text, header_lines, row)
            raise MovieLensError(f"{source}, line {line}: {column}: {values[row]:g} is not a whole number")
        frame[column] = values.astype(np.int64)
    frame["rating"] = frame["rating"].astype(np.float64)
    return frame


def _line_of(text: str, header_lines: int, row: int) -> int:
    """The 1-based line number of data row ``row`` (0-based; blank lines skipped, as the parser skips them)."""
    seen = -1
    for number, line in enumerate(text.split("\n"), start=1):
        if number > header_lines and line.strip("\r"):
            seen += 1
            if seen == row:
                return number
    return number


@dataclass(frozen=True)
class _Layout:
    """Which files hold one kind of data: exact names first, then one file with ``suffix``, or ``recbole_member``."""

    kind: str
    names: tuple[str, ...]
    suffix: str
    recbole_member: str


RATINGS = _Layout("ratings", ("u.data", "ratings.csv", "ratings.dat"), ".inter", RECBOLE_MEMBER)
ITEMS = _Layout(
    "items", ("u.item", "movies.csv", "movies.dat"), ".item", RECBOLE_MEMBER.removesuffix(".inter") + ".item"
)


def _read(path: Path, layout: _Layout) -> tuple[bytes, str, str]:
    """The bytes, a name for errors and the file name of the ``layout`` file at ``path`` (file, folder or zip)."""
    if path.is_dir():
        path = _find_in_folder(path, layout)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file or folder")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            member = _find_in_archive(path, archive.namelist(), layout)
            return archive.read(member), f"{path}!{member}", PurePosixPath(member).name
    return path.read_bytes(), str(path), path.name


def _find_in_folder(folder: Path, layout: _Layout) -> Path:
    for name in layout.names:
        if (folder / name).is_file():
            return folder / name
    candidates = sorted(folder.glob(f"*{layout.suffix}"))
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise MovieLensError(f"{folder}: several {layout.suffix} files ({names}); name one")
    if not candidates:
        candidates = sorted(folder.glob("*.whl")) + sorted(folder.glob("*.zip"))
    if len(candidates) == 1:
        return candidates[0]
    raise MissingFileError(
        f"{folder}: no MovieLens {layout.kind} file in it (looked for {', '.join(layout.names)},"
        f" one *{layout.suffix} file, or one wheel or zip)"
    )


def _find_in_archive(path: Path, members: Sequence[str], layout: _Layout) -> str:
    if layout.recbole_member in members:
        return layout.recbole_member
    for name in layout.names:
        found = sorted((m for m in members if PurePosixPath(m).name == name), key=lambda m: (m.count("/"), m))
        if found:
            return found[0]
    candidates = [m for m in members if m.endswith(layout.suffix)]
    if len(candidates) == 1:
        return candidates[0]
    raise MissingFileError(
        f"{path}: no MovieLens {layout.kind} in this archive (looked for {layout.recbole_member},"
        f" {', '.join(layout.names)} or one {layout.suffix} file)"
    )


# ml-100k's genres, in the order of u.item's flag columns
U_ITEM_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def _decade(years: pd.Series) -> list[str | None]:
    numbers = pd.to_numeric(years, errors="coerce")
    return [None if pd.isna(year) else f"{int(year) // 10 * 10}s" for year in numbers]


def _parse_items_u_item(data: bytes, source: str) -> pd.DataFrame:
    names = ["item_id", "title", "release_date", "video_release_date", "url", *U_ITEM_GENRES]
    raw = _read_items_table(data.decode("latin-1"), source, names, sep="|", header=False)
    flags = raw[list(U_ITEM_GENRES)].to_numpy() == "1"
    genres = [[g for g, flag in zip(U_ITEM_GENRES, row, strict=True) if flag] for row in flags]
    years = raw["release_date"].str[-4:]
    return pd.DataFrame({"genres": genres, "decade": _decade(years)}, index=_item_ids(raw, source))


def _parse_items_inter(data: bytes, source: str) -> pd.DataFrame:
    text = _decode(data, source)
    header = text.split("\n", 1)[0].rstrip("\r")
    fields = [field.split(":", 1)[0] for field in header.split("\t")]
    if "item_id" not in fields:
        raise MovieLensError(f"{source}, line 1: a RecBole .item header needs an item_id field (header: {header!r})")
    raw = _read_items_table(text, source, fields, sep="\t", header=True)
    genres = raw["class"].str.split() if "class" in raw else pd.Series([[]] * len(raw))
    years = raw["release_year"] if "release_year" in raw else pd.Series([None] * len(raw))
    return pd.DataFrame({"genres": list(genres), "decade": _decade(years)}, index=_item_ids(raw, source))


def _parse_items_movies(data: bytes, source: str, name: str) -> pd.DataFrame:
    if name.endswith(".dat"):
        raw = _read_items_table(
            data.decode("latin-1").replace("::", "\t"), source, ["item_id", "title", "genres"], sep="\t", header=False
        )
    else:
        raw = _read_items_table(_decode(data, source), source, ["item_id", "title", "genres"], sep=",", header=True)
    genres = [[] if g == "(no genres listed)" else g.split("|") for g in raw["genres"]]
    years = raw["title"].str.extract(r"\((\d{4})\)\s*$", expand=False)
    return pd.DataFrame({"genres": genres, "decade": _decade(years)}, index=_item_ids(raw, source))


def _read_items_table(text: str, source: str, names: Sequence[str], *, sep: str, header: bool) -> pd.DataFrame:
    try:
        return pd.read_csv(
            io.StringIO(text),
            sep=sep,
            header=None,
            names=list(names),
            skiprows=1 if header else 0,
            dtype=str,
            keep_default_na=False,
            quoting=csv.QUOTE_MINIMAL if sep == "," else csv.QUOTE_NONE,
        )
    except pd.errors.ParserError as exc:
        message = str(exc).removeprefix("Error tokenizing data. C error: ").strip()
        raise MovieLensError(f"{source}: {message} (expected {len(names)} fields separated by {sep!r})") from None


def _item_ids(raw: pd.DataFrame, source: str) -> pd.Index:
    ids = pd.to_numeric(raw["item_id"], errors="coerce")
    if ids.isna().any():
        row = int(np.flatnonzero(ids.isna().to_numpy())[0])
        raise MovieLensError(f"{source}: item_id {raw['item_id'].iloc[row]!r} (data row {row + 1}) is not a number")
    return pd.Index(ids.astype(np.int64).to_numpy())
