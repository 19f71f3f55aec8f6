"""A stored conversation as Markdown (to read) or JSON (to process), written atomically."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from llamadesk.app.chat.store import Conversation, StoredMessage
from llamadesk.app.core.atomic_file import atomic_output

ROLE_HEADINGS = {"system": "System", "user": "You", "assistant": "Assistant"}


def conversation_markdown(conversation: Conversation, messages: Sequence[StoredMessage]) -> str:
    """A readable transcript; a reply cut short says so."""
    lines = [f"# {conversation.title}", "", f"Model: {conversation.settings.model}", ""]
    if conversation.settings.system_prompt:
        lines += [f"## {ROLE_HEADINGS['system']}", "", conversation.settings.system_prompt, ""]
    for message in messages:
        note = " (interrupted)" if message.state == "interrupted" else ""
        lines += [f"## {ROLE_HEADINGS[message.role]}{note}", "", message.content, ""]
    return "\n".join(lines)


def conversation_json(conversation: Conversation, messages: Sequence[StoredMessage]) -> str:
    """Everything stored about the conversation, as one JSON object."""
    return json.dumps(
        {
            "title": conversation.title,
            "settings": asdict(conversation.settings),
            "created": conversation.created,
            "messages": [
                {"role": m.role, "content": m.content, "state": m.state, "created": m.created} for m in messages
            ],
        },
        indent=2,
        ensure_ascii=False,
    )


def export_conversation(
    conversation: Conversation, messages: Sequence[StoredMessage], path: Path, force: bool = False
) -> Path:
    """Write the conversation to `path`; the format follows the suffix (.json, else Markdown)."""
    render = conversation_json if path.suffix.lower() == ".json" else conversation_markdown
    with atomic_output(path, force) as tmp:
        tmp.write_text(render(conversation, messages) + "\n", encoding="utf-8")
    return path
