import subprocess
import sys

from animate_anyone.cli import main


def test_presets_command(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "sd15: UNet widths [320, 640, 1280, 1280]" in out and "tiny:" in out
    assert "lab-large-vae:" in out and "autoencoder widths [32, 64, 64, 64], 2 per level, 16 latent channels at 1/8" in out
    assert "lab-f4:" in out and "pose guider [16, 32, 64]" in out and "8 latent channels at 1/4 of the frame" in out
    lines = {line.split(":")[0]: line for line in out.splitlines()}
    assert lines["lab-f4-pos"].endswith("position term in the reference attention (16 features)")
    assert "position term" not in lines["lab-f4"] and "position term" not in lines["sd15"]
    assert lines["lab-f4-ref"].endswith("(16 features), reference latent added after conv_in")
    assert lines["lab-f4-refine"].endswith("after conv_in, reference detail refiner after the decoder (32 channels)")
    assert not any("reference latent" in lines[n] for n in ("lab-f4-pos", "lab-f4", "sd15"))


def test_console_entry_point_runs():
    res = subprocess.run([sys.executable, "-m", "animate_anyone.cli", "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and "animate-anyone" in res.stdout
