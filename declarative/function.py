"""Backward pass of a declarative node by the implicit function theorem (Gould et al. 2020, Sec. 4).

For y(x) ∈ argmin_u f(x, u) without constraints (Eq. 6, Prop. 4.3):

    Dy(x) = -H⁻¹ B,     H = D²_yy f (m×m),  B = D²_xy f (m×n),

and with equality constraints h(x, u) = 0 (Prop. 4.5; active inequalities are treated as equalities):

    Dy(x) = (H⁻¹Aᵀ(AH⁻¹Aᵀ)⁻¹AH⁻¹ − H⁻¹) B − H⁻¹Aᵀ(AH⁻¹Aᵀ)⁻¹ C,
    A = D_y h, C = D_x h, H = D²_yy ℒ, B = D²_xy ℒ, ℒ = f − λᵀh, with Aᵀλ = (D_y f)ᵀ.

The backward never forms Dy: given v = dL/dy it computes u = H⁻¹v, z = (AH⁻¹Aᵀ)⁻¹Au, q = H⁻¹Aᵀz − u
(q = −u without constraints) and returns dL/dx = D_x[⟨∇_y ℒ(x, y), q⟩ − ⟨h(x, y), z⟩] with y held fixed —
one extra backward through the node's own functions. H is formed from Hessian-vector products
(`torch.func`, reverse-over-reverse) and factorised by Cholesky when m <= node.dense_max_dim, and is only
applied through conjugate gradients otherwise. Problems are independent, so every product is batched over P.
"""
from __future__ import annotations

import torch
from shapelab.declarative.node import SINGULAR_POLICIES, DeclarativeNode
from torch.func import grad, vmap

from shapelab.errors import ShapelabError


def declarative_output(node: DeclarativeNode, *inputs: torch.Tensor) -> torch.Tensor:
    """y (P, m) = the node's solution for ``inputs``, differentiable w.r.t. every input by the IFT.

    Inputs may be any tensors (batched data, shared parameters); the node's functions receive them as
    the tuple ``inputs``. A node that closes over module parameters must pass those parameters here
    too, so their gradients are returned.
    """
    if node.on_singular not in SINGULAR_POLICIES:
        raise ShapelabError(f"{node.name()}.on_singular={node.on_singular!r} unknown; use one of {SINGULAR_POLICIES}")
    return _DeclarativeFunction.apply(node, *inputs)


class _DeclarativeFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, node: DeclarativeNode, *inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            y = node.solve(inputs).detach()
        if y.dim() != 2:
            raise ShapelabError(f"{node.name()}.solve must return (P, m) solutions, got shape {tuple(y.shape)}")
        ctx.node, ctx.inputs = node, inputs  # the original tensors: a node may close over them
        ctx.save_for_backward(y)
        return y.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: torch.Tensor):
        (y,) = ctx.saved_tensors
        grads = implicit_gradient(ctx.node, ctx.inputs, y, grad_y, ctx.needs_input_grad[1:])
        return (None, *grads)


def _constraints(node: DeclarativeNode, inputs, y: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(h (P, p) with inactive inequalities zeroed, active mask (P, p)), or (None, None) without constraints."""
    equality = node.equality_constraints(inputs, y)
    inequality = node.inequality_constraints(inputs, y)
    parts, masks = [], []
    if equality is not None:
        parts.append(equality)
        masks.append(torch.ones_like(equality))
    if inequality is not None:
        active = (inequality.detach() > -node.inequality_tolerance).to(inequality.dtype)
        parts.append(inequality * active)
        masks.append(active)
    if not parts:
        return None, None
    return torch.cat(parts, dim=1), torch.cat(masks, dim=1)


def _one_hot_columns(count: int, like: torch.Tensor) -> torch.Tensor:
    """(count, P, count): slice k is 1 in column k of every row."""
    eye = torch.eye(count, dtype=like.dtype, device=like.device)
    return eye[:, None, :].expand(count, like.shape[0], count)


def implicit_gradient(node: DeclarativeNode, inputs: tuple, y: torch.Tensor, v: torch.Tensor,
                      needs_grad: tuple[bool, ...]) -> list[torch.Tensor | None]:
    """dL/dx for every input from v = dL/dy (P, m), at the solution y (P, m)."""
    y = y.detach()
    with torch.no_grad():
        h, mask = _constraints(node, inputs, y)
        multipliers = None
        if h is not None:
            jac_h = vmap(lambda w: grad(lambda u: (_constraints(node, inputs, u)[0] * w).sum())(y))(
                _one_hot_columns(h.shape[1], h))                      # (p, P, m)
            A = jac_h.transpose(0, 1)                                  # (P, p, m)
            grad_f = grad(lambda u: node.objective(inputs, u).sum())(y)  # (P, m)
            gram = A @ A.transpose(1, 2) + torch.diag_embed(1 - mask)
            multipliers = (torch.linalg.solve(gram, (A @ grad_f[..., None]))[..., 0] * mask).detach()

        def lagrangian(u: torch.Tensor) -> torch.Tensor:
            value = node.objective(inputs, u)
            if multipliers is not None:
                value = value - (multipliers * _constraints(node, inputs, u)[0]).sum(dim=1)
            return value.sum()

        gradient_fn = grad(lagrangian)

        def hessian_vector(direction: torch.Tensor) -> torch.Tensor:
            return grad(lambda u: (gradient_fn(u) * direction).sum())(y)

        solver = _dense_solver if y.shape[1] <= node.dense_max_dim else _cg_solver
        solve, singular = solver(node, hessian_vector, y)
        v = torch.where(singular[:, None], torch.zeros_like(v), v)
        u = solve(v)
        if h is None:
            q, z = -u, None
        else:
            hinv_at = torch.stack([solve(A[:, k]) for k in range(A.shape[1])], dim=2)   # (P, m, p)
            schur = A @ hinv_at + torch.diag_embed(1 - mask)
            z = torch.linalg.solve(schur, (A @ u[..., None]))[..., 0] * mask
            q = (hinv_at @ z[..., None])[..., 0] - u

    wanted = [x for x, needed in zip(inputs, needs_grad) if needed]
    if not wanted:
        return [None] * len(inputs)
    with torch.enable_grad():
        y_fixed = y.requires_grad_(True)
        value = node.objective(inputs, y_fixed)
        h_fixed, _ = _constraints(node, inputs, y_fixed)
        if multipliers is not None:
            value = value - (multipliers * h_fixed).sum(dim=1)
        (gradient_y,) = torch.autograd.grad(value.sum(), y_fixed, create_graph=True)
        expression = (gradient_y * q).sum()
        if z is not None:
            expression = expression - (h_fixed * z).sum()
        found = torch.autograd.grad(expression, wanted, allow_unused=True)
    found = iter(found)
    out = [next(found) if needed else None for needed in needs_grad]
    for tensor in out:
        if tensor is not None and not torch.isfinite(tensor).all():
            raise ShapelabError(f"{node.name()}: the implicit gradient is not finite (ill-conditioned Hessian); "
                                "set the node's regularisation > 0")
    return out


def _not_positive_definite(node: DeclarativeNode, count: int, total: int) -> ShapelabError:
    return ShapelabError(
        f"{node.name()}: the Hessian of the objective is not positive definite at the solution for {count} of "
        f"{total} problems (a flat objective or not a minimum), so the implicit gradient is undefined; set the "
        "node's regularisation > 0 or on_singular='zero'")


def _dense_solver(node: DeclarativeNode, hessian_vector, y: torch.Tensor):
    """Cholesky of the (P, m, m) Hessian built from m Hessian-vector products."""
    columns = vmap(hessian_vector)(_one_hot_columns(y.shape[1], y))      # (m, P, m)
    hessian = 0.5 * (columns.permute(1, 2, 0) + columns.permute(1, 0, 2))
    eye = torch.eye(y.shape[1], dtype=y.dtype, device=y.device)
    factor, info = torch.linalg.cholesky_ex(hessian)
    if node.regularisation > 0 and bool((info != 0).any()):
        factor, info = torch.linalg.cholesky_ex(hessian + node.regularisation * eye)
    singular = info != 0
    if bool(singular.any()):
        if node.on_singular == "raise":
            raise _not_positive_definite(node, int(singular.sum()), len(singular))
        factor = torch.where(singular[:, None, None], eye, factor)
    return (lambda rhs: torch.cholesky_solve(rhs[..., None], factor)[..., 0]), singular


def _cg_solver(node: DeclarativeNode, hessian_vector, y: torch.Tensor):
    """Batched conjugate gradients on Hessian-vector products (H is never formed)."""
    def apply(direction: torch.Tensor) -> torch.Tensor:
        return hessian_vector(direction) + node.regularisation * direction

    singular = torch.zeros(y.shape[0], dtype=torch.bool, device=y.device)

    def solve(rhs: torch.Tensor) -> torch.Tensor:
        x = torch.zeros_like(rhs)
        residual, direction = rhs.clone(), rhs.clone()
        rs = (residual * residual).sum(1)
        threshold = node.cg_tolerance * (rhs * rhs).sum(1).clamp_min(torch.finfo(rhs.dtype).tiny)
        for _ in range(node.cg_iterations):
            if bool((rs <= threshold).all()):
                break
            product = apply(direction)
            curvature = (direction * product).sum(1)
            bad = (curvature <= 0) & (rs > threshold)
            singular.logical_or_(bad)
            step = torch.where(bad | (rs <= threshold), torch.zeros_like(rs), rs / curvature.where(~bad, 1))
            x = x + step[:, None] * direction
            residual = residual - step[:, None] * product
            rs_new = (residual * residual).sum(1)
            direction = residual + (rs_new / rs.clamp_min(torch.finfo(rhs.dtype).tiny))[:, None] * direction
            rs = rs_new
        if bool(singular.any()) and node.on_singular == "raise":
            raise _not_positive_definite(node, int(singular.sum()), len(singular))
        return torch.where(singular[:, None], torch.zeros_like(x), x)

    return solve, singular
