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
    assert t.rows == ["scratch", "digits/8px"] and t.columns == ["digits/32px", "digits/8px"]
    s1, s2 = (results[k]["transfer"]["top1"] for k in ("scratch-8-s1", "scratch-8-s2"))
    cell = t.cell("scratch", "digits/8px")
    assert cell.seeds == [1, 2] and cell.mean == pytest.approx((s1 + s2) / 2)
    assert cell.std == pytest.approx(abs(s1 - s2) / math.sqrt(2))  # sample std of two values
    assert t.cell("digits/8px", "digits/8px") is None

    md = (tmp_path / "out" / "transfer.md").read_text()
    assert md == report["markdown"] and md in out
    lines = md.strip().splitlines()
    assert lines[2] == "| pre-training | digits/32px | digits/8px |"
    assert lines[4] == f"| scratch | – | {100 * cell.mean:.1f} ± {100 * cell.std:.1f} (2 seeds) |"
    assert lines[5] == f"| digits/8px | {100 * results['from8-32-s1']['transfer']['top1']:.1f} (1 seed) | – |"

    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "transfer.csv").read_text())))
    assert [(r["pretraining"], r["downstream"], r["n_seeds"]) for r in rows] == [
        ("scratch", "digits/8px", "2"), ("digits/8px", "digits/32px", "1")]
    assert float(rows[0]["top1_mean"]) == pytest.approx(100 * cell.mean, abs=1e-4)
    assert rows[0]["top1_per_seed"] == f"{100 * s1:.4f} {100 * s2:.4f}"
    png = (tmp_path / "out" / "transfer.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    used = json.loads((tmp_path / "out" / "runs.json").read_text())
    assert len(used["runs"]) == 3 and list(used["skipped"]) == ["not a fine-tuning run"]


def _record(source, downstream, seed, top1, kind="backbone", arch="resnet50"):
    return table.RunRecord(source, kind, arch, downstream, seed, top1, f"/runs/{source}/{downstream}/{seed}")


def test_rows_order_arch_labels_and_cells():
    records = [_record("fractal_db/1k", "cifar10", 1, 0.9), _record("fractal_db/1k", "cifar10", 2, 0.8),
               _record("alexnet:imagenet", "cifar10", 1, 0.85, kind="reference", arch="alexnet"),
               _record("scratch", "cifar10", 1, 0.7, kind="scratch")]
    t = table.build_table(records)
    assert t.rows == ["scratch [resnet50]", "fractal_db/1k [resnet50]", "alexnet:imagenet [alexnet]"]
    cell = t.cell("fractal_db/1k [resnet50]", "cifar10")
    assert cell.text() == "85.0 ± 7.1 (2 seeds)"
    assert t.cell("scratch [resnet50]", "cifar10").text() == "70.0 (1 seed)"
    assert math.isnan(t.cell("scratch [resnet50]", "cifar10").std)
    text = table.csv_text(t)
    assert "scratch [resnet50],cifar10,70.0000,,1,1,70.0000" in text


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


def test_mean_ci95_student_t():
    from tfsynth.stats import format_ci, mean_ci95

    st = mean_ci95([90, 92, 94])
    assert st["n"] == 3 and st["mean"] == 92 and abs(st["std"] - 2) < 1e-12
    assert abs(st["ci95"] - 4.302652729749464 * 2 / 3 ** 0.5) < 1e-9  # t(0.975, 2) = 4.3027
    assert mean_ci95([5.0])["ci95"] is None and mean_ci95([])["mean"] is None
    assert format_ci(st) == "92.0 ± 5.0" and format_ci(mean_ci95([5.0])) == "5.0 (n=1)"
