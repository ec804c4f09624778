#!/usr/bin/env bash
# Check a user's install paths: `pip wheel --no-build-isolation .` gives a wheel carrying the
# compiled gan_kernels._C, and `pip install --no-build-isolation .` into a fresh environment that
# has torch installs a package whose _C loads and whose "cpu" back end works, outside the source tree.
# Both reuse the objects that scripts/setup_env.sh compiled under build/ (same sources, same
# switches from build_env.sh), so each only links; run alone, the first one compiles.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
source scripts/build_env.sh

echo "== pip wheel --no-build-isolation ."
.venv/bin/pip wheel -q --no-build-isolation --no-deps . -w "$WORK/wheel"
.venv/bin/python - "$WORK/wheel" <<'PY'
import glob, sys, zipfile
whl = glob.glob(sys.argv[1] + "/gan_kernels-*.whl")
assert len(whl) == 1, whl
names = zipfile.ZipFile(whl[0]).namelist()
so = [n for n in names if n.startswith("gan_kernels/_C") and n.endswith(".so")]
assert so, f"the wheel carries no compiled gan_kernels/_C: {names}"
print("wheel OK:", whl[0].rsplit("/", 1)[-1], "carries", so[0])
PY

echo "== pip install --no-build-isolation . into a fresh environment that has torch"
python3 -m venv "$WORK/env"
# The fresh environment sees the already-installed torch (and setuptools) through a .pth file
# instead of downloading 5 GB again; gan_kernels itself is installed into it for real.
SITE=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
FRESH_SITE=$("$WORK/env/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$SITE" > "$FRESH_SITE/_torch_from_dev_env.pth"
"$WORK/env/bin/python" -m pip install -q --no-build-isolation --no-deps "$ROOT"
cd "$WORK"
export ROOT
"$WORK/env/bin/python" - <<'PY'
import os
import gan_kernels as gk, gan_kernels._C as C, torch
assert not C.__file__.startswith(os.environ.get("ROOT", "/nonexistent")), C.__file__
assert "site-packages" in C.__file__, f"_C loaded from {C.__file__}, not the installed package"
assert "cpu" in gk.available_backends(), gk.available_backends()
g = torch.randn(4, 3, 8, 8, requires_grad=True)
p = gk.grad_penalty(g, "wgan-gp", backend="cpu")
p.backward()
ref = gk.grad_penalty(g.detach(), "wgan-gp", backend="reference")
torch.testing.assert_close(p, ref)
print("install OK:", C.__file__, gk.available_backends())
PY
