"""Shell completion for bash, zsh and fish: ``inventory completion SHELL``.

The scripts are small shims: on TAB they call ``inventory __complete WORD...`` with the
words typed so far, and this module answers from the command's own argparse parser, so
completion never drifts from the commands. It completes commands and actions, options,
option values with fixed choices, file paths for ``--config`` and ``--path``, and source
names (from the config in use) wherever a source is asked for.
"""

from __future__ import annotations

import argparse
import glob
import os
from collections.abc import Sequence

#: Options whose value is a file path.
FILE_OPTIONS = {"--config", "--path", "--metrics-textfile"}
#: Where a source name goes: these options, and the SOURCE positionals.
SOURCE_OPTIONS = {"--source"}

_BASH = """\
# bash completion for inventory: eval "$(inventory completion bash)" (e.g. in ~/.bashrc)
_inventory_complete() {
    local IFS=$'\\n'
    COMPREPLY=($("${COMP_WORDS[0]}" __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -F _inventory_complete inventory
"""

_ZSH = """\
#compdef inventory
# zsh completion for inventory: eval "$(inventory completion zsh)" (after compinit)
_inventory_complete() {
    local -a candidates
    candidates=("${(@f)$("${words[1]}" __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    compadd -Q -- "${candidates[@]}"
}
compdef _inventory_complete inventory
"""

_FISH = """\
# fish completion for inventory: inventory completion fish | source
# (or save it as ~/.config/fish/completions/inventory.fish)
function __inventory_complete
    set -l typed (commandline -opc)
    inventory __complete $typed[2..-1] (commandline -ct) 2>/dev/null
end
complete -c inventory -f -a '(__inventory_complete)'
"""

SCRIPTS = {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}


def script(shell: str) -> str:
    return SCRIPTS[shell]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: a for a in parser._actions for flag in a.option_strings}


def _positionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if not a.option_strings and not isinstance(a, argparse._SubParsersAction)
    ]


def candidates(parser: argparse.ArgumentParser, typed: Sequence[str]) -> list[str]:
    """What may come next: ``typed`` is every word after ``inventory``, the last one the
    word being completed (possibly empty)."""
    *done, current = list(typed) or [""]
    node, config, filled = parser, None, 0
    expecting: argparse.Action | None = None
    for word in done:
        if expecting is not None:
            if "--config" in expecting.option_strings:
                config = word
            expecting = None
            continue
        if word.startswith("-"):
            action = _options(node).get(word.split("=", 1)[0])
            if action is not None and action.nargs != 0 and "=" not in word:
                expecting = action
            continue
        sub = _subparsers(node)
        if word in sub:
            node, filled = sub[word], 0
        else:
            filled += 1
    if expecting is not None:
        return _values(expecting, current, config)
    if current.startswith("-"):
        return sorted(f for f in _options(node) if f.startswith(current) and f != "-h")
    sub = _subparsers(node)
    if sub:
        return sorted(name for name in sub if name.startswith(current))
    positionals = _positionals(node)
    if positionals:
        at = positionals[min(filled, len(positionals) - 1)]
        if at.nargs in ("*", "+") or filled < len(positionals):
            found = _values(at, current, config)
            if found:
                return found
    return sorted(f for f in _options(node) if f.startswith(current) and f != "-h")


def _values(action: argparse.Action, current: str, config: str | None) -> list[str]:
    if action.choices:
        return sorted(str(c) for c in action.choices if str(c).startswith(current))
    if FILE_OPTIONS & set(action.option_strings):
        return sorted(glob.glob(os.path.expanduser(current) + "*"))  # noqa: PTH111, PTH207
    if SOURCE_OPTIONS & set(action.option_strings) or action.dest == "sources":
        return [name for name in _source_names(config) if name.startswith(current)]
    return []


def _source_names(config: str | None) -> list[str]:
    """The configured sources (and regions = "*" tables); none when the config does not
    load: completion never prints an error."""
    from inventory.config import load_settings

    try:
        settings = load_settings(config)
    except Exception:
        return []
    return sorted(s.name for s in (*settings.sources, *settings.templates))
