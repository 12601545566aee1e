"""eval.contact_sheet: a real sheet of proc_synth_db/tiny (PNG + TensorBoard) and the grid helper."""
import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator

from tfsynth.synth3d.sheet import contact_sheet


def test_grid_layout_and_padding():
    a = np.full((4, 6, 3), 10, np.uint8)
    b = np.full((2, 2), 200, np.uint8)
    sheet = contact_sheet([[a, b], [b]], pad=1, pad_value=255)
    assert sheet.shape == (2 * 5 + 1, 2 * 7 + 1, 3)
    np.testing.assert_array_equal(sheet[1:5, 1:7], a)
    assert (sheet[1 + 1:3 + 1, 8 + 2:10 + 2] == 200).all()  # b centred in its cell
    with pytest.raises(ValueError, match="uint8"):
        contact_sheet([[a.astype(np.float32)]])


def test_contact_sheet_job_writes_png_and_tensorboard(tmp_path):
    from eval import contact_sheet as job

    out = tmp_path / "sheet.png"
    result = job.main(["--data", "proc_synth_db/tiny", "--data_dir", str(tmp_path / "tfds"), "--out", str(out),
                       "--classes", "4", "--instances", "5", "--logdir", str(tmp_path / "tb")])
    assert result["rows"] == 4 and result["columns"] == 5
    sheet = np.asarray(Image.open(out))
    assert sheet.shape == (4 * 66 + 2, 5 * 66 + 2, 3)
    cells = [sheet[2 + r * 66:66 + r * 66, 2 + c * 66:66 + c * 66] for r in range(4) for c in range(5)]
    assert all((cell.max(axis=2) > 0).mean() > 0.01 for cell in cells)  # no blank cell
    acc = event_accumulator.EventAccumulator(str(tmp_path / "tb"), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    assert "contact_sheet/proc_synth_db_tiny" in acc.Tags()["tensors"]
