"""Start the explorer app: `python app.py [--host H] [--port P] [--share] [--auth user:pass]`.

Gradio's own variables work too (GRADIO_SERVER_NAME, GRADIO_SERVER_PORT, GRADIO_SHARE, ...);
flags win over them. EL_APP_MODEL (or --model) sets the default model; EL_MODEL_DIRS lists the
folders whose models the page may load; EL_CACHE_DIR is where results (and the run history)
are kept. The README lists the rest. The UI lives in engineered_latents/ui/.
"""

import argparse
import logging
import os

from engineered_latents.config import Settings


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1, or "
                        "GRADIO_SERVER_NAME; 0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, help="port (default 7860 or GRADIO_SERVER_PORT)")
    parser.add_argument("--share", action="store_true", default=None,
                        help="also open a temporary public gradio.live link")
    parser.add_argument("--auth", default=os.environ.get("EL_AUTH"),
                        help="require a login, given as user:pass (or EL_AUTH)")
    parser.add_argument("--model", default=Settings.from_env().app_model,
                        help="default model: Hub id or local directory (default ViT-B/32)")
    args = parser.parse_args(argv)
    if args.auth is not None:
        user, sep, password = args.auth.partition(":")
        if not (sep and user and password):
            parser.error("--auth must look like user:pass")
        args.auth = (user, password)
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("engineered_latents").setLevel(logging.INFO)
    from engineered_latents.ui import build_app, launch_options
    from engineered_latents.ui.privacy import install_log_filter

    install_log_filter()  # HF_TOKEN and the --auth password never reach the logs

    demo = build_app(default_model=args.model, share=bool(args.share))
    from engineered_latents.colouring import warm_umap

    warm_umap()  # UMAP's numba code compiles in a low-priority thread (~30 s), not on first use
    demo.launch(
        server_name=args.host, server_port=args.port, share=args.share, auth=args.auth,
        **launch_options())


if __name__ == "__main__":
    main()
