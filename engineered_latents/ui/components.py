"""Gradio choice components whose refusal of a value outside the list is short and plain.

Gradio's own message for such a value echoes it whole (an API caller can send 100 KB) and, for
a dropdown, unescaped: markup in it would render in the page's error pop-up. `Dropdown`,
`Radio` and `CheckboxGroup` here make Gradio's component and keep its check, with a message
that quotes at most 40 characters, HTML-escaped. (They wrap the instance's `preprocess` rather
than subclass: Gradio writes a `.pyi` stub next to the module of every component subclass.)
"""

import functools
import html

import gradio as gr

QUOTED = 40  # characters of a refused value that a message shows


def refusal(label: str | None, value) -> str:
    text = str(value)
    shown = text if len(text) <= QUOTED else text[: QUOTED - 1] + "…"
    return html.escape(f"{label or 'A choice'}: {shown!r} is not one of the choices.",
                       quote=False)


def plain_refusals(component):
    """`component` with its preprocess's refusal replaced by `refusal` (same check)."""
    check = component.preprocess

    @functools.wraps(check)
    def preprocess(payload):
        try:
            return check(payload)
        except gr.Error:
            raise gr.Error(refusal(component.label, payload), print_exception=False) from None

    component.preprocess = preprocess
    return component


def Dropdown(*args, **kwargs) -> gr.Dropdown:  # noqa: N802 - reads like the component
    return plain_refusals(gr.Dropdown(*args, **kwargs))


def Radio(*args, **kwargs) -> gr.Radio:  # noqa: N802
    return plain_refusals(gr.Radio(*args, **kwargs))


def CheckboxGroup(*args, **kwargs) -> gr.CheckboxGroup:  # noqa: N802
    return plain_refusals(gr.CheckboxGroup(*args, **kwargs))
