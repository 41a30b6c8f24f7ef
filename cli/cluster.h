/* cli/cluster.h - `sage cluster`: a Slurm cluster for SAGE (start a head or a worker, status, stop). */
#ifndef SAGE_CLI_CLUSTER_H
#define SAGE_CLI_CLUSTER_H

/* argv[0] is "cluster"; returns the process exit status (0 done, 1 failed, 2 usage). */
int sage_cluster_main(int argc, char **argv);

#endif
