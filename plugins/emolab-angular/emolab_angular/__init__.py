"""An example third-party intervention: rotate the residual toward the emotion direction.

`residual_add` moves every activation by the same `alpha * v`; large activations barely
turn and small ones overshoot. Angular steering instead rotates each activation h in the
plane spanned by h and the unit direction u, by a fixed angle toward u, keeping |h|:
with h = a u + b p (p a unit vector orthogonal to u, b >= 0) at angle phi = atan2(b, a)
from u, the rotated activation is |h| (cos(phi') u + sin(phi') p), phi' = max(phi - angle, 0).

It needs only `emolab.api` and `emolab.hookspecs`: the contract a built-in uses.
"""

from __future__ import annotations

import math

import numpy as np

from emolab.api import HookContext, Intervention, Param
from emolab.errors import BadInput
from emolab.hookspecs import hookimpl

__version__ = "0.1.0"


class AngularSteering(Intervention):
    name = "angular_steering"
    description = "Rotate the residual toward the direction by a fixed angle (norm kept)"
    params = (
        Param("layer", int, 0, "block whose output is rotated", min=0),
        Param(
            "angle", float, 30.0, "rotation toward the direction, in degrees", min=0.0, max=180.0
        ),
        Param("positions", str, "all", "which positions", ("all", "prompt", "generated")),
    )

    def hooks(self, model, vector=None, **context):
        """`vector`: `[d]` or `[layers, d]` (the row of `layer` is used)."""
        import torch

        if vector is None:
            raise BadInput("angular_steering needs a vector")
        if not 0 <= self.layer < model.n_layers:
            raise BadInput(f"layer {self.layer} out of range 0-{model.n_layers - 1}")
        v = np.asarray(vector, dtype=np.float32)
        v = v[self.layer] if v.ndim == 2 else v
        if v.shape[-1] != model.d_model:
            raise BadInput(f"steering vector has width {v.shape[-1]}, the model {model.d_model}")
        n = float(np.linalg.norm(v))
        if not math.isfinite(n) or n == 0:
            raise BadInput(f"the steering vector at layer {self.layer} is zero or missing")
        unit = torch.tensor(v / n, device=model.device)
        theta = math.radians(self.angle)
        positions = self.positions

        def rotate(act, ctx: HookContext):
            generating = ctx.new_tokens > 0
            if (positions == "prompt" and generating) or (
                positions == "generated" and not generating
            ):
                return None
            u = unit.to(act.dtype)
            a = act @ u  # [b, seq]
            perp = act - a[..., None] * u
            b = perp.norm(dim=-1)
            norm = act.norm(dim=-1)
            phi = torch.atan2(b, a)
            new_phi = torch.clamp(phi - theta, min=0.0)
            p = perp / b.clamp_min(1e-12)[..., None]
            return norm[..., None] * (
                torch.cos(new_phi)[..., None] * u + torch.sin(new_phi)[..., None] * p
            )

        return [(f"blocks.{self.layer}.hook_resid_post", rotate)]


@hookimpl
def register_interventions(register):
    register(AngularSteering())
