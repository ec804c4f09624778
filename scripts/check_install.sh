#!/usr/bin/env bash
# Check a user's install paths: `pip wheel --no-build-isolation .` gives a wheel carrying the
# compiled gan_kernels._C, and `pip install --no-build-isolation .` installs a package whose _C
# loads and whose "cpu" back end works in a fresh environment, outside the source tree.
# Both reuse the objects scripts/setup_env.sh compiled under build/ (same Python, same sources,
# same switches from build_env.sh), so they only link; run alone, the first one compiles. The
# install runs with the dev environment's pip into a folder of its own: a fresh environment's own
# pip would compile everything again (its include folder is on the compile line).
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

echo "== pip install --no-build-isolation . (into a folder of its own), used from a fresh environment"
.venv/bin/pip install -q --no-build-isolation --no-deps --target "$WORK/site" .
python3 -m venv "$WORK/env"
# The fresh environment sees the already-installed torch through a .pth file instead of
# downloading 5 GB again, and the installed gan_kernels through another.
SITE=$(.venv/bin/python -c "import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))")
FRESH_SITE=$("$WORK/env/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$WORK/site" > "$FRESH_SITE/_gan_kernels_install.pth"
echo "$SITE" > "$FRESH_SITE/_torch_from_dev_env.pth"
cd "$WORK"
export ROOT WORK
"$WORK/env/bin/python" - <<'PY'
import os
import gan_kernels as gk, gan_kernels._C as C, torch
assert not C.__file__.startswith(os.environ.get("ROOT", "/nonexistent")), C.__file__
assert C.__file__.startswith(os.path.join(os.environ["WORK"], "site")), f"_C loaded from {C.__file__}, not the installed package"
assert "cpu" in gk.available_backends(), gk.available_backends()
g = torch.randn(4, 3, 8, 8, requires_grad=True)
p = gk.grad_penalty(g, "wgan-gp", backend="cpu")
p.backward()
ref = gk.grad_penalty(g.detach(), "wgan-gp", backend="reference")
torch.testing.assert_close(p, ref)
print("install OK:", C.__file__, gk.available_backends())
PY
