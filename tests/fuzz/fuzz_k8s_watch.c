/* Fuzz target: watch streams and what the controlplane does with their events. Bytes go
 * through the line splitter (cp_lines_feed); each line is decoded as a watch event; pod objects
 * update a pod IP map (then looked up), Service objects are planned against an import. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cl/err.h"
#include "cp_k8s.h"
#include "cp_k8s_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct ctx {
    struct cp_k8s_pods pods;
    json_t *imp;
    json_t *sel;
    struct cp_k8s_target t;
};

static int on_line(const char *line, size_t len, void *ud)
{
    struct ctx *c = ud;
    json_t *root, *obj, *body = NULL;
    const char *type, *ip;

    if (cp_k8s_watch_event(line, len, &root, &type, &obj) != 0)
        return 0;
    (void)cp_k8s_resource_version(obj);
    cp_k8s_pods_apply(&c->pods, obj, strcmp(type, "DELETED") == 0);
    ip = json_string_value(json_object_get(json_object_get(obj, "status"), "podIP"));
    if (ip != NULL) {
        json_t *attrs = json_object();
        cp_k8s_pods_attrs(&c->pods, ip, attrs);
        json_decref(attrs);
    }
    enum cp_k8s_action a = cp_k8s_plan(&c->t, "web", c->imp, obj, &body);
    if ((a == CP_K8S_CREATE || a == CP_K8S_UPDATE || a == CP_K8S_ADOPT) != (body != NULL))
        abort();
    /* only our own Services are ever deleted or updated; another gateway's never written */
    enum cp_k8s_owner own = cp_k8s_service_owner(obj, c->t.owner);
    if ((a == CP_K8S_DELETE || a == CP_K8S_UPDATE) && own != CP_K8S_OWNER_OURS)
        abort();
    if (a == CP_K8S_ADOPT && own != CP_K8S_OWNER_LEGACY)
        abort();
    if (a == CP_K8S_UPDATE || a == CP_K8S_ADOPT) {
        json_t *again = NULL; /* what we would PUT is what we want, and ours */
        if (cp_k8s_service_owner(body, c->t.owner) != CP_K8S_OWNER_OURS ||
            cp_k8s_plan(&c->t, "web", c->imp, body, &again) != CP_K8S_NONE)
            abort();
    }
    json_decref(body);
    json_decref(root);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ctx c;
    struct cp_lines l;
    char ip[64];

    cp_k8s_pods_init(&c.pods);
    c.imp = json_pack("{s:{s:s},s:{s:i,s:i}}", "metadata", "name", "web", "spec", "port", 80,
                      "targetPort", 20000);
    c.sel = json_pack("{s:s}", "app", "dp");
    c.t.ns = "ns";
    c.t.owner = "east";
    c.t.selector = c.sel;
    cp_lines_init(&l, 1 << 16);
    /* split in two at a point the first byte picks, like a stream arriving in reads */
    size_t cut = size > 0 ? data[0] % (size + 1) : 0;
    if (cp_lines_feed(&l, data, cut, on_line, &c) == 0)
        cp_lines_feed(&l, data + cut, size - cut, on_line, &c);
    cp_lines_deinit(&l);
    /* client addresses straight from the input too */
    if (size > 0 && size < 80) {
        char addr[80];
        memcpy(addr, data, size);
        addr[size] = '\0';
        if (strlen(addr) == size && cp_k8s_client_ip(addr, ip, sizeof(ip)) == 0) {
            json_t *attrs = json_object();
            cp_k8s_pods_attrs(&c.pods, ip, attrs);
            json_decref(attrs);
        }
    }
    json_decref(c.imp);
    json_decref(c.sel);
    cp_k8s_pods_deinit(&c.pods);
    return 0;
}
