#!/usr/bin/env bash
# The checks to run whenever a CUDA machine is at hand, in one go:
# the CUDA cases of the precision, parity and kept-features tests, then bench/bench_gpu.py.
#
#   bench/gpu_checks.sh           # quick: tests, then ViT-S/16 (64 images) at the README's 2026-12-04 settings
#                                 # and at configs/zoo.toml's (with its CamVid evaluation, stage by stage);
#                                 # about 3 minutes on an H200
#   bench/gpu_checks.sh zoo       # ViT-L/14 at 518 px: 32 images at the zoo's settings (evaluation included, stage
#                                 # by stage), 300 images over its 4 gallery blocks (the goal's seconds per pair, as a
#                                 # build runs), then the zoo's label propagation at DAVIS's 480p (bench_scale
#                                 # --propagation-only)
#   bench/gpu_checks.sh full      # quick, then zoo (more than one 10-minute device call: run the two apart there)
#   bench/gpu_checks.sh large     # a cProfile of ViT-S/16's analyses, ViT-B/16 and ViT-L/14 (no tests)
#
# The evaluation reads CamVid from ../shared/data/camvid or shared/data/camvid (a device machine gets the
# latter through a link: ln -s ../shared shared, then carry shared/data/camvid); without it, it is skipped.
# --stages (bench_gpu.py) times each stage with the pairs one at a time: where the time goes, printed even when a
# step's time limit stops it; the steps without it give a build's times (two pairs at a time).
# Logs go to $OUT (else ./gpu-checks). Wheels in .whl/ (packages the machine lacks, e.g. faiss-cpu, plotly,
# pydantic, timm: see the README's "GPU checks") are installed into /tmp/site first; the repository
# itself runs from its checkout (PYTHONPATH), so the machine's own torch is used.
set -u
out=${OUT:-$PWD/gpu-checks}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "error: installing .whl/ failed" >&2; exit 1; }
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, timm, numpy, sklearn, faiss, pydantic, plotly; print('torch', torch.__version__, 'cuda',
torch.version.cuda, '| timm', timm.__version__, '| numpy', numpy.__version__, '| sklearn', sklearn.__version__, '| faiss',
faiss.__version__, '| pydantic', pydantic.__version__, '| plotly', plotly.__version__)" 2>&1 | tee -a "$out/gpu.txt"
# every step needs these: a missing or broken wheel stops here, not after minutes of device time
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "error: a package above does not import; see the README's GPU checks (.whl/)" >&2; exit 1; }

rc=0
step() {  # step NAME SECONDS CMD...: run with a time limit, log to $out/NAME.log, remember a failure
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s): $*"
    local t0=$SECONDS
    timeout -k 10 "$limit" "$@" >"$out/$name.log" 2>&1  # KILL 10 s after TERM: a --stages run prints first
    local status=$?
    grep -E "MEASURED|passed|failed|error|Error|img/s|analyses|memory|extraction|pairs\)|tottime|linalg|positional|kmeans|summary|attention|pca|boundary|locality|ms a frame|position baseline,|total, without|evaluation|skipped|stage|k-means|measure:|PCA|blank probe|alignment|reference" "$out/$name.log" | head -90
    echo "=== $name: exit $status after $((SECONDS - t0)) s"
    [ "$status" -eq 0 ] || rc=1
}

eval_args=()
for d in ../shared/data/camvid shared/data/camvid; do
    if [ -d "$d" ]; then eval_args=(--evaluation-root "$d"); break; fi
done
[ ${#eval_args[@]} -gt 0 ] || echo "note: no CamVid at ../shared/data/camvid or shared/data/camvid: evaluations skipped"

mode=${1:-quick}
case $mode in quick|zoo|full|large) ;; *) echo "error: unknown mode '$mode'; use quick, zoo, full or large" >&2; exit 2;; esac
if [ "$mode" = quick ] || [ "$mode" = full ]; then
    step tests 240 python3 -m pytest -q -s -p no:cacheprovider -o addopts="" \
        tests/test_device.py tests/test_device_parity.py tests/test_stream.py tests/test_propagation.py
    # the README's 2026-12-04 settings (one K, last block's gallery, no evaluation): comparable with its table
    step bench_vits_readme 120 python3 bench/bench_gpu.py --models vit_small_patch16_224.dino --images 64 --settings readme
    step bench_vits_zoo 200 python3 bench/bench_gpu.py --models vit_small_patch16_224.dino --images 64 --stages \
        "${eval_args[@]}"
fi
if [ "$mode" = zoo ] || [ "$mode" = full ]; then
    step bench_vitl518_zoo 220 python3 bench/bench_gpu.py --models vit_large_patch14_dinov2.lvd142m --size 518 \
        --images 32 --batch 16 --stages "${eval_args[@]}"
    # issue 25's goal is about 1.5 s per pair at 300 images: the 4 gallery blocks (its heaviest pairs), measured
    step bench_vitl518_300 200 python3 bench/bench_gpu.py --models vit_large_patch14_dinov2.lvd142m --size 518 \
        --images 300 --batch 16 --layers 0.25,0.5,0.75,1.0 --no-evaluation
    # the zoo's label propagation on DAVIS 2017 val, timed per frame grid and width on the GPU
    step propagation 120 python3 bench/bench_scale.py --propagation-only --time-propagation cuda \
        --json "$out/bench_scale_propagation.json"
fi
if [ "$mode" = large ]; then  # where the analyses' time goes, one pair at a time
    step profile_vits 150 python3 bench/bench_gpu.py --models vit_small_patch16_224.dino --images 64 \
        --profile "$out/vits.prof" "${eval_args[@]}"
    step bench_vitb 150 python3 bench/bench_gpu.py --models vit_base_patch16_224.mae --images 128 "${eval_args[@]}"
    step bench_vitl518 240 python3 bench/bench_gpu.py --models vit_large_patch14_dinov2.lvd142m --size 518 \
        --images 32 --batch 16 --settings readme
fi
exit $rc
