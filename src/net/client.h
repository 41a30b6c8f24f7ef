/* net/client.h - what the engine needs of a client connection beyond the public sage_client_* calls. */
#ifndef SAGE_NET_CLIENT_H
#define SAGE_NET_CLIENT_H

#include "sage/jobmanager.h"

/* The connection's socket, for frames the public calls do not read (raw
 * result chunks). Valid until sage_client_close. */
int sage__client_fd(const sage_client *c);
/* The token the connection presented (a job's service asks a caller for it too). */
const char *sage__client_token(const sage_client *c);

#endif
