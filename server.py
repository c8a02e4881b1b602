"""Kiln's entry point: ``python server.py [flags]`` serves the editor and API;
``python server.py --run WORKFLOW`` runs one workflow headless.

Start-up order follows ComfyUI's ``main.py`` (comfy-compat §0): parse flags, set up the
folders (and extra model paths), create the plugin-facing ``PromptServer`` so plugins can add
routes while they import, load built-in nodes then ``custom_nodes``, then build the executor,
the durable queue, the app and the one worker thread. Nothing here imports torch: the
device manager is created on first use by a node (start-up speed rule, ARCHITECTURE.md).

Plugins do ``from server import PromptServer``; this module re-exports it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.hub import WebSocketHub
from api.prompt_server import BinaryEventTypes, PromptServer  # re-exported for plugins

__all__ = ["PromptServer", "BinaryEventTypes", "parse_args", "build_kiln", "main"]

log = logging.getLogger("kiln")

REPO_ROOT = Path(__file__).resolve().parent
COMPAT_DIR = REPO_ROOT / "comfy_compat"
WEB_ROOT = REPO_ROOT / "web"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The flags of comfy-compat §13 that Kiln implements, plus Kiln's own."""
    parser = argparse.ArgumentParser(prog="server.py", description="Kiln: node-based diffusion workflows.")
    parser.add_argument("--listen", nargs="?", const="0.0.0.0,::", default="127.0.0.1", metavar="IP[,IP]",
                        help="addresses to bind (comma-separated); bare flag = all interfaces")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--tls-keyfile", type=Path, default=None, help="HTTPS: private key (with --tls-certfile)")
    parser.add_argument("--tls-certfile", type=Path, default=None, help="HTTPS: certificate (with --tls-keyfile)")
    parser.add_argument("--base-directory", type=Path, default=None)
    parser.add_argument("--output-directory", type=Path, default=None)
    parser.add_argument("--input-directory", type=Path, default=None)
    parser.add_argument("--temp-directory", type=Path, default=None)
    parser.add_argument("--user-directory", type=Path, default=None)
    parser.add_argument("--extra-model-paths-config", type=Path, nargs="+", action="append", default=[])
    parser.add_argument("--enable-cors-header", nargs="?", const="*", default=None, metavar="ORIGIN")
    parser.add_argument("--max-upload-size", type=float, default=100, metavar="MB")
    parser.add_argument("--disable-all-custom-nodes", action="store_true")
    parser.add_argument("--whitelist-custom-nodes", nargs="+", default=[], metavar="NAME")
    parser.add_argument("--plugin-import-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="give up on a custom node package whose import takes longer")
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument("--cache-classic", action="store_true", help="keep the last prompt's outputs (default)")
    cache.add_argument("--cache-lru", type=int, default=0, metavar="N")
    cache.add_argument("--cache-none", action="store_true")
    parser.add_argument("--cache-ram-gb", type=float, default=0.0, metavar="GB",
                        help="evict cached outputs past this size")
    parser.add_argument("--preview-method", choices=["none", "auto", "latent2rgb", "taesd"], default="auto")
    parser.add_argument("--preview-size", type=int, default=512)
    parser.add_argument("--disable-metadata", action="store_true")
    parser.add_argument("--cpu", action="store_true")
    parser.add_argument("--force-fp32", action="store_true",
                        help="compute in float32 everywhere (exact agreement with ComfyUI; slower)")
    cpu_precision = parser.add_mutually_exclusive_group()
    cpu_precision.add_argument("--cpu-bf16", dest="cpu_precision", action="store_const", const="bf16",
                               help="on the CPU, store and run the UNet and VAE in bfloat16")
    cpu_precision.add_argument("--cpu-fp32", dest="cpu_precision", action="store_const", const="fp32",
                               help="on the CPU, compute in float32")
    parser.set_defaults(cpu_precision="auto")  # bfloat16 on CPUs with AMX / AVX-512 BF16, else float32
    parser.add_argument("--auth-token", default=None)
    parser.add_argument("--auth-token-file", type=Path, default=None)
    parser.add_argument("--on-interrupted", choices=["requeue", "fail"], default="requeue",
                        help="what to do at start-up with a prompt a crash left running")
    parser.add_argument("--run", type=Path, default=None, metavar="WORKFLOW",
                        help="run a workflow (.json, UI or API format, or a .png with one) and exit")
    parser.add_argument("--quick-test-for-ci", action="store_true", help="load everything, then exit")
    parser.add_argument("--verbose", nargs="?", const="DEBUG", default="INFO")
    args = parser.parse_args(argv)
    args.extra_model_paths_config = [path for group in args.extra_model_paths_config for path in group]
    return args


def auth_token_of(args: argparse.Namespace) -> str | None:
    if args.auth_token_file is not None:
        token = args.auth_token_file.read_text(encoding="utf-8").strip()
        if not token:
            raise SystemExit(f"--auth-token-file {args.auth_token_file} is empty")
        return token
    return args.auth_token or None


def server_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``resources["options"]`` nodes read (``disable_metadata``, preview settings...)."""
    return {"disable_metadata": args.disable_metadata, "preview_method": args.preview_method,
            "preview_size": args.preview_size, "cpu": args.cpu, "force_fp32": args.force_fp32,
            "cpu_precision": args.cpu_precision}


def build_folders(args: argparse.Namespace) -> Any:
    from engine.folders import ModelFolders

    base = (args.base_directory or REPO_ROOT).resolve()
    folders = ModelFolders(base, output_dir=args.output_directory, input_dir=args.input_directory,
                           temp_dir=args.temp_directory, user_dir=args.user_directory)
    default_yaml = base / "extra_model_paths.yaml"
    for yaml_path in ([default_yaml] if default_yaml.is_file() else []) + list(args.extra_model_paths_config):
        folders.load_extra_paths_yaml(Path(yaml_path))
    return folders


def load_builtin_nodes(registry: Any) -> None:
    """Register ``nodes.BUILTIN_MODULES``; a module that fails to import is logged, not fatal."""
    try:
        import nodes
    except ImportError:
        log.exception("no built-in nodes: the nodes package does not import")
        return
    for module_name in getattr(nodes, "BUILTIN_MODULES", ()):
        try:
            module = importlib.import_module(module_name)
            registry.add_module(module.NODE_CLASS_MAPPINGS, getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None),
                                module_name, True)
        except Exception:
            log.exception("built-in node module %s failed to load", module_name)


def cache_policy(args: argparse.Namespace) -> Any:
    from engine.cache import LRU, KeepLastPrompt, NoCache

    ram_limit = int(args.cache_ram_gb * 1024**3) or None
    if args.cache_none:
        return NoCache()
    if args.cache_lru > 0:
        return LRU(args.cache_lru, ram_limit_bytes=ram_limit)
    return KeepLastPrompt(ram_limit_bytes=ram_limit)


def device_manager_factory(cpu: bool, force_fp32: bool, cpu_precision: str = "auto") -> Callable[[], Any]:
    """Create ``diffusion.devices.DeviceManager`` on first use (it imports torch).

    ``cpu_precision`` is "auto" (bfloat16 where the CPU runs it natively), "bf16" or "fp32".
    """

    def create() -> Any:
        from diffusion.devices import DeviceManager, cpu_compute_dtype

        manager = DeviceManager(cpu=cpu, force_fp32=force_fp32, cpu_dtype=cpu_compute_dtype(cpu_precision))
        log.info("%r", manager)
        return manager

    return create


@dataclass
class Kiln:
    """Everything one server (or one headless run) is made of."""

    args: argparse.Namespace
    folders: Any
    registry: Any
    executor: Any
    resources: Any
    interrupt: Any
    hub: WebSocketHub
    prompt_server: PromptServer


def build_kiln(args: argparse.Namespace) -> Kiln:
    """Folders, the plugin-facing PromptServer, the registry (built-ins, then plugins), executor."""
    sys.modules.setdefault("server", sys.modules[__name__])  # one module for plugins, even as __main__
    from api.resources import LazyResources, server_context
    from engine.context import InterruptFlag, use_context
    from engine.executor import Executor
    from engine.plugins import ensure_compat_path, load_plugins
    from engine.registry import NodeRegistry

    folders = build_folders(args)
    interrupt = InterruptFlag()
    resources = LazyResources({"folders": folders, "options": server_options(args)},
                              {"devices": device_manager_factory(args.cpu, args.force_fp32, args.cpu_precision)})
    ensure_compat_path(COMPAT_DIR)
    import kiln_host  # from comfy_compat/, importable once it is on sys.path

    kiln_host.install(kiln_host.CompatHost(resources=resources, interrupt=interrupt))
    hub = WebSocketHub()
    prompt_server = PromptServer(hub)
    registry = NodeRegistry()
    started = time.perf_counter()
    load_builtin_nodes(registry)
    log.info("built-in nodes: %d classes in %.2f s", len(registry.classes), time.perf_counter() - started)
    with use_context(server_context(resources, interrupt)):  # plugins' INPUT_TYPES are checked here
        load_plugins(registry, folders.paths("custom_nodes"), disable_all=args.disable_all_custom_nodes,
                     whitelist=args.whitelist_custom_nodes, timeout_s=args.plugin_import_timeout)
    executor = Executor(registry, cache_policy(args), resources)
    return Kiln(args, folders, registry, executor, resources, interrupt, hub, prompt_server)


def serve(kiln: Kiln, logs: Any = None) -> int:
    """Run the HTTP/WS server and the worker until interrupted (Ctrl-C).

    ``logs`` is the api.log_buffer.LogBuffer attached since start-up, for /internal/logs.
    """
    from aiohttp import web

    from api.app import create_app
    from api.state import ServerState
    from api.worker import PromptWorker
    from engine.queue import PromptQueue

    args = kiln.args
    token = auth_token_of(args)
    queue = PromptQueue(Path(kiln.folders.user_dir) / "kiln_queue.sqlite3", on_interrupted=args.on_interrupted)
    state = ServerState(folders=kiln.folders, registry=kiln.registry, queue=queue, hub=kiln.hub,
                        prompt_server=kiln.prompt_server, interrupt=kiln.interrupt, resources=kiln.resources,
                        options=server_options(args), web_root=WEB_ROOT, auth_token=token,
                        max_upload_bytes=int(args.max_upload_size * 1024 * 1024))
    if logs is not None:
        state.logs = logs
    kiln.prompt_server.prompt_queue = queue
    queue.add_listener(state.broadcast_status)
    state.worker = PromptWorker(queue, kiln.executor, kiln.hub, kiln.interrupt, kiln.resources)
    app = create_app(state, cors_origin=args.enable_cors_header)
    hosts = [host.strip() for host in args.listen.split(",") if host.strip()]
    if token is None and any(host not in ("127.0.0.1", "::1", "localhost") for host in hosts):
        log.warning("WARNING: listening on %s without --auth-token: anyone on the network can run "
                    "workflows and read your files.", args.listen)
    if args.quick_test_for_ci:
        log.info("--quick-test-for-ci: loaded %d node classes, exiting", len(kiln.registry.classes))
        queue.close()
        return 0

    ssl_context = None
    if args.tls_keyfile and args.tls_certfile:  # TLS only when both are given, as ComfyUI
        import ssl

        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(certfile=args.tls_certfile, keyfile=args.tls_keyfile)

    async def run() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        failures = []
        for host in hosts:
            try:
                await web.TCPSite(runner, host, args.port, ssl_context=ssl_context).start()
            except OSError as exc:
                failures.append(f"cannot listen on {host}:{args.port}: {exc.strerror or exc}")
        if len(failures) == len(hosts):
            await runner.cleanup()
            raise SystemExit("kiln: error: " + "; ".join(failures))
        for failure in failures:  # e.g. "::" on a machine without IPv6, next to 0.0.0.0
            log.warning(failure)
        state.worker.start()
        shown = "localhost" if hosts == ["127.0.0.1"] else hosts[0]
        scheme = "https" if ssl_context else "http"
        print(f"To see the GUI go to: {scheme}://{shown}:{args.port}", flush=True)
        stopping = asyncio.Event()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
                asyncio.get_running_loop().add_signal_handler(signal_number, stopping.set)
        try:
            await stopping.wait()
        finally:
            log.info("shutting down")
            await runner.cleanup()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    finally:
        if state.worker.stop():
            queue.close()
        else:  # the queue database keeps it as running; --on-interrupted decides at next start
            log.warning("a prompt is still running; it is left for the next start")
        kiln.folders.wipe_temp()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.verbose).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.run is None:
        from api.log_buffer import LogBuffer

        logs = LogBuffer()  # from the first line, so /internal/logs shows plugin import times
        logging.getLogger().addHandler(logs)
    kiln = build_kiln(args)
    if args.run is not None:
        from api.headless import run_headless

        return run_headless(kiln, args.run)
    return serve(kiln, logs)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    # torch's OpenMP threads otherwise spin between operations; on a CPU shared with other
    # work a spinning thread waits for a time slice at every barrier (measured here, load 5
    # on 2 cores: SD1.5 UNet step 6.9 s spinning, 3.9 s passive). Read when torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.exit(main())
