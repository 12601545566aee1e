"""eval.transfer on the outputs of real (tiny) train.finetune runs: scratch x 2 seeds on one dataset, and a
pre-trained source (one of those runs' model.keras) on a second one; plus the cell arithmetic and formatting."""
import csv
import io
import json
import math
import os

import numpy as np
import pytest

from tfsynth.transfer import table

TINY = ["--config", "digits_demo", "--arch", "resnet18", "--resize", "16", "--crop_size", "16",
        "--train_split", "train[:64]", "--eval_split", "test[:50]", "--batch_size", "16", "--epochs", "1",
        "--lr_milestones", "1", "--no-deterministic"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    import tensorflow_datasets as tfds

    import tfds_builders.digits  # noqa: F401
    from train import finetune as job

    data_dir = str(tmp_path_factory.mktemp("tfds"))
    for config in ("8px", "32px"):
        tfds.builder("digits", config=config, data_dir=data_dir).download_and_prepare()
    root = tmp_path_factory.mktemp("finetune")
    common = [*TINY, "--data_dir", data_dir]
    results = {
        "scratch-8-s1": job.main([*common, "--data", "digits/8px", "--init", "scratch", "--seed", "1",
                                  "--workdir", str(root / "scratch-8px-s1")]),
        "scratch-8-s2": job.main([*common, "--data", "digits/8px", "--init", "scratch", "--seed", "2",
                                  "--workdir", str(root / "scratch-8px-s2")]),
    }
    # A fine-tuned model is a valid pre-trained source for another fine-tuning (its fc is replaced again).
    results["from8-32-s1"] = job.main([*common, "--data", "digits/32px", "--seed", "1",
                                       "--backbone", str(root / "scratch-8px-s1" / "model.keras"),
                                       "--workdir", str(root / "from8px-32px-s1")])
    return root, results


def test_finetune_runs_record_what_the_table_needs(runs):
    root, results = runs
    entry = results["from8-32-s1"]["transfer"]
    assert entry["role"] == "final" and entry["source"] == "digits/8px" and entry["source_kind"] == "backbone"
    assert entry["downstream"] == "digits/32px" and entry["seed"] == 1 and entry["arch"] == "resnet18"
    assert 0.0 <= entry["top1"] <= 1.0 and results["from8-32-s1"]["final_eval"]["top1"] == entry["top1"]
    # resnet18 without fc: 20 conv kernels + 20 batch norms x 4 tensors
    assert results["from8-32-s1"]["model_info"]["transferred_tensors"] == 100
    assert results["scratch-8-s1"]["data"]["eval_examples"] == 50
    with open(root / "from8px-32px-s1" / "results.json") as f:
        assert json.load(f)["transfer"] == entry
    assert os.path.exists(root / "from8px-32px-s1" / "model.keras")


def test_transfer_report_on_real_runs(runs, tmp_path, capsys):
    from eval import transfer as job

    root, results = runs
    (root / "not-a-run").mkdir(exist_ok=True)
    (root / "not-a-run" / "results.json").write_text(json.dumps({"final_eval": {"top1": 0.5}}))  # e.g. pretrain
    report = job.main(["--runs", str(root), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert report["skipped"] == {"not a fine-tuning run": 1} and len(report["records"]) == 3

    t = report["table"]
    assert t.rows == ["scratch", "digits/8px"] and t.columns == ["digits/32px (full)", "digits/8px (full)"]
    s1, s2 = (results[k]["transfer"]["top1"] for k in ("scratch-8-s1", "scratch-8-s2"))
    cell = t.cell("scratch", "digits/8px (full)")
    assert cell.seeds == [1, 2] and cell.mean == pytest.approx((s1 + s2) / 2)
    assert cell.std == pytest.approx(abs(s1 - s2) / math.sqrt(2))  # sample std of two values
    assert cell.ci95 == pytest.approx(12.7062047 * cell.std / math.sqrt(2))  # t(0.975, 1 dof)
    assert t.cell("digits/8px", "digits/8px (full)") is None
    assert t.paired == {}  # the pre-trained source ran on digits/32px, scratch on digits/8px: no pairs

    md = (tmp_path / "out" / "transfer.md").read_text()
    assert md == report["markdown"] and md in out
    lines = md.strip().splitlines()
    assert lines[2] == "| pre-training | digits/32px (full) | digits/8px (full) |"
    assert lines[4] == f"| scratch | – | {100 * cell.mean:.1f} ± {100 * cell.ci95:.1f} (2 seeds) |"
    assert lines[5] == f"| digits/8px | {100 * results['from8-32-s1']['transfer']['top1']:.1f} (1 seed) | – |"

    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "transfer.csv").read_text())))
    assert [(r["pretraining"], r["downstream"], r["images_per_class"], r["n_seeds"]) for r in rows] == [
        ("scratch", "digits/8px", "0", "2"), ("digits/8px", "digits/32px", "0", "1")]
    assert float(rows[0]["top1_mean"]) == pytest.approx(100 * cell.mean, abs=1e-4)
    assert rows[0]["top1_per_seed"] == f"{100 * s1:.4f} {100 * s2:.4f}"
    png = (tmp_path / "out" / "transfer.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    used = json.loads((tmp_path / "out" / "runs.json").read_text())
    assert len(used["runs"]) == 3 and list(used["skipped"]) == ["not a fine-tuning run"]
    assert {r["images_per_class"] for r in used["runs"]} == {0} and {r["train_examples"] for r in used["runs"]} == {64}
    # the whole training split sits at its images per class on the accuracy-vs-images axis (64 images, 10 classes)
    assert t.full_per_class == {"digits/32px": 6.4, "digits/8px": 6.4}
    png = (tmp_path / "out" / "accuracy_vs_images.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == report["summary"]


def _record(source, downstream, seed, top1, kind="backbone", arch="resnet50", images_per_class=0):
    return table.RunRecord(source, kind, arch, downstream, seed, top1, f"/runs/{source}/{downstream}/{seed}",
                           images_per_class=images_per_class)


def test_rows_order_arch_labels_and_cells():
    records = [_record("fractal_db/1k", "cifar10", 1, 0.9), _record("fractal_db/1k", "cifar10", 2, 0.8),
               _record("alexnet:imagenet", "cifar10", 1, 0.85, kind="reference", arch="alexnet"),
               _record("scratch", "cifar10", 1, 0.7, kind="scratch")]
    t = table.build_table(records)
    assert t.rows == ["scratch [resnet50]", "fractal_db/1k [resnet50]", "alexnet:imagenet [alexnet]"]
    assert t.columns == ["cifar10 (full)"]
    cell = t.cell("fractal_db/1k [resnet50]", "cifar10 (full)")
    # two seeds: half-width t(0.975, 1) * s / sqrt(2) = 12.706 * 0.0707 / 1.414 = 0.635
    assert cell.text() == "85.0 ± 63.5 (2 seeds)"
    assert t.cell("scratch [resnet50]", "cifar10 (full)").text() == "70.0 (1 seed)"
    assert math.isnan(t.cell("scratch [resnet50]", "cifar10 (full)").std)
    # the AlexNet reference has no scratch run of its own architecture: the only scratch row is its baseline
    assert t.baselines == {"fractal_db/1k [resnet50]": "scratch [resnet50]",
                           "alexnet:imagenet [alexnet]": "scratch [resnet50]"}
    assert t.paired_cell("fractal_db/1k [resnet50]", "cifar10 (full)").text() == "+20.0 (1 pair)"
    assert t.paired_cell("alexnet:imagenet [alexnet]", "cifar10 (full)").seeds == [1]
    text = table.csv_text(t)
    assert "scratch [resnet50],cifar10,0,70.0000,,,1,1,70.0000,,," in text
    assert "fractal_db/1k [resnet50],cifar10,0,85.0000,7.0711,63.5310,2,1 2,90.0000 80.0000,20.0000,,1" in text


def test_collect_skips_trials_duplicates_and_broken_files(tmp_path):
    def write(name, data):
        path = tmp_path / name / "results.json"
        path.parent.mkdir(parents=True)
        path.write_text(data if isinstance(data, str) else json.dumps(data))

    entry = {"role": "final", "source": "scratch", "source_kind": "scratch", "arch": "resnet50",
             "downstream": "digits/32px", "seed": 1, "top1": 0.5}
    write("a", {"transfer": entry})
    write("b", {"transfer": entry})  # same source, dataset and seed
    write("c", {"transfer": {**entry, "role": "cv_trial"}})
    write("d", "{not json")
    write("e", {"transfer": {**entry, "seed": 2, "top1": None}})
    collected = table.collect([str(tmp_path)])
    assert [r.path for r in collected.records] == [str(tmp_path / "a" / "results.json")]
    counts = collected.skipped_counts()
    assert counts["CV trial"] == 1 and counts["unreadable (JSONDecodeError)"] == 1
    assert counts["no test top-1 (eval_split '')"] == 1
    assert [k for k in counts if k.startswith("duplicate seed")] and sum(counts.values()) == 4
    with pytest.raises(FileNotFoundError, match="nowhere"):
        table.collect([str(tmp_path / "nowhere")])
    with pytest.raises(ValueError, match="no finished fine-tuning runs"):
        table.write_report([str(tmp_path / "c")], str(tmp_path / "out"))
    assert np.isfinite(table.Cell([0.5, 0.7], [1, 2]).std)


def test_confidence_interval_on_hand_checked_numbers():
    # [90, 92, 94]: mean 92, s = 2, half-width t(0.975, 2) * 2 / sqrt(3) = 4.302653 * 1.154701 = 4.968275
    mean, std, half = table.mean_ci([90.0, 92.0, 94.0])
    assert (mean, std) == (92.0, 2.0) and half == pytest.approx(4.968275, rel=1e-6)
    # five values: t(0.975, 4) = 2.776445; s of [1..5] = sqrt(2.5)
    assert table.mean_ci([1, 2, 3, 4, 5])[2] == pytest.approx(2.776445 * math.sqrt(2.5) / math.sqrt(5), rel=1e-6)
    mean, std, half = table.mean_ci([0.7])
    assert mean == 0.7 and math.isnan(std) and math.isnan(half)
    cell = table.Cell([0.90, 0.92, 0.94], [1, 2, 3])
    assert cell.ci95 == pytest.approx(0.04968275, rel=1e-6) and cell.text() == "92.0 ± 5.0 (3 seeds)"


def test_paired_differences_match_seeds_and_skip_missing_pairs():
    records = [
        # scratch at 10/class: seeds 1, 2, 3; fractal at 10/class: seeds 2, 3, 4 (pairs: seeds 2 and 3 only)
        *[_record("scratch", "digits/32px", s, v, kind="scratch", images_per_class=10)
          for s, v in ((1, 0.50), (2, 0.60), (3, 0.70))],
        *[_record("fractal", "digits/32px", s, v, images_per_class=10) for s, v in ((2, 0.65), (3, 0.72), (4, 0.99))],
        # full data: scratch seeds 1-3, fractal seeds 1-3 listed out of order
        *[_record("scratch", "digits/32px", s, v, kind="scratch") for s, v in ((1, 0.90), (2, 0.92), (3, 0.94))],
        *[_record("fractal", "digits/32px", s, v) for s, v in ((3, 0.95), (1, 0.93), (2, 0.92))],
        # a source without any scratch run on its dataset: no pairs at all
        _record("fractal", "cifar10", 1, 0.5),
    ]
    t = table.build_table(records)
    assert t.columns == ["cifar10 (full)", "digits/32px (10/class)", "digits/32px (full)"]
    low = t.paired_cell("fractal", "digits/32px (10/class)")
    assert low.seeds == [2, 3] and low.diffs == pytest.approx([0.05, 0.02]) and low.baseline == "scratch"
    full = t.paired_cell("fractal", "digits/32px (full)")
    assert full.seeds == [1, 2, 3] and full.diffs == pytest.approx([0.03, 0.0, 0.01])
    assert t.paired_cell("fractal", "cifar10 (full)") is None and t.paired_cell("scratch", "digits/32px (full)") is None
    # diffs [3, 0, 1] pp: mean 1.333, s = 1.527525, half-width 4.302653 * 1.527525 / sqrt(3) = 3.794583
    assert full.text() == "+1.3 ± 3.8 (3 pairs)" and full.ci95 == pytest.approx(0.03794583, rel=1e-5)

    md = table.markdown(t).splitlines()
    assert md[0] == "| pre-training | cifar10 (full) | digits/32px (10/class) | digits/32px (full) |"
    assert md[3] == "| fractal | 50.0 (1 seed) | 78.7 ± 44.6 (3 seeds) | 93.3 ± 3.8 (3 seeds) |"
    assert md[5].startswith("Paired difference to scratch (percentage points)")
    assert md[9] == "| fractal | – | +3.5 ± 19.1 (2 pairs) | +1.3 ± 3.8 (3 pairs) |" and len(md) == 10

    stats = table.summary(records)
    assert stats["unit"] == "percent" and stats["confidence"] == 0.95
    json.dumps(stats, allow_nan=False)  # JSON-able: undefined intervals are None, not NaN
    cells = {(c["source"], c["target"], c["images_per_class"]): c for c in stats["cells"]}
    assert len(cells) == 5 and cells[("scratch", "digits/32px", 0)]["mean"] == pytest.approx(92.0)
    assert cells[("scratch", "digits/32px", 0)]["ci95"] == pytest.approx(4.968275, rel=1e-6)
    assert cells[("fractal", "cifar10", 0)]["ci95"] is None and cells[("fractal", "cifar10", 0)]["n"] == 1
    paired = {(p["source"], p["images_per_class"]): p for p in stats["paired"]}
    assert sorted(paired) == [("fractal", 0), ("fractal", 10)]
    assert paired[("fractal", 10)]["n_pairs"] == 2 and paired[("fractal", 10)]["diffs"] == pytest.approx([5.0, 2.0])
    assert paired[("fractal", 0)]["ci_low"] == pytest.approx(4 / 3 - 3.794583, rel=1e-5)
    assert paired[("fractal", 0)]["baseline"] == "scratch" and paired[("fractal", 0)]["target"] == "digits/32px"


def test_images_per_class_from_entry_config_or_absent(tmp_path):
    entry = {"role": "final", "source": "scratch", "source_kind": "scratch", "arch": "resnet18",
             "downstream": "digits/32px", "top1": 0.5}
    runs = {"entry": ({"transfer": {**entry, "seed": 1, "images_per_class": 10},
                       "data": {"train_examples": 100, "num_classes": 10}}, 10),
            "config": ({"transfer": {**entry, "seed": 1}, "config": {"images_per_class": 50}}, 50),
            "absent": ({"transfer": {**entry, "seed": 1}, "data": {"train_examples": 1438, "num_classes": 10}}, 0)}
    for name, (results, _) in runs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(results))
    collected = table.collect([str(tmp_path)])
    assert collected.skipped == {}  # same seed, different regimes: not duplicates
    got = {os.path.basename(os.path.dirname(r.path)): r.images_per_class for r in collected.records}
    assert got == {name: expected for name, (_, expected) in runs.items()}
    t = table.build_table(collected.records)
    assert t.columns == ["digits/32px (10/class)", "digits/32px (50/class)", "digits/32px (full)"]
    assert table.full_data_x(t, "digits/32px") == (143.8, "full (144)")
    without = table.build_table([r for r in collected.records if r.images_per_class])  # no full run known
    assert table.full_data_x(without, "digits/32px") == (100.0, "full")
    table.accuracy_vs_images(t, str(tmp_path / "acc.png"))
    assert (tmp_path / "acc.png").read_bytes()[:4] == b"\x89PNG"
