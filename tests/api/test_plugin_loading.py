"""engine/plugins.py in-process: discovery rules, reports, guards (comfy-compat §7.2).

(Kept under tests/api/ with the server's other plugin tests; it mirrors engine/plugins.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.kiln_server import FIXTURE_PLUGINS, REPO_ROOT, install_plugins
from engine.plugins import PluginEntry, discover, ensure_compat_path, load_plugins, module_name_for
from engine.registry import NodeRegistry


class BuiltinNode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"


@pytest.fixture
def registry() -> NodeRegistry:
    registry = NodeRegistry()
    registry.add_module({"EmptyImage": BuiltinNode}, None, "nodes.image", True)
    return registry


def test_discover_takes_py_files_and_packages_and_skips_the_rest(tmp_path):
    (tmp_path / "single.py").write_text("")
    (tmp_path / "package").mkdir()
    (tmp_path / "package" / "__init__.py").write_text("")
    (tmp_path / "not_a_package").mkdir()
    (tmp_path / "old.py.disabled").write_text("")
    (tmp_path / "off.disabled").mkdir()
    (tmp_path / "off.disabled" / "__init__.py").write_text("")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "README.md").write_text("")
    assert [(e.name, e.path.name) for e in discover([tmp_path, tmp_path / "missing"])] == [
        ("package", "package"), ("single", "single.py")]


def test_module_names_are_unique_per_path():
    first = module_name_for(PluginEntry("pack", Path("/a/custom_nodes/pack")))
    second = module_name_for(PluginEntry("pack", Path("/b.d/custom_nodes/pack")))
    assert first != second and "." not in second


def test_reports_cover_failures_refusals_and_successes(tmp_path, registry):
    install_plugins(tmp_path, ("raises_on_import", "bad_input_types.py", "overrides_builtin.py", "example"))
    ensure_compat_path(REPO_ROOT / "comfy_compat")
    reports = {r.name: r for r in load_plugins(registry, [tmp_path], timeout_s=10)}
    assert "RuntimeError: fixture plugin exploded" in reports["raises_on_import"].error
    assert "FixtureBrokenInputs" in reports["bad_input_types"].error
    assert "EmptyImage" in reports["overrides_builtin"].error
    assert reports["example"].error is None and reports["example"].seconds >= 0
    assert registry.get("EmptyImage") is BuiltinNode
    assert registry.python_modules["FixtureOwnNode"] == "custom_nodes.overrides_builtin"
    assert registry.web_directories["example"] == (tmp_path / "example" / "web").resolve()
    assert registry.plugin_reports == list(reports.values())


def test_a_hanging_import_is_abandoned_after_the_timeout(tmp_path, registry):
    (tmp_path / "slow.py").write_text("import time\ntime.sleep(3)\nNODE_CLASS_MAPPINGS = {}\n")
    (report,) = load_plugins(registry, [tmp_path], timeout_s=0.2)
    assert "did not finish within 0.2 s" in report.error
    assert report.seconds < 2


def test_system_exit_in_a_plugin_does_not_end_the_loader(tmp_path, registry):
    (tmp_path / "quitter.py").write_text("raise SystemExit(3)\n")
    (report,) = load_plugins(registry, [tmp_path], timeout_s=5)
    assert "SystemExit" in report.error


def test_disable_all_honours_the_whitelist(tmp_path, registry):
    install_plugins(tmp_path, ("bad_input_types.py", "overrides_builtin.py"))
    reports = load_plugins(registry, [tmp_path], disable_all=True, whitelist=["overrides_builtin"], timeout_s=5)
    assert [r.name for r in reports] == ["overrides_builtin"]
    assert "FixtureHealthyNeighbour" not in registry


def test_relative_imports_inside_a_package_work(tmp_path, registry):
    package = tmp_path / "relative"
    package.mkdir()
    (package / "helpers.py").write_text("VALUE = 'relative ok'\n")
    (package / "__init__.py").write_text(
        "from .helpers import VALUE\n"
        "class N:\n"
        "    @classmethod\n"
        "    def INPUT_TYPES(cls):\n"
        "        return {'required': {'v': ('STRING', {'default': VALUE})}}\n"
        "    RETURN_TYPES = ('STRING',)\n"
        "    FUNCTION = 'run'\n"
        "NODE_CLASS_MAPPINGS = {'RelativeNode': N}\n")
    (report,) = load_plugins(registry, [tmp_path], timeout_s=5)
    assert report.error is None
    assert registry.node_info("RelativeNode")["input"]["required"]["v"][1]["default"] == "relative ok"


def test_fixture_plugins_folder_is_documented():
    readme = (FIXTURE_PLUGINS / "README.md").read_text()
    for entry in FIXTURE_PLUGINS.iterdir():
        if entry.name != "README.md" and entry.name != "__pycache__":
            assert f"`{entry.name}" in readme, entry.name


def write_recording_package(root: Path, name: str, order_file: Path, prestartup: str | None = None) -> None:
    """A package whose import appends ``import:<name>`` to ``order_file``."""
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text(
        f"with open({str(order_file)!r}, 'a') as order:\n"
        f"    order.write('import:{name}\\n')\n"
        "NODE_CLASS_MAPPINGS = {}\n")
    if prestartup is not None:
        (package / "prestartup_script.py").write_text(prestartup)


def test_prestartup_scripts_run_before_any_plugin_is_imported(tmp_path, registry):
    order_file = tmp_path / "order.txt"
    roots = tmp_path / "custom_nodes"
    roots.mkdir()
    write_recording_package(roots, "a_first", order_file)
    write_recording_package(roots, "b_second", order_file, prestartup=(
        f"with open({str(order_file)!r}, 'a') as order:\n"
        "    order.write('prestartup:b_second\\n')\n"))
    reports = load_plugins(registry, [roots], timeout_s=5)
    assert order_file.read_text().split() == ["prestartup:b_second", "import:a_first", "import:b_second"]
    assert [r.error for r in reports] == [None, None]


def test_a_failing_prestartup_script_is_reported_and_loading_goes_on(tmp_path, registry, caplog):
    order_file = tmp_path / "order.txt"
    roots = tmp_path / "custom_nodes"
    roots.mkdir()
    write_recording_package(roots, "broken_early", order_file, prestartup="raise RuntimeError('prestartup exploded')\n")
    write_recording_package(roots, "healthy", order_file)
    reports = {r.name: r for r in load_plugins(registry, [roots], timeout_s=5)}
    assert "(PRESTARTUP FAILED)" in reports["broken_early"].error
    assert "RuntimeError: prestartup exploded" in reports["broken_early"].error
    assert reports["healthy"].error is None
    assert order_file.read_text().split() == ["import:broken_early", "import:healthy"]  # still imported
    assert "(PRESTARTUP FAILED)" in caplog.text


def test_a_single_file_plugin_has_no_prestartup_script(tmp_path):
    (tmp_path / "prestartup_script.py").write_text("raise RuntimeError('not a package script')\n")
    (tmp_path / "single.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    entries = {entry.name: entry for entry in discover([tmp_path])}
    assert entries["single"].prestartup_script is None
