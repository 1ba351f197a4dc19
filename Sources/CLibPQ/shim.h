#ifndef TAILGATE_CLIBPQ_SHIM_H
#define TAILGATE_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
