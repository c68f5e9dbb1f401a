"""Many state_dicts in one small .npz (numpy only: the fixture scripts and the tests both use it).

A .npz holds one zip member per array, about 270 bytes each before any data; the 45 layer flows of an L2LFlow
checkpoint folder have some 4 000 tensors. `pack` stores every state_dict's key list once per distinct layout and
all values in two flat arrays (float16 where that is exact, float64 otherwise); `unpack` gives back the same
state_dicts, keys, shapes, dtypes and values unchanged.
"""

import numpy as np

__all__ = ["pack", "unpack"]


def _layout(state: dict) -> tuple:
    return tuple((key, np.shape(value), np.asarray(value).dtype.str) for key, value in state.items())


def pack(states: dict) -> dict:
    """Arrays for `np.savez_compressed` from `states` (name -> state_dict of numpy arrays)."""
    layouts, which, values16, values64, wide = [], [], [], [], []
    for state in states.values():
        layout = _layout(state)
        if layout not in layouts:
            layouts.append(layout)
        which.append(layouts.index(layout))
        for value in state.values():
            flat = np.asarray(value).reshape(-1).astype(np.float64)
            exact = np.array_equal(flat.astype(np.float16).astype(np.float64), flat)
            (values16 if exact else values64).append(flat)
            wide.append(not exact)
    arrays = {"names": np.array(list(states)), "layout_of": np.array(which, np.int16), "wide": np.array(wide),
              "values16": np.concatenate(values16 or [np.zeros(0)]).astype(np.float16),
              "values64": np.concatenate(values64 or [np.zeros(0)])}
    keys = sorted({key for layout in layouts for key, _, _ in layout})
    dtypes = sorted({dtype for layout in layouts for _, _, dtype in layout})
    arrays.update(keys=np.array(keys), dtypes=np.array(dtypes))
    for j, layout in enumerate(layouts):  # per entry: key index, dtype index, ndim, shape (zero-padded)
        depth = max(len(shape) for _, shape, _ in layout)
        arrays[f"layout{j}"] = np.array([[keys.index(key), dtypes.index(dtype), len(shape), *shape,
                                          *[0] * (depth - len(shape))] for key, shape, dtype in layout], np.int32)
    return arrays


def unpack(arrays) -> dict:
    """name -> state_dict from the arrays `pack` wrote (a loaded .npz or a dict)."""
    streams = {False: iter(np.asarray(arrays["values16"], np.float64)), True: iter(arrays["values64"])}
    wide = iter(arrays["wide"])
    states = {}
    keys, dtypes = arrays["keys"], arrays["dtypes"]
    for name, j in zip(arrays["names"], arrays["layout_of"]):
        state = {}
        for key, dtype, ndim, *shape in arrays[f"layout{j}"]:
            shape = tuple(int(n) for n in shape[:ndim])
            flat = np.fromiter(streams[bool(next(wide))], np.float64, count=int(np.prod(shape)))
            state[str(keys[key])] = flat.reshape(shape).astype(np.dtype(str(dtypes[dtype])))
        states[str(name)] = state
    return states
