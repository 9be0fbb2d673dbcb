"""`mistake-testbed dev-cluster up` and the kubectl/helm installer."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from mistake_testbed import kubetools
from mistake_testbed.fixtures.kube import tool_path

pytestmark = pytest.mark.integration


def test_dev_cluster_up_serves_kubectl_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    kubectl = tool_path("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: run ./dev setup")
    argv = [sys.executable, "-m", "mistake_testbed.cli", "dev-cluster", "up", "--json", "--workdir", str(tmp_path)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["url"].startswith("http://127.0.0.1:")
        env = dict(os.environ, HOME=str(tmp_path), KUBECONFIG=info["kubeconfig"])
        out = subprocess.run(
            [str(kubectl), "get", "crd", "-o", "name"], env=env, capture_output=True, text=True, timeout=60, check=True
        )
        assert "customresourcedefinition.apiextensions.k8s.io/mistakeanalyses.mistakes.dev" in out.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "dev cluster stopped" in err


def test_dev_cluster_up_prints_how_to_use_it(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "mistake_testbed.cli", "dev-cluster", "up", "--workdir", str(tmp_path), "--no-jobs"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    text = "".join(lines)
    assert f"kubeconfig: {tmp_path / 'kubeconfig'}" in text
    assert "kubectl get" in text
    assert proc.returncode == 0


def _fake_wheel(path: Path, kubectl: bytes, helm: bytes) -> Path:
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as zf:
        zf.writestr("kubectl/kubectl", kubectl)
        zf.writestr("helm/helm", helm)
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as tar:
        info = tarfile.TarInfo(kubetools.LAYER_ZIP)
        info.size = len(layer.getvalue())
        tar.addfile(info, io.BytesIO(layer.getvalue()))
    wheel = path / "fake-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as whl:
        whl.writestr("pkg/_jsii/layer@1.0.jsii.tgz", tgz.getvalue())
    return wheel


def test_kubetools_rejects_binaries_with_wrong_checksums(tmp_path: Path) -> None:
    wheel = _fake_wheel(tmp_path, b"not kubectl", b"not helm")
    layer = kubetools.extract_layer(wheel)
    with pytest.raises(kubetools.ChecksumError):
        kubetools.install_from_layer(layer, tmp_path / "bin")
    assert not (tmp_path / "bin" / "kubectl").exists()
    assert kubetools.main(["install", "--dest", str(tmp_path / "bin"), "--wheel", str(wheel)]) == 1


def test_kubetools_install_is_a_no_op_when_installed() -> None:
    dest = Path(sys.prefix) / "bin"
    if not kubetools.installed_ok(dest):
        pytest.skip("kubectl and helm are not installed: run ./dev setup")
    assert kubetools.install(dest, wheel=Path("/nonexistent.whl")) is False
    assert kubetools.main(["check", "--dest", str(dest)]) == 0
