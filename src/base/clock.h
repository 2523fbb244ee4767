/*
 * clock.h — wall-clock readings in the units dojo uses.
 * Thread: any.
 */
#ifndef DOJO_BASE_CLOCK_H
#define DOJO_BASE_CLOCK_H

#include <stdint.h>

uint64_t clock_now_ns(void);  /* nanoseconds since the Unix epoch (CLOCK_REALTIME) */
double clock_now_ms(void);    /* milliseconds since the Unix epoch, with fraction */
uint64_t clock_mono_ms(void); /* monotonic milliseconds, for timeouts and durations */
uint64_t clock_mono_us(void); /* monotonic microseconds */

#endif
