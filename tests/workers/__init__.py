"""Programs the tests start in other processes (under torchrun, srun, mpirun, Ray, fork)."""
