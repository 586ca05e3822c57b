#ifndef CL_TEST_ROWS_H
#define CL_TEST_ROWS_H

/*
 * Checks for table-driven tests. They test what cmocka's assert_* test, but the failure
 * message names the row (`row`: a string the caller picks, such as the row's input or label),
 * so a failing row can be told from the others; the failure is reported at the caller's file
 * and line, as assert_* would.
 */
#include <string.h>

#include "cm.h"

/* got == want, as integers. */
#define CL_TEST_ROW_INT(row, got, want)                                              \
    do {                                                                             \
        long long got_ = (long long)(got), want_ = (long long)(want);                \
        if (got_ != want_)                                                           \
            fail_msg("row \"%s\": %s is %lld, want %lld", (row), #got, got_, want_); \
    } while (0)

/* Two strings are equal (both NULL counts as equal). */
#define CL_TEST_ROW_STR(row, got, want)                                                      \
    do {                                                                                     \
        const char *got_ = (got), *want_ = (want);                                           \
        if ((got_ == NULL) != (want_ == NULL) || (got_ != NULL && strcmp(got_, want_) != 0)) \
            fail_msg("row \"%s\": %s is \"%s\", want \"%s\"", (row), #got,                   \
                     got_ != NULL ? got_ : "(null)", want_ != NULL ? want_ : "(null)");      \
    } while (0)

/* `needle` occurs in the string `hay` (which is not NULL). */
#define CL_TEST_ROW_HAS(row, hay, needle)                                                \
    do {                                                                                 \
        const char *hay_ = (hay), *needle_ = (needle);                                   \
        if (hay_ == NULL || strstr(hay_, needle_) == NULL)                               \
            fail_msg("row \"%s\": %s is \"%s\", want it to contain \"%s\"", (row), #hay, \
                     hay_ != NULL ? hay_ : "(null)", needle_);                           \
    } while (0)

/* A condition holds. */
#define CL_TEST_ROW_TRUE(row, cond)                            \
    do {                                                       \
        if (!(cond))                                           \
            fail_msg("row \"%s\": %s is false", (row), #cond); \
    } while (0)

#endif
