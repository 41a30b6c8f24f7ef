/* api/env.h - the environment behind the public handle: its graph, configuration, error and backend. */
#ifndef SAGE_API_ENV_H
#define SAGE_API_ENV_H

#include "backend/backend.h"
#include "graph/graph.h"

struct sage_env {
    sage__config cfg;
    sage__err err; /* the sticky first error: declaration, compile, or run */
    sage__graph graph;
    sage__backend *backend;
    int executed; /* submit was called: the graph is frozen */
};

#endif
