"""Super-resolution models for ImageUpscaleWithModel: spandrel where it imports, else ESRGAN RRDBNet and
SRVGGNetCompact with Kiln's own code; tiled running.

Modules: `architectures` (torch-free names and messages), `model` (the UPSCALE_MODEL value,
loading, tiled upscaling), `rrdbnet`, `srvgg`. Import the submodules directly; this package imports
nothing so that `architectures` stays torch-free.
"""
