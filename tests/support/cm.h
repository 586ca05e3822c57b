#ifndef CL_TEST_CM_H
#define CL_TEST_CM_H

/*
 * cmocka 1.1.5 entry point for the tests, so a later cmocka needs one edit here.
 * Include this instead of <cmocka.h>.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#endif
