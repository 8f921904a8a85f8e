"""Training: `lstm-lm train` (run_training.py) builds a Trainer and runs its loop (trainer.py), which calls

    step.py           one optimization step on one (T, B) window
    validation.py     validation, the best weights, NT-ASGD's trigger (with averaging.py)
    stopping.py       signals and the epoch, step and time limits
    checkpointing.py  what a checkpoint holds of every rank (with rundir/checkpoint.py, which writes it)
    schedule.py       learning-rate schedules as pure functions
    progress.py       the progress bar and lines, and metrics.jsonl records
    distributed.py    torchrun's process group: shards, collectives

Imports: anything below it (data, model, hardware, rundir, evaluate, common); nothing imports it but the CLI.
"""
