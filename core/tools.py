"""The tool interface for the built-in agent. Implementations live in plugins/tools/."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    from hbench.sandbox import Sandbox


class ToolError(Exception):
    """A refusal or failure the model should see as the tool's result (never a crash)."""


class Tool:
    """A sandboxed tool. ``call`` returns the text the model sees, or raises ToolError."""

    name: ClassVar[str]
    description: ClassVar[str]
    parameters: ClassVar[dict[str, Any]]  # JSON schema of the arguments object

    def call(self, args: dict[str, Any], sandbox: Sandbox) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        """The OpenAI ``tools[]`` entry."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }
