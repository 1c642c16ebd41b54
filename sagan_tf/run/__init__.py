"""The run directory and everything written to it: its layout (`run_dir`), the lock of its one writer (`run_lock`),
atomic writes (`atomic_write`) and what a failed write says (`write_failures`), the checkpoints (`checkpoint_store`:
their names, saves, finding and restoring them, the best one; `checkpoint`: what one holds), and a trained generator
restored from them (`restore`)."""
