"""`panel serve app.py`: the twinviz explorer (being built; see the README)."""
import panel as pn

pn.extension()
pn.pane.Markdown("# twinviz\n\nThe explorer app is coming (issue 5).").servable(title="twinviz")
