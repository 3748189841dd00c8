#!/usr/bin/env bash
# Issue 18's real-GPU check, prepared for a machine with a real GPU (none has been lent to
# this work yet: every GPU figure in the README so far is from Mesa's lavapipe).
#
# What it does, from the repository root, writing logs to $OUT (or $1, or /tmp/real_gpu):
#   1. brings the Vulkan loader if the machine has none (the carried .gl/*.deb, see below)
#      and points it at the NVIDIA driver when that is where the ICD lives;
#   2. installs numpy, wgpu and pytest from carried wheels (.wheels/) when they are missing
#      (such machines reach no registry);
#   3. correctness first: the fused-kernel parity tests and the GPU backend tests on the
#      real adapter (CI=1: a missing GPU fails instead of skipping);
#   4. `bench gpu --large --train`: matmul 256..4096, the conv layers, and LeNet-5 / CIFAR
#      training steps GPU vs CPU; with a CUDA build of torch there, PyTorch CUDA fp32
#      (TF32 off) as the peer. Goals: tiled matmul >= 0.5x torch at 4096; training steps
#      several times the CPU path's samples/s.
#
# Prepare here (where the registries are reachable), once:
#   echo /.gl/ >>.git/info/exclude; echo /.wheels/ >>.git/info/exclude
#   (Vulkan loader .debs: see the device README's apt-get download line)
#   .venv/bin/pip download --only-binary=:all: --python-version 3.11 --platform \
#       manylinux_2_28_x86_64 -d .wheels numpy==2.4.6 wgpu==0.32.0 pytest
# Run there with carry [".gl", ".wheels"] and the command `bash benchmarks/real_gpu.sh`
# (about 5 minutes on a fast GPU; give it timeout_s 540).
set -uo pipefail
out=${OUT:-${1:-/tmp/real_gpu}}
mkdir -p "$out"
exec > >(tee "$out/real_gpu.log") 2>&1

if ! ldconfig -p | grep -q 'libvulkan.so.1'; then
  for f in .gl/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done
  ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -e "$icd" ] && export VK_DRIVER_FILES=$icd
py=${PYTHON:-python3}
if ! $py -c 'import numpy, wgpu, pytest' 2>/dev/null; then
  $py -m pip install -q --no-index --find-links .wheels numpy wgpu pytest || {
    echo "real_gpu.sh: numpy, wgpu and pytest are needed: carry .wheels (see the header)"
    exit 2; }
fi
export PYTHONUNBUFFERED=1 PYTHONPATH=. CI=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || true
$py -c 'import torch; print("torch", torch.__version__, "CUDA", torch.cuda.is_available())' \
  2>/dev/null || echo "torch: not installed here: the tables have no PyTorch CUDA column"

echo "== correctness on the real adapter"
$py -m pytest -q -x -p no:cacheprovider tests/test_fused.py tests/test_gpu_backend.py \
  tests/test_gpu_tensor.py 2>&1 | tail -n 15
echo "== bench gpu --large --train"
$py benchmarks/bench_gpu.py --large --train --min-time 0.5
