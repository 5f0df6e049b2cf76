"""十乱 · Ten disorders: the cases layer restricted to its theme."""

from __future__ import annotations

from layers.themes.cases import ThemeCasesLayer


class TenDisordersLayer(ThemeCasesLayer):
    """Cases whose category belongs to the ten_disorders theme."""

    name = "ten_disorders"
    title_zh = "十乱"
    title_en = "Ten disorders"
    theme = "ten_disorders"
