/* cli/cluster.c - `sage cluster`: not built yet; says so clearly. */
#include <stdio.h>

#include "cluster.h"

int sage_cluster_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "sage cluster: the Slurm cluster mode is not built yet\n");
    return 1;
}
