"""Kiln's HTTP and websocket side: the aiohttp app, its routes, the websocket hub, the
middlewares, the prompt worker thread and the ``PromptServer`` object plugins talk to.

Modules: ``app`` (factory, route registration with ``/api`` copies, statics), one
``routes_*`` module per route group, ``hub`` (sockets, thread-safe sending, binary frames),
``worker`` (the one prompt-running thread), ``middlewares`` and ``auth``, ``prompt_server``
(ComfyUI compatibility), ``headless`` (``server.py --run``). Imports no torch.
"""
