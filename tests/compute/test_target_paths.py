"""A compute target is built from the ``_target_`` its config names, and the paths that recorded runs
(recovery and cancel rebuild the target from the record) and users' own configs hold stay valid."""

from __future__ import annotations

import pytest
import yaml
from support import ROOT

from mltrain.compute.docker import DockerCompute
from mltrain.compute.local import LocalCompute
from mltrain.compute.ray import ClusterCompute
from mltrain.compute.ssh import SSHCompute
from mltrain.compute.targets import compute_from_config

RECORDED = [  # as runs recorded them before compute/ was one package per target
    ("mltrain.compute.local.LocalCompute", {}, LocalCompute),
    ("mltrain.compute.docker.DockerCompute", {"base_url": "unix:///nowhere.sock"}, DockerCompute),
    ("mltrain.compute.ssh.SSHCompute", {"hosts": [{"host": "gpu1"}]}, SSHCompute),
    ("mltrain.compute.cluster.ClusterCompute", {"address": "http://127.0.0.1:1"}, ClusterCompute),
]


@pytest.mark.parametrize(("target", "options", "cls"), RECORDED, ids=[r[2].name for r in RECORDED])
def test_recorded_target_paths_build_their_target(target, options, cls):
    compute = compute_from_config({"_target_": target, **options})
    try:
        assert type(compute) is cls
    finally:
        compute.close()


def test_the_bundled_configs_name_the_target_classes():
    for name, cls in {
        "local": LocalCompute,
        "docker": DockerCompute,
        "ssh": SSHCompute,
        "cluster": ClusterCompute,
    }.items():
        node = yaml.safe_load((ROOT / "conf" / "compute" / f"{name}.yaml").read_text())
        assert node["_target_"] == f"{cls.__module__.rsplit('.', 1)[0]}.{cls.__name__}"  # the package exports it


def test_a_built_in_target_is_built_without_importing_hydra():
    """The driver gets its config composed by a forked child: building an SSH (or any built-in)
    target then costs no Hydra import, and a wrong option is still refused naming the valid ones."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from mltrain.compute.targets import compute_from_config\n"
        "t = compute_from_config({'_target_': 'mltrain.compute.ssh.SSHCompute', 'hosts': [{'host': 'gpu1'}]})\n"
        "print(type(t).__name__, sorted(m for m in ('hydra', 'omegaconf') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["SSHCompute", "[]"]
    with pytest.raises(Exception, match="has no option 'hostz'"):
        compute_from_config({"_target_": "mltrain.compute.ssh.SSHCompute", "hostz": []})
