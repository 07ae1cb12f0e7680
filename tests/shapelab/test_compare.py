"""compare.py: table of differing config values and final metrics, plots, self-contained HTML."""
import json

from omegaconf import OmegaConf

from shapelab.cli.compare import main as compare_main


def _fake_run(root, name, lr, losses, iou, failed=False):
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"model": {"lr": lr, "depth": 4}, "paths": {"x": name}}), run / ".hydra" / "config.yaml")
    (run / "csv").mkdir()
    rows = ["epoch,step,train/loss,val/iou"] + [f"0,{i},{v},{iou if i == len(losses) - 1 else ''}" for i, v in enumerate(losses)]
    (run / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")
    (run / "eval" / "test").mkdir(parents=True)
    summary = {"mean_over_classes": {"iou": iou, "recall_1pct": 0.5}, "mean_over_shapes": {"iou": iou},
               "per_category": {"chair": {"num_shapes": 2, "iou": iou}, "table": {"num_shapes": 2, "iou": iou / 2}}}
    (run / "eval" / "test" / "summary.json").write_text(json.dumps(summary))
    if failed:
        (run / "FAILED").write_text("boom\n")
    return run


def test_compare_report_lists_differing_config_and_final_metrics(tmp_path):
    sweep = tmp_path / "sweep"
    _fake_run(sweep, "0", 1e-3, [1.0, 0.5], 0.7)
    _fake_run(sweep, "1", 1e-4, [1.0, 0.8], 0.4, failed=True)
    out = tmp_path / "report"
    assert compare_main([str(sweep), "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "model.lr" in report and "model.depth" not in report and "paths.x" not in report
    assert "eval/iou" in report and "recall_1pct" not in report
    lines = [line for line in report.splitlines() if line.startswith(("| 0", "| 1"))]
    assert "0.001" in lines[0] and "0.7" in lines[0]
    assert "FAILED" in lines[1] and "0.4" in lines[1]
    assert (out / "curves.png").stat().st_size > 1000 and (out / "categories.png").stat().st_size > 1000
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 2 and "<table>" in html


def test_compare_names_a_pattern_that_matches_nothing(tmp_path, capsys):
    assert compare_main([str(tmp_path / "nothing*")]) == 2
    assert "matches nothing" in capsys.readouterr().err
