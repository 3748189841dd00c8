"""engine.data.tabular (a user's CSV file) and the Playground's 2-D sets."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.tabular import MAX_ROWS, CSVError, read_csv, split
from engine.data.toy import PLAYGROUND_SETS, make_playground


def csv_text(header: str, rows: list[str]) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


SPECIES = ["setosa", "versicolor", "virginica"]
FLOWERS = csv_text("petal_length,petal_width,species",
                   [f"{1 + i % 3 + 0.1 * i},{0.2 * (i % 3)},{SPECIES[i % 3]}"
                    for i in range(12)])


def test_text_labels_make_classes():
    t = read_csv(FLOWERS)
    assert t.task == t.detected == "classification"
    assert t.classes == ("setosa", "versicolor", "virginica")
    assert t.features == ("petal_length", "petal_width") and t.label == "species"
    assert t.x.shape == (12, 2) and t.x.dtype == np.float32 and t.x[1, 0] == pytest.approx(2.1)
    assert t.y.tolist() == [0, 1, 2] * 4
    assert "3 classes" in t.describe() and "detected" in t.describe()


def test_integer_labels_classify_floats_regress_and_the_task_switches():
    ints = read_csv(csv_text("a,b,digit", [f"{i},{i * 2},{i % 4}" for i in range(20)]))
    assert ints.task == "classification" and ints.classes == ("0", "1", "2", "3")
    floats = read_csv(csv_text("a,b,price", [f"{i},{-i},{i * 1.37:.2f}" for i in range(20)]))
    assert floats.task == "regression" and floats.y.dtype == np.float32
    assert floats.y[3] == pytest.approx(4.11)
    as_classes = floats.as_task("classification")
    assert as_classes.task == "classification" and len(as_classes.classes) == 20
    assert "switched; detected regression" in as_classes.describe()
    back = ints.as_task("regression")
    assert back.task == "regression" and back.y.tolist() == [i % 4 for i in range(20)]
    with pytest.raises(CSVError, match="not a number, so the labels cannot be regressed"):
        read_csv(FLOWERS, task="regression")


def test_the_label_column_can_be_any_column_and_separators_vary():
    ints = csv_text("a,b,digit", [f"{i},{i * 2},{i % 4}" for i in range(20)])
    t = read_csv(ints, label="a")
    assert t.features == ("b", "digit") and t.label == "a" and t.task == "regression"
    np.testing.assert_array_equal(t.x[:, 0], np.arange(20) * 2)
    with pytest.raises(CSVError, match=r"row 2, column 'species': 'setosa' is not a number"):
        read_csv(FLOWERS, label="petal_width")  # text left among the features
    semi = read_csv(FLOWERS.replace(b",", b";"))
    tab = read_csv(b"\xef\xbb\xbf" + FLOWERS.replace(b",", b"\t"))  # with a UTF-8 BOM
    assert semi.classes == tab.classes == ("setosa", "versicolor", "virginica")
    with pytest.raises(CSVError, match="there is no column 'colour'"):
        read_csv(FLOWERS, label="colour")


@pytest.mark.parametrize(("data", "message"), [
    (csv_text("1.0,2.0,0", ["3,4,1"] * 10), r"no header: the first row \(1\.0, 2\.0, 0\)"),
    (csv_text("1.0,2.0,cat", ["3,4,dog", "5,6,cat"] * 5),
     r"no header: the first row \(1\.0, 2\.0, cat\) looks like data"),
    (csv_text("a,b,y", ["1,2,x", "3,oops,y"] + ["1,2,x"] * 8),
     r"row 3, column 'b': 'oops' is not a number"),
    (csv_text("a,b,y", ["1,2,x"] * 4 + ["1,,y"] + ["1,2,x"] * 5),
     r"row 6, column 'b' has a missing value"),
    (csv_text("a,b,y", ["1,2,x"] * 4 + ["1,NA,y"] + ["1,2,x"] * 5),
     r"row 6, column 'b' has a missing value \('NA'\)"),
    (csv_text("a,b,y", ["1,2,x"] * 4 + ["1,2,"] + ["1,2,x"] * 5),
     r"row 6, column 'y' \(the label\) has a missing value"),
    (csv_text("a,b,y", ["1,2,cat"] * 10), r"only one class \('cat'\)"),
    (csv_text("a,b,y", ["1,2,3", "1,2"] + ["1,2,3"] * 8), r"row 3 has 2 values"),
    (csv_text("a,a,y", ["1,2,3"] * 10), r"two columns are named 'a'"),
    (csv_text("a,b,y", ["1,2,x"] * 3), r"3 data rows; at least 8"),
    (b"\x89PNG\r\n\x1a\n\0\0\0", r"not a text file"),
    (b"", r"the file is empty"),
])
def test_bad_files_get_one_clear_message(data, message):
    with pytest.raises(CSVError, match=message):
        read_csv(data)


def test_blank_lines_keep_the_row_numbers_of_the_file():
    data = b"a,b,y\n1,2,x\n\n1,2,y\n1,zz,x\n" + b"1,2,x\n" * 8
    with pytest.raises(CSVError, match=r"row 5, column 'b': 'zz'"):
        read_csv(data)


def test_more_rows_than_the_limit():
    data = csv_text("a,b,y", [f"{i},{i},{i % 2}" for i in range(MAX_ROWS + 1)])
    with pytest.raises(CSVError, match=rf"more than {MAX_ROWS:,} data rows \(row "
                                       rf"{MAX_ROWS + 2} is over the limit\)"):
        read_csv(data)
    assert len(read_csv(data[:data.rindex(b"\n", 0, -1) + 1]).x) == MAX_ROWS


def test_nothing_in_a_cell_is_evaluated():
    evil = csv_text("a,b,y", ["__import__('os').system('echo hi'),1,x"] + ["1,2,x"] * 9)
    with pytest.raises(CSVError, match="is not a number"):
        read_csv(evil)
    for cell in ("1_000", "0x10", "inf", "nan", "1e400"):
        rows = [f"{cell},1,x"] + ["1,2,y"] * 9
        with pytest.raises(CSVError, match="not a number|missing value|too large"):
            read_csv(csv_text("a,b,y", rows))


def test_split_is_seeded_and_keeps_both_parts():
    x, y = np.arange(20).reshape(10, 2), np.arange(10)
    a = split(x, y, 0.7, seed=1)
    b = split(x, y, 0.7, seed=1)
    assert len(a[0]) == 7 and len(a[2]) == 3
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    assert sorted(np.r_[a[1], a[3]].tolist()) == list(range(10))
    assert len(split(x[:2], y[:2], 0.99)[2]) == 1
    with pytest.raises(ValueError, match="between 0 and 1"):
        split(x, y, 1.0)


@pytest.mark.parametrize("kind", list(PLAYGROUND_SETS))
def test_playground_sets(kind):
    x, y = make_playground(kind, 300, noise=0.1, seed=3)
    assert x.shape == (300, 2) and x.dtype == np.float32 and np.abs(x).max() <= 6
    if PLAYGROUND_SETS[kind] == "classification":
        assert y.dtype == np.int64
        assert set(np.unique(y)) == ({0, 1, 2} if kind == "gauss" else {0, 1})
    else:
        assert y.dtype == np.float32 and -1.5 < y.min() < y.max() < 1.5
    x2, y2 = make_playground(kind, 300, noise=0.1, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(make_playground(kind, 300, 0.1, seed=4)[0], x)


def test_playground_set_labels_follow_their_rule_without_noise():
    x, y = make_playground("xor", 400, 0.0, seed=0)
    assert np.all(y == (x[:, 0] * x[:, 1] < 0))
    x, y = make_playground("circle", 400, 0.0, seed=0)
    r = np.hypot(x[:, 0], x[:, 1])
    assert r[y == 0].max() < r[y == 1].min()
    x, y = make_playground("moons", 400, 0.0, seed=0)  # on their unit half circles
    centre = np.where((y == 0)[:, None], [-0.5, -0.25], [0.5, 0.25])
    np.testing.assert_allclose(np.hypot(*(x / 3 - centre).T), 1, rtol=1e-5)
    assert np.all((x[y == 0, 1] / 3 >= -0.25 - 1e-6) & (x[y == 1, 1] / 3 <= 0.25 + 1e-6))
    x, y = make_playground("plane", 400, 0.0, seed=0)
    np.testing.assert_allclose(y, (x[:, 0] + x[:, 1]) / 10, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="noise must be"):
        make_playground("xor", 100, noise=0.9)
    with pytest.raises(ValueError, match="unknown data set"):
        make_playground("spirals")
