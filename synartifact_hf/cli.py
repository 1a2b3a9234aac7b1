"""`synartifact-hf` command line: a table of subcommands, each a thin wrapper over a package module.

Each entry names the module that defines ``add_arguments(parser)`` and ``run(args) -> int`` for that
subcommand. Modules are imported only for the subcommand that runs, so ``--help`` stays fast and
no command pays for torch unless it needs it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("synartifact_hf.demo.cli_demo", "run the end-to-end demo on the embedded sample"),
    "build-dataset": ("synartifact_hf.data.cli_build_dataset", "raw SynArtifact-1K release -> Hub-ready dataset folder"),
    "push-dataset": ("synartifact_hf.data.cli_push_dataset", "upload a built dataset folder to the Hub"),
    "visualize": ("synartifact_hf.data.cli_visualize", "draw boxes, classes and captions of a built dataset to PNGs"),
    "evaluate": ("synartifact_hf.cli_evaluate", "Table-2-style report of a classifier on a built dataset split"),
    "classify": ("synartifact_hf.cli_classify", "classify images, folders or a built dataset with a VLM to JSON lines"),
    "install-metrics": ("synartifact_hf.metrics.cli_install_metrics",
                        'make evaluate.load("artifact_f1") / ("artifact_iou") work by bare name, offline'),
    "app": ("synartifact_hf.app.cli_app", "web app (Gradio) for the classifier, reward and detector; Space export"),
    "curate": ("synartifact_hf.cli_curate", "label a folder or dataset and keep the clean (or flagged) images as a dataset folder"),
    "eval-generator": ("synartifact_hf.generator_eval.cli_eval",
                       "generate images with a text-to-image model, classify them: artifact rates with CIs"),
    "compare-generators": ("synartifact_hf.generator_eval.cli_compare",
                           "paired comparison of two eval-generator folders (differences, McNemar, Holm)"),
    "study": ("synartifact_hf.app.study.cli_study",
              "user study of two generators: serve the rating page, invite raters, report (Fig. 9, Wilcoxon, alpha)"),
}


def _build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synartifact-hf",
        description="SynArtifact for the Hugging Face ecosystem.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(sub_parser)
            sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = _build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
