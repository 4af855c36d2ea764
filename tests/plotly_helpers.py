"""Reading plotly figures that came back through gradio_client (shared by the app tests)."""

import base64

import numpy as np
import plotly.io as pio


def figure(output):
    """The plotly figure of a gr.Plot output."""
    return pio.from_json(output["plot"])


def array(value) -> np.ndarray:
    """A plotly array as numpy: plotly >= 6 sends arrays as typed buffers ({dtype, bdata})."""
    if isinstance(value, dict) and "bdata" in value:
        shape = [int(n) for n in str(value.get("shape", "-1")).split(",")]
        return np.frombuffer(base64.b64decode(value["bdata"]), value["dtype"]).reshape(shape)
    return np.asarray(value)
