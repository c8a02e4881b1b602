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
