"""A run folder on disk: its layout and checked readers (runs, snapshots, files), atomic
writes, the lock that keeps one writer per run and the writes finished in the background. No
Keras: the model file is saved by kexp.network.saving."""
