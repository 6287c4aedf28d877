"""Training from the editor: a run panel that drives deephtm.trainer.Trainer in a worker
thread and shows live pyqtgraph plots of what HTM does while it learns.

The editor docks `app.run.panel.RunPanel`; `python -m app.run GRAPH --train-steps N ...`
is the headless check mode (see app/run/headless.py).
"""
