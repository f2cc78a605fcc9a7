#ifndef PLEXUS_CZSTD_SHIM_H
#define PLEXUS_CZSTD_SHIM_H
#include <zstd.h>
#include <zstd_errors.h>
#endif
