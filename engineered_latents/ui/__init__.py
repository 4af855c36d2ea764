"""The Gradio app (Blocks layout, callbacks); all computation stays in the library.

    from engineered_latents.ui import build_app, launch_options
    build_app().launch(**launch_options())
"""

from .app import build_app, launch_options

__all__ = ["build_app", "launch_options"]
