"""`panel serve app.py --address localhost [--args --model DIR --data FILE [--latents FILE] [--pixel-finder DIR]
[--runs DIR] [--data-dir DIR]]`:
the twinviz explorer.

With no arguments it opens the bundled demo (built and cached on the first start). Only builds
the page; everything else lives in twinviz.app.
"""
import logging
import sys

from twinviz.app import AppDataError, load_app_data, main_args, split_args
from twinviz.app.layout import build_page, error_page
from twinviz.app.session import page_build, server_logging
from twinviz.app.startup import demo_progress_page

server_logging()
with page_build():
    try:
        inputs, training = split_args(main_args(sys.argv[1:]))
        # the demo's first start: a page showing the build's progress, reloaded when it is done
        page = demo_progress_page(inputs) or build_page(load_app_data(**inputs), training=training)
    except AppDataError as exc:  # the page explains it; the server's log says it too
        logging.getLogger("twinviz.app").warning("twinviz could not start: %s", exc)
        page = error_page(str(exc))
    page.servable(title="twinviz")
