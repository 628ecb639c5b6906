"""The one description of the training variants (`cl.variant`): which losses each trains, how its
L_CS positive is formed, what it is called in tables, and which hyperparameters it depends on.

The config's validation, the training step, the model builder, the sweep's input sharing, the
analysis tables, the report and the GPU study all read it from here.

Adding an ablation variant: one `Variant(...)` line below (with its test in tests/core/test_variants.py)
and, if it needs new behaviour in training, the flag it switches; then list it in an experiment file
(experiments/ablation.yaml).  Depends on nothing (config.py imports it).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    name: str
    cs: bool  # trains L_CS (a user vs a mix of its semantic neighbours), weight cl.alpha
    is_: bool  # trains L_IS (two views with items replaced by semantic neighbours), weight cl.beta
    learned_mix: bool  # L_CS's positive is the learnable synthesis of the k neighbours (False: one random neighbour)
    label: str  # the table's column / row name
    latex: str = ""  # the LaTeX label, where it differs from `label`
    # L_CS's positive comes from the semantic unit neighbours (False: the anchor's own second dropout
    # view, the self_view control: same loss, same extra encoder pass, no neighbour)
    cs_neighbours: bool = True

    @property
    def reads_unit_neighbours(self) -> bool:
        """Its L_CS reads the unit neighbour table (so unit-neighbour settings matter)."""
        return self.cs and self.cs_neighbours

    @property
    def uses_cl(self) -> bool:
        """Trains any contrastive loss, so reads the semantic artifact."""
        return self.cs or self.is_

    @property
    def hparams(self) -> tuple[str, ...]:
        """The contrastive hyperparameters its runs depend on (analysis compares only these)."""
        return (("alpha",) if self.cs else ()) + (("beta",) if self.is_ else ()) + (("k",) if self.uses_cl else ())

    def weights(self, alpha: float, beta: float) -> tuple[float, float]:
        """(alpha, beta) actually applied: a loss the variant does not train weighs 0."""
        return (alpha if self.cs else 0.0), (beta if self.is_ else 0.0)


_ALL = (  # in Table 3's column order
    Variant("no_cl", cs=False, is_=False, learned_mix=False, label="w/o CL"),
    Variant("no_cs", cs=False, is_=True, learned_mix=False, label="w/o L_CS", latex=r"w/o $\mathcal{L}_{CS}$"),
    Variant("no_is", cs=True, is_=False, learned_mix=True, label="w/o L_IS", latex=r"w/o $\mathcal{L}_{IS}$"),
    Variant("unlearnable", cs=True, is_=True, learned_mix=False, label="Unlearnable"),
    # a control (issue 18): L_CS against the anchor's own other dropout view isolates what the extra
    # re-encoded view adds from what the neighbours add
    Variant("self_view", cs=True, is_=True, learned_mix=False, label="Self view", cs_neighbours=False),
    Variant("full", cs=True, is_=True, learned_mix=True, label="SRA-CL"),
)
VARIANTS: dict[str, Variant] = {v.name: v for v in _ALL}
TABLE_ORDER = tuple(VARIANTS)  # Table 3's columns
METHOD = "full"  # the method itself (Table 2's "+SRA-CL" rows)
BASELINE = "no_cl"  # its backbone alone (Table 2's plain rows)
NAMES = (METHOD, *(n for n in TABLE_ORDER if n != METHOD))  # the config's choices, the method first
ABLATIONS = tuple(n for n in TABLE_ORDER if n not in (METHOD, BASELINE))  # Table 3's middle columns


def get(name: str) -> Variant:
    try:
        return VARIANTS[str(name)]
    except KeyError:
        raise ValueError(f"unknown variant {name!r} (one of {', '.join(NAMES)})") from None
