#!/usr/bin/env bash
# The checks to run whenever a CUDA machine is at hand, in one go:
# the CUDA cases of the precision, parity and kept-features tests, then bench/bench_gpu.py.
#
#   bench/gpu_checks.sh           # quick: tests + ViT-S/16 (64 images), about 2 minutes on an H200
#   bench/gpu_checks.sh full      # then ViT-B/16 (128 images), ViT-L/14 at 518 px (32 images) and the
#                                 # zoo's label propagation at DAVIS's 480p (bench_scale --propagation-only)
#   bench/gpu_checks.sh large     # a cProfile of ViT-S/16's analyses, ViT-B/16 and ViT-L/14 (no tests)
#
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
python3 -c "import torch, timm, numpy, sklearn, faiss; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'| timm', timm.__version__, '| numpy', numpy.__version__, '| sklearn', sklearn.__version__, '| faiss', faiss.__version__)" \
    | tee -a "$out/gpu.txt"

rc=0
step() {  # step NAME SECONDS CMD...: run with a time limit, log to $out/NAME.log, remember a failure
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s): $*"
    local t0=$SECONDS
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    local status=$?
    grep -E "MEASURED|passed|failed|error|Error|img/s|analyses|memory|extraction|pairs\)|tottime|linalg|positional|kmeans|summary|attention|pca|boundary|locality|ms a frame|position baseline,|total, without" "$out/$name.log" | head -60
    echo "=== $name: exit $status after $((SECONDS - t0)) s"
    [ "$status" -eq 0 ] || rc=1
}

mode=${1:-quick}
if [ "$mode" != large ]; then
    step tests 240 python3 -m pytest -q -s -p no:cacheprovider -o addopts="" \
        tests/test_device.py tests/test_device_parity.py tests/test_stream.py tests/test_propagation.py
    step bench_vits 200 python3 bench/bench_gpu.py --models vit_small_patch16_224.dino --images 64
else  # where the analyses' time goes, one pair at a time
    step profile_vits 150 python3 bench/bench_gpu.py --models vit_small_patch16_224.dino --images 64 \
        --profile "$out/vits.prof"
fi
if [ "$mode" != quick ]; then
    step bench_vitb 150 python3 bench/bench_gpu.py --models vit_base_patch16_224.mae --images 128
    step bench_vitl518 240 python3 bench/bench_gpu.py --models vit_large_patch14_dinov2.lvd142m --size 518 \
        --images 32 --batch 16
    # the zoo's label propagation on DAVIS 2017 val, timed per frame grid and width on the GPU
    step propagation 150 python3 bench/bench_scale.py --propagation-only --time-propagation cuda \
        --json "$out/bench_scale_propagation.json"
fi
exit $rc
