"""The lab expression probe: true states of a clip, the error measure, training, loading, shipped weights."""

import numpy as np
import pytest
import torch

from animate_anyone.errors import InputError
from animate_anyone.lab import expression_probe as EP
from animate_anyone.lab.generate import generate_clip
from animate_anyone.lab.split import character_ids, clip_motion


def _portrait(i: int, frames: int = 24):
    cid = character_ids("heldout", i + 1)[i]
    return generate_clip(cid, clip_motion(cid, 0, "heldout", ("talk",)), num_frames=frames, framing="face")


def test_clip_states_are_what_the_renderer_drew():
    clip = _portrait(0, 48)
    states = EP.clip_states(clip)
    assert states.shape == (48, 2) and states.min() >= 0 and states.max() <= 1
    np.testing.assert_array_equal(EP.clip_states(clip, slice(8, 20)), states[8:20])
    # a clip rendered from a later start: its states are those of the same times of the motion
    late = generate_clip(clip.character, clip.motion, num_frames=12, start_time=8 / clip.fps, framing="face")
    np.testing.assert_allclose(EP.clip_states(late, start_time=8 / clip.fps), states[8:20], atol=1e-6)
    # the inner-lip gap of the exact landmarks grows with mouth_open (the drawing follows the state)
    gap = (clip.poses.face[:, 66, 1] - clip.poses.face[:, 62, 1])
    assert np.corrcoef(gap, states[:, 1])[0, 1] > 0.9


def test_state_errors():
    true = np.array([[1.0, 0.0], [0.0, 0.5]])
    assert EP.state_errors(true, true) == {"eyes_state_err": 0.0, "mouth_state_err": 0.0}
    err = EP.state_errors(np.array([[1.0, 0.2], [0.5, 0.5]]), true)
    assert err == pytest.approx({"eyes_state_err": 25.0, "mouth_state_err": 10.0})
    with pytest.raises(ValueError):
        EP.state_errors(true[:, :1], true[:, :1])


def test_the_probe_outputs_states_in_range():
    probe = EP.ExpressionProbe()
    out = probe(torch.randn(3, 3, 128, 128))
    assert out.shape == (3, 2) and (out >= 0).all() and (out <= 1).all()


def test_train_load_and_read(tmp_path):
    info = EP.train_expression_probe(tmp_path, steps=3, batch_size=2, num_characters=2, clips=1, frames_per_clip=2,
                                     val_characters=1, log=lambda *_: None)  # fmt: skip
    assert (tmp_path / EP.WEIGHTS_FILE).is_file() and (tmp_path / "expression_probe.json").is_file()
    assert set(info["heldout"]["sharp"]) == {"eyes_state_err", "mouth_state_err"}
    read = EP.expression_reader(tmp_path)
    out = read(np.zeros((3, 64, 96, 3), np.uint8))  # any frame size: resized to the probe's
    assert out.shape == (3, 2) and read(np.zeros((0, 64, 64, 3), np.uint8)).shape == (0, 2)


def test_missing_or_corrupt_weights_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no lab expression probe weights"):
        EP.load_expression_probe(tmp_path)
    (tmp_path / EP.WEIGHTS_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="not a lab expression probe"):
        EP.load_expression_probe(tmp_path)


@pytest.mark.skipif(not (EP.WEIGHTS_DIR / EP.WEIGHTS_FILE).is_file(), reason="no shipped expression probe weights")
def test_the_shipped_probe_reads_blinks_and_speech_of_heldout_faces():
    read = EP.expression_reader()
    clips = [_portrait(i, 48) for i in range(4)]
    frames = np.concatenate([c.frames for c in clips])
    true = np.concatenate([EP.clip_states(c) for c in clips])
    err = EP.state_errors(read(frames), true)
    # a reader that ignores the image (eyes always open, mouth at its mean) scores far worse
    blind = EP.state_errors(np.tile([[1.0, true[:, 1].mean()]], (len(true), 1)), true)
    assert err["eyes_state_err"] < 0.5 * blind["eyes_state_err"], (err, blind)
    assert err["mouth_state_err"] < 0.5 * blind["mouth_state_err"], (err, blind)
