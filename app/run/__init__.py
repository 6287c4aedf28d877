"""Training from the editor: a run panel that drives deephtm.train.trainer.Trainer in a training
process (deephtm.live.worker_process; a QThread by setting, DEEPHTM_APP_WORKER=thread) and shows
live pyqtgraph plots of what HTM does while it learns.

The editor docks `app.run.panel.RunPanel`; `python -m app.run GRAPH --train-steps N ...`
is the headless check mode (see app/run/headless.py).
"""
