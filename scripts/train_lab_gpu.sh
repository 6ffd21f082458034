#!/usr/bin/env bash
# Train the lab demo model on one GPU in one sitting, from nothing: synthesise the lab data on every
# CPU core, then the five configs/train/lab_gpu_*.yaml stages, each stopped by its share of the time
# budget (`max_minutes`), then an fp16 export. Written for a 10-minute call on one H200; see
# docs/training.md ("The demo model on a GPU").
#
#   bash scripts/train_lab_gpu.sh OUT [MINUTES]
#
# MINUTES (default 6) is the training time shared by the stages: autoencoder 18 %, its decoder on
# noisy latents 5 %, stage 1 60 %, stage 2 10 %, the reference detail refiner 7 %. Loading data and
# models adds about half a minute per stage. OUT receives model.tar.part00, 01.. (the exported
# model folder, fp16, as a tar archive in 15 MB parts: `cat model.tar.part* | tar -x`, then point
# `lab_quality.py --weights` or `demo --weights` at model/), train.log and each stage's log.csv.
# RUNS (default runs/gpu) holds the data and the runs; LAB_PARTS/LAB_CHARACTERS set the data size
# (16 parts of 40 train characters, 2 clips each); PYTHON the interpreter (default python3);
# MIXED_PRECISION (default bf16) the stages' mixed_precision; BATCH (default: each config's, 256
# images or 32 clips) every stage's batch_size, for trial runs on small machines.
# INIT_MODEL (a model folder this script exported before, unpacked) continues that model instead:
# no autoencoder stages, stage 1 (80 % of MINUTES, fresh optimizer), stage 2 (12 %) and the refiner
# (8 %; continued if the model has one) from its weights, its autoencoder kept. So training can
# accumulate over several device calls, each carrying the previous call's model.
set -euo pipefail
out=$(realpath -m "${1:?usage: train_lab_gpu.sh OUT [MINUTES]}")
init=""
if [ -n "${INIT_MODEL:-}" ]; then  # checked before any work is done
    init=$(realpath -m "$INIT_MODEL")
    if [ ! -d "$init/denoising_unet" ] || [ ! -d "$init/vae" ]; then
        echo "error: INIT_MODEL=$INIT_MODEL is not a model folder exported by this script (no denoising_unet/ and vae/)" >&2
        exit 2
    fi
fi
minutes=${2:-6}
cd "$(dirname "$0")/.."
root=$PWD
runs=$(realpath -m "${RUNS:-runs/gpu}")
parts=${LAB_PARTS:-16}
characters=${LAB_CHARACTERS:-40}
py=${PYTHON:-python3}
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$out" "$runs"
log="$out/train.log"
say() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$log"; }
share() { $py -c "print(f\"{max($minutes * $1, 1e-4):.4g}\")"; }
cli() { $py -m animate_anyone.cli "$@"; }

say "python: $($py -c 'import torch, diffusers; print("torch", torch.__version__, "diffusers", diffusers.__version__, "cuda", torch.cuda.is_available())')"

# 1. data: parts of distinct train characters (part k starts at character id 1000 k), in parallel
if [ ! -f "$runs/lab/meta.json" ]; then
    say "synthesising $parts x $characters characters on $(nproc) cores"
    seq 0 $((parts - 1)) | xargs -P "$(nproc)" -I{} sh -c \
        "$py -m animate_anyone.cli data synth -o '$runs/lab/part{}' --seed \$(({} * 1000)) \
         --num-characters $characters --clips-per-character 2 --frames 32 --size 128 128 --split train \
         --lossless --quiet"
    $py - "$runs/lab" "$parts" <<'EOF'
import json, sys
from pathlib import Path
root, parts = Path(sys.argv[1]), int(sys.argv[2])
merged = []
for k in range(parts):
    for e in json.loads((root / f"part{k}" / "meta.json").read_text()):
        for key in ("video_path", "kps_path", "pose_path"):
            if e.get(key):
                e[key] = f"part{k}/{e[key]}"
        merged.append(e)
(root / "meta.json").write_text(json.dumps(merged, indent=1))
print(len(merged), "clips")
EOF
fi

# 2. the stages (their configs name runs/gpu; the paths are set here so that RUNS can move them)
# A continuation writes its stages and model under a folder of its own, so an earlier call's runs
# (or the model being continued) are never touched.
work=$runs
[ -n "$init" ] && work=$runs/continued-$(date +%Y%m%d-%H%M%S)
stage() {  # stage CONFIG FRACTION NAME [--set ...]: trains into $work/NAME
    local config=$1 fraction=$2 name=$3
    shift 3
    say "train $config for $(share "$fraction") min"
    cli train "configs/train/$config" --set max_minutes="$(share "$fraction")" --set output_dir="$work/$name" \
        --set mixed_precision="${MIXED_PRECISION:-bf16}" --set data.meta="$runs/lab/meta.json" \
        ${BATCH:+--set batch_size="$BATCH"} "$@" 2>&1 \
        | tr '\r' '\n' | grep -v -E 'it/s\]$|s/it\]$' | tee -a "$log" | tail -n 3
    cp "$work/$name/log.csv" "$out/${config%.yaml}.csv" 2>/dev/null || true
}
if [ -z "$init" ]; then
    stage lab_gpu_vae.yaml 0.18 vae
    stage lab_gpu_vae_decoder.yaml 0.05 vae_decoder --set model.init_vae_from="$work/vae/final/vae"
    stage lab_gpu_stage1.yaml 0.60 stage1 --set model.init_vae_from="$work/vae/final/vae"
    stage lab_gpu_stage2.yaml 0.10 stage2 --set model.init_from="$work/stage1/final"
    # the refiner learns on the decoder the model ships with: the noise-tolerant one
    stage lab_gpu_refiner.yaml 0.07 refiner --set model.init_from="$work/stage2/final" \
        --set model.init_vae_from="$work/vae_decoder/final/vae"
    stages="vae vae_decoder stage1 stage2 refiner"
else
    say "continuing $init in $work (its autoencoder is kept)"
    stage lab_gpu_stage1.yaml 0.80 stage1 --set model.init_from="$init" --set model.init_vae_from=null
    stage lab_gpu_stage2.yaml 0.12 stage2 --set model.init_from="$work/stage1/final"
    stage lab_gpu_refiner.yaml 0.08 refiner --set model.init_from="$work/stage2/final" --set model.init_vae_from=null
    stages="stage1 stage2 refiner"
fi

# 3. export: fp16 (the refiner stage's model carries the noise-tolerant decoder)
cli weights convert "$work/refiner/final" "$work/model" --fp16 | tee -a "$log"
for s in $stages; do
    cp "$work/$s/final/training.json" "$work/model/training_$s.json"
done
if [ -n "$init" ]; then  # the earlier calls' records, prefixed once per continuation
    for f in "$init"/*training_*.json; do
        if [ -f "$f" ]; then cp "$f" "$work/model/previous_$(basename "$f")"; fi
    done
fi
# the model's recommended inference settings (animate, reenact, demo and the benchmarks read them):
# the lab demo's own (128x128, 8-frame windows, guidance off: lab models' colours drift at 2.0)
$py - "$work/model/demo.json" "$minutes" "$init" <<'EOF'
import json, sys, time
from animate_anyone.demo import DEFAULT_SETTINGS as settings
path, minutes, init = sys.argv[1], sys.argv[2], sys.argv[3]
command = (f"INIT_MODEL={init} " if init else "") + f"bash scripts/train_lab_gpu.sh OUT {minutes}"
provenance = {"commands": [command], "written": time.strftime("%Y-%m-%d %H:%M:%S"),
              "notes": "training records: training_*.json (previous_*: the calls this one continued)"}
with open(path, "w") as fh:
    json.dump({"settings": settings, "provenance": provenance}, fh, indent=1)
EOF
# the device tool brings back files of at most 16 MB: the archive comes in 15 MB parts
tar -C "$work" -cf - model | split -b 15M -d - "$out/model.tar.part"
say "done: $(ls "$out"/model.tar.part* | wc -l) parts of model.tar in $out (cat them | tar -x)"
