"""违规经营 · Illegal operation: the cases layer restricted to its theme."""

from __future__ import annotations

from layers.themes.cases import ThemeCasesLayer


class IllegalOperationLayer(ThemeCasesLayer):
    """Cases whose category belongs to the illegal_operation theme."""

    name = "illegal_operation"
    title_zh = "违规经营"
    title_en = "Illegal operation"
    theme = "illegal_operation"
