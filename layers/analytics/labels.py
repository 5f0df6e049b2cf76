"""Chinese-first labels, colours and legends of the analysis results (hot-spot bins, emerging categories)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Label:
    """One legend value: its key, Chinese and English labels, a colour and, where useful, a definition."""

    key: Any
    label_zh: str
    label_en: str
    color: str
    rule_zh: str = ""
    rule_en: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Return the label as a JSON-ready mapping (``value`` is the key cells carry)."""
        out = {"value": self.key, "label_zh": self.label_zh, "label_en": self.label_en, "color": self.color}
        if self.rule_zh:
            out.update(rule_zh=self.rule_zh, rule_en=self.rule_en)
        return out


# Gi* confidence bins, hottest first (colours after the usual red–beige–blue hot-spot ramp).
GI_BINS: tuple[Label, ...] = (
    Label(3, "热点 99% 置信度", "Hot spot, 99% confidence", "#d62f27"),
    Label(2, "热点 95% 置信度", "Hot spot, 95% confidence", "#ed7551"),
    Label(1, "热点 90% 置信度", "Hot spot, 90% confidence", "#fab984"),
    Label(0, "不显著", "Not significant", "#eeeee4"),
    Label(-1, "冷点 90% 置信度", "Cold spot, 90% confidence", "#c0ccbe"),
    Label(-2, "冷点 95% 置信度", "Cold spot, 95% confidence", "#849eba"),
    Label(-3, "冷点 99% 置信度", "Cold spot, 99% confidence", "#4575b5"),
)
GI_BIN_LABELS = {label.key: label for label in GI_BINS}

MORAN_QUADRANTS: tuple[Label, ...] = (
    Label("HH", "高-高聚集", "High-high cluster", "#d7191c"),
    Label("LL", "低-低聚集", "Low-low cluster", "#2c7bb6"),
    Label("HL", "高-低异常", "High-low outlier", "#fdae61"),
    Label("LH", "低-高异常", "Low-high outlier", "#abd9e9"),
    Label(None, "不显著", "Not significant", "#eeeee4"),
)
MORAN_LABELS = {label.key: label for label in MORAN_QUADRANTS}

_PATTERNS = (
    # (pattern, Chinese, English, hot colour, cold colour, rule zh, rule en)
    ("new", "新增", "New", "#ff8a65", "#4fc3f7",
     "仅最后一个时段显著，此前从未显著",
     "significant only in the final time step; never significant before"),
    ("consecutive", "连续", "Consecutive", "#f4511e", "#039be5",
     "最后连续两个及以上时段显著，此前从未显著，且显著时段不足 90%",
     "a single run of two or more significant final steps, never significant before it, under 90% of steps"),
    ("intensifying", "加强", "Intensifying", "#b71c1c", "#0d47a1",
     "至少 90% 的时段显著（含最后一个），强度（z 值）呈显著上升趋势",
     "significant in at least 90% of steps including the last, clustering (z) getting significantly stronger"),
    ("persistent", "持续", "Persistent", "#e53935", "#1e88e5",
     "至少 90% 的时段显著（含最后一个），强度无明显趋势",
     "significant in at least 90% of steps including the last, no significant trend in intensity"),
    ("diminishing", "减弱", "Diminishing", "#ef9a9a", "#90caf9",
     "至少 90% 的时段显著（含最后一个），强度呈显著下降趋势",
     "significant in at least 90% of steps including the last, clustering getting significantly weaker"),
    ("sporadic", "零星", "Sporadic", "#ffb74d", "#80deea",
     "最后一个时段显著，此前时显时隐，不足 90%，从未出现相反类型",
     "significant in the final step, on and off before, under 90% of steps, never of the opposite kind"),
    ("oscillating", "振荡", "Oscillating", "#ba68c8", "#9575cd",
     "最后一个时段显著，此前曾为相反类型（热点与冷点交替），不足 90%",
     "significant in the final step, of the opposite kind at some earlier step, under 90% of steps"),
    ("historical", "历史", "Historical", "#a1887f", "#90a4ae",
     "至少 90% 的时段显著，但最后一个时段不显著",
     "significant in at least 90% of steps, but not in the final one"),
)
EMERGING_PATTERNS = tuple(p[0] for p in _PATTERNS)
NO_PATTERN = "no_pattern"


def _emerging() -> tuple[Label, ...]:
    labels: list[Label] = []
    for side, zh_side, en_side in (("hot", "热点", "hot spot"), ("cold", "冷点", "cold spot")):
        for pattern, zh, en, hot, cold, rule_zh, rule_en in _PATTERNS:
            labels.append(Label(f"{pattern}_{side}", f"{zh}{zh_side}", f"{en} {en_side}",
                                hot if side == "hot" else cold, rule_zh, rule_en))
    labels.append(Label(NO_PATTERN, "无模式", "No pattern", "#eeeee4", "不属于以上任何类型", "none of the above"))
    return tuple(labels)


EMERGING_CATEGORIES: tuple[Label, ...] = _emerging()
EMERGING_LABELS = {label.key: label for label in EMERGING_CATEGORIES}


def legend(labels: tuple[Label, ...]) -> list[dict[str, Any]]:
    """Return a legend as a list of JSON-ready entries."""
    return [label.as_dict() for label in labels]
