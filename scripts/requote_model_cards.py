"""Re-quotes the Reproduce block of existing MODEL_CARD.md files and fills in their `Libraries:` line from
metadata.json (issue 17): every `calozoo train` line is shell-quoted with a portable data path; nothing else of the
card, and nothing of the weights, metadata or metrics, changes.

Usage: python scripts/requote_model_cards.py [ARTIFACTS_ROOT]   (default: the repository's artifacts/)
"""

import json
import sys
from pathlib import Path

from calozoo.workflow.recipe import portable_command


def requote(card_path: Path) -> bool:
    """Rewrites one card if it changes; True when it did."""
    metadata = json.loads((card_path.parent / "metadata.json").read_text())
    card = card_path.read_text()
    head, found, tail = card.partition("## Reproduce")
    if not found:
        return False
    versions = ", ".join(f"{k} {v}" for k, v in metadata.get("libraries", {}).items())
    lines = [portable_command(line) if line.startswith("calozoo train ") else line for line in tail.split("\n")]
    lines = [f"Libraries: {versions}" if line.startswith("Libraries:") else line for line in lines]
    new = head + found + "\n".join(lines)
    if new != card:
        card_path.write_text(new)
    return new != card


def main(root: Path) -> None:
    for card_path in sorted(root.glob("*/v*/MODEL_CARD.md")):
        if requote(card_path):
            print(f"updated {card_path}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "artifacts")
