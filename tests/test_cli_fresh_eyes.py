"""Fresh-eyes findings on the command line (issue 20 follow-up): flags are never abbreviated, and a short
write on a full disk is reported as such."""

from __future__ import annotations

import numpy as np
import pytest

from pdediff.cli import main
from pdediff.cli._errors import write_failure


def test_a_flag_the_command_lacks_is_not_read_as_a_longer_one(tmp_path, capsys):
    # inpaint has no --dt: argparse's prefix matching took it for --dtype and blamed '--dtype' for '1e300'.
    img = tmp_path / "a.npy"
    np.save(img, np.zeros((8, 8), np.float32))
    np.save(tmp_path / "m.npy", np.zeros((8, 8), bool))
    with pytest.raises(SystemExit) as e:
        main(["inpaint", str(img), "--mask", str(tmp_path / "m.npy"), "-o", str(tmp_path / "o.npy"), "--dt", "1e300"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --dt 1e300" in err
    assert "--dtype" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.npy").exists()
    # A full flag still works; an abbreviation of one is refused rather than guessed.
    with pytest.raises(SystemExit):
        main(["denoise", str(img), "-o", str(tmp_path / "d.npy"), "--num-it", "2"])
    assert "unrecognized arguments: --num-it" in capsys.readouterr().err


def test_a_short_write_names_the_full_disk():
    # NumPy's tofile (TIFF pixel data) reports a full disk as OSError('N requested and M written'), no errno.
    msg = str(write_failure(OSError("221184 requested and 153508 written")))
    assert msg == ("cannot write: short write (221184 bytes requested, 153508 written): "
                   "no space left on the device, or it failed")
    assert str(write_failure(OSError(28, "No space left on device"))) == "cannot write: [Errno 28] No space left on device"


@pytest.mark.parametrize("out", [".", "..", "/"])
@pytest.mark.parametrize("force", [False, True])
def test_an_output_naming_no_file_is_refused_as_such(tmp_path, capsys, monkeypatch, out, force):
    # '-o .' answered "OUTPUT . exists; pass --force to overwrite it", and with --force a different refusal.
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "a.npy", np.zeros((8, 8), np.float32))
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["denoise", "a.npy", "-o", out, "--quiet"] + (["--force"] if force else [])) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"pdediff denoise: error: OUTPUT {out} names no file ('.', '..' or a root); give a file name such as out.nii"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_float64_biharmonic_overflow_gives_advice_that_applies(recwarn):
    # At float64's maximum the biharmonic overshoot leaves the type: the message said "pass the image as
    # float64" to a float64 image (and NumPy's overflow RuntimeWarning leaked first).
    import pdediff

    u = np.zeros((16, 16))
    u[:, :8] = 1.7e308
    u[::2, :8] = -1.7e308
    m = np.zeros((16, 16), bool)
    m[4:12, 5:11] = True
    with pytest.raises(ValueError, match=r"beyond float64's range .*; scale the image down first, or use "
                                         r"method='harmonic'") as e:
        pdediff.inpaint(u, m, method="biharmonic")
    assert "pass the image as float64" not in str(e.value)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    assert np.isfinite(pdediff.inpaint(u, m, method="harmonic")).all()


def test_report_names_the_spacing_unit(tmp_path, capsys):
    """An ImageJ stack in microns is reported in the unit pdediff reads it in (mm), not as a bare number."""
    tifffile = pytest.importorskip("tifffile")
    from pdediff.cli import main

    src = tmp_path / "um.tif"
    tifffile.imwrite(src, (np.arange(4 * 16 * 16) % 997).reshape(4, 16, 16).astype("uint16"), imagej=True,
                     resolution=(2.0, 2.0), metadata={"unit": "micron", "spacing": 2.0, "axes": "ZYX"})
    assert main(["denoise", str(src), "-o", str(tmp_path / "out.tif"), "--num-iter", "1"]) == 0
    assert "spacing 0.002 x 0.0005 x 0.0005 mm" in capsys.readouterr().out
