"""The Optimizer base class: parameter groups, per-parameter state, and state_dict for resuming.

Optimizers read ``p.grad`` and write only into ``p.data`` and their own state arrays, in place and
without recording a graph.  They never write into ``p.grad``: the engine may hand the same gradient
array to two parameters, or a read-only broadcast view.  docs/nn.md#optimizers.
"""

from __future__ import annotations

from ..autograd import Tensor, enable_grad
from ..backend import backend_of, dtype_name, host_array, is_floating, is_host_data, namespace, to_numpy

__all__ = ["Optimizer", "place_copy"]


class Optimizer:
    """Holds ``param_groups`` (a list of dicts: "params" plus hyper-parameters) and ``state``
    (per parameter, created on the parameter's first step).

    ``params``: an iterable of Parameters in a stable order (e.g. ``model.parameters()``), or of
    dicts {"params": [...], "lr": ...} to give groups their own hyper-parameters.  Sets are refused:
    their order changes between runs, so a saved state would come back attached to the wrong
    parameters.
    """

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.state: dict = {}
        self.param_groups: list = []
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Parameters (e.g. "
                            "model.parameters()), got a single Tensor; wrap it in a list")
        _refuse_set(params, type(self).__name__)
        params = _flatten_params(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list (does the model have parameters?)")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict):
        """Add {"params": [...], hyper-parameter overrides}; the rest come from the defaults."""
        if not isinstance(group, dict):
            raise TypeError(f"{type(self).__name__}: a parameter group must be a dict, got {type(group).__name__}")
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        _refuse_set(params, type(self).__name__)
        params = _flatten_params(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: parameter {i} is a {type(p).__name__}, not a Tensor")
            if p._ctx is not None:
                raise ValueError(f"{type(self).__name__}: parameter {i} is not a leaf (it was computed by "
                                 f"{type(p._ctx).__name__}); optimize the leaves it came from")
            if not p.requires_grad or not is_floating(p.dtype):
                raise ValueError(f"{type(self).__name__}: parameter {i} does not require grad "
                                 f"(dtype {dtype_name(p.dtype)}); only trainable floating tensors can be optimized")
            if id(p) in seen:
                raise ValueError(f"{type(self).__name__}: parameter {i} appears twice (in this group or an earlier "
                                 "one); each parameter may be optimized once")
            seen.add(id(p))
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown hyper-parameter(s) {sorted(unknown)} in a parameter "
                             f"group; known: {sorted(self.defaults)}")
        g = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}}
        self._validate(g)
        g["params"] = params
        self.param_groups.append(g)

    def _validate(self, group: dict):
        """Raise ValueError for out-of-range hyper-parameters (subclasses check their own)."""
        lr = group.get("lr")
        if lr is not None and not lr >= 0.0:
            raise ValueError(f"{type(self).__name__}: the learning rate must be >= 0, got lr={lr}")

    # -- the training-loop interface -----------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True):
        """Drop every parameter's gradient (``.grad = None``), or, with ``set_to_none=False``, set
        it to zeros (as in PyTorch)."""
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None if set_to_none or p.grad is None else namespace(p.grad).zeros_like(p.grad)

    def step(self, closure=None):
        """One update of every parameter that has a gradient.  ``closure`` (optional) recomputes
        and returns the loss after zeroing and backward, as in PyTorch."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = self._init_state(p, group)
                self._update(p, p.grad, state, group)
        return loss

    def _init_state(self, p, group) -> dict:
        return {}

    def _update(self, p, grad, state, group):  # pragma: no cover - abstract
        raise NotImplementedError

    # -- resuming -------------------------------------------------------------------------------
    def _params(self):
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> dict:
        """{"state": {index: {name: value}}, "param_groups": [{hyper-parameters, "params": [indices]}]}.

        Parameters are named by their position in the groups, so the dict can be loaded into a
        fresh optimizer over a fresh model built the same way.  State arrays are copies on their
        backend; ``scratchvae.save`` moves them to the host.
        """
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {}
        for p, s in self.state.items():
            state[index[id(p)]] = {
                k: (namespace(v).asarray(v, copy=True) if _is_array(v) else v) for k, v in s.items()
            }
        groups = []
        start = 0
        for g in self.param_groups:
            n = len(g["params"])
            d = {k: v for k, v in g.items() if k != "params"}
            d["params"] = list(range(start, start + n))
            start += n
            groups.append(d)
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict: dict):
        """Restore hyper-parameters and state saved by ``state_dict`` (possibly through a checkpoint,
        possibly from another backend): state arrays go to each parameter's backend and dtype."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError(f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups' "
                             "(from Optimizer.state_dict()), got "
                             f"{sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state has {len(saved_groups)} parameter group(s), "
                             f"this optimizer has {len(self.param_groups)}")
        for i, (sg, g) in enumerate(zip(saved_groups, self.param_groups)):
            if len(sg["params"]) != len(g["params"]):
                raise ValueError(f"{name}.load_state_dict: group {i} of the state has {len(sg['params'])} "
                                 f"parameters, this optimizer's has {len(g['params'])} -- was it saved for a "
                                 "different model?")
            keys, own = set(sg) - {"params"}, set(self.defaults)
            if keys != own:
                raise ValueError(f"{name}.load_state_dict: the saved hyper-parameters {sorted(keys)} are not "
                                 f"{name}'s {sorted(own)} -- was it saved from another optimizer?")
        params = {}
        for sg, g in zip(saved_groups, self.param_groups):
            for idx, p in zip(sg["params"], g["params"]):
                params[idx] = p
        # Build everything first, then assign: an error part-way leaves the optimizer untouched.
        new_state = {}
        for idx, s in state_dict["state"].items():
            p = params.get(int(idx))
            if p is None:
                raise ValueError(f"{name}.load_state_dict: the state refers to parameter {idx}, which no "
                                 "parameter group lists")
            entry = {}
            for k, v in s.items():
                if _is_array(v) and tuple(v.shape) == p.shape:
                    entry[k] = place_copy(v, p.data)
                elif _is_array(v) and v.ndim > 0:
                    raise ValueError(f"{name}.load_state_dict: state[{idx}][{k!r}] has shape {tuple(v.shape)} "
                                     f"but parameter {idx} has shape {p.shape}")
                else:
                    entry[k] = v.item() if _is_array(v) else v  # a 0-d array read back from a checkpoint
            new_state[p] = entry
        for sg, g in zip(saved_groups, self.param_groups):
            for k in self.defaults:
                g[k] = tuple(sg[k]) if isinstance(self.defaults[k], tuple) else sg[k]
        self.state = new_state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        return "\n".join(lines) + "\n)"


def place_copy(value, like):
    """A NEW array with the numbers of ``value`` (an array of any backend) on the backend of the
    array ``like``, in its dtype.

    An array of another backend or device -- a host NumPy array read from a checkpoint, say -- is
    cast on the host and copied over (the one explicit crossing).  Always a copy: optimizer state is
    updated in place, so it must never share memory with the state dict it was loaded from.
    """
    if is_host_data(value):
        value = host_array(value)  # (a NumPy scalar as a 0-d array)
    target, src = backend_of(like), backend_of(value)
    if src.name != target.name or src.device != target.device:
        value = target.from_numpy(host_array(to_numpy(value), dtype_name(like.dtype)))
    return namespace(value).astype(value, like.dtype, copy=True)


def _is_array(v) -> bool:
    if isinstance(v, (bool, int, float, str)) or v is None:
        return False
    try:
        backend_of(v)
    except TypeError:
        return False
    return True


def _refuse_set(params, who):
    if isinstance(params, (set, frozenset)):
        raise TypeError(
            f"{who}: params must be an ordered sequence (e.g. model.parameters() or a list), not a "
            f"{type(params).__name__}: a set's order can change between runs, which would attach saved "
            "optimizer state to the wrong parameters"
        )


def _flatten_params(params) -> list:
    """Parameters given as an iterable, a dict of named tensors, or lists/tuples/dicts nested inside
    (a HIPS/JAX-style pytree), as one flat list in a stable order; parameter-group dicts
    ({"params": ...}) are kept as they are."""
    if isinstance(params, dict):
        if "params" in params:  # one parameter group
            return [params]
        params = list(params.values())
    out = []
    for p in params:
        if isinstance(p, dict) and "params" not in p:
            out.extend(_flatten_params(p))
        elif isinstance(p, (list, tuple)):
            out.extend(_flatten_params(p))
        else:
            out.append(p)
    return out
