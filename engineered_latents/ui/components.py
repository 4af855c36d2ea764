"""Gradio choice components whose refusal of a value outside the list is short and plain.

Gradio's own message for such a value echoes it whole (an API caller can send 100 KB) and, for
a dropdown, unescaped: markup in it would render in the page's error pop-up. These subclasses
keep Gradio's check and replace its message with one that quotes at most 40 characters,
HTML-escaped.
"""

import html

import gradio as gr

QUOTED = 40  # characters of a refused value that a message shows


def refusal(label: str | None, value) -> str:
    text = str(value)
    shown = text if len(text) <= QUOTED else text[: QUOTED - 1] + "…"
    return html.escape(f"{label or 'A choice'}: {shown!r} is not one of the choices.",
                       quote=False)


class _Plain:
    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except gr.Error:
            raise gr.Error(refusal(self.label, payload), print_exception=False) from None


class Dropdown(_Plain, gr.Dropdown):
    pass


class Radio(_Plain, gr.Radio):
    pass


class CheckboxGroup(_Plain, gr.CheckboxGroup):
    pass
