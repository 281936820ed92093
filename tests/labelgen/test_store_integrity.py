"""Damaged label stores: every command notices, says so in one line, and the repair relabels exactly what was lost.

Each test damages a copy of a real store made by a real ``labelgen run`` of the
embedded sample (34 images, 5 shards of 8) as a lost object, a bad rsync or a
half-copied folder would: a chunk file deleted, truncated or changed, garbage
in an array's ``zarr.json`` or in a completion record. docs/reliability.md
lists each case with its test.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.helpers import assert_one_error_line, assert_stores_equal

from labelgen.cli import main
from labelgen.status import Status
from labelgen.store import ARRAY_NAMES, LabelStore

RUN = ["run", "--source", "sample", "--teacher", "hull", "--shard-size", "8", "--serial"]
SHARDS = 5  # 34 images in shards of 8


def invoke(*args: str):
    return CliRunner().invoke(main, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An undamaged store: the sample labelled by `labelgen run`."""
    out = tmp_path_factory.mktemp("reference") / "labels.zarr"
    made = invoke(*RUN, "--out", out)
    assert made.exit_code == 0, made.output
    return out


@pytest.fixture
def copy(reference, tmp_path) -> Path:
    """A copy of the reference store, to damage."""
    out = tmp_path / "labels.zarr"
    shutil.copytree(reference, out)
    (out / "run.lock").unlink(missing_ok=True)
    return out


def chunk_file(store: Path, array: str, shard: int) -> Path:
    """The file of ``array``'s chunk holding ``shard`` (one per shard: Zarr shards align with work shards)."""
    found = [path for path in (store / array / "c").rglob("*") if path.is_file()
             and path.relative_to(store / array / "c").parts[0] == str(shard)]
    assert len(found) == 1, found
    return found[0]


def delete(path: Path) -> None:
    path.unlink()


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def flip_a_byte(path: Path) -> None:
    """Same size, other bytes: what only the checksum sees (a bad disk sector, a bad copy)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_every_shard_records_its_chunks_and_an_intact_store_verifies(reference):
    store = LabelStore(reference, mode="r")
    record = store.shard_record(2)
    assert set(record["chunks"]) == set(store.shard_chunk_keys(2))
    assert {key.split("/")[0] for key in record["chunks"]} == set(ARRAY_NAMES)
    stored = record["chunks"]["image/c/2/0/0/0"]
    assert stored["bytes"] == (reference / "image" / "c" / "2" / "0" / "0" / "0").stat().st_size
    assert record["chunks"]["box_hint/c/2/0"] is None  # the sample gives no box: all fill value, nothing stored
    verified = invoke("verify", reference)
    assert verified.exit_code == 0, verified.output
    assert f"{SHARDS} done shards verified: {SHARDS} intact, 0 damaged" in verified.output


# array, shard, damage, found by labelgen run's cheap check (presence and size) as well as by verify
DAMAGE = [
    pytest.param("image", 1, delete, True, id="image-chunk-deleted"),
    pytest.param("label", 3, delete, True, id="label-chunk-deleted"),
    pytest.param("status", 2, delete, True, id="status-chunk-deleted"),
    pytest.param("image", 4, truncate, True, id="image-chunk-truncated"),
    pytest.param("label", 0, flip_a_byte, False, id="label-chunk-changed"),
]


@pytest.mark.parametrize("array,shard,damage,cheap", DAMAGE)
def test_a_damaged_chunk_is_found_reported_and_repaired_to_equal_an_undamaged_run(copy, reference, array, shard,
                                                                                  damage, cheap):
    """stats and report mark the shard, verify names it (exit 1), --repair and the same run relabel exactly it."""
    damage(chunk_file(copy, array, shard))
    # stats and report: found by the cheap check (presence and sizes). Changed bytes of the recorded
    # size are the full check's (verify, below) to find: they may still decode, so readers cannot tell.
    stats = invoke("stats", copy)
    assert stats.exit_code == 0 and "Traceback" not in stats.output, stats.output
    if cheap:
        assert f"4/{SHARDS} shards done, 1 damaged" in stats.output, stats.output
        assert f"damaged: shard {shard} ({array}/c/" in stats.output
        rows = len(range(34)[shard * 8:shard * 8 + 8])
        assert any(line.split()[:2] == ["damaged", str(rows)] for line in stats.output.splitlines()), stats.output
    report = invoke("report", copy, "--out", copy.parent / "report.html")
    assert report.exit_code == 0, report.output
    if cheap:
        assert f"1 damaged, not read: shard {shard}" in (copy.parent / "report.html").read_text()
    verified = invoke("verify", copy)
    assert verified.exit_code == 1, verified.output
    damaged_lines = [line for line in verified.output.splitlines() if line.startswith("shard ")]
    assert len(damaged_lines) == 1 and damaged_lines[0].startswith(f"shard {shard} ") and f"{array}/c/" in damaged_lines[0]
    assert f"{SHARDS - 1} intact, 1 damaged" in verified.output
    repaired = invoke("verify", copy, "--repair")
    assert repaired.exit_code == 0 and "1 shard is pending again" in repaired.output, repaired.output
    assert "labelgen run --source sample --out" in repaired.output  # the command that relabels it
    assert LabelStore(copy, mode="r").pending_shards() == [shard]
    resumed = invoke(*RUN, "--out", copy)
    assert resumed.exit_code == 0 and f"shards of 8, 1 to do" in resumed.output, resumed.output
    assert_stores_equal(copy, reference)
    assert invoke("verify", copy).exit_code == 0


@pytest.mark.parametrize("array,shard,damage", [(a, s, d) for a, s, d, cheap in (p.values for p in DAMAGE) if cheap])
def test_labelgen_run_relabels_the_damaged_shards_it_finds_when_it_resumes(copy, reference, array, shard, damage):
    damage(chunk_file(copy, array, shard))
    resumed = invoke(*RUN, "--out", copy)
    assert resumed.exit_code == 0, resumed.output
    notices = [line for line in resumed.output.splitlines() if "damaged" in line]
    assert len(notices) == 1, resumed.output
    assert notices[0].startswith(f"{copy}: 1 done shard damaged (shard {shard} ({array}/c/")
    assert notices[0].endswith("): relabelling it")
    assert "1 to do" in resumed.output
    assert_stores_equal(copy, reference)


def test_a_deleted_status_chunk_never_reads_as_all_shards_done(copy):
    delete(chunk_file(copy, "status", 2))
    stats = invoke("stats", copy)
    assert f"{SHARDS}/{SHARDS} shards done" not in stats.output and "pending" not in stats.output, stats.output
    store = LabelStore(copy, mode="r")
    state = store.completeness()
    assert state["shards_done"] == SHARDS - 1 and state["shards_damaged"] == [2] and not state["complete"]
    assert (store.read("status", store.shard_rows(2)) == Status.DAMAGED).all()


def test_an_unreadable_completion_record_is_damage(copy, reference):
    (copy / "shards" / "000003.json").write_text('{"shard": 3, "rows": [24')  # cut short
    verified = invoke("verify", copy)
    assert verified.exit_code == 1 and "shard 3 (rows 24-31): damaged: completion record unreadable" in verified.output
    resumed = invoke(*RUN, "--out", copy)
    assert resumed.exit_code == 0 and "1 to do" in resumed.output, resumed.output
    assert_stores_equal(copy, reference)


def test_garbage_in_an_arrays_metadata_is_one_error_line_everywhere_and_verify_restores_it(copy, reference):
    (copy / "label" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "arr')
    for command in (RUN + ["--out", copy], ["stats", copy], ["report", copy, "--out", copy.parent / "r.html"],
                    ["verify", copy]):
        assert_one_error_line(invoke(*command), "label/zarr.json is not JSON", "--repair' restores it")
    repaired = invoke("verify", copy, "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert "restored the metadata of array 'label'" in repaired.output and "0 damaged" in repaired.output
    assert_stores_equal(copy, reference)
    assert json.loads((copy / "label" / "zarr.json").read_text()) == json.loads(
        (reference / "label" / "zarr.json").read_text())


def test_a_store_without_checksums_is_unverifiable_not_damaged(copy):
    for record_path in (copy / "shards").glob("*.json"):  # as stores made before records listed their chunks
        record = json.loads(record_path.read_text())
        del record["chunks"]
        record_path.write_text(json.dumps(record))
    stats = invoke("stats", copy)
    assert f"{SHARDS}/{SHARDS} shards done" in stats.output and f"unverifiable: {SHARDS} shards" in stats.output
    verified = invoke("verify", copy)
    assert verified.exit_code == 0 and f"{SHARDS} intact, 0 damaged ({SHARDS} labelled before checksums" in \
        verified.output, verified.output
    truncate(chunk_file(copy, "image", 1))  # still found by the full check: the rows are read through
    verified = invoke("verify", copy)
    assert verified.exit_code == 1 and "shard 1 (rows 8-15): damaged: image rows 8-16 unreadable" in verified.output


def test_a_damaged_manifest_is_refused_since_relabelling_cannot_restore_it(copy):
    delete(chunk_file(copy, "key", 1))
    for args in (RUN + ["--out", str(copy)], ["verify", str(copy), "--repair"]):
        assert_one_error_line(invoke(*args), "the manifest of 1 shard is damaged", "key/c/1 missing", "a new --out")
    assert LabelStore(copy, mode="r").pending_shards() == []  # nothing was made pending that cannot be relabelled


def test_training_and_evaluation_refuse_a_damaged_store_and_skip_its_shards_when_allowed(copy, tmp_path):
    from train.cli import eval_main
    from train.cli import main as train_main
    from train.datasets.store import StoreDataset, StoreInfo

    delete(chunk_file(copy, "image", 1))  # rows 8-15: status ok, image gone (read as black before)
    common = ["--labels", str(copy), "--width", "0.125", "--batch-size", "4", "--max-steps", "1", "--num-workers",
              "0", "--val-fraction", "0.25", "--no-progress"]
    refused = CliRunner().invoke(train_main, common + ["--out", str(tmp_path / "refused")])
    assert_one_error_line(refused, "1 damaged shard: shard 1 (image/c/1/0/0/0 missing)",
                          f"'labelgen verify {copy} --repair' and then 'labelgen run --source sample --out {copy}",
                          "--allow-incomplete")
    allowed = CliRunner().invoke(train_main, common + ["--out", str(tmp_path / "run"), "--allow-incomplete"])
    assert allowed.exit_code == 0, allowed.output
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["label_stores"][0]
    assert recorded["shards_damaged"] == [1] and recorded["shards_done"] == SHARDS - 1

    ok = LabelStore(copy, mode="r").ok_indices()  # what the intact store says: the damaged rows included
    intact_ok = [row for row in ok if not 8 <= row < 16]
    info = StoreInfo.read(copy)
    assert info.skipped == (frozenset({1}),) and int(info.ok_per_chunk.sum()) == len(intact_ok) < len(ok)
    images = [image for image, _ in StoreDataset(info, shuffle=False, hflip=False, rank=0, world_size=1)]
    assert len(images) == len(intact_ok) and all(image.float().mean() > 10 for image in images)  # none black

    scores = tmp_path / "scores.json"
    refused = CliRunner().invoke(eval_main, [str(tmp_path / "run"), "--labels", str(copy), "--device", "cpu"])
    assert_one_error_line(refused, "1 damaged shard: shard 1", "labelgen verify")
    allowed = CliRunner().invoke(eval_main, [str(tmp_path / "run"), "--labels", str(copy), "--device", "cpu",
                                             "--allow-incomplete", "--json", str(scores)])
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(scores.read_text())["images"] == len(intact_ok)

    (copy / "label" / "zarr.json").write_text("\x00garbage")
    for command, args in ((train_main, common + ["--out", str(tmp_path / "again")]),
                          (eval_main, [str(tmp_path / "run"), "--labels", str(copy), "--device", "cpu"])):
        assert_one_error_line(CliRunner().invoke(command, args), "label/zarr.json is not JSON", "--repair")
