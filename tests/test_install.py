"""Installing the package: setup.py's choice of GPU architectures, the build switches, the declared
dependencies against the package's imports, and what `info` says when the Triton back end is missing.

Nothing here compiles: setup.py is loaded as a module (its `setup()` call only runs as a script) and
its extension is configured in a subprocess without building it.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_setup():
    spec = importlib.util.spec_from_file_location("gan_kernels_setup", os.path.join(ROOT, "setup.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- GPU architectures
def test_no_gpu_and_no_arch_list_builds_for_every_architecture_torch_ships():
    pick = _load_setup().default_cuda_arch_list
    torch_archs = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]  # torch 2.14's CUDA 13 build
    assert pick({}, 0, torch_archs) == "7.5;8.0;8.6;9.0;10.0;12.0+PTX"
    # An empty variable is unset (a CI template often exports it empty).
    assert pick({"TORCH_CUDA_ARCH_LIST": " "}, 0, torch_archs) == "7.5;8.0;8.6;9.0;10.0;12.0+PTX"


def test_arch_list_ignores_ptx_and_arch_specific_entries_and_sorts_numerically():
    pick = _load_setup().default_cuda_arch_list
    # sm_100 sorts after sm_90 as a number, not as a string.
    assert pick({}, 0, ["sm_100", "compute_90", "sm_90a", "sm_80", "sm_90"]) == "8.0;9.0;10.0+PTX"
    assert pick({}, 0, ["sm_61"]) == "6.1+PTX"


def test_arch_list_fallback_when_torch_lists_none():
    setup_module = _load_setup()
    assert setup_module.default_cuda_arch_list({}, 0, []) == setup_module.FALLBACK_CUDA_ARCHS
    assert setup_module.FALLBACK_CUDA_ARCHS.endswith("+PTX")


def test_user_arch_list_or_a_visible_gpu_is_left_to_torch():
    pick = _load_setup().default_cuda_arch_list
    assert pick({"TORCH_CUDA_ARCH_LIST": "9.0"}, 0, ["sm_80", "sm_90"]) is None
    assert pick({}, 2, ["sm_80", "sm_90"]) is None


def test_torch_accepts_the_default_list(monkeypatch):
    """The list reaches torch's own flag builder, which is what crashed without one and without a GPU."""
    from torch.utils import cpp_extension

    archs = _load_setup().default_cuda_arch_list({}, 0, torch.cuda.get_arch_list())
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", archs)
    flags = cpp_extension._get_cuda_arch_flags()
    numbers = [a.replace("+PTX", "").replace(".", "") for a in archs.split(";")]
    for n in numbers:
        assert f"-gencode=arch=compute_{n},code=sm_{n}" in flags, (n, flags)
    assert f"-gencode=arch=compute_{numbers[-1]},code=compute_{numbers[-1]}" in flags, flags  # the PTX


# --------------------------------------------------------------------------- build switches
_CONFIGURE = """
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("gan_kernels_setup", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
mods, _ = m._extensions()
cu = [s for s in mods[0].sources if s.endswith(".cu")] if mods else []
print("EXT", "none" if not mods else "cuda+cpu" if cu else "cpu", len(cu))
print("ARCHS", os.environ.get("TORCH_CUDA_ARCH_LIST", "<unset>"))
"""


def _configure(**env):
    """setup.py's extension choice under `env`, with no GPU visible; nothing is compiled."""
    full = {k: v for k, v in os.environ.items() if k not in ("TORCH_CUDA_ARCH_LIST", "GAN_KERNELS_CUDA", "GAN_KERNELS_NO_EXT")}
    full.update(CUDA_VISIBLE_DEVICES="", **env)
    run = subprocess.run(
        [sys.executable, "-c", _CONFIGURE, os.path.join(ROOT, "setup.py")],
        env=full, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    return run


def _can_build_cuda() -> bool:
    from torch.utils import cpp_extension

    home = cpp_extension.CUDA_HOME or ("/usr/local/cuda" if os.path.isdir("/usr/local/cuda") else None)
    return torch.version.cuda is not None and home is not None and os.path.exists(os.path.join(home, "bin", "nvcc"))


def test_setup_without_gpu_configures_a_build_that_torch_can_flag():
    run = _configure()
    assert run.returncode == 0, run.stderr
    if _can_build_cuda():
        assert "EXT cuda+cpu" in run.stdout, run.stdout
        expected = _load_setup().default_cuda_arch_list({}, 0, torch.cuda.get_arch_list())
        assert f"ARCHS {expected}" in run.stdout, run.stdout
        assert "no GPU visible and TORCH_CUDA_ARCH_LIST unset" in run.stdout, run.stdout
    else:  # no nvcc or a CPU build of torch: the C++ kernels only, and no arch list needed
        assert "EXT cpu 0" in run.stdout and "ARCHS <unset>" in run.stdout, run.stdout


def test_setup_with_cuda_off_builds_cpu_kernels_and_sets_no_arch_list():
    run = _configure(GAN_KERNELS_CUDA="0")
    assert run.returncode == 0, run.stderr
    assert "EXT cpu 0" in run.stdout and "ARCHS <unset>" in run.stdout, run.stdout


def test_setup_without_nvcc_falls_back_to_cpu_or_fails_clearly_when_cuda_is_required():
    missing = os.path.join(ROOT, "no-such-cuda-toolkit")
    run = _configure(CUDA_HOME=missing)
    assert run.returncode == 0, run.stderr
    assert "EXT cpu 0" in run.stdout, run.stdout
    run = _configure(CUDA_HOME=missing, GAN_KERNELS_CUDA="1")
    assert run.returncode != 0
    assert "GAN_KERNELS_CUDA=1" in run.stderr and ("nvcc not found" in run.stderr or "not a CUDA build" in run.stderr), run.stderr


def test_setup_with_no_ext_builds_nothing():
    run = _configure(GAN_KERNELS_NO_EXT="1")
    assert run.returncode == 0, run.stderr
    assert "EXT none" in run.stdout, run.stdout


# --------------------------------------------------------------------------- dependencies
def _dist_to_module(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.\-]+", requirement).group().lower().replace("-", "_")


def _third_party_imports():
    found = {}
    package = os.path.join(ROOT, "gan_kernels")
    for folder, _, files in os.walk(package):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
                if isinstance(node, ast.Import):
                    tops = [a.name.split(".")[0] for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    tops = [node.module.split(".")[0]]
                else:
                    continue
                for top in tops:
                    if top != "gan_kernels" and top not in sys.stdlib_module_names:
                        found.setdefault(top, os.path.relpath(path, ROOT))
    return found


@pytest.mark.skipif(sys.version_info < (3, 10), reason="needs sys.stdlib_module_names")
def test_declared_dependencies_match_the_imports():
    setup_module = _load_setup()
    required = {_dist_to_module(r) for r in setup_module.INSTALL_REQUIRES}
    optional = {_dist_to_module(r) for reqs in setup_module.EXTRAS_REQUIRE.values() for r in reqs}
    imported = _third_party_imports()
    undeclared = {m: where for m, where in imported.items() if m not in required | optional}
    assert not undeclared, f"imported but not declared in setup.py: {undeclared}"
    unused = required - set(imported)
    assert not unused, f"required by setup.py but never imported by gan_kernels: {sorted(unused)}"
    # The Triton back end imports numpy at load time: without it the back end is gone, so numpy
    # cannot be an optional extra while torch's CUDA builds bring triton by default.
    assert "numpy" in required


# --------------------------------------------------------------------------- info
_INFO_WITHOUT = """
import sys
import torch  # torch may use numpy itself; the block is only for gan_kernels' own imports
sys.modules[sys.argv[1]] = None  # makes `import <name>` raise ModuleNotFoundError
from gan_kernels.__main__ import main
main(["info"])
"""


@pytest.mark.parametrize("missing", ["numpy", "triton"])
def test_info_names_the_missing_module_and_the_fix(missing, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run(
        [sys.executable, "-c", _INFO_WITHOUT, missing], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    line = next(ln for ln in run.stdout.splitlines() if ln.strip().startswith("triton "))
    assert "unavailable" in line and missing in line, line
    assert f"pip install {missing}`" in line, line
    others = {"numpy", "triton"} - {missing}
    assert not any(f"pip install {o}" in line for o in others), line


# --------------------------------------------------------------------------- README
def test_readme_snippets_run_as_written(tmp_path):
    """The README's training loop and R1 lines, run as a user would paste them (CPU)."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 2, "the README lost its training snippet"
    script = tmp_path / "snippet.py"
    script.write_text(blocks[0] + "\n" + blocks[1] + "\nprint('r1', float(loss_d))\n")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    m = re.search(r"critic (\S+)\s+generator (\S+)\s+r1 (\S+)", run.stdout)
    assert m, run.stdout
    values = [float(v) for v in m.groups()]
    assert all(v == v and abs(v) < 1e6 for v in values), values  # finite, not NaN
    # The R1 line adds a positive penalty to the logistic loss, itself positive.
    assert values[2] > 0, values
