"""Build the bundled demo (dataset, latents, projections, report) or rebuild it from scratch.

Without options, builds whatever is missing from the cache in data/cache/ (the demo model
in data/demo/model is committed). With --rebuild, re-creates everything: training data,
training, the demo model, latents, projections and the recorded metrics in
data/demo/recipe.json.
"""
from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--rebuild", action="store_true",
                        help="re-create everything from scratch, including training the demo model")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the recipe's number of training epochs (with --rebuild)")
    parser.add_argument("--root", default=None,
                        help="folder holding demo/ and cache/ (default: $TWINVIZ_DATA_DIR or the repository's data/)")


def main(args) -> int:
    import json

    from twinviz.demo import ensure_demo, rebuild_demo

    if args.rebuild:
        metrics = rebuild_demo(args.root, epochs=args.epochs)
        print("demo rebuilt; metrics on the demo data:")
        print(json.dumps(metrics, indent=2))
        return 0
    paths = ensure_demo(args.root, progress=True)
    for name in ("model", "data", "latents", "report"):
        print(f"{name:8s} {getattr(paths, name)}")
    return 0
