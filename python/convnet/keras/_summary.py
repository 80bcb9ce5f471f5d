"""`Model.summary()` as Keras 3 prints it: the same rich table, column
widths, wrapping and totals (`keras/src/utils/summary_utils.py`), from the
engine's summary rows.

```text
Sequential, or a functional chain  -> Layer (type) | Output Shape | Param #          (88 wide)
a functional graph with branches   -> ... | Connected to ("conv2d[0][0], ...")       (108 wide)
functional models                  -> an InputLayer row first, as Keras lists it
```
"""

import json
import shutil

import rich.console
import rich.markup
import rich.table


def _number(x):
    return f"[color(45)]{x}[/]" if x is None else f"[color(34)]{x}[/]"


def _bold(x):
    return f"[bold]{x}[/]"


def _shape(shape):
    return f"({', '.join(_number(d) for d in (None, *shape))})"


def _memory(nbytes):
    """Keras's `readable_memory_size`."""
    for unit in ["B", "KB", "MB", "GB", "TB", "PB"]:
        if nbytes / 1024 < 1:
            return f"{nbytes:.2f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.2f} PB"


def _rows(model):
    """`(name, class, shape, params, connected_to)` per row, and whether
    the model is a chain (Keras's `sequential_like`)."""
    rows = [tuple(r) for r in model.engine.summary_rows()]
    spec = json.loads(model.engine.spec_json())
    if model._graph is None and not any("inputs" in node for node in spec["layers"]):
        return [r[:4] + ([],) for r in rows], True  # Sequential: no input row
    input_name = model._input_name()
    rows = [(input_name, "InputLayer", list(model.engine.input_shape), 0, [])] + [
        r[:4] + ([input_name if c == "input" else c for c in r[4]],) for r in rows
    ]
    readers = [c for r in rows for c in r[4]]
    chain = all(len(r[4]) <= 1 for r in rows) and len(readers) == len(set(readers))
    return rows, chain


def print_summary(model, line_length=None, positions=None, print_fn=None):
    """Prints the summary (with `print_fn`: hands it the whole text)."""
    rows, chain = _rows(model)
    if chain:
        default, positions = 88, positions or [0.45, 0.80, 1.0]
        header, align = ["Layer (type)", "Output Shape", "Param #"], ["left", "left", "right"]
    else:
        default, positions = 108, positions or [0.3, 0.56, 0.74, 1.0]
        header = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
        align = ["left", "left", "right", "left"]
    line_length = line_length or min(default, shutil.get_terminal_size().columns - 4)
    widths, current = [], 0
    for pos in positions:
        width = int(pos * line_length) - current
        if width < 4:
            raise ValueError("Insufficient console width to print summary.")
        widths.append(width)
        current += width
    columns = [rich.table.Column(h, justify=a, width=w) for h, a, w in zip(header, align, widths)]
    table = rich.table.Table(*columns, width=line_length, show_lines=True)
    for name, kind, shape, params, reads in rows:
        fields = [
            f"{rich.markup.escape(name)} ([color(33)]{rich.markup.escape(kind)}[/])",
            _shape(shape),
            _number(f"{params:,}"),
        ]
        if not chain:
            fields.append(", ".join(f"{c}[{_number(0)}][{_number(0)}]" for c in reads) or "-")
        table.add_row(*fields)
    trainable, fixed = model.engine.count_params()
    if print_fn:
        console = rich.console.Console(highlight=False, force_terminal=False, color_system=None)
        console.begin_capture()
    else:
        console = rich.console.Console(highlight=False)
    console.print(_bold(f'Model: "{rich.markup.escape(model.name)}"'))
    console.print(table)
    for label, count in [("Total", trainable + fixed), ("Trainable", trainable), ("Non-trainable", fixed)]:
        console.print(_bold(f" {label} params: ") + _number(f"{count:,}") + f" ({_memory(count * 4)})")
    if print_fn:
        print_fn(console.end_capture())
