"""Evaluation: frame and distribution metrics, weightless pose metrics, and ``animate-anyone evaluate``.

Submodules: :mod:`.metrics` (L1, PSNR, SSIM, Fréchet distance), :mod:`.networks` / :mod:`.weights` /
:mod:`.learned` (LPIPS, FID, FID-VID, FVD from public weight files), :mod:`.pose_metrics` (pose
fidelity, flicker, appearance), :mod:`.videos` (pairing, common-size rule), :mod:`.evaluate`
(the runner) and :mod:`.report` (the report folder). Importing this package loads nothing heavy.
"""
