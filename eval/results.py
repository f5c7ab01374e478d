"""The results schema: per-image rows (one CSV) and one RD curve per codec (JSON).

The JSON follows CompressAI's results files, so its plotting tools read them too:

    {"name": "webp", "description": "...", "dataset": "kodak", "images": 24,
     "results": {"quality": [...], "bpp": [...], "psnr-rgb": [...], "psnr-y": [...],
                 "ms-ssim-rgb": [...], "lpips": [...], "encoding_time": [...], "decoding_time": [...]}}

Each list has one entry per quality point: the mean over the images (PSNR is averaged per
image in dB, as CompressAI does; bpp is the mean of per-image bpp). A mean that any image
lacks is null. "dss", "haarpsi", "gmsd" and "cvvdp" (ColorVideoVDP, in JOD) appear when they
were measured; with "cvvdp" the curve names its display model in "cvvdp-display". Published
reference curves carry a "reference" object naming their source; reading accepts the
older CompressAI keys "psnr" and "ms-ssim".

In the CSV, an empty cell is a metric that was not measured (resume fills it in when it is
asked for) and "nan" one that is undefined for that image (MS-SSIM below 161 px a side).
Video results (`lic.eval.video_harness`) use the same machinery with their own columns: a
`RowSchema` says what a CSV holds and which column names the item a row measures.
"""

from __future__ import annotations

import csv
import io
import json
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from lic.errors import InputError
from lic.files import atomic_write

#: The per-image CSV in a results folder; each codec's curve is `<codec>.json` beside it.
ROWS_FILE = "per-image.csv"

#: model_hash is the lic model's hash (empty for classic codecs): rows of an older model
#: are never reused for a newer one.
COLUMNS = (
    "codec", "model_hash", "quality", "image", "width", "height", "bytes", "bpp",
    "psnr-rgb", "psnr-y", "ms-ssim-rgb", "lpips", "dss", "haarpsi", "gmsd", "cvvdp", "cvvdp-display",
    "encoding_time", "decoding_time",
)
#: The display model a row's ColorVideoVDP value was computed for (`lic.eval.cvvdp`): JOD
#: depends on it, so rows of one display are never averaged or compared with another's.
DISPLAY_COLUMN = "cvvdp-display"


@dataclass(frozen=True)
class Metric:
    label: str
    higher_is_better: bool = True
    as_db: bool = False  # shown as -10 log10(1 - value), the usual way to plot MS-SSIM


#: Quality metrics, by their key in rows and JSON.
METRICS = {
    "psnr-rgb": Metric("PSNR (RGB) [dB]"),
    "psnr-y": Metric("PSNR (Y, BT.601) [dB]"),
    "ms-ssim-rgb": Metric("MS-SSIM (RGB) [dB]", as_db=True),
    "lpips": Metric("LPIPS (AlexNet)", higher_is_better=False),
    "dss": Metric("DSS"),
    "haarpsi": Metric("HaarPSI"),
    "gmsd": Metric("GMSD", higher_is_better=False),
    "cvvdp": Metric("ColorVideoVDP [JOD]"),
}
#: Always in a curve (null where not measured); the others only when measured.
CORE_METRICS = ("psnr-rgb", "psnr-y", "ms-ssim-rgb", "lpips")
TIMES = ("encoding_time", "decoding_time")
_ALIASES = {"psnr": "psnr-rgb", "ms-ssim": "ms-ssim-rgb"}

Row = dict  # column -> str | int | float | None


@dataclass(frozen=True)
class RowSchema:
    """The columns of a results CSV; each row is one codec at one quality on one `item`."""

    columns: tuple[str, ...]
    text: frozenset[str]
    integer: frozenset[str]  # the other columns are floats
    item: str  # the column naming what a row measures: "image", or "clip" for video

    @property
    def key_columns(self) -> tuple[str, str, str]:
        return "codec", "quality", self.item

    def key(self, row: Row) -> tuple[str, int, str]:
        return row["codec"], row["quality"], row[self.item]

    def parse(self, column: str, text: str):
        if column in self.text:
            return text
        if text == "":
            return None
        return int(text) if column in self.integer else float(text)


IMAGE_ROWS = RowSchema(COLUMNS, frozenset({"codec", "model_hash", "image", DISPLAY_COLUMN}),
                       frozenset({"quality", "width", "height", "bytes"}), "image")


def row_key(row: Row) -> tuple[str, int, str]:
    return IMAGE_ROWS.key(row)


def read_rows(path: Path, schema: RowSchema = IMAGE_ROWS) -> list[Row]:
    """Rows of a results CSV; a last line cut short by an interrupted run is dropped.

    A CSV written before a column was added (e.g. `cvvdp`) is read with that column empty,
    so a run that asks for the new metric fills it in; the file is rewritten with every column."""
    with path.open(newline="") as f:
        lines = list(csv.reader(f))
    header = tuple(lines[0]) if lines else ()
    if not header or not set(schema.key_columns) <= set(header) or not set(header) <= set(schema.columns):
        raise InputError(f"{path}: not a per-{schema.item} CSV of this version of lic (use another -o folder or --force)")
    rows = []
    for cells in lines[1:]:
        if len(cells) != len(header):
            continue
        try:
            parsed = {c: schema.parse(c, t) for c, t in zip(header, cells)}
        except ValueError:
            continue
        rows.append({c: parsed.get(c, "" if c in schema.text else None) for c in schema.columns})
    return rows


def _format(value) -> str:
    return "" if value is None else str(value)


def format_rows(rows: list[Row], header: bool = True, schema: RowSchema = IMAGE_ROWS) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(schema.columns)
    writer.writerows([_format(row[c]) for c in schema.columns] for row in rows)
    return buffer.getvalue()


def write_rows(path: Path, rows: list[Row], schema: RowSchema = IMAGE_ROWS) -> None:
    """Rewrites the CSV atomically, in a stable order (the folder is reused on purpose)."""
    ordered = sorted(rows, key=schema.key)
    atomic_write(path, format_rows(ordered, schema=schema).encode(), force=True)


@contextmanager
def journal(path: Path, latest: dict[tuple, Row], schema: RowSchema = IMAGE_ROWS) -> Iterator[Callable[[Row], None]]:
    """Rewrites the CSV with `latest`, then yields `record(row)`, which appends each finished row
    at once (an interrupted run loses only the rows in flight) and files it in `latest`; the CSV
    is rewritten in order at the end."""
    write_rows(path, list(latest.values()), schema)
    with path.open("a", newline="") as f:
        def record(row: Row) -> None:
            f.write(format_rows([row], header=False, schema=schema))
            f.flush()
            latest[schema.key(row)] = row

        yield record
    write_rows(path, list(latest.values()), schema)


def _mean(values: list) -> float | None:
    if any(v is None or math.isnan(v) for v in values):
        return None
    return round(sum(values) / len(values), 6)


def make_curve(name: str, description: str, dataset: str, qualities: tuple[int, ...], rows: list[Row],
               schema: RowSchema = IMAGE_ROWS, keys: tuple[str, ...] | None = None) -> dict:
    """The JSON curve of one codec: per-quality means of its rows (qualities without rows are left out).

    `keys` are the columns averaged (default: bpp, the image metrics measured, the times)."""
    by_quality = {q: [r for r in rows if r["quality"] == q] for q in qualities}
    points = [(q, rs) for q, rs in by_quality.items() if rs]
    if keys is None:
        extra = [m for m in METRICS if m not in CORE_METRICS and any(r[m] is not None for r in rows)]
        keys = ("bpp", *CORE_METRICS, *extra, *TIMES)
    results = {"quality": [q for q, _ in points]}
    for key in keys:
        results[key] = [_mean([r[key] for r in rs]) for _, rs in points]
    items = len({r[schema.item] for r in rows})
    curve = {"name": name, "description": description, "dataset": dataset, f"{schema.item}s": items, "results": results}
    if "cvvdp" in keys:
        displays = {r[DISPLAY_COLUMN] for r in rows if r["cvvdp"] is not None}
        if len(displays) == 1:
            curve[DISPLAY_COLUMN] = displays.pop()
        elif displays:  # JOD on different displays: no mean of them means anything
            results["cvvdp"] = [None] * len(points)
    return curve


def write_json(path: Path, data: dict, force: bool) -> None:
    atomic_write(path, (json.dumps(data, indent=2) + "\n").encode(), force)


@dataclass(frozen=True)
class Curve:
    """One codec's RD points, measured here or published (`reference` names the source)."""

    name: str
    description: str
    dataset: str | None
    results: dict[str, list]
    reference: dict | None = None
    display: str | None = None  # the display model of its ColorVideoVDP values

    def points(self, metric: str) -> tuple[list[float], list[float]]:
        """(bpp, value) pairs where both are known, by increasing bpp; MS-SSIM in dB."""
        values = self.results.get(metric) or []
        pairs = sorted((b, v) for b, v in zip(self.results["bpp"], values) if b is not None and v is not None)
        if METRICS[metric].as_db:
            pairs = [(b, -10 * math.log10(1 - v)) for b, v in pairs if v < 1]
        return [b for b, _ in pairs], [v for _, v in pairs]


def read_curve(path: Path) -> Curve:
    try:
        data = json.loads(path.read_text())
        results = {_ALIASES.get(k, k): v for k, v in data["results"].items()}
        if not isinstance(results.get("bpp"), list):
            raise KeyError("bpp")
        return Curve(str(data.get("name", path.stem)), str(data.get("description", "")),
                     data.get("dataset"), results, data.get("reference"), data.get(DISPLAY_COLUMN))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        raise InputError(f"{path}: not an RD results JSON (needs \"results\" with a \"bpp\" list)") from None
