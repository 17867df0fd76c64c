"""MovieLens layouts: each one, written here in a temporary folder, loads to the same frame; bad files say where."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.ml.movielens import RECBOLE_MEMBER, MovieLensError, load_items, load_ratings, parse_ratings

# user, item, rating, timestamp: a few rows of made-up ratings (MovieLens itself is never committed)
ROWS = [(196, 242, 3.0, 881250949), (186, 302, 3.5, 891717742), (22, 377, 1.0, 878887116), (244, 51, 2.0, 880606923)]
EXPECTED = pd.DataFrame(ROWS, columns=["user_id", "item_id", "rating", "timestamp"]).astype(
    {"user_id": np.int64, "item_id": np.int64, "rating": np.float64, "timestamp": np.int64}
)


def u_data(rows: list[tuple[int, int, float, int]] = ROWS) -> str:
    return "".join(f"{u}\t{i}\t{r:g}\t{t}\n" for u, i, r, t in rows)


def ratings_csv(rows: list[tuple[int, int, float, int]] = ROWS) -> str:
    return "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},{r:g},{t}\n" for u, i, r, t in rows)


def ratings_dat(rows: list[tuple[int, int, float, int]] = ROWS) -> str:
    return "".join(f"{u}::{i}::{r:g}::{t}\n" for u, i, r, t in rows)


def inter(rows: list[tuple[int, int, float, int]] = ROWS) -> str:
    # RecBole's header, columns in another order than the others for good measure
    header = "item_id:token\tuser_id:token\ttimestamp:float\trating:float\n"
    return header + "".join(f"{i}\t{u}\t{t}\t{r:g}\n" for u, i, r, t in rows)


LAYOUTS = {"u.data": u_data, "ratings.csv": ratings_csv, "ratings.dat": ratings_dat, "ml-100k.inter": inter}


@pytest.mark.parametrize("name", LAYOUTS)
def test_each_layout_loads_to_the_same_frame(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(LAYOUTS[name]())
    pd.testing.assert_frame_equal(load_ratings(path), EXPECTED)
    pd.testing.assert_frame_equal(load_ratings(tmp_path), EXPECTED)  # the folder holding it


def test_crlf_and_a_byte_order_mark_load_too(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ratings_csv().replace("\n", "\r\n").encode())
    pd.testing.assert_frame_equal(load_ratings(path), EXPECTED)


def test_a_zip_standing_in_for_the_recbole_wheel(tmp_path: Path) -> None:
    wheel = tmp_path / "recbole-1.2.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("recbole/__init__.py", "")
        archive.writestr("recbole/dataset_example/yelp/yelp.inter", inter(ROWS[:1]))  # not this one
        archive.writestr(RECBOLE_MEMBER, inter())
        archive.writestr(RECBOLE_MEMBER.replace(".inter", ".item"), "item_id:token\tclass:token_seq\n242\tComedy\n")
    pd.testing.assert_frame_equal(load_ratings(wheel), EXPECTED)
    pd.testing.assert_frame_equal(load_ratings(tmp_path), EXPECTED)  # a folder holding one wheel
    assert load_items(wheel).loc[242, "genres"] == ["Comedy"]


def test_grouplens_zip(tmp_path: Path) -> None:
    archive_path = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        archive.writestr("ml-100k/u1.base", u_data(ROWS[:2]))
        archive.writestr("ml-100k/u.data", u_data())
    pd.testing.assert_frame_equal(load_ratings(archive_path), EXPECTED)


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("u.data", u_data() + "7\t8\tfive\t9\n", r"u\.data, line 5: rating: 'five' is not a number"),
        ("u.data", u_data() + "7\t8\t4\n", r"u\.data, line 5: timestamp: a missing field"),
        ("u.data", "7\t8\t4\t1\t0\n" + u_data(), r"u\.data, line 1: 5 fields, expected 4"),
        ("u.data", u_data() + "7\t8\t4\t1\t0\n", r"u\.data, line 5: 5 fields, expected 4"),
        ("ml-100k.inter", inter() + "7\t8\t4\t1\t0\n", r"ml-100k\.inter, line 6: 5 fields, expected 4"),
        ("ratings.csv", ratings_csv() + "\n7,8.5,4,9\n", r"ratings\.csv, line 7: item_id: 8\.5 is not a whole number"),
        ("ratings.csv", "user,movie,rating,timestamp\n1,2,3,4\n", r"ratings\.csv, line 1: .*missing userId, movieId"),
        (
            "ml-100k.inter",
            "user_id:token\titem_id:token\n1\t2\n",
            r"ml-100k\.inter, line 1: .*missing rating, timestamp",
        ),
        ("ratings.dat", "", r"ratings\.dat: the file is empty"),
        ("notes.txt", "hello world\n", r"notes\.txt: not a MovieLens ratings file"),
        ("u.data", "1\t2\t\xff\t4\n", r"u\.data, line 1: bytes that are not UTF-8"),
    ],
)
def test_a_bad_file_names_itself_and_the_line(tmp_path: Path, name: str, text: str, where: str) -> None:
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1") if "\xff" in text else text.encode())
    with pytest.raises(MovieLensError, match=where):
        load_ratings(path)


def test_missing_and_unknown_places_are_clear(tmp_path: Path) -> None:
    with pytest.raises(MovieLensError, match="no such file or folder"):
        load_ratings(tmp_path / "nowhere")
    with pytest.raises(MovieLensError, match="no MovieLens ratings file in it"):
        load_ratings(tmp_path)
    empty_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(empty_zip, "w") as archive:
        archive.writestr("readme.txt", "nothing here")
    with pytest.raises(MovieLensError, match=r"other\.zip: no MovieLens ratings in this archive"):
        load_ratings(empty_zip)


@given(
    rows=st.lists(
        st.tuples(
            st.integers(1, 10**6),
            st.integers(1, 10**6),
            st.sampled_from([0.5, 1.0, 2.5, 3.0, 4.5, 5.0]),
            st.integers(0, 2 * 10**9),
        ),
        min_size=1,
        max_size=30,
    ),
    layout=st.sampled_from(sorted(LAYOUTS)),
)
@settings(max_examples=100, deadline=None)
def test_any_ratings_survive_each_layout(rows: list[tuple[int, int, float, int]], layout: str) -> None:
    frame = parse_ratings(LAYOUTS[layout](rows).encode(), "generated", layout)
    assert list(frame.itertuples(index=False, name=None)) == rows


def test_item_features_in_each_layout(tmp_path: Path) -> None:
    flags = ["0"] * 19
    flags[3] = flags[5] = "1"  # Animation, Comedy
    u_item = (
        f"1|Toy Story (1995)|01-Jan-1995||http://x|{'|'.join(flags)}\n2|Unknown||||{'|'.join(['1'] + ['0'] * 18)}\n"
    )
    layouts = {
        "u.item": u_item.encode("latin-1"),
        "ml-100k.item": b"item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        b"1\tToy Story\t1995\tAnimation Comedy\n2\tUnknown\t\tunknown\n",
        "movies.csv": b'movieId,title,genres\n1,"Toy Story, The (1995)",Animation|Comedy\n2,Unknown,unknown\n',
        "movies.dat": b"1::Toy Story (1995)::Animation|Comedy\n2::Unknown::unknown\n",
    }
    expected = pd.DataFrame(
        {"genres": [["Animation", "Comedy"], ["unknown"]], "decade": ["1990s", None]},
        index=pd.Index([1, 2], name="item_id"),
    )
    for name, data in layouts.items():
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        (folder / name).write_bytes(data)
        (folder / "u.data").write_text(u_data())
        pd.testing.assert_frame_equal(load_items(folder / name), expected, obj=name)
        pd.testing.assert_frame_equal(load_items(folder / "u.data"), expected, obj=name)  # beside the ratings
    with pytest.raises(MovieLensError, match="no MovieLens items file"):
        load_items(tmp_path)
