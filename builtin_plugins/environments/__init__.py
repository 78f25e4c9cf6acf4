"""Built-in cluster environments: lightning, slurm, lsf, kubeflow, torchelastic, xla, mpi, sge."""
