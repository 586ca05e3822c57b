/* gwctl: the command line for a ClusterLink gateway. The subcommand table is in ctl_main.c so
 * the unit tests can drive it. */
#include <stdio.h>

#include "cl/mem.h"
#include "ctl.h"

int main(int argc, char **argv)
{
    struct ctl ctl = {
        .out = stdout,
        .err = stderr,
        .in = stdin,
        .tr = &ctl_http_transport,
    };
    int rc;

    cl_mem_install_jansson();
    rc = ctl_main(&ctl, argc, argv);
    if (fflush(stdout) != 0 && rc == 0) {
        fprintf(stderr, "error: cannot write the output\n");
        rc = 1;
    }
    return rc;
}
