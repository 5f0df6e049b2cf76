"""宣传活动 · Promotional events: the cases layer restricted to its theme."""

from __future__ import annotations

from layers.themes.cases import ThemeCasesLayer


class PromotionLayer(ThemeCasesLayer):
    """Cases whose category belongs to the promotion theme."""

    name = "promotion"
    title_zh = "宣传活动"
    title_en = "Promotional events"
    theme = "promotion"
