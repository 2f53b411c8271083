"""``immflow ui``: the web dashboard (`immflow.ui.app`), over the views of `immflow.ui.data`."""
