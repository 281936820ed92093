"""``labelgen report``: one self-contained HTML page about a label store.

The page holds everything inline (pictures as base64 PNG, a little CSS, no
script, no external resource), so it can be mailed, archived next to the store
or opened from a compute node's scratch disk:

- the run: job, source, teacher, model files and their SHA-256, labelling time,
  stored bytes per image;
- counts per status;
- histograms: occluded fraction of the face region, occlusion blobs per face,
  face size (from the detection box), and yaw / pitch / roll of the stored pose;
- examples per status (``ok`` rows as overlay crops, failed rows as keys with
  their messages) and the most- and least-occluded faces;
- every failure with its message (from the shards' completion records).

Shards whose stored chunks are damaged (the cheap check of
:meth:`~labelgen.store.LabelStore.check_shards`) are never read: the page
names them, and their rows count as ``damaged``, not as labelled.

Only the first ``max_images`` ``ok`` rows have their label maps read (occluded
fractions, most/least occluded): the manifest is a seeded shuffle of the source,
so the first rows are a uniform sample of the corpus and the cost of a report
does not grow with the store. The small per-row arrays (status, blobs, box,
pose) are read a block of rows at a time and kept as what the page needs.

Example:
    >>> from labelgen.report import pose_angles
    >>> frontal = np.array([[np.pi, 0, 0, 0, 0, 30]])  # Rodrigues of diag(1, -1, -1): upright, facing the camera
    >>> np.round(pose_angles(frontal), 6) + 0.0
    array([[0., 0., 0.]])
"""
from __future__ import annotations

import base64
import html
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from labelgen import __version__, locations
from labelgen.overlay import LEGEND, OCCLUDED_MEANING, LegendEntry, crop_legend, occluded_fraction, overlay_labels
from labelgen.stages.crop import CropTransform
from labelgen.stages.pose import euler_degrees
from labelgen.status import Status
from labelgen.store import LabelStore, describe_damage

READ_BATCH = 512  # label maps read at once: 8 MB at 128 px
READ_ROWS = 65_536  # rows of the small per-row arrays read at once (whole shards)
THUMBNAIL = 160  # side of an example picture in the page, pixels
SECTIONS = {"summary": "Run", "statuses": "Statuses", "distributions": "Distributions",
            "examples": "Examples by status", "occlusion": "Most and least occluded", "failures": "Failures"}


@dataclass
class StoreFacts:
    """What the report shows, gathered from a store once.

    Attributes:
        status: ``(N,)`` status codes.
        names: status code -> name, as recorded in the store.
        sampled: the first ``ok`` rows (at most ``max_images``) whose label maps were read.
        occluded_fraction: for each sampled row, occlusion pixels / face-region pixels.
        blobs: ``(N,)`` occlusion blobs per row (0 where not ``ok``).
        face_size: ``(N,)`` sqrt(width x height) of the detection box, original pixels; NaN without a box.
        angles: ``(N, 3)`` yaw, pitch, roll in degrees; NaN without a pose.
        errors: key -> message of every failure the completion records kept.
        shard_seconds: labelling time summed over the completed shards' tasks.
        damaged: shard -> what is wrong with it, for the done shards whose chunks are damaged (not read).
    """

    status: np.ndarray
    names: dict[int, str]
    sampled: np.ndarray
    occluded_fraction: np.ndarray
    blobs: np.ndarray
    face_size: np.ndarray
    angles: np.ndarray
    errors: dict[str, str] = field(default_factory=dict)
    shard_seconds: float = 0.0
    damaged: dict[int, list[str]] = field(default_factory=dict)

    def name(self, code: int) -> str:
        return self.names.get(int(code), f"code {int(code)}")

    def status_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """The codes present and their row counts, by code (``np.unique`` would sort a copy of the rows)."""
        counts = np.bincount(self.status, minlength=256)
        codes = np.flatnonzero(counts)
        return codes, counts[codes]


def status_names(store: LabelStore) -> dict[int, str]:
    """Status code -> name, from the store's own table (a store outlives code changes)."""
    names = {int(status): status.label for status in Status}
    names.update({int(code): name for name, code in store.attrs.get("status_codes", {}).items()})
    return names


def occluded_fractions(store: LabelStore, rows: np.ndarray) -> np.ndarray:
    """Occluded fraction of the face region (:func:`labelgen.overlay.occluded_fraction`) of each of ``rows``."""
    fractions = [np.zeros(0)]
    for start in range(0, len(rows), READ_BATCH):
        fractions.append(occluded_fraction(store.read("label", rows[start:start + READ_BATCH])))
    return np.concatenate(fractions)


def row_blocks(store: LabelStore, rows: int | None = None) -> list[slice]:
    """Consecutive slices of about ``rows`` rows (:data:`READ_ROWS` by default; whole shards) that cover the store:
    to read it a block at a time.

    Example:
        >>> class Store: count, shard_size = 10, 4
        >>> row_blocks(Store(), rows=8)
        [slice(0, 8, None), slice(8, 10, None)]
    """
    step = store.shard_size * max(1, (rows or READ_ROWS) // store.shard_size)
    return [slice(first, min(first + step, store.count)) for first in range(0, store.count, step)]


def pose_angles(pose: np.ndarray) -> np.ndarray:
    """``(n, 3)`` yaw, pitch, roll in degrees from stored ``(n, 6)`` poses (Rodrigues vector first); NaN rows stay NaN.

    See :func:`labelgen.stages.pose.euler_degrees` for the conventions.
    """
    pose = np.asarray(pose, np.float64)
    angles = np.full((len(pose), 3), np.nan)
    for row in np.flatnonzero(np.isfinite(pose[:, :3]).all(axis=1)):
        angles[row] = euler_degrees(cv2.Rodrigues(pose[row, :3])[0])
    return angles


def face_sizes(boxes: np.ndarray) -> np.ndarray:
    """Side of the square with the box's area, ``sqrt(w h)``: one number per face, robust to aspect ratio."""
    boxes = np.asarray(boxes, np.float64)
    return np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None))


def shard_errors(store: LabelStore) -> tuple[dict[str, str], float]:
    """Failure messages by key and labelling seconds, from the completion records."""
    errors, seconds = {}, 0.0
    for index in sorted(store.done_shards() - store.skipped):  # a damaged shard's record may be unreadable
        record = store.shard_record(index)
        errors.update(record.get("errors", {}))
        seconds += float(record.get("seconds", 0.0))
    return errors, seconds


def gather(store: LabelStore, max_images: int = 10_000) -> StoreFacts:
    """Read what the report needs; label maps only for the first ``max_images`` ``ok`` rows.

    The shards ``store`` skips (:meth:`~labelgen.store.LabelStore.skip_damaged`) are not read. The
    per-row arrays are read a block of rows at a time (:func:`row_blocks`) and kept compact (18 bytes a
    row: status, blobs, face size and angles), not as stored (boxes and poses: 40 bytes a row).
    """
    status, blobs = np.empty(store.count, np.uint8), np.empty(store.count, np.uint8)
    face_size, angles = np.empty(store.count, np.float32), np.empty((store.count, 3), np.float32)
    for rows in row_blocks(store):
        status[rows], blobs[rows] = store.read("status", rows), store.read("blobs", rows)
        face_size[rows] = face_sizes(store.read("bbox", rows))
        angles[rows] = pose_angles(store.read("pose", rows))
    sampled = np.flatnonzero(status == Status.OK)[:max_images]
    errors, seconds = shard_errors(store)
    return StoreFacts(status=status, names=status_names(store), sampled=sampled,
                      occluded_fraction=occluded_fractions(store, sampled), blobs=blobs, face_size=face_size,
                      angles=angles, errors=errors, shard_seconds=seconds, damaged=dict(sorted(store.damage.items())))


# -- pictures -----------------------------------------------------------------------------------

def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def picture_png(picture: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 picture."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("PNG encoding failed")
    return encoded.tobytes()


def histogram_png(values: np.ndarray, bins, title: str, xlabel: str) -> bytes:
    """A small histogram as PNG bytes (matplotlib's Agg canvas: no display, no global pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    figure = Figure(figsize=(3.6, 2.4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if len(values):
        axes.hist(values, bins=bins, color="#3f7fbf", edgecolor="white", linewidth=0.5)
    else:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes, color="#888")
    axes.set_title(f"{title} (n={len(values)})", fontsize=10)
    axes.set_xlabel(xlabel, fontsize=9)
    axes.set_ylabel("images", fontsize=9)
    axes.tick_params(labelsize=8)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def example_pictures(store: LabelStore, rows: np.ndarray) -> list[np.ndarray]:
    """Overlay crops of ``ok`` rows: the face in green, one colour per blob, the projected contour points."""
    rows = np.asarray(rows)
    if len(rows) == 0:
        return []
    images, labels = store.read("image", rows), store.read("label", rows)
    contours, matrices = store.read("contour", rows), store.read("crop_matrix", rows)
    pictures = []
    for image, label, contour, matrix in zip(images, labels, contours, matrices):
        in_crop = CropTransform(matrix.astype(np.float64), store.crop_size).apply(contour.astype(np.float64))
        pictures.append(overlay_labels(image, label, in_crop, display_size=THUMBNAIL))
    return pictures


# -- HTML -----------------------------------------------------------------------------------------

CSS = """
:root { --ink: #1d2430; --muted: #667085; --line: #e4e7ec; --accent: #3f7fbf; --bad: #c2410c; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       background: #f6f7f9; }
header { background: #1d2430; color: #fff; padding: 18px 32px; }
header h1 { margin: 0; font-size: 22px; font-weight: 600; }
header p { margin: 4px 0 0; color: #c5cbd6; }
nav { padding: 8px 32px; background: #fff; border-bottom: 1px solid var(--line); position: sticky; top: 0; }
nav a { color: var(--accent); text-decoration: none; margin-right: 18px; }
main { max-width: 1240px; margin: 0 auto; padding: 8px 32px 40px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 20px; margin: 18px 0; }
h2 { font-size: 17px; margin: 0 0 10px; }
h3 { font-size: 14px; margin: 16px 0 8px; color: var(--muted); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 500; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code, .key { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; word-break: break-all; }
.bar { background: var(--accent); height: 10px; border-radius: 2px; min-width: 1px; }
.bar.bad { background: var(--bad); }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 12px; }
.plots img { width: 100%; height: auto; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(168px, 1fr)); gap: 10px; }
figure { margin: 0; }
figure img { width: 160px; height: 160px; display: block; border-radius: 4px; image-rendering: auto; }
figcaption { font-size: 11px; color: var(--muted); margin-top: 2px; overflow-wrap: anywhere; }
.note { color: var(--muted); font-size: 12px; }
ul.failed { margin: 0; padding-left: 18px; }
ul.legend { list-style: none; margin: 0 0 6px; padding: 0; }
ul.legend li { margin: 3px 0; }
.swatch { display: inline-flex; align-items: center; vertical-align: -3px; margin-right: 8px; padding: 1px;
          background: #3b4250; border-radius: 2px; }
.swatch i { display: block; width: 14px; height: 14px; }
.swatch i.many { width: 7px; }
.swatch i.line { border: 2px solid; }
.swatch i.dot { width: 8px; height: 8px; margin: 3px; border-radius: 50%; }
"""


def _escape(value) -> str:
    return html.escape(str(value))


def _table(rows: list[tuple], header: tuple | None = None, numeric: tuple[int, ...] = ()) -> str:
    """An HTML table; cells are escaped unless wrapped in :class:`_Raw`."""
    def cell(tag: str, index: int, value) -> str:
        css = ' class="num"' if index in numeric else ""
        return f"<{tag}{css}>{value.html if isinstance(value, _Raw) else _escape(value)}</{tag}>"

    head = "<thead><tr>" + "".join(cell("th", i, v) for i, v in enumerate(header)) + "</tr></thead>" if header else ""
    body = "".join("<tr>" + "".join(cell("th" if i == 0 and not header else "td", i, v) for i, v in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


@dataclass(frozen=True)
class _Raw:
    html: str


def _code(value) -> _Raw:
    return _Raw(f"<code>{_escape(value)}</code>")


def _figure(picture: np.ndarray, lines: list[str]) -> str:
    text = "<br>".join(_escape(line) for line in lines)
    return (f'<figure><img alt="{_escape(lines[0])}" src="{png_data_uri(picture_png(picture))}">'
            f"<figcaption>{text}</figcaption></figure>")


def _summary_section(store: LabelStore, facts: StoreFacts) -> str:
    attrs = store.attrs
    job = attrs.get("job", {})
    config = attrs.get("config", job.get("config", {}))
    source = attrs.get("source", {})
    done = len(store.done_shards()) - len(facts.damaged)
    damaged = (f"; {len(facts.damaged)} damaged, not read: {describe_damage(facts.damaged)} "
               f"({store.repair_advice(len(facts.damaged))})") if facts.damaged else ""
    sizes = store.stored_bytes()
    total = sum(sizes.values())
    per_image = ", ".join(f"{name} {size / max(store.count, 1):,.0f}"
                          for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])[:3])
    rows = [
        ("store", _code(store.location)),
        ("images", f"{store.count:,}"),
        ("source", f"{source.get('name', source.get('source', job.get('source', '?')))}"
                   f"{'  ' + str(source.get('root')) if source.get('root') else ''}"),
        ("teacher", config.get("teacher", "?")),
        ("crop size", f"{store.crop_size} px"),
        ("shards", f"{done} of {store.shard_count} done ({store.shard_size} images each){damaged}"),
        ("seed", job.get("seed", "?")),
        ("created", attrs.get("created", "?")),
        ("labelling time", f"{facts.shard_seconds:,.1f} s summed over shard tasks"
                           + (f"; {float(attrs['wall_seconds']):,.1f} s wall" if "wall_seconds" in attrs else "")),
        ("stored bytes per image", f"{total / max(store.count, 1):,.0f} ({per_image})"),
    ]
    models = [(name, _code(info.get("sha256", "?")), _code(info.get("path", "")))
              for name, info in sorted(attrs.get("models", {}).items())]
    model_table = (_table(models, ("model file", "SHA-256", "path")) if models
                   else '<p class="note">no model files recorded</p>')
    return _table(rows) + "<h3>Models</h3>" + model_table


def _statuses_section(facts: StoreFacts) -> str:
    codes, counts = facts.status_counts()
    total = max(len(facts.status), 1)
    widest = max(counts.max(), 1) if len(counts) else 1
    rows = []
    for code, count in sorted(zip(codes, counts), key=lambda item: -item[1]):
        css = "bar" if code == Status.OK else "bar bad"
        bar = _Raw(f'<div class="{css}" style="width:{100 * count / widest:.1f}%"></div>')
        rows.append((facts.name(code), f"{count:,}", f"{100 * count / total:.1f}%", bar))
    return _table(rows, ("status", "images", "share", ""), numeric=(1, 2))


def _distributions_section(facts: StoreFacts) -> str:
    ok = facts.status == Status.OK
    yaw, pitch, roll = facts.angles[ok].T
    angle_bins = np.arange(-90, 91, 10)
    plots = [
        histogram_png(100 * facts.occluded_fraction, np.arange(0, 101, 5), "Occluded fraction of the face region",
                      "% of the face region"),
        histogram_png(facts.blobs[ok], np.arange(-0.5, max(facts.blobs[ok].max(initial=0), 4) + 1.5),
                      "Occlusion blobs per face", "blobs"),
        histogram_png(facts.face_size[ok], 20, "Face size", "sqrt(box width x height), original px"),
        histogram_png(yaw, angle_bins, "Yaw", "degrees (turn left / right)"),
        histogram_png(pitch, angle_bins, "Pitch", "degrees (nod)"),
        histogram_png(roll, angle_bins, "Roll", "degrees (in-plane tilt, + clockwise)"),
    ]
    images = "".join(f'<img alt="histogram" src="{png_data_uri(png)}">' for png in plots)
    sampled = (f"; occluded fractions over the first {len(facts.sampled):,} of them (the manifest is shuffled: "
               "a uniform sample)") if len(facts.sampled) < ok.sum() else ""
    note = (f'<p class="note">Histograms over the {ok.sum():,} <code>ok</code> faces of {facts.status.size:,} '
            f"images{sampled}. Angles are 0 for an upright face looking at the camera. "
            f"{_escape(OCCLUDED_MEANING)}</p>")
    return f'<div class="plots">{images}</div>{note}'


def _swatch(entry: LegendEntry) -> str:
    """``entry``'s colours as a CSS swatch (text, not a picture): a filled square, a square outline or a dot."""
    css = {"line": ' class="line"', "dot": ' class="dot"'}.get(entry.mark, ' class="many"' if len(entry.colours) > 1
                                                               else "")
    prop = "border-color" if entry.mark == "line" else "background"
    return ('<span class="swatch">' + "".join(f'<i{css} style="{prop}:rgb{tuple(colour)}"></i>'
                                             for colour in entry.colours) + "</span>")


def _legend() -> str:
    """What the colours of the example crops mean (:data:`labelgen.overlay.LEGEND`) and what occluded % is."""
    items = "".join(f"<li>{_swatch(LEGEND[key])}<b>{_escape(LEGEND[key].name)}</b>: {_escape(LEGEND[key].meaning)}"
                    "</li>" for key in crop_legend(contour=True))
    return (f'<div id="legend"><p class="note">The crops: the aligned face, the label colours tinted over it.</p>'
            f'<ul class="legend">{items}</ul><p class="note">{_escape(OCCLUDED_MEANING)}</p></div>')


def _ok_figures(store: LabelStore, facts: StoreFacts, rows: np.ndarray) -> str:
    fraction_of = dict(zip(facts.sampled.tolist(), facts.occluded_fraction.tolist()))
    keys = store.read("key", rows) if len(rows) else []
    figures = []
    for row, key, picture in zip(rows, keys, example_pictures(store, rows)):
        fraction = fraction_of.get(int(row))
        detail = f"blobs {int(facts.blobs[row])}"
        if fraction is not None:
            detail += f", occluded {100 * fraction:.0f}%"
        figures.append(_figure(picture, [str(key), detail]))
    return f'<div class="grid">{"".join(figures)}</div>'


def _examples_section(store: LabelStore, facts: StoreFacts, count: int) -> str:
    parts = []
    codes, counts = facts.status_counts()
    for code, total in sorted(zip(codes, counts), key=lambda item: (item[0] != Status.OK, -item[1])):
        if code in (Status.PENDING, Status.DAMAGED):
            continue
        # Rows are in manifest order, a seeded shuffle: the first ones are a random sample.
        rows = np.flatnonzero(facts.status == code)[:count]
        parts.append(f'<h3 id="status-{_escape(facts.name(code))}">{_escape(facts.name(code))} '
                     f"({total:,}; {len(rows)} shown)</h3>")
        if code == Status.OK:
            parts.append(_legend() + _ok_figures(store, facts, rows))
        else:
            keys = store.read("key", rows)
            items = "".join(f'<li><span class="key">{_escape(key)}</span>: '
                            f'{_escape(facts.errors.get(str(key), "(no message kept)"))}</li>' for key in keys)
            parts.append(f'<p class="note">Failed images have no stored crop: keys and messages.</p>'
                         f'<ul class="failed">{items}</ul>')
    return "".join(parts) or '<p class="note">no labelled rows yet</p>'


def _occlusion_section(store: LabelStore, facts: StoreFacts, count: int) -> str:
    if len(facts.sampled) == 0:
        return '<p class="note">no ok faces</p>'
    # Stable sort: ties (e.g. many unoccluded faces) keep manifest order, so the page is deterministic.
    order = np.argsort(facts.occluded_fraction, kind="stable")
    most = facts.sampled[order[::-1][:count]]
    least = facts.sampled[order[:count]]
    return (f'<p class="note">Sorted by occluded %. {_escape(OCCLUDED_MEANING)} Colours as in the '
            f'<a href="#legend">legend</a> above.</p>'
            f'<h3 id="most-occluded">Most occluded</h3>{_ok_figures(store, facts, most)}'
            f'<h3 id="least-occluded">Least occluded</h3>{_ok_figures(store, facts, least)}')


def _failures_section(store: LabelStore, facts: StoreFacts, limit: int) -> str:
    is_failure = np.ones(256, bool)
    is_failure[[Status.OK, Status.PENDING, Status.DAMAGED]] = False
    failed = np.flatnonzero(is_failure[facts.status])  # a table, not np.isin: no per-row copies of the codes
    if len(failed) == 0:
        return '<p class="note">no failures</p>'
    shown = failed[:limit]
    keys = store.read("key", shown)
    rows = [(_Raw(f'<span class="key">{_escape(key)}</span>'), facts.name(facts.status[row]),
             facts.errors.get(str(key), "(no message kept: a shard record keeps at most 1000)"))
            for row, key in zip(shown, keys)]
    more = f'<p class="note">{len(failed) - len(shown):,} more not listed.</p>' if len(failed) > len(shown) else ""
    return _table(rows, ("key", "status", "message")) + more


def render_report(store: LabelStore, facts: StoreFacts, examples: int = 16, max_failures: int = 500) -> str:
    """The whole page as one HTML string."""
    sections = {
        "summary": _summary_section(store, facts),
        "statuses": _statuses_section(facts),
        "distributions": _distributions_section(facts),
        "examples": _examples_section(store, facts, examples),
        "occlusion": _occlusion_section(store, facts, max(1, examples // 2)),
        "failures": _failures_section(store, facts, max_failures),
    }
    nav = "".join(f'<a href="#{name}">{title}</a>' for name, title in SECTIONS.items())
    body = "".join(f'<section id="{name}"><h2>{SECTIONS[name]}</h2>{content}</section>'
                   for name, content in sections.items())
    title = f"Label store report: {locations.name(store.location)}"
    ok = int((facts.status == Status.OK).sum())
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_escape(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{_escape(title)}</h1><p>{store.count:,} images, {ok:,} ok &middot; "
            f"labelgen {__version__} &middot; {time.strftime('%Y-%m-%d %H:%M')}</p></header>"
            f"<nav>{nav}</nav><main>{body}</main></body></html>\n")


def write_report(store_path: str | Path, out: str | Path, examples: int = 16, max_images: int = 10_000,
                 max_failures: int = 500) -> StoreFacts:
    """Write the report of the store at ``store_path`` to ``out`` (one HTML file); return what it shows.

    Raises:
        labelgen.store.StoreError: if ``store_path`` is not a label store.
    """
    store = LabelStore(store_path, mode="r")
    store.skip_damaged()

    def page() -> tuple[StoreFacts, str]:
        facts = gather(store, max_images)
        return facts, render_report(store, facts, examples, max_failures)

    facts, text = store.read_skipping_damage(page)
    Path(out).write_text(text, encoding="utf-8")
    return facts
