"""``synartifact-hf app``: run the web app locally, or export it as a Hub Space folder.

    synartifact-hf app --model CHECKPOINT [--detection-model D] [--host 127.0.0.1] [--port 7860]
    synartifact-hf app --export-space DIR --model HUB_ID [--detection-model HUB_ID]
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..backends import MODEL_HELP

    parser.add_argument("--model", required=True, help=MODEL_HELP)
    parser.add_argument("--model-label", default=None,
                        help="the model's name shown to visitors (default: the Hub id, or the checkpoint folder's "
                             "name; the server's path is never shown)")
    parser.add_argument("--detection-model", default=None,
                        help="detection checkpoint folder or Hub id (may equal --model); default: no detection")
    parser.add_argument("--served-model", default=None, metavar="NAME",
                        help="with a server URL as --model: the server's model (default: its only one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; 0.0.0.0 exposes the app to your network)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live share link")
    parser.add_argument("--reward-mode", choices=("bertscore", "likelihood"), default="bertscore",
                        help="reward of the answer: paper Eq. 4 with BERTScore (default) or option likelihoods")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="classification answer length cap")
    parser.add_argument("--detection-max-new-tokens", type=int, default=256, help="detection answer length cap")
    parser.add_argument("--device", default=None, help="device for the models, e.g. cpu or cuda:0")
    parser.add_argument("--queue-size", type=int, default=None, help="requests that may wait (default 16)")
    parser.add_argument("--export-space", metavar="DIR", default=None,
                        help="write a Hub-ready Space folder (app.py, requirements.txt, README.md) instead of running")
    parser.add_argument("--overwrite", action="store_true", help="with --export-space: replace files in DIR")


def run(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        print("app: error: the web app needs gradio; install it with `pip install 'synartifact-hf[app]'`")
        return 1
    settings = {"reward_mode": args.reward_mode, "max_new_tokens": args.max_new_tokens, "model_label": args.model_label,
                "detection_max_new_tokens": args.detection_max_new_tokens}
    if args.export_space:
        from .space import export_space

        try:
            out = export_space(args.export_space, args.model, args.detection_model, overwrite=args.overwrite, **settings)
        except (FileExistsError, ValueError) as err:
            print(f"app: error: {err}")
            return 1
        print(f"Wrote the Space folder {out} (app.py, requirements.txt, README.md). Upload it with\n"
              f"  hf upload --repo-type space YOUR-NAME/SPACE-NAME {out} .")
        return 0
    from .ui import QUEUE_SIZE, build_app, launch_app

    demo = build_app(args.model, args.detection_model, device=args.device, served_model=args.served_model,
                     queue_size=args.queue_size or QUEUE_SIZE, **settings)
    launch_app(demo, host=args.host, port=args.port, share=args.share)
    return 0
