/* sage/sage.h - the whole public API of SAGE, the streaming dataflow engine. */
#ifndef SAGE_SAGE_H
#define SAGE_SAGE_H

#include "sage/error.h"
#include "sage/resources.h"
#include "sage/stream.h"
#include "sage/batch.h"
#include "sage/context.h"
#include "sage/env.h"
#include "sage/jobmanager.h"
#include "sage/binding.h"

#define SAGE_VERSION_MAJOR 0
#define SAGE_VERSION_MINOR 1
#define SAGE_VERSION_PATCH 0

#endif
