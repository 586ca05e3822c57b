#ifndef CL_TIME_H
#define CL_TIME_H

#include <stdint.h>

/* Monotonic milliseconds (CLOCK_MONOTONIC). */
uint64_t cl_now_ms(void);

/* Monotonic microseconds. */
uint64_t cl_now_us(void);

/* Wall clock, milliseconds since the epoch. */
uint64_t cl_wall_ms(void);

/* Formats a wall-clock time in ms as RFC 3339 UTC ("2026-11-24T10:00:00Z"). Returns `out`. */
const char *cl_time_rfc3339(uint64_t wall_ms, char *out, unsigned long outlen);

#endif
