#ifndef TAILGATE_CLIBRDKAFKA_SHIM_H
#define TAILGATE_CLIBRDKAFKA_SHIM_H
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#endif
