/* lp_version: the proxy's version, reported in health output and response headers. */
#ifndef LP_VERSION_H
#define LP_VERSION_H

#define LP_VERSION "0.1.0"

#endif
